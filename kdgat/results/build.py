"""Results tables: one dataset's pipeline outputs gathered into Parquet files any tool can query.

    build_results("synth", load_params())   # → results/synth/<table>.parquet (kdgat/results/schema.py)

The DVC stage `results@<dataset>` runs this after `evaluate@<dataset>`. Inputs (all written by earlier
stages): metrics/D.json, reports/train/D/<model>.json and .epochs.csv, reports/graphs/D.json,
reports/ingest/D.json, plots/D/figures/*, params.yaml and the git commit. Every table is built in memory
first, then cast to its documented schema and written atomically (temp file + rename), one after the
other: a run killed midway leaves each table either as it was or complete, never half-written, and a rerun
on the same inputs writes the same bytes (rows in input order, no timestamps, a fixed writer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from kdgat.config import Params, sections
from kdgat.data.layout import CALIBRATION, SCENARIOS
from kdgat.io import atomic_path
from kdgat.results.schema import FIGURE_TABLES, META_TABLE, META_VERSION, SCHEMA_VERSION, TABLES, Table
from kdgat.study import Model, Paths

SPLIT_ORDER = ("train", "val", *(f"test_{s}" for s in SCENARIOS.values()), CALIBRATION)
Report = dict[str, Any]


class ResultsError(FileNotFoundError):
    """An input of the results tables is missing or malformed; the message names the file. (A
    FileNotFoundError, so kdgat/cli/stage.py prints it as one line instead of a traceback.)"""


@dataclass(frozen=True)
class Sources(Paths):
    """One dataset's files (``Paths``), with the training reports read once."""

    _reports: dict[str, Report] = field(default_factory=dict, repr=False, compare=False)

    @property
    def figures(self) -> Path:
        return self.plots / "figures"

    def epochs(self, model: str) -> Path:
        return self.outputs(Model.parse(model)).epochs

    def train_report(self, model: str) -> Report:
        if model not in self._reports:
            self._reports[model] = read_json(self.outputs(Model.parse(model)).report)
        return self._reports[model]


def read_json(path: Path) -> Any:
    if not path.exists():
        raise ResultsError(f"{path}: not found; the results stage reads the pipeline's outputs (`make run`)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: not valid JSON: {err}") from None


# --- lineage and params ---------------------------------------------------------------------------


def _model_of(path: str | None, where: str) -> str | None:
    """The model name a report's file path refers to (models/D/gat_large.ckpt → gat_large)."""
    if not path:
        return None
    try:
        return Model.parse(Path(path).stem).name
    except KeyError as err:
        raise ResultsError(f"{where}: {err.args[0]}") from None


def links(src: Sources, model: str) -> dict[str, str | None]:
    """teacher, curriculum_vgae, fusion_vgae, fusion_gat of a model, as its training report records them."""
    rep, where = src.train_report(model), f"reports/train/{src.dataset}/{model}.json"
    inputs = rep.get("inputs") or {}
    return {
        "teacher": _model_of(rep.get("teacher"), where),
        "curriculum_vgae": _model_of(rep.get("vgae_scores"), where),
        "fusion_vgae": _model_of(inputs.get("vgae"), where),
        "fusion_gat": _model_of(inputs.get("gat"), where),
    }


def stage_params(params: Params, model: Model) -> dict[str, Any]:
    """The params.yaml entries the model's own DVC stage declares (Model.param_keys = dvc.yaml `params:`)."""
    return sections(params, model.param_keys)


def lineage_params(src: Sources, params: Params, model: str) -> dict[str, Any]:
    """stage_params of the model and of every model upstream of it (teacher, curriculum VGAE, inputs)."""
    out: dict[str, Any] = {}
    todo, seen = [model], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        out.update(stage_params(params, Model.parse(name)))
        todo += [m for m in links(src, name).values() if m]
    return dict(sorted(out.items()))


# --- tables ---------------------------------------------------------------------------------------


