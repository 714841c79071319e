"""The results tables' schema: every column's name, type and meaning, in one place.

kdgat/results/build.py writes the tables to this schema (cast and checked column by column),
kdgat/results/views.py builds the DuckDB views over them, and docs/results.md is this module rendered
(`kdgat results schema`), so the documentation cannot drift from the files. Bump ``SCHEMA_VERSION`` when
a column changes meaning, type or goes away; each Parquet file carries it in its key-value metadata
(``kdgat.schema_version``).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

SCHEMA_VERSION = 1
META_TABLE, META_VERSION = "kdgat.table", "kdgat.schema_version"

Str, I64, F64, F32, I8, Bool = pl.String(), pl.Int64(), pl.Float64(), pl.Float32(), pl.Int8(), pl.Boolean()
Time = pl.Datetime("ms", "UTC")
AttackTypes = pl.List(pl.Struct({"attack": pl.String(), "graphs": pl.Int64()}))


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    doc: str
    nullable: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    source: str
    columns: tuple[Column, ...]

    @property
    def schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if not c.nullable]


def _c(name: str, dtype: pl.DataType, doc: str, nullable: bool = False) -> Column:
    return Column(name, dtype, doc, nullable)


DATASET = _c("dataset", Str, "dataset name (params.yaml `datasets`)")
MODEL = _c("model", Str, "model name `<family>_<variant>` (kdgat/study.py), e.g. `gat_small_kd`")
SPLIT = _c("split", Str, "graph split: train, val, test_known, test_unknown_vehicle, ...")
INDEX = _c("index", I64, "graph number within its split (row of data/graphs/<dataset> shards)")
Y = _c("y", I64, "graph label: 1 if any frame of the window is an attack")
Y_TYPE = _c("y_type", I64, "attack type code: index into the graph folder's `attack_types` (0 = none)")
ATTACK_TYPE = _c(
    "attack_type",
    Str,
    "attack type name of `y_type` (`none` for benign); null where evaluate wrote no attack_types.csv",
    True,
)

RUNS = Table(
    "runs",
    "One row per dataset × model: what it is, what it learnt from, its size and training cost.",
    "reports/train/<dataset>/<model>.json, params.yaml, `git rev-parse HEAD`",
    (
        DATASET,
        MODEL,
        _c("family", Str, "vgae | gat | fusion"),
        _c("variant", Str, "large (teacher) | small_kd (distilled student) | small (student alone)"),
        _c(
            "scale",
            Str,
            "large | small: its size in params.yaml `models.<family>.<scale>` (fusion: the DQN's)",
        ),
        _c("kd", Bool, "trained with knowledge distillation from `teacher`"),
        _c("teacher", Str, "model it was distilled from (small_kd only)", True),
        _c("curriculum_vgae", Str, "VGAE whose scores ordered a GAT's curriculum sampling", True),
        _c("fusion_vgae", Str, "fusion only: the VGAE whose predictions it fuses", True),
        _c("fusion_gat", Str, "fusion only: the GAT whose predictions it fuses", True),
        _c("params_count", I64, "parameters of this model alone (fusion: the DQN policy)"),
        _c("params_total", I64, "parameters the detector needs: params_count, plus both inputs for a fusion"),
        _c("epochs_run", I64, "training epochs run"),
        _c("best_epoch", I64, "epoch (0-based) whose weights were kept"),
        _c("monitor", Str, "what chose the best epoch: val_loss | val_f1 (fusion: select_reward)"),
        _c("best_value", F64, "`monitor` at the best epoch"),
        _c("stopped_early", Bool, "early stopping ended training (null: fusion runs its fixed epochs)", True),
        _c("wall_seconds", F64, "stage wall time (a resumed run: its last session only)"),
        _c(
            "started_at",
            Time,
            "when the training stage started (UTC; a resumed run: its last session); null in a report "
            "written before stages recorded it",
            True,
        ),
        _c("finished_at", Time, "when it wrote its report (UTC); null like started_at", True),
        _c("train_seconds", F64, "seconds in training steps (null for fusion)", True),
        _c("train_graphs_per_s", F64, "training throughput, graphs per second (null for fusion)", True),
        _c("resumed_from", Str, "checkpoint a killed run resumed from", True),
        _c("params_hash", Str, "first 16 hex digits of SHA-256 over `params`"),
        _c(
            "params",
            Str,
            "JSON (sorted keys) of the params.yaml entries the model's DVC stage and those of its teacher, "
            "curriculum VGAE and fusion inputs declare",
        ),
        _c("git_commit", Str, "HEAD when the results stage ran; null outside a git checkout", True),
    ),
)

METRICS = Table(
    "metrics",
    "The evaluation, long: one row per dataset × model × test scenario × metric of metrics/<dataset>.json.",
    "metrics/<dataset>.json (model → scenario → metric)",
    (
        DATASET,
        MODEL,
        _c(
            "scenario",
            Str,
            "test scenario: known, unknown_vehicle, unknown_attack, unknown_both; unknown_vehicle_calibrated "
            "and unknown_both_calibrated: the same windows built through the vehicle's ID alignment, "
            "thresholds set on its calibration windows",
        ),
        _c("metric", Str, "f1, precision, recall, fpr, roc_auc, mcc, tp, ... (kdgat/metrics.py)"),
        _c(
            "value", F64, "its value; null where undefined (e.g. MCC when one class is never predicted)", True
        ),
    ),
)

EPOCH_METRICS = Table(
    "epoch_metrics",
    "Training curves, long: one row per dataset × model × epoch × logged quantity. Long because the "
    "quantities differ by family (VGAE, GAT, DQN) and grow over time.",
    "reports/train/<dataset>/<model>.epochs.csv",
    (
        DATASET,
        MODEL,
        _c("epoch", I64, "epoch, 0-based"),
        _c("metric", Str, "a column of the epochs CSV: train_loss, val_loss, val_f1, select_reward, ..."),
        _c("value", F64, "its value at that epoch", True),
    ),
)

DATASETS = Table(
    "datasets",
    "One row per dataset × graph split: graph counts, plus the dataset's ingest facts (repeated per split).",
    "reports/graphs/<dataset>.json, reports/ingest/<dataset>.json",
    (
        DATASET,
        SPLIT,
        _c("graphs", I64, "graphs (windows) in the split"),
        _c("nodes", I64, "nodes over all its graphs"),
        _c("edges", I64, "edges over all its graphs"),
        _c("benign", I64, "benign graphs"),
        _c("attack", I64, "attack graphs"),
        _c("attack_types", AttackTypes, "attack graphs per attack type"),
        _c(
            "duplicates_dropped",
            I64,
            "windows dropped as exact copies of training windows (null for train)",
            True,
        ),
        _c("vocab_size", I64, "embedding rows: CAN IDs of the benign training frames + 1 unknown-ID slot"),
        _c("captures", I64, "capture files ingested"),
        _c("frames", I64, "CAN frames ingested"),
        _c("bad_lines", I64, "malformed input lines (dropped with `ingest.on_bad_line: skip`)"),
    ),
)

EMBEDDINGS = Table(
    "embeddings",
    "Graph embeddings (GAT pooled, VGAE mean latent) of up to 200 graphs per split on their first two "
    "principal components, fitted per model; the same graphs for every model.",
    "plots/<dataset>/figures/embeddings.parquet, "
    "names of the attack types: plots/<dataset>/figures/attack_types.csv",
    (
        DATASET,
        MODEL,
        SPLIT,
        INDEX,
        Y,
        Y_TYPE,
        ATTACK_TYPE,
        _c("pc1", F64, "first principal component"),
        _c("pc2", F64, "second principal component"),
        _c("pc1_share", F64, "pc1's share of the variance"),
        _c("pc2_share", F64, "pc2's share of the variance"),
    ),
)

LATENTS = Table(
    "latents",
    "The VGAE models' mean latent per graph (mean over nodes of μ), unprojected, for the graphs of "
    "`embeddings`: what a projection fitted outside the pipeline's PCA starts from (the paper's UMAP).",
    "plots/<dataset>/figures/latents.parquet, "
    "names of the attack types: plots/<dataset>/figures/attack_types.csv",
    (
        DATASET,
        MODEL,
        SPLIT,
        INDEX,
        Y,
        Y_TYPE,
        ATTACK_TYPE,
        _c("latent", pl.List(F32), "the mean latent: `models.vgae.<scale>.latent` numbers"),
    ),
)

ATTENTION = Table(
    "attention",
    "Every attention weight of the GAT models on 2 benign and 2 attack graphs of test_known (the sample "
    "graphs of the dashboard's CAN bus graph), with which nodes carried attack frames.",
    "plots/<dataset>/figures/attention.parquet (node attack flags: the window's frames in "
    "data/frames/<dataset>.parquet)",
    (
        DATASET,
        MODEL,
        SPLIT,
        INDEX,
        Y,
        _c("layer", I64, "GAT layer, 0-based"),
        _c("head", I64, "attention head, 0-based"),
        _c("src", I64, "source node number within the graph"),
        _c("dst", I64, "destination node number within the graph"),
        _c("src_id", Str, "source CAN ID (hex); null = an ID outside the vocabulary", True),
        _c("dst_id", Str, "destination CAN ID (hex); null = an ID outside the vocabulary", True),
        _c("alpha", F32, "attention weight"),
        _c(
            "src_attack",
            Bool,
            "the source node (CAN ID) carried at least one attack frame in the window; null without the "
            "frame table",
            True,
        ),
        _c("dst_attack", Bool, "the same for the destination node", True),
    ),
)

DQN_POLICY = Table(
    "dqn_policy",
    "The fusion policy per graph: the α it chose and the fused decision.",
    "plots/<dataset>/figures/dqn_policy.parquet, "
    "names of the attack types: plots/<dataset>/figures/attack_types.csv",
    (
        DATASET,
        MODEL,
        SPLIT,
        INDEX,
        Y,
        Y_TYPE,
        ATTACK_TYPE,
        _c("vgae_anomaly", F64, "calibrated VGAE anomaly score in [0, 1]"),
        _c("p_attack", F64, "GAT probability of attack"),
        _c("gat_attack", F64, "p_attack calibrated on validation: 0.5 at the GAT's threshold"),
        _c("alpha", F64, "weight chosen: fused = (1 − α)·vgae_anomaly + α·gat_attack"),
        _c("guard", F64, "the VGAE alone at fusion.guard_fpr of benign val: 0.5 at that cut (0: no guard)"),
        _c("fused", F64, "fused score: the α rule's, or the guard's where higher"),
        _c("decision", I8, "1 = flagged as attack"),
    ),
)

RECON_ERRORS = Table(
    "recon_errors",
    "VGAE reconstruction errors per graph and the threshold (Youden's J on val) that flags an attack.",
    "plots/<dataset>/figures/recon_errors.parquet, "
    "names of the attack types: plots/<dataset>/figures/attack_types.csv",
    (
        DATASET,
        MODEL,
        SPLIT,
        INDEX,
        Y,
        Y_TYPE,
        ATTACK_TYPE,
        _c("score", F32, "anomaly score: the weighted reconstruction error"),
        _c("feat_mse", F32, "node-feature MSE", True),
        _c("id_ce", F32, "CAN-ID cross-entropy", True),
        _c("nbr_bce", F32, "neighbour-set BCE", True),
        _c("kl", F32, "KL term", True),
        _c("threshold", F64, "score at or above which the graph is flagged"),
    ),
)

MODEL_SIZES = Table(
    "model_sizes",
    "Saved weights per model: parameter count and bytes.",
    "plots/<dataset>/figures/model_sizes.csv",
    (
        DATASET,
        MODEL,
        _c("kind", Str, "vgae | gat | fusion"),
        _c("parameters", I64, "floating-point values in the saved state dict (buffers included)"),
        _c("state_bytes", I64, "their bytes"),
        _c("file_bytes", I64, "bytes of the weights file"),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        RUNS,
        METRICS,
        EPOCH_METRICS,
        DATASETS,
        EMBEDDINGS,
        LATENTS,
        ATTENTION,
        DQN_POLICY,
        RECON_ERRORS,
        MODEL_SIZES,
    )
}
FIGURE_TABLES = ("embeddings", "latents", "attention", "dqn_policy", "recon_errors", "model_sizes")

# --- views (kdgat/results/views.py builds them in DuckDB) ------------------------------------------

LEADERBOARD = Table(
    "leaderboard",
    "Per dataset × test scenario, every model ranked by F1 (ties share a rank; smaller detectors first).",
    "views `metrics` ⋈ `runs`",
    (
        DATASET,
        _c("scenario", Str, "test scenario"),
        _c("rank", I64, "1 = best F1 in the dataset and scenario"),
        MODEL,
        *(_c(m, F64, f"{m} on the scenario", True) for m in ("f1", "precision", "recall", "fpr", "roc_auc")),
        _c("mcc", F64, "Matthews correlation", True),
        _c("params", I64, "runs.params_count", True),
        _c("params_total", I64, "runs.params_total", True),
    ),
)

KD_TRANSFER = Table(
    "kd_transfer",
    "Per dataset × family × test scenario: the teacher against its distilled and its plain student.",
    "views `metrics` ⋈ `runs`",
    (
        DATASET,
        _c("family", Str, "vgae | gat | fusion"),
        _c("scenario", Str, "test scenario"),
        _c("f1_large", F64, "F1 of the teacher (`<family>_large`)", True),
        _c("f1_small_kd", F64, "F1 of the distilled student (`<family>_small_kd`)", True),
        _c("f1_small", F64, "F1 of the student trained alone (`<family>_small`)", True),
        _c("kd_gain", F64, "f1_small_kd − f1_small: what distillation bought", True),
        _c("gap_to_teacher", F64, "f1_large − f1_small_kd", True),
        _c("params_large", I64, "params_total of the teacher", True),
        _c("params_small", I64, "params_total of the plain student", True),
        _c("compression", F64, "params_large / params_small", True),
    ),
)

VIEWS: dict[str, Table] = {t.name: t for t in (LEADERBOARD, KD_TRANSFER)}


def type_name(dtype: object) -> str:
    """A short, readable type: string, int64, float32, list<struct<attack: string, graphs: int64>>."""
    if isinstance(dtype, pl.List):
        return f"list<{type_name(dtype.inner)}>"
    if isinstance(dtype, pl.Struct):
        return "struct<" + ", ".join(f"{f.name}: {type_name(f.dtype)}" for f in dtype.fields) + ">"
    return {"String": "string", "Boolean": "bool"}.get(str(dtype), str(dtype).lower())


def _markdown(t: Table, kind: str) -> list[str]:
    lines = [f"### `{t.name}` ({kind})", "", t.doc, "", f"From: {t.source}.", ""]
    lines += ["| column | type | null | meaning |", "| --- | --- | --- | --- |"]
    for c in t.columns:
        doc = c.doc.replace("|", "\\|")  # a bare | would end the Markdown cell
        lines.append(f"| `{c.name}` | {type_name(c.dtype)} | {'yes' if c.nullable else ''} | {doc} |")
    return [*lines, ""]


def schema_markdown() -> str:
    """docs/results.md: the tables and views, rendered from this module."""
    lines = [
        "# Results tables",
        "",
        "<!-- generated by `kdgat results schema > docs/results.md`; tests/test_results.py checks it -->",
        "",
        "The `results@<dataset>` DVC stage writes one Parquet file per table to `results/<dataset>/`; the",
        "union over datasets is `read_parquet('results/*/<table>.parquet')`. Every file carries",
        f"`{META_TABLE}` and `{META_VERSION}` (now {SCHEMA_VERSION}) in its key-value metadata.",
        "`kdgat results show TABLE`, `kdgat results leaderboard` and `kdgat results kd-transfer` print them.",
        "",
        "## Tables",
        "",
    ]
    for t in TABLES.values():
        lines += _markdown(t, "table")
    lines += ["## DuckDB views", ""]
    for t in VIEWS.values():
        lines += _markdown(t, "view")
    return "\n".join(lines).rstrip() + "\n"
