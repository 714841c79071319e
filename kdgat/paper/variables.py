"""The paper's numbers: every metric, count and comparison its text states, as Quarto variables
(paper/_variables.yml, read with `{{< var metric.f1.known.gat_large >}}`), computed from the results
tables so that no number in the text is typed by hand.

    paper_variables("synth", tables)   # tables: metrics, runs, datasets (kdgat/results/schema.py)

Values are strings formatted as the README's tables print them (metrics to 3 decimals, counts with
thousands separators), so the text reads the same numbers as `kdgat metrics`. Keys:

    dataset                                   the dataset the text reports (params.yaml paper.dataset)
    data.{captures,frames,bad_lines,vocab}    ingest and vocabulary facts
    data.graphs.<split> / .benign.<split> / .attack.<split>, data.graphs.total
    data.attack_types.<split>                 the split's attack types, comma-separated
    metric.<metric>.<scenario>.<model>        one value of metrics/<dataset>.json
    range.<metric>.<scenario>.<group>         "lo–hi" over a group of models (all, the three families,
                                              teachers, students)
    best.<scenario>.{model,f1}                the model with the highest F1 (ties: the smaller detector)
    params.<model>                            parameters of the detector (runs.params_total)
    kd.<family>.<scenario>.{teacher,kd,alone,gain,verdict}   the kd_transfer view; verdict says how the
                                              distilled student compares with the one trained alone:
                                              "above", "below" or "level with" (at 3 decimals)
    kd.<family>.compression                   teacher / student parameters, one decimal
    fusion.<metric>.<variant>.<scenario>      the fusion against the GAT it fuses (same variant), by F1 or
                                              ROC-AUC: "above", "below" or "level with"
    goal.value.<goal>                         the goals the study set itself (GOALS), as printed
    goal.<goal>.met_by                        the models that reach a goal, comma-separated, or "none"
    count.<scenario>.<model>.{fp,fn,benign,attack}   confusion counts behind a metric
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import duckdb
import polars as pl

from kdgat.io import DataError
from kdgat.results.tables import SCENARIO_ORDER
from kdgat.results.views import KD_TRANSFER_SQL
from kdgat.study import FAMILIES, MODELS, VARIANTS

# The metrics the text may quote (each is a key of metrics/<dataset>.json)
METRICS = ("f1", "precision", "recall", "fpr", "roc_auc", "pr_auc", "mcc", "specificity")
COUNTS = {"fp": "fp", "fn": "fn", "benign": "n_benign", "attack": "n_attack"}
GROUPS: dict[str, tuple[str, ...]] = {
    "all": MODELS,
    **{family: tuple(f"{family}_{v}" for v in VARIANTS) for family in FAMILIES},
    "gat_fusion": tuple(f"{f}_{v}" for f in ("gat", "fusion") for v in VARIANTS),
    "teachers": tuple(f"{f}_large" for f in FAMILIES),
    "students": tuple(f"{f}_{v}" for f in FAMILIES for v in ("small_kd", "small")),
}
# The goals set before the runs (docs/study.md): known F1; on the unseen vehicle with calibrated thresholds,
# a false-positive rate at most vehicle_fpr at a recall of at least vehicle_recall; masquerade F1
GOALS = {"known_f1": 0.99, "vehicle_fpr": 0.02, "vehicle_recall": 0.95, "masquerade_f1": 0.6}
DASH, MINUS = "–", "−"  # an en dash between the ends of a range, a minus sign before a negative gain


class PaperDataError(DataError):
    """The results lack what the paper states; the message says what and where."""


def metric(value: float | None) -> str:
    """A metric as the README's tables print it: 3 decimals; "n/a" where it is undefined (null)."""
    return "n/a" if value is None else f"{value:.3f}"


def count(value: float | int) -> str:
    return f"{int(value):,}"


def signed(value: float | None) -> str:
    """A difference with its sign: +0.004, −0.006, 0.000."""
    if value is None:
        return "n/a"
    text = f"{abs(value):.3f}"
    return text if text == "0.000" else ("+" if value > 0 else MINUS) + text


def span(values: Iterable[float | None]) -> str:
    """The range of ``values`` as printed (lo–hi), one number when both ends print the same; undefined
    values are left out ("n/a" when none is defined)."""
    printed = sorted({metric(v) for v in values if v is not None}, key=float)
    if not printed:
        return "n/a"
    return printed[0] if len(printed) == 1 else f"{printed[0]}{DASH}{printed[-1]}"


def verdict(value: float | None, other: float | None) -> str:
    """How ``value`` compares with ``other`` at the printed precision: above, below or level with."""
    if value is None or other is None:
        return "not comparable with"
    a, b = metric(value), metric(other)
    return "level with" if a == b else "above" if float(a) > float(b) else "below"


def _scenarios(present: Iterable[str]) -> list[str]:
    have = set(present)
    return [s for s in SCENARIO_ORDER if s in have] + sorted(have - set(SCENARIO_ORDER))


