"""Imported first by every stage script: puts the checkout the script belongs to first on ``sys.path``, so
``kdgat`` comes from it and not from the editable install. A `dvc exp run --queue` / `--temp` experiment runs
in its own copy of the repository, and without this its stages would import the workspace's kdgat, edits
made meanwhile included. A SLURM job's snapshot already gets its own kdgat (PYTHONPATH); this agrees."""

import sys
from pathlib import Path

CHECKOUT = str(Path(__file__).resolve().parents[1])
if sys.path[:1] != [CHECKOUT]:
    sys.path.insert(0, CHECKOUT)
