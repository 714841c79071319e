"""Test helpers, not tests: a real S3 server (s3server), a one-node SLURM cluster (slurm_cluster) and
tiny graph data and params (tiny_project). tests/conftest.py turns the servers into fixtures."""
