"""DuckDB over the results tables: one view per table (the union over results/*/<table>.parquet) and the
study's two summaries, `leaderboard` and `kd_transfer` (columns documented in kdgat/results/schema.py).

    con = connect(Path("results"))
    con.execute("SELECT * FROM kd_transfer WHERE family = 'gat'").fetchall()

The SQL is plain DuckDB, so a dashboard on DuckDB-WASM can run ``view_sql(...)`` as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from kdgat.results.schema import TABLES, VIEWS
from kdgat.results.tables import SCENARIO_ORDER


class ResultsMissingError(FileNotFoundError):
    """No results tables where they were looked for."""


_SCENARIO_POS = f"list_position({list(SCENARIO_ORDER)}, scenario)"
SCENARIO_ORDER_SQL = f"coalesce({_SCENARIO_POS}, 99), scenario"
LEADERBOARD_ORDER = f"dataset, {SCENARIO_ORDER_SQL}, rank, params_total, model"
KD_TRANSFER_ORDER = f"dataset, list_position(['vgae', 'gat', 'fusion'], family), family, {SCENARIO_ORDER_SQL}"

LEADERBOARD_SQL = f"""
WITH wide AS (
    SELECT dataset, scenario, model,
        max(value) FILTER (WHERE metric = 'f1') AS f1,
        max(value) FILTER (WHERE metric = 'precision') AS precision,
        max(value) FILTER (WHERE metric = 'recall') AS recall,
        max(value) FILTER (WHERE metric = 'fpr') AS fpr,
        max(value) FILTER (WHERE metric = 'roc_auc') AS roc_auc,
        max(value) FILTER (WHERE metric = 'mcc') AS mcc
    FROM metrics GROUP BY dataset, scenario, model
)
SELECT w.dataset, w.scenario,
    CAST(rank() OVER (PARTITION BY w.dataset, w.scenario ORDER BY w.f1 DESC NULLS LAST) AS BIGINT) AS rank,
    w.model, w.f1, w.precision, w.recall, w.fpr, w.roc_auc, w.mcc,
    r.params_count AS params, r.params_total
FROM wide w LEFT JOIN runs r ON r.dataset = w.dataset AND r.model = w.model
ORDER BY {LEADERBOARD_ORDER}
"""

KD_TRANSFER_SQL = f"""
WITH f1 AS (
    SELECT m.dataset, r.family, r.variant, m.scenario, m.value AS f1, r.params_total
    FROM metrics m JOIN runs r ON r.dataset = m.dataset AND r.model = m.model
    WHERE m.metric = 'f1'
), wide AS (
    SELECT dataset, family, scenario,
        max(f1) FILTER (WHERE variant = 'large') AS f1_large,
        max(f1) FILTER (WHERE variant = 'small_kd') AS f1_small_kd,
        max(f1) FILTER (WHERE variant = 'small') AS f1_small,
        max(params_total) FILTER (WHERE variant = 'large') AS params_large,
        max(params_total) FILTER (WHERE variant = 'small') AS params_small
    FROM f1 GROUP BY dataset, family, scenario
)
SELECT dataset, family, scenario, f1_large, f1_small_kd, f1_small,
    f1_small_kd - f1_small AS kd_gain,
    f1_large - f1_small_kd AS gap_to_teacher,
    params_large, params_small,
    CAST(params_large AS DOUBLE) / params_small AS compression
FROM wide
ORDER BY {KD_TRANSFER_ORDER}
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(results_dir: Path) -> dict[str, str]:
    """CREATE VIEW statements, in dependency order, for every table and summary over ``results_dir``."""
    base = results_dir.resolve()
    sql = {
        name: f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
        f"{_quote(str(base / '*' / f'{name}.parquet'))}, union_by_name = true)"
        for name in TABLES
    }
    sql["leaderboard"] = f"CREATE OR REPLACE VIEW leaderboard AS {LEADERBOARD_SQL}"
    sql["kd_transfer"] = f"CREATE OR REPLACE VIEW kd_transfer AS {KD_TRANSFER_SQL}"
    return sql


