"""Results tables for the paper's tests without running the study: metrics, runs, datasets and
epoch_metrics built from the committed pipeline outputs (metrics/<dataset>.json, reports/), the way the
results stage builds them; latents and attention (whose sources are not committed) generated small and
deterministic, in their results schema."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import polars as pl

from kdgat.config import load_params
from kdgat.results.build import (
    Sources,
    conform,
    datasets_table,
    epoch_metrics_table,
    metrics_table,
    runs_table,
)
from kdgat.results.schema import TABLES

REPO = Path(__file__).resolve().parents[2]
ATTACK_TYPES = ["none", "dos", "fuzzy", "masquerade"]


def committed_tables(dataset: str = "synth") -> dict[str, pl.DataFrame]:
    """metrics, runs, datasets, epoch_metrics of ``dataset`` from the committed files."""
    src = Sources(dataset, REPO)
    metrics = json.loads(src.metrics.read_text())
    models = list(metrics)
    return {
        "metrics": metrics_table(dataset, metrics),
        "runs": runs_table(src, models, load_params(REPO / "params.yaml"), None),
        "datasets": datasets_table(src),
        "epoch_metrics": epoch_metrics_table(src, models),
    }


def latents(dataset: str = "synth", per_split: int = 24, dim: int = 8, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for model in ("vgae_large", "vgae_small_kd", "vgae_small"):
        for split in ("train", "test_known", "test_unknown_vehicle"):
            for index in range(per_split):
                y_type = int(rng.integers(0, len(ATTACK_TYPES)))
                center = np.full(dim, 2.0 * y_type) + (3.0 if split == "test_unknown_vehicle" else 0.0)
                rows.append(
                    {
                        "dataset": dataset,
                        "model": model,
                        "split": split,
                        "index": index,
                        "y": int(y_type > 0),
                        "y_type": y_type,
                        "attack_type": ATTACK_TYPES[y_type],
                        "latent": (center + rng.normal(size=dim)).astype(np.float32).tolist(),
                    }
                )
    return conform(pl.DataFrame(rows), TABLES["latents"])


def attention(dataset: str = "synth", seed: int = 0) -> pl.DataFrame:
    """Two sample graphs (benign, attack) of five IDs in a ring, every head of every layer."""
    rng = np.random.default_rng(seed)
    ids = ["0x100", "0x1a0", "0x2c0", "0x3f1", None]
    rows = []
    for model, layers in (("gat_large", 3), ("gat_small_kd", 2), ("gat_small", 2)):
        for index, y in ((3, 0), (7, 1)):
            for layer in range(layers):
                for head in range(2):
                    for src in range(len(ids)):
                        for dst in (src, (src + 1) % len(ids)):
                            rows.append(
                                {
                                    "dataset": dataset,
                                    "model": model,
                                    "split": "test_known",
                                    "index": index,
                                    "y": y,
                                    "layer": layer,
                                    "head": head,
                                    "src": src,
                                    "dst": dst,
                                    "src_id": ids[src],
                                    "dst_id": ids[dst],
                                    "alpha": float(rng.uniform()),
                                    "src_attack": bool(y and ids[src] == "0x2c0"),
                                    "dst_attack": bool(y and ids[dst] == "0x2c0"),
                                }
                            )
    return conform(pl.DataFrame(rows), TABLES["attention"])


def results_tables(dataset: str = "synth") -> dict[str, pl.DataFrame]:
    """Every table the paper stage reads (kdgat.paper.figures.SOURCES) for ``dataset``."""
    seed = zlib.crc32(dataset.encode())  # another dataset, other points: a dataset selector shows a change
    return {
        **committed_tables(dataset),
        "latents": latents(dataset, seed=seed),
        "attention": attention(dataset, seed),
    }


def write_results(root: Path, dataset: str = "synth") -> Path:
    """root/results/<dataset>/<table>.parquet for the tables of ``results_tables``; returns root/results."""
    out = root / "results" / dataset
    out.mkdir(parents=True, exist_ok=True)
    for name, df in results_tables(dataset).items():
        df.write_parquet(out / f"{name}.parquet")
    return root / "results"
