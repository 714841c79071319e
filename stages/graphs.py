"""DVC stage `graphs@<dataset>`: frames → graph shards in data/graphs/<dataset>/ (params: windows, split,
vocab; train.batch_size for the split checks).

The stage owns its out (dvc.yaml), so it replaces it (force) even where an older kdgat left it unmarked.
Writes split counts, duplicates dropped and the vocabulary size to reports/graphs/<dataset>.json.
"""

import sys
from pathlib import Path

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.data.frames import read_frames
from kdgat.data.graphs import build_graphs
from kdgat.io import write_json
from kdgat.track.tracker import stage_run


def main(dataset: str) -> None:
    p = load_params()
    with stage_run("graphs", dataset, p, ["windows", "split", "vocab", "train.batch_size"]) as t:
        frames = read_frames(f"data/frames/{dataset}.parquet")
        out = Path(f"data/graphs/{dataset}")
        meta = build_graphs(
            frames, p.windows, p.split, p.vocab, out, force=True, batch_size=p.train.batch_size
        )
        report = {k: meta[k] for k in ("counts", "duplicates_dropped", "vocab_size")}
        write_json(report, f"reports/graphs/{dataset}.json")
        t.summary(report)


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
