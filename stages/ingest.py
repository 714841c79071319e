"""DVC stage `ingest@<dataset>`: data/raw/<dataset>/ → data/frames/<dataset>.parquet (params: ingest).

Writes the ingest report (files, frames, bad lines skipped) to reports/ingest/<dataset>.json.
"""

import sys

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.data import catalog
from kdgat.data.formats import read_any
from kdgat.data.formats_core import MAX_EXAMPLES
from kdgat.data.frames import write_frames
from kdgat.io import write_json
from kdgat.study import Paths
from kdgat.track.tracker import stage_run


def main(dataset: str) -> None:
    p = load_params()
    with stage_run("ingest", dataset, p, ["ingest"]) as t:
        opts, entry = p.ingest, catalog.get(dataset)
        fmt = entry.format if opts.format == "auto" else opts.format
        raw = entry.raw_dir()
        if not raw.exists():
            raise FileNotFoundError(f"{raw}: raw data for {dataset!r} missing (source: {entry.source})")
        frames, report = read_any(raw, fmt, opts.on_bad_line, entry.attack_from)
        for name in report.ignored[:MAX_EXAMPLES]:
            print(f"warning: {raw / name}: not a capture (extension); left out", file=sys.stderr)
        paths = Paths(dataset)
        write_frames(frames, paths.frames)
        write_json(report.to_dict(), paths.report("ingest"))
        t.summary(report.to_dict())


if __name__ == "__main__":
    run_stage(main, __doc__)
