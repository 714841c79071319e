"""DVC stage `graphs@<dataset>`: frames → graph shards in data/graphs/<dataset>/ (params: windows, split,
vocab).

Writes split counts, duplicates dropped and the vocabulary size to reports/graphs/<dataset>.json.
"""

import sys
from pathlib import Path

from kdgat.config import load_params
from kdgat.data.frames import read_frames
from kdgat.data.graphs import build_graphs
from kdgat.reports import write_json
from kdgat.stage import run_stage


def main(dataset: str) -> None:
    p = load_params()
    frames = read_frames(f"data/frames/{dataset}.parquet")
    meta = build_graphs(frames, p.windows, p.split, p.vocab, Path(f"data/graphs/{dataset}"))
    write_json(
        {k: meta[k] for k in ("counts", "duplicates_dropped", "vocab_size")}, f"reports/graphs/{dataset}.json"
    )


if __name__ == "__main__":
    run_stage(main, *sys.argv[1:])
