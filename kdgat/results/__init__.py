"""The study's results as Parquet tables (build.py, schema.py), their DuckDB views (views.py) and the
terminal tables of metrics (tables.py)."""
