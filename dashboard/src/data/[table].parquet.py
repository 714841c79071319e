"""One results table, the union over every dataset in results/ (results/<dataset>/<table>.parquet), as
Parquet on stdout. A table no dataset has yet comes out empty with its schema, so a page can say that it
is missing instead of failing on a file that is not there.

Framework runs it as `[table].parquet.py --table=NAME`; KDGAT_RESULTS overrides the folder."""

import argparse
import io
import os
import sys
from pathlib import Path

import polars as pl

from kdgat.results.schema import TABLES

parser = argparse.ArgumentParser()
parser.add_argument("--table", required=True, choices=sorted(TABLES))
table = TABLES[parser.parse_args().table]
results = Path(os.environ.get("KDGAT_RESULTS", "../results"))
files = sorted(results.glob(f"*/{table.name}.parquet"))
frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else table.schema.to_frame()
buffer = io.BytesIO()
frame.write_parquet(buffer)
sys.stdout.buffer.write(buffer.getvalue())