def connect(results_dir: Path = Path("results")) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the views of ``view_sql``; ResultsMissingError when a table has no file."""
    hint = "run `make run` first (the `results` stage writes it)"
    if not results_dir.is_dir():
        raise ResultsMissingError(f"{results_dir}/: not found; {hint}")
    absent = [t for t in TABLES if not any(results_dir.glob(f"*/{t}.parquet"))]
    if absent:
        raise ResultsMissingError(f"{results_dir}/*/: no {', '.join(absent)} table(s); {hint}")
    con = duckdb.connect()
    for statement in view_sql(results_dir).values():
        con.execute(statement)
    return con


def query(results_dir: Path, sql: str, args: list[object] | None = None) -> pl.DataFrame:
    con = connect(results_dir)
    try:
        table = con.sql(sql, params=args or []).to_arrow_table()
    finally:
        con.close()
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


def leaderboard(results_dir: Path, dataset: str | None = None, scenario: str | None = None) -> pl.DataFrame:
    """The leaderboard view, optionally one dataset and/or one scenario."""
    where, args = _filters({"dataset": dataset, "scenario": scenario})
    return query(results_dir, f"SELECT * FROM leaderboard {where} ORDER BY {LEADERBOARD_ORDER}", args)


def kd_transfer(results_dir: Path, dataset: str | None = None, scenario: str | None = None) -> pl.DataFrame:
    where, args = _filters({"dataset": dataset, "scenario": scenario})
    return query(results_dir, f"SELECT * FROM kd_transfer {where} ORDER BY {KD_TRANSFER_ORDER}", args)


def show(results_dir: Path, name: str, dataset: str | None = None, limit: int | None = None) -> pl.DataFrame:
    """Rows of any table or view, in file order (``limit`` first rows)."""
    if name not in TABLES and name not in VIEWS:
        raise KeyError(f"unknown table {name!r}; expected one of {', '.join([*TABLES, *VIEWS])}")
    where, args = _filters({"dataset": dataset})
    tail = "" if limit is None else f" LIMIT {int(limit)}"
    return query(results_dir, f"SELECT * FROM {name} {where}{tail}", args)


def table_counts(results_dir: Path) -> pl.DataFrame:
    """table, datasets, rows: what results/ holds."""
    parts = " UNION ALL ".join(
        f"SELECT '{t}' AS table_name, count(DISTINCT dataset) AS datasets, count(*) AS rows FROM {t}"
        for t in (*TABLES, *VIEWS)
    )
    return query(results_dir, parts)


def _filters(values: dict[str, str | None]) -> tuple[str, list[object]]:
    used = {k: v for k, v in values.items() if v is not None}
    where = " AND ".join(f"{k} = ?" for k in used)
    return (f"WHERE {where}" if where else ""), list(used.values())


def render(df: pl.DataFrame, max_rows: int = 200) -> str:
    """A Markdown table for the terminal: every column, floats to 3 decimals, '—' for null."""
    if df.height == 0:
        return "(no rows)"
    shown = (
        df.head(max_rows)
        .select(
            pl.Series(n, [None if v is None else json.dumps(v) for v in df[n].head(max_rows).to_list()])
            if t.is_nested()
            else pl.col(n).map_elements(lambda v: f"{v:.3f}", return_dtype=pl.String)
            if t.is_float()
            else pl.col(n).cast(pl.String)
            for n, t in df.schema.items()
        )
        .fill_null("—")
    )
    with pl.Config(
        tbl_formatting="MARKDOWN",
        tbl_hide_column_data_types=True,
        tbl_hide_dataframe_shape=True,
        tbl_rows=max_rows,
        tbl_cols=-1,
        tbl_width_chars=10_000,
        fmt_str_lengths=80,  # long JSON cells (runs.params) end in "…"
    ):
        text = str(shown)
    return text + (f"\n({df.height - max_rows} more rows)" if df.height > max_rows else "")