def _metric_values(metrics: pl.DataFrame) -> dict[str, dict[str, dict[str, float | None]]]:
    """metric → scenario → model → value."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for row in metrics.iter_rows(named=True):
        out.setdefault(row["metric"], {}).setdefault(row["scenario"], {})[row["model"]] = row["value"]
    return out


def _data_section(datasets: pl.DataFrame) -> dict[str, Any]:
    first = datasets.row(0, named=True)
    section: dict[str, Any] = {
        "captures": count(first["captures"]),
        "frames": count(first["frames"]),
        "bad_lines": count(first["bad_lines"]),
        "vocab": count(first["vocab_size"]),
        "graphs": {"total": count(int(datasets["graphs"].sum()))},
        "benign": {},
        "attack": {},
        "attack_types": {},
    }
    for row in datasets.iter_rows(named=True):
        split = row["split"]
        section["graphs"][split] = count(row["graphs"])
        section["benign"][split] = count(row["benign"])
        section["attack"][split] = count(row["attack"])
        section["attack_types"][split] = ", ".join(a["attack"] for a in row["attack_types"]) or "none"
    return section


def kd_rows(metrics: pl.DataFrame, runs: pl.DataFrame) -> pl.DataFrame:
    """The kd_transfer view (kdgat/results/views.py) over these tables: the same SQL the CLI and the
    dashboard run."""
    con = duckdb.connect()
    try:
        con.register("metrics", metrics.to_arrow())
        con.register("runs", runs.to_arrow())
        table = con.sql(KD_TRANSFER_SQL).to_arrow_table()
    finally:
        con.close()
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    return df


def _kd_section(kd: pl.DataFrame) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in kd.iter_rows(named=True):
        out.setdefault(row["family"], {})[row["scenario"]] = {
            "teacher": metric(row["f1_large"]),
            "kd": metric(row["f1_small_kd"]),
            "alone": metric(row["f1_small"]),
            "gain": signed(row["kd_gain"]),
            "verdict": verdict(row["f1_small_kd"], row["f1_small"]),
        }
    for row in kd.unique("family", keep="first", maintain_order=True).iter_rows(named=True):
        if row["compression"] is not None:  # the same for every scenario: one number per family
            out[row["family"]]["compression"] = f"{row['compression']:.1f}"
    return out


def _goals(values: dict[str, dict[str, dict[str, float | None]]], models: list[str]) -> dict[str, Any]:
    """Which models reach each goal of GOALS (a missing value reaches none)."""

    def at(metric: str, scenario: str, model: str) -> float:
        value = values[metric].get(scenario, {}).get(model)
        return float("nan") if value is None else value

    reached = {
        "known": [m for m in models if at("f1", "known", m) >= GOALS["known_f1"]],
        "vehicle": [
            m
            for m in models
            if at("fpr", "unknown_vehicle_calibrated", m) <= GOALS["vehicle_fpr"]
            and at("recall", "unknown_vehicle_calibrated", m) >= GOALS["vehicle_recall"]
        ],
        "masquerade": [m for m in models if at("f1", "unknown_attack", m) >= GOALS["masquerade_f1"]],
    }
    return {
        "value": {k: f"{v:g}" for k, v in GOALS.items()},
        **{goal: {"met_by": ", ".join(ms) or "none"} for goal, ms in reached.items()},
    }


def paper_variables(dataset: str, tables: Mapping[str, pl.DataFrame]) -> dict[str, Any]:
    """The variables of ``dataset`` (module docstring) from its rows of the ``metrics``, ``runs`` and
    ``datasets`` tables."""
    mine = {
        name: tables[name].filter(pl.col("dataset") == dataset) for name in ("metrics", "runs", "datasets")
    }
    for name, df in mine.items():
        if df.height == 0:
            raise PaperDataError(
                f"results/{dataset}/{name}.parquet: no rows; run `dvc repro results@{dataset}`"
            )
    values = _metric_values(mine["metrics"])
    absent = [m for m in (*METRICS, *COUNTS.values()) if m not in values]
    if absent:
        raise PaperDataError(f"results/{dataset}/metrics.parquet: no {', '.join(absent)} rows")
    scenarios = _scenarios(mine["metrics"]["scenario"].unique().to_list())
    models = [m for m in MODELS if m in set(mine["metrics"]["model"].to_list())]
    params = {r["model"]: r["params_total"] for r in mine["runs"].iter_rows(named=True)}

    out: dict[str, Any] = {"dataset": dataset, "data": _data_section(mine["datasets"])}
    out["metric"] = {
        m: {s: {model: metric(values[m].get(s, {}).get(model)) for model in models} for s in scenarios}
        for m in METRICS
    }
    out["range"] = {
        m: {
            s: {g: span(values[m].get(s, {}).get(x) for x in group) for g, group in GROUPS.items()}
            for s in scenarios
        }
        for m in METRICS
    }
    out["count"] = {
        s: {
            model: {
                k: count(v)
                for k, key in COUNTS.items()
                if (v := values[key].get(s, {}).get(model)) is not None
            }
            for model in models
        }
        for s in scenarios
    }
    out["best"] = {}
    for s in scenarios:
        f1 = values["f1"].get(s, {})
        ranked = sorted(
            (m for m in models if f1.get(m) is not None), key=lambda m: (-(f1[m] or 0), params.get(m, 0), m)
        )
        if ranked:
            out["best"][s] = {"model": ranked[0], "f1": metric(f1[ranked[0]])}
    out["params"] = {m: count(params[m]) for m in models if m in params}
    out["kd"] = _kd_section(kd_rows(mine["metrics"], mine["runs"]))
    out["fusion"] = {
        m: {
            v: {
                s: verdict(values[m].get(s, {}).get(f"fusion_{v}"), values[m].get(s, {}).get(f"gat_{v}"))
                for s in scenarios
            }
            for v in VARIANTS
        }
        for m in ("f1", "roc_auc")
    }
    out["goal"] = _goals(values, models)
    return out
