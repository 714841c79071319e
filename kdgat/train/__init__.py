"""Training: in-memory graph batches, KD losses, the per-epoch curriculum, Lightning modules, the
train_vgae / train_gat entry points, and inference tables for fusion, evaluation and figures."""
