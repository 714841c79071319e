"""DVC stage `dashboard`: the Observable Framework site in dashboard/dist, built from the results tables
of every dataset (docs/dashboard.md). Installs dashboard/node_modules from its lock file first when
needed; the build itself reaches no network.

    python stages/dashboard.py
"""

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.dashboard import build


def main() -> None:
    print(f"site → {build()}")


if __name__ == "__main__":
    run_stage(main, __doc__)
