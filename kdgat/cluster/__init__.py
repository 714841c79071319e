"""Running work elsewhere: submitit executors and the DVC DAG fan-out (launch.py, fanout.py), Optuna studies
(hpo.py), the DVC remote on R2 (remote.py), the Metaflow KD flow's settings and work (metaflow.py)."""
