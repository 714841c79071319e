"""A tiny finished study for the release tests, made in seconds without training: a git repository with
the repository's CITATION.cff, .zenodo.json and .gitignore, tiny params, the graphs of a few seconds of
synthetic traffic and their graphs report, seeded untrained GATs and VGAEs of every variant with their
prediction tables, fitted fusion policies, metrics/synth.json, and (``onnx``) stand-in files in
onnx/synth/."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kdgat.config import load_params
from kdgat.data.shards import load_meta
from kdgat.evaluate.report import evaluate
from kdgat.fusion.train import train_fusion
from kdgat.io import write_json, write_parquet
from kdgat.models import build_gat, build_vgae
from kdgat.study import MODELS, VARIANTS, Model, Paths
from kdgat.train.infer import predict
from kdgat.train.weights import save_model
from support.tiny_project import REPO, tiny_graphs, tiny_params_file

DATASET = "synth"


def git(root: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=root, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def release_study(root: Path, onnx: bool = True) -> Path:
    """The study at ``root`` (committed); returns ``root``."""
    params = load_params(tiny_params_file(root / "params.yaml"))
    paths = Paths(DATASET, root)
    tiny_graphs(root / "work", dest=paths.graphs)
    meta = load_meta(paths.graphs)
    # the graphs stage's report (stages/graphs.py): the model card names the attacks training never saw
    report = {k: meta[k] for k in ("counts", "duplicates_dropped", "vocab_size")}
    write_json({**report, "warnings": []}, paths.report("graphs"))
    for i, variant in enumerate(VARIANTS):
        scale = "large" if variant == "large" else "small"
        gat = build_gat(getattr(params.models.gat, scale), meta, seed=i)
        vgae = build_vgae(getattr(params.models.vgae, scale), meta, seed=10 + i)
        for family, model in (("gat", gat), ("vgae", vgae)):
            m = Model(family, variant)
            save_model(model.eval(), paths.weights(m), {"kind": family, "scale": scale}, params.vgae_train)
            write_parquet(predict(paths.weights(m), paths.graphs), paths.predictions(m))
        fused = Model("fusion", variant)
        outs = paths.outputs(fused)
        train_fusion(
            params,
            paths.predictions(Model("vgae", variant)),
            paths.predictions(Model("gat", variant)),
            scale,
            outs.weights,
            report=outs.report,
            predictions=paths.predictions(fused),
        )
    write_json(evaluate({m: paths.predictions(Model.parse(m)) for m in MODELS}), paths.metrics)
    if onnx:
        folder = root / "onnx" / DATASET
        folder.mkdir(parents=True)
        (folder / "gat_small_kd.onnx").write_bytes(b"\x08\x09stand-in onnx file" * 100)
        (folder / "detector.json").write_text('{"window": 100}\n')
    for name in ("CITATION.cff", ".zenodo.json", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    shutil.rmtree(root / "work")
    git(root, "init", "-q")
    git(root, "add", "params.yaml", "CITATION.cff", ".zenodo.json", ".gitignore", "metrics")
    git(root, "commit", "-qm", "tiny study")
    return root
