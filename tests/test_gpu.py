"""The GPU tier (`pytest -m gpu`, `make gpu-check`): every family trains two epochs on CUDA through the
same entry points as on the CPU (train_vgae / train_gat / train_fusion, the functions every launcher
calls), deterministically; CPU and GPU agree; the ONNX export of a GPU-trained model matches it.

Tolerances, stated once:
- the same weights on CPU and CUDA: P(attack), VGAE score and Q-values within 1e-4 (float32 sums in
  another order; TF32 is off);
- a GAT trained two epochs on each with dropout 0 (dropout masks come from each device's own generator,
  so with dropout the two runs see different masks): P(attack) within 1e-3;
- two CUDA runs of the same stage: bitwise equal weights and predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from support.tiny_project import TINY_GAT, TINY_VGAE, tiny_graphs

from kdgat.config import Params, load_params, with_overrides
from kdgat.fusion.policy import load_policy
from kdgat.fusion.train import train_fusion
from kdgat.train.infer import predict
from kdgat.train.run import train_gat, train_vgae
from kdgat.train.weights import load_model

pytestmark = pytest.mark.gpu  # skipped where no CUDA device is visible (tests/conftest.py)

GPU = "cuda"
SAME_WEIGHTS_ATOL = 1e-4
TRAINED_ATOL = 1e-3


def tiny(accelerator: str, **extra: Any) -> Params:
    """params.yaml with tiny models, two epochs and undersampling (no VGAE scores needed)."""
    over: dict[str, Any] = {
        "train.accelerator": accelerator,
        "train.max_epochs": 2,
        "train.warmup_epochs": 0,
        "train.batch_size": 16,
        "gat_train.sampling": "undersample",
        **{f"models.gat.{s}.{k}": v for s in ("large", "small") for k, v in TINY_GAT.items()},
        **{f"models.vgae.{s}.{k}": v for s in ("large", "small") for k, v in TINY_VGAE.items()},
        **extra,
    }
    return with_overrides(load_params(), over)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_graphs(tmp_path_factory.mktemp("gpu-data"))


@pytest.fixture(scope="module")
def trained(graphs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Teachers, KD students and predictions, all trained on CUDA: {name: weights or predictions file}."""
    out = tmp_path_factory.mktemp("gpu-models")
    p = tiny(GPU)
    files: dict[str, Path] = {}
    for name, train, teacher in (
        ("vgae_large", train_vgae, None),
        ("gat_large", train_gat, None),
        ("vgae_small_kd", train_vgae, "vgae_large"),
        ("gat_small_kd", train_gat, "gat_large"),
    ):
        scale = "large" if name.endswith("large") else "small"
        report = train(p, graphs, scale, out / name, files.get(teacher or ""), progress=False)
        assert report["device"].startswith(GPU), report["device"]
        assert report["epochs_run"] == 2
        files[name] = out / name / "model.ckpt"
        files[f"{name}.pred"] = out / f"{name}.parquet"
        predict(files[name], graphs, accelerator=GPU).write_parquet(files[f"{name}.pred"])
    return files


def test_every_family_trains_on_cuda(trained: dict[str, Path]) -> None:
    for name in ("vgae_large", "gat_large", "vgae_small_kd", "gat_small_kd"):
        model, blob = load_model(trained[name])
        assert blob["info"]["kd"] == name.endswith("_kd")
        assert all(torch.isfinite(t).all() for t in model.state_dict().values())


def _fusion(params: Params, trained: dict[str, Path], out: Path) -> dict[str, Any]:
    return train_fusion(
        params,
        trained["vgae_large.pred"],
        trained["gat_large.pred"],
        "small",
        out / "policy.pt",
        report=out / "report.json",
        predictions=out / "fused.parquet",
    )


