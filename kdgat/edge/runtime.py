"""The exported models in ONNX Runtime: a bundle folder (detector.json + *.onnx) loaded, window graphs turned
into model inputs, prediction rows out, and the fusion's decision through the study's own policy code
(kdgat/fusion/policy.py: state, α, fused score, threshold) with only the Q-net swapped for its ONNX file."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import polars as pl
import torch
from torch import Tensor
from torch_geometric.utils import add_remaining_self_loops

from kdgat.data.features import GraphBatch
from kdgat.edge.export import BUNDLE_FILE, BUNDLE_FORMAT, GRAPH_INPUTS
from kdgat.fusion.dqn import QNet
from kdgat.fusion.policy import GAT_COLUMNS, VGAE_COLUMNS, FusionPolicy, VGAECalibration


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # one core per bus by default: the figure `make bench` reports
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_rows(sess: ort.InferenceSession, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """One ONNX run: {output name: [G] array}."""
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs), strict=True))


class OnnxQNet:
    """Stands in for the policy's QNet (same call, same output) with the exported file doing the work."""

    def __init__(self, sess: ort.InferenceSession) -> None:
        self.sess = sess

    def eval(self) -> OnnxQNet:
        return self

    def __call__(self, states: Tensor) -> Tensor:
        (q,) = self.sess.run(["q"], {"state": states.numpy()})
        return torch.from_numpy(q)


def load_bundle(folder: Path) -> dict[str, Any]:
    path = Path(folder) / BUNDLE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no detector bundle (run `dvc repro export@<dataset>`)")
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{path}: bundle format {data.get('format')!r}, this code reads {BUNDLE_FORMAT}")
    return data


def with_qnet(policy: FusionPolicy, sess: ort.InferenceSession) -> FusionPolicy:
    """``policy`` deciding with the ONNX Q-net in ``sess`` (FusionPolicy only calls and evals its qnet)."""
    q: QNet = OnnxQNet(sess)  # type: ignore[assignment]
    return dataclasses.replace(policy, qnet=q)


def policy_of(data: dict[str, Any], sess: ort.InferenceSession) -> FusionPolicy:
    """The fusion policy from the bundle, deciding with the ONNX Q-net in ``sess``."""
    p, t = data["policy"], data["thresholds"]
    cal = VGAECalibration(
        t["vgae_threshold"], t["vgae_scale"], t["vgae_threshold_method"], t["vgae_youden_j"]
    )
    q: QNet = OnnxQNet(sess)  # type: ignore[assignment]
    alphas, mean, std = (np.array(p[k]) for k in ("alphas", "state_mean", "state_std"))
    gat, guard, vehicle_fpr = t["gat_threshold"], t.get("guard_threshold"), t.get("vehicle_fpr", 0.0)
    return FusionPolicy(q, alphas, mean, std, cal, gat, guard, vehicle_fpr)


def joined_rows(vgae: Any, gat: Any, key: pl.DataFrame) -> pl.DataFrame:
    """The fusion's input table (kdgat/fusion/policy.join_predictions layout) from the models' output
    columns (by name: dicts of arrays, or tables; VGAE_COLUMNS and GAT_COLUMNS); ``key`` holds split,
    index, y, y_type."""
    return key.with_columns(
        *(pl.Series(f"vgae_{c}", vgae[c]) for c in VGAE_COLUMNS),
        *(pl.Series(f"gat_{c}", gat[c]) for c in GAT_COLUMNS),
    )


def graph_inputs(b: GraphBatch) -> dict[str, np.ndarray]:
    """Scaled window graphs → the models' inputs: global node indices, and the self-loops training adds
    (kdgat/train/data.load_graphs: a missing loop gets the mean attributes of the node's incoming edges;
    edges regrouped graph by graph). tests/test_edge_detect.py checks the result equals training's."""
    node_ptr = np.concatenate([[0], np.cumsum(b.n_nodes)])
    G, N = len(b.n_nodes), int(node_ptr[-1])
    edge_graph = np.repeat(np.arange(G), b.n_edges)
    node_graph = torch.from_numpy(np.repeat(np.arange(G), b.n_nodes))
    ei, ea = add_remaining_self_loops(
        torch.from_numpy(b.edge_index + node_ptr[edge_graph]),
        torch.from_numpy(b.edge_attr),
        fill_value="mean",
        num_nodes=N,
    )
    assert ea is not None
    order = torch.argsort(node_graph[ei[0]], stable=True)
    inputs = (b.x, b.node_vocab, ei[:, order].numpy(), ea[order].numpy(), node_graph.numpy())
    return dict(zip(GRAPH_INPUTS, (np.ascontiguousarray(a) for a in inputs), strict=True))


def graph_slices(inputs: dict[str, np.ndarray], per_call: int) -> Iterator[dict[str, np.ndarray]]:
    """Model inputs of many graphs (``graph_inputs``: edges grouped graph by graph) as inputs of at most
    ``per_call`` consecutive graphs each, numbered from 0."""
    batch, ei = inputs["batch"], inputs["edge_index"]
    G = int(batch[-1]) + 1 if len(batch) else 0
    node_ptr = np.searchsorted(batch, np.arange(G + 1))
    edge_ptr = np.searchsorted(batch[ei[0]], np.arange(G + 1))
    for lo in range(0, G, per_call):
        hi = min(lo + per_call, G)
        (n0, n1), (e0, e1) = node_ptr[[lo, hi]], edge_ptr[[lo, hi]]
        yield {
            "x": inputs["x"][n0:n1],
            "node_vocab": inputs["node_vocab"][n0:n1],
            "edge_index": ei[:, e0:e1] - n0,
            "edge_attr": inputs["edge_attr"][e0:e1],
            "batch": batch[n0:n1] - lo,
        }


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if len(parts) > 1 else parts[0]


class EdgeModels:
    """A bundle folder in ONNX Runtime: the detector's VGAE, GAT and Q-net sessions and its policy."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        self.folder = Path(folder)
        self.data = load_bundle(self.folder)
        names = self.data["detector"]
        files = self.data["models"]
        self.vgae = session(self.folder / files[names["vgae"]]["file"], threads)
        self.gat = session(self.folder / files[names["gat"]]["file"], threads)
        self.policy = policy_of(self.data, session(self.folder / files[names["fusion"]]["file"], threads))

    def score(self, inputs: dict[str, np.ndarray], per_call: int | None = None) -> dict[str, np.ndarray]:
        """Per graph, as arrays: the fusion policy's columns (vgae_anomaly, p_attack, gat_attack, action,
        alpha, fused, decision) plus the VGAE score. The graph models run on ``per_call`` graphs at a time
        (all at once by default), the policy once on all of them, on arrays (no table: on a live bus one
        window's table cost more than its three models)."""
        parts = graph_slices(inputs, per_call) if per_call else [inputs]
        vgae_parts, gat_parts = [], []
        for part in parts:
            vgae_parts.append(run_rows(self.vgae, part))
            gat_parts.append(run_rows(self.gat, part))
        vgae, gat = _concat(vgae_parts), _concat(gat_parts)
        columns = {f"vgae_{c}": vgae[c] for c in VGAE_COLUMNS} | {f"gat_{c}": gat[c] for c in GAT_COLUMNS}
        return self.policy.decisions(columns) | {"vgae_score": vgae["score"]}
