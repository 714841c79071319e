"""DVC stage `results@<dataset>`: the dataset's metrics, training reports, dataset facts and figure tables
as Parquet tables in results/D/ (schema: kdgat/results/schema.py, docs/results.md).

    python stages/results.py DATASET
"""

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.results.build import build_results
from kdgat.track.tracker import git_commit, stage_run


def main(dataset: str) -> None:
    params = load_params()
    with stage_run("results", dataset, params) as t:
        rows = build_results(dataset, params, commit=git_commit())
        t.summary({f"rows/{name}": n for name, n in rows.items()})
    print(", ".join(f"{name} {n}" for name, n in rows.items()), f"rows → results/{dataset}/")


if __name__ == "__main__":
    run_stage(main, __doc__)