def test_fusion_on_cuda_matches_the_cpu(trained: dict[str, Path], tmp_path: Path) -> None:
    """The Q-net is fitted on CUDA from the same minibatches as on the CPU: the same policy comes out."""
    runs = {}
    for tag, acc in (("gpu", GPU), ("cpu", "cpu")):
        (tmp_path / tag).mkdir()
        runs[tag] = _fusion(tiny(acc, **{"fusion.epochs": 5}), trained, tmp_path / tag)
    assert runs["gpu"]["best_epoch"] == runs["cpu"]["best_epoch"]
    gpu, cpu = load_policy(tmp_path / "gpu" / "policy.pt"), load_policy(tmp_path / "cpu" / "policy.pt")
    states = torch.randn(256, gpu.qnet.n_state, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(gpu.qnet(states), cpu.qnet(states), atol=SAME_WEIGHTS_ATOL, rtol=0)


@pytest.mark.parametrize("name", ["gat_large", "vgae_large", "gat_small_kd"])
def test_same_weights_predict_alike_on_cpu_and_cuda(
    trained: dict[str, Path], graphs: Path, name: str
) -> None:
    cpu, gpu = (predict(trained[name], graphs, accelerator=a) for a in ("cpu", GPU))
    col = "score" if name.startswith("vgae") else "p_attack"
    diff = np.abs(cpu[col].to_numpy() - gpu[col].to_numpy()).max()
    scale = max(1.0, float(np.abs(cpu[col].to_numpy()).max()))
    assert diff <= SAME_WEIGHTS_ATOL * scale, f"{name}: {col} differs by {diff:.2e} between CPU and CUDA"


def _train_gat(accelerator: str, graphs: Path, out: Path, **extra: Any) -> Path:
    train_gat(tiny(accelerator, **extra), graphs, "large", out, progress=False)
    return out / "model.ckpt"


def test_gat_trained_on_cpu_and_on_cuda_predicts_alike(graphs: Path, tmp_path: Path) -> None:
    no_dropout = {"models.gat.large.dropout": 0.0}
    files = {
        tag: _train_gat(a, graphs, tmp_path / tag, **no_dropout) for tag, a in (("cpu", "cpu"), ("gpu", GPU))
    }
    cpu, gpu = (predict(files[t], graphs, accelerator="cpu")["p_attack"].to_numpy() for t in ("cpu", "gpu"))
    diff = np.abs(cpu - gpu).max()
    assert diff <= TRAINED_ATOL, f"P(attack) of CPU- and CUDA-trained GATs differs by {diff:.2e}"


@pytest.mark.parametrize("family", ["gat", "vgae"])
def test_two_cuda_runs_are_bitwise_equal(graphs: Path, tmp_path: Path, family: str) -> None:
    train = train_gat if family == "gat" else train_vgae
    weights = []
    for run in ("a", "b"):
        train(tiny(GPU), graphs, "large", tmp_path / run, progress=False)
        weights.append(load_model(tmp_path / run / "model.ckpt")[0].state_dict())
    for key, value in weights[0].items():
        assert torch.equal(value, weights[1][key]), f"{family}: {key} differs between two CUDA runs"


def test_onnx_export_of_a_cuda_trained_gat_matches(
    trained: dict[str, Path], graphs: Path, tmp_path: Path
) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from kdgat.train.data import collate, load_graphs

    model, _ = load_model(trained["gat_small_kd"])
    val = load_graphs(graphs, "val")
    b = collate(val, list(range(len(val))))
    names = ["x", "node_vocab", "edge_index", "edge_attr", "batch"]
    n, e = torch.export.Dim("nodes"), torch.export.Dim("edges")
    dims = {"x": {0: n}, "node_vocab": {0: n}, "edge_index": {1: e}, "edge_attr": {0: e}, "batch": {0: n}}
    program = torch.onnx.export(
        model, tuple(b.inputs()), input_names=names, output_names=["logits"], dynamic_shapes=dims, dynamo=True
    )
    assert program is not None
    path = tmp_path / "gat_small_kd.onnx"
    program.save(str(path), external_data=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {k: v.numpy() for k, v in zip(names, b.inputs(), strict=True)})
    with torch.no_grad():
        on_cuda = model.to(GPU)(*(t.to(GPU) for t in b.inputs())).cpu()
    torch.testing.assert_close(torch.from_numpy(got), on_cuda, atol=SAME_WEIGHTS_ATOL, rtol=1e-4)
