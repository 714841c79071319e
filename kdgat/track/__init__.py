"""W&B tracking: one run per stage (tracker.py), per-epoch logging from Lightning (lightning.py), and the
offline runs left in wandb/ (sync.py)."""