def runs_table(src: Sources, models: list[str], params: Params, commit: str | None) -> pl.DataFrame:
    rows = []
    for name in models:
        try:
            m = Model.parse(name)
        except KeyError as err:
            raise ResultsError(f"{src.metrics}: {err.args[0]}") from None
        try:
            rows.append(_run_row(src, m, params, commit))
        except KeyError as err:
            where = f"reports/train/{src.dataset}/{name}.json (or a report upstream of it)"
            raise ResultsError(f"{where}: no {err.args[0]!r} field") from None
    return pl.DataFrame(rows, schema=TABLES["runs"].schema, orient="row")


def _run_row(src: Sources, m: Model, params: Params, commit: str | None) -> dict[str, Any]:
    rep, link, fusion = src.train_report(m.name), links(src, m.name), m.family == "fusion"
    count = _params_count(src, m.name)
    inputs = [link["fusion_vgae"], link["fusion_gat"]] if fusion else []
    lineage = json.dumps(lineage_params(src, params, m.name), sort_keys=True, separators=(",", ":"))
    return {
        "dataset": src.dataset,
        "model": m.name,
        "family": m.family,
        "variant": m.variant,
        "scale": m.scale,
        "kd": link["teacher"] is not None,
        **link,
        "params_count": count,
        "params_total": count + sum(_params_count(src, i) for i in inputs if i),
        "epochs_run": rep["epochs_run"],
        "best_epoch": rep["best_epoch"],
        "monitor": "select_reward" if fusion else rep["monitor"],
        "best_value": rep["best_select_reward"] if fusion else rep["best_val"],
        "stopped_early": rep.get("stopped_early"),
        "wall_seconds": rep["wall_s"] if fusion else rep["wall_seconds"],  # fusion_train.py names it wall_s
        "started_at": _time(rep.get("started_at"), src, m.name),
        "finished_at": _time(rep.get("finished_at"), src, m.name),
        "train_seconds": rep.get("train_seconds"),
        "train_graphs_per_s": rep.get("train_graphs_per_s"),
        "resumed_from": rep.get("resumed_from"),
        "params_hash": hashlib.sha256(lineage.encode()).hexdigest()[:16],
        "params": lineage,
        "git_commit": commit,
    }


def _time(stamp: str | None, src: Sources, model: str) -> datetime | None:
    """An ISO 8601 time of a training report (UTC when it names no zone); None when it has none."""
    if stamp is None:
        return None
    try:
        t = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        raise ResultsError(
            f"reports/train/{src.dataset}/{model}.json: not an ISO 8601 time: {stamp!r}"
        ) from None
    return t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)


def _params_count(src: Sources, model: str) -> int:
    rep = src.train_report(model)
    return int(rep["params"] if Model.parse(model).family == "fusion" else rep["params_count"])


def metrics_table(dataset: str, metrics: dict[str, dict[str, dict[str, Any]]]) -> pl.DataFrame:
    rows = [
        (dataset, model, scenario, metric, None if value is None else float(value))
        for model, by_scenario in metrics.items()
        for scenario, values in by_scenario.items()
        for metric, value in values.items()
    ]
    return pl.DataFrame(rows, schema=TABLES["metrics"].schema, orient="row")


def epoch_metrics_table(src: Sources, models: list[str]) -> pl.DataFrame:
    parts = []
    for name in models:
        path = src.epochs(name)
        if not path.exists():
            raise ResultsError(f"{path}: not found; the training stage of {name} writes it")
        df = pl.read_csv(path, infer_schema_length=None)
        if "epoch" not in df.columns:
            raise ResultsError(f"{path}: no `epoch` column; has {df.columns}")
        try:
            df = df.with_columns(pl.col("epoch").cast(pl.Int64), pl.exclude("epoch").cast(pl.Float64))
        except pl.exceptions.InvalidOperationError as err:
            raise ResultsError(f"{path}: a non-numeric column: {err}") from None
        long = df.unpivot(index="epoch", variable_name="metric", value_name="value")
        parts.append(long.select(pl.lit(src.dataset).alias("dataset"), pl.lit(name).alias("model"), pl.all()))
    return pl.concat(parts) if parts else pl.DataFrame(schema=TABLES["epoch_metrics"].schema)


