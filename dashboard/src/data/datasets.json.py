"""The datasets in results/ (each folder holding at least one results table), sorted, as a JSON list: the
dataset selector of every page. A page lists a dataset even where the table it reads is missing for it, so
it can say so rather than drop the dataset from its selector. KDGAT_RESULTS overrides ../results."""

import json
import os
from pathlib import Path

from kdgat.results.schema import TABLES

results = Path(os.environ.get("KDGAT_RESULTS", "../results")).resolve()
names = {f"{table.name}.parquet" for table in TABLES.values()}
found = results.glob("*/*.parquet") if results.is_dir() else []
print(json.dumps(sorted({f.parent.name for f in found if f.name in names})))
