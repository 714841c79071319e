"""Measurements of speed: graph building and model steps (speed.py, models.py) and the wall time of a whole
`dvc repro` (repro_timer.py, what `make run` calls)."""