def _split_key(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def datasets_table(src: Sources) -> pl.DataFrame:
    graphs, ingest = read_json(src.report("graphs")), read_json(src.report("ingest"))
    dropped = graphs.get("duplicates_dropped", {})
    rows = [
        {
            "dataset": src.dataset,
            "split": split,
            **{k: c[k] for k in ("graphs", "nodes", "edges", "benign", "attack")},
            "attack_types": [
                {"attack": a, "graphs": n} for a, n in sorted(c.get("attack_types", {}).items())
            ],
            "duplicates_dropped": dropped.get(split),
            "vocab_size": graphs["vocab_size"],
            "captures": ingest["files"],
            "frames": ingest["frames"],
            "bad_lines": ingest["bad_lines"],
        }
        for split, c in sorted(graphs["counts"].items(), key=lambda kv: _split_key(kv[0]))
    ]
    return pl.DataFrame(rows, schema=TABLES["datasets"].schema, orient="row")


def figure_table(src: Sources, name: str) -> pl.DataFrame:
    """A figure table of the evaluate stage with a dataset column (and attack_type, the name of y_type, from
    the evaluate stage's attack_types.csv); empty when evaluate wrote none."""
    parquet, csv = src.figures / f"{name}.parquet", src.figures / f"{name}.csv"
    if parquet.exists():
        df = pl.read_parquet(parquet)
    elif csv.exists():
        df = pl.read_csv(csv, infer_schema_length=None)
    else:
        return pl.DataFrame(schema=TABLES[name].schema)
    df = df.select(pl.lit(src.dataset).alias("dataset"), pl.all())
    names = src.figures / "attack_types.csv"
    if "y_type" in df.columns and names.exists():  # the attack type's name beside its code
        lookup = pl.read_csv(names, schema={"y_type": pl.Int64, "attack_type": pl.String})
        df = df.join(lookup, on="y_type", how="left", maintain_order="left")
    return df


def build_tables(src: Sources, params: Params, commit: str | None) -> dict[str, pl.DataFrame]:
    """Every table of one dataset, in the order of kdgat/results/schema.py, conformed to its schema."""
    metrics = read_json(src.metrics)
    models = list(metrics)
    built = {
        "runs": runs_table(src, models, params, commit),
        "metrics": metrics_table(src.dataset, metrics),
        "epoch_metrics": epoch_metrics_table(src, models),
        "datasets": datasets_table(src),
        **{name: figure_table(src, name) for name in FIGURE_TABLES},
    }
    return {name: conform(built[name], table) for name, table in TABLES.items()}


def conform(df: pl.DataFrame, table: Table) -> pl.DataFrame:
    """``df`` with exactly the table's columns, in order, cast to their types; a missing nullable column
    becomes nulls, a missing or null required one is an error."""
    missing = [c.name for c in table.columns if c.name not in df.columns and not c.nullable]
    if missing:
        raise ResultsError(f"table {table.name}: its source ({table.source}) lacks columns {missing}")
    cols = [
        pl.col(c.name).cast(c.dtype) if c.name in df.columns else pl.lit(None, c.dtype).alias(c.name)
        for c in table.columns
    ]
    out = df.select(cols)
    nulls = [c for c in table.required if out[c].null_count()]
    if nulls:
        raise ResultsError(f"table {table.name}: nulls in required columns {nulls} (from {table.source})")
    return out


def write_table(df: pl.DataFrame, table: Table, dest: Path) -> None:
    meta = {META_TABLE: table.name, META_VERSION: str(SCHEMA_VERSION)}
    with atomic_path(dest) as tmp:
        df.write_parquet(tmp, compression="zstd", metadata=meta)


def build_results(
    dataset: str,
    params: Params,
    root: Path = Path(),
    out_dir: Path | None = None,
    commit: str | None = None,
) -> dict[str, int]:
    """Build and write every table of ``dataset`` to ``out_dir`` (default results/<dataset>/ under
    ``root``); returns the rows per table. Nothing is written unless every table could be built."""
    src = Sources(dataset, root)
    tables = build_tables(src, params, commit)
    out = out_dir if out_dir is not None else src.results
    for name, df in tables.items():
        write_table(df, TABLES[name], out / f"{name}.parquet")
    return {name: df.height for name, df in tables.items()}
