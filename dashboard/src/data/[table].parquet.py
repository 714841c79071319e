"""One results table, the union over every dataset in results/ (results/<dataset>/<table>.parquet, read
as kdgat/results/views.py reads it), as Parquet on stdout. A table no dataset has yet comes out empty
with its schema, so a page can say that it is missing instead of failing on a file that is not there.

DuckDB writes it: its Parquet carries no Arrow schema, so the browser reads plain List and Utf8 columns
(Arrow JS has no LargeList, which polars' embedded schema would ask for).
Framework runs it as `[table].parquet.py --table=NAME`; KDGAT_RESULTS overrides ../results."""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import duckdb

from kdgat.results.schema import TABLES

parser = argparse.ArgumentParser()
parser.add_argument("--table", required=True, choices=sorted(TABLES))
table = TABLES[parser.parse_args().table]
results = Path(os.environ.get("KDGAT_RESULTS", "../results")).resolve()
files = sorted(str(f) for f in results.glob(f"*/{table.name}.parquet"))
con = duckdb.connect()
if files:
    source = con.read_parquet(files, union_by_name=True)
else:
    source = con.from_arrow(table.schema.to_frame().to_arrow())
with tempfile.TemporaryDirectory() as tmp:
    out = Path(tmp) / "table.parquet"
    source.write_parquet(str(out))
    sys.stdout.buffer.write(out.read_bytes())
