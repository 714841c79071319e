"""DVC stage `graphs@<dataset>`: frames → graph shards in data/graphs/<dataset>/ (params: windows, split,
vocab; train.batch_size for the split checks; calibration.seconds: how much of a calibration capture;
calibration.align_ids: the unseen vehicle's windows again through its ID alignment).

The stage owns its out (dvc.yaml), so it replaces it (force) even where an older kdgat left it unmarked.
Writes split counts (benign and attack windows per split), duplicates dropped, the vocabulary size and
warnings (splits.split_warnings: too few attack windows for training to move) to
reports/graphs/<dataset>.json.
"""

import sys

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.data.frames import read_frames
from kdgat.data.graphs import build_graphs
from kdgat.data.splits import split_warnings
from kdgat.io import write_json
from kdgat.study import Paths
from kdgat.track.tracker import stage_run


def main(dataset: str) -> None:
    p, paths = load_params(), Paths(dataset)
    with stage_run(
        "graphs",
        dataset,
        p,
        ["windows", "split", "vocab", "train.batch_size", "calibration.seconds", "calibration.align_ids"],
    ) as t:
        batch = p.train.batch_size
        frames = read_frames(paths.frames)
        meta = build_graphs(
            frames,
            p.windows,
            p.split,
            p.vocab,
            paths.graphs,
            force=True,
            batch_size=batch,
            calibration=p.calibration,
        )
        report = {k: meta[k] for k in ("counts", "duplicates_dropped", "vocab_size")}
        report["warnings"] = split_warnings(meta["counts"], batch)
        for warning in report["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        write_json(report, paths.report("graphs"))
        t.summary(report)


if __name__ == "__main__":
    run_stage(main, __doc__)
