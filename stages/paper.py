"""DVC stage `paper`: the paper's data from the results tables of every dataset: the tables its figures
read (paper/data/*.parquet) and the numbers its text reads (paper/_variables.yml); docs/paper.md.

    python stages/paper.py
"""

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.paper.build import build_paper
from kdgat.track.tracker import stage_run


def main() -> None:
    params = load_params()
    with stage_run("paper", params.paper.dataset, params, ["paper"]) as t:
        rows = build_paper(params)
        t.summary({f"rows/{name}": n for name, n in rows.items()})
    print(", ".join(f"{name} {n}" for name, n in rows.items()), "→ paper/data/, paper/_variables.yml")


if __name__ == "__main__":
    run_stage(main, __doc__)
