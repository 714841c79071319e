"""The study's models as ONNX files for the car, and the one small JSON the detector needs beside them.

Each GAT or VGAE is exported as a module whose outputs are exactly the columns of its prediction table
(kdgat/train/infer.py computes them; the wrapper calls the same code), so the ONNX run can be judged by
the evaluation itself (kdgat/edge/parity.py). Inputs are a batch of graphs with self-loops already added
(kdgat/train/data.py adds them; GATConv(add_self_loops=False) keeps the forward exportable):

    x [N, F] float32, node_vocab [N] int64, edge_index [2, E] int64, edge_attr [E, Fe] float32, batch [N]
    int64 (graph of each node, 0..G-1, sorted)

with N, E and G all dynamic. The fusion's Q-net takes the standardised state [B, 16] and returns Q [B, A].
Weights live inside each file (``external_data=False``): one file per model to copy to a gateway.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kdgat.config import CalibrationParams
from kdgat.data.shards import load_meta
from kdgat.fusion.policy import DECISION_THRESHOLD, GAT_COLUMNS, STATE_COLUMNS, VGAE_COLUMNS, FusionPolicy
from kdgat.io import atomic_path, write_json
from kdgat.models import GAT
from kdgat.study import Model
from kdgat.train.data import Batch, collate, load_graphs

# the row computations of the prediction tables: one implementation for PyTorch and ONNX
from kdgat.train.infer import _gat_rows, _vgae_rows
from kdgat.train.weights import load_model

GRAPH_INPUTS = ("x", "node_vocab", "edge_index", "edge_attr", "batch")
BUNDLE_FORMAT = 1
BUNDLE_FILE = "detector.json"
EXAMPLE_GRAPHS = 3  # graphs in the example batch the exporter traces (any count >= 2 stays symbolic)


# How a GAT or VGAE's scatters are written in ONNX (same model, same arithmetic; kdgat/edge/scatter.py):
#   rows      a scatter of whole rows (messages, softmax, pooling) as ScatterND: 2–3× faster on one core
#   elements  as torch exports them, ScatterElements (the first export; `make bench` compares the two)
FORMS = ("rows", "elements")


class Rows(nn.Module):
    """A study GAT or VGAE → its prediction-table columns, one output each (GAT_COLUMNS / VGAE_COLUMNS)."""

    def __init__(self, model: nn.Module, blob: dict[str, Any]) -> None:
        super().__init__()
        self.model, self.blob = model, blob
        self.columns = GAT_COLUMNS if isinstance(model, GAT) else VGAE_COLUMNS

    def forward(
        self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> tuple[Tensor, ...]:
        # .item(): the exporter keeps the graph count symbolic (int() would freeze it)
        num_graphs = batch.max().item() + 1
        b = Batch(x, node_vocab, edge_index, edge_attr, batch, batch, batch, num_graphs)  # type: ignore[arg-type]
        rows = (
            _gat_rows(self.model, b) if isinstance(self.model, GAT) else _vgae_rows(self.model, b, self.blob)
        )
        return tuple(rows[c] for c in self.columns)


@contextlib.contextmanager
def _exportable_ops() -> Iterator[None]:
    """Two ops as equivalent traceable ones while exporting, where torch 2.13's ONNX conversion fails under
    a dynamic node count: F.cross_entropy(reduction="none") (its decomposition loses the shape: "expand:
    the requested shape has too few dimensions") as log-softmax + gather, and torch.bincount with a
    symbolic minlength (no ONNX Constant for it) as a scatter-add of ones, and torch.isin (searchsorted:
    no ONNX op) by sorting, and Tensor.repeat_interleave by a symbolic count (its ONNX Expand gets the
    shape wrong at run time) as expand + reshape. Same values: the parity report checks every exported file
    against PyTorch."""
    cross_entropy, bincount, isin = F.cross_entropy, torch.bincount, torch.isin
    repeat_interleave = torch.Tensor.repeat_interleave

    def repeat_each(x: Tensor, repeats: Any, *args: Any, **kw: Any) -> Tensor:
        if isinstance(repeats, Tensor) or args or kw or x.dim() != 1:
            return repeat_interleave(x, repeats, *args, **kw)
        return x.unsqueeze(1).expand(-1, repeats).reshape(-1)

    def ce(logits: Tensor, target: Tensor, *args: Any, **kw: Any) -> Tensor:
        if args or kw != {"reduction": "none"}:
            return cross_entropy(logits, target, *args, **kw)
        return -F.log_softmax(logits, dim=-1).gather(-1, target.unsqueeze(-1)).squeeze(-1)

    def count(x: Tensor, weights: Tensor | None = None, minlength: Any = 0) -> Tensor:
        if weights is not None or isinstance(minlength, int):
            return bincount(x, weights, minlength)
        # our callers pass minlength = number of graphs > every index (kdgat/models/vgae.py)
        return torch.zeros(minlength, dtype=torch.long).scatter_add(0, x, torch.ones_like(x))

    def member(elements: Tensor, test_elements: Tensor) -> Tensor:
        # sort both key lists together; an element is in the test list iff its group of equal keys holds a
        # test key (no stable order needed)
        keys = torch.cat([test_elements, elements])
        is_test = torch.cat([torch.ones_like(test_elements), torch.zeros_like(elements)])
        order = torch.argsort(keys)
        sk = keys[order]
        group = torch.cumsum(torch.cat([sk.new_zeros(1), (sk[1:] != sk[:-1]).long()]), 0)
        has_test = torch.zeros_like(keys).scatter_reduce(0, group, is_test[order], "amax", include_self=True)
        found = torch.zeros_like(keys).scatter(0, order, has_test[group])
        return found[test_elements.numel() :] > 0

    F.cross_entropy, torch.bincount, torch.isin = ce, count, member  # type: ignore[assignment]
    torch.Tensor.repeat_interleave = repeat_each  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        F.cross_entropy, torch.bincount, torch.isin = cross_entropy, bincount, isin
        torch.Tensor.repeat_interleave = repeat_interleave  # type: ignore[method-assign]


def example_batch(graphs_dir: Path) -> Batch:
    """A few validation graphs: what the exporter traces (their sizes do not become fixed)."""
    return collate(load_graphs(graphs_dir, "val"), np.arange(EXAMPLE_GRAPHS))


# The exporter records each node's Python stack, absolute paths included: a file would differ from one
# checkout folder to the next and carry the builder's paths into a release.
STACK_TRACE = "pkg.torch.onnx.stack_trace"


def _save(program: Any, dest: Path, what: str) -> None:
    if program is None:
        raise RuntimeError(f"{what}: the ONNX exporter returned nothing")
    proto = program.model_proto
    for graph in (proto.graph, *proto.functions):
        for node in graph.node:
            kept = [p for p in node.metadata_props if p.key != STACK_TRACE]
            del node.metadata_props[:]
            node.metadata_props.extend(kept)
    with atomic_path(dest) as tmp:
        onnx.save_model(proto, str(tmp))
    onnx.checker.check_model(str(dest))


def export_rows(
    model_file: Path, example: Batch, dest: Path, opset: int, scatters: str = "rows"
) -> list[str]:
    """A GAT or VGAE weights file → ONNX at ``dest`` (graphs, nodes and edges dynamic); its output names.
    ``scatters``: one of FORMS."""
    if scatters not in FORMS:
        raise ValueError(f"scatters={scatters!r}: one of {', '.join(FORMS)}")
    # here, not at the top: the detector imports this module's names, not the exporter's onnxscript
    from kdgat.edge.scatter import TRANSLATIONS, rows_as_scatter_nd

    model, blob = load_model(model_file)
    wrapper = Rows(model, blob).eval()
    n, e = torch.export.Dim("nodes", min=2), torch.export.Dim("edges", min=2)
    dims = {"x": {0: n}, "node_vocab": {0: n}, "edge_index": {1: e}, "edge_attr": {0: e}, "batch": {0: n}}
    lowering = rows_as_scatter_nd() if scatters == "rows" else contextlib.nullcontext()
    with torch.no_grad(), _exportable_ops(), lowering:
        program = torch.onnx.export(
            wrapper,
            example.inputs(),
            input_names=list(GRAPH_INPUTS),
            output_names=list(wrapper.columns),
            dynamic_shapes=dims,
            opset_version=opset,
            dynamo=True,
            verbose=False,
            custom_translation_table=TRANSLATIONS,
        )
    _save(program, dest, str(model_file))
    return list(wrapper.columns)


def export_qnet(policy: FusionPolicy, dest: Path, opset: int) -> None:
    """The fusion's Q-net → ONNX: state [B, 16] (standardised) → q [B, actions], B dynamic."""
    with torch.no_grad():
        program = torch.onnx.export(
            policy.qnet.eval(),
            (torch.zeros(2, len(STATE_COLUMNS)),),
            input_names=["state"],
            output_names=["q"],
            dynamic_shapes=({0: torch.export.Dim("rows")},),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    _save(program, dest, "Q-net")


def decision_rule(policy: FusionPolicy) -> dict[str, Any]:
    """The thresholds the study decides with, as the evaluation applies them (kdgat/fusion/policy.py): the
    one place the bundle reads them, so a change of the rule there is a change here only."""
    cal = policy.calibration
    return {
        "fused_at_least": DECISION_THRESHOLD,
        "vgae_threshold": cal.threshold,
        "vgae_scale": cal.scale,
        "vgae_threshold_method": cal.method,
        "vgae_youden_j": cal.youden_j,
        "gat_threshold": policy.gat_threshold,
        "guard_threshold": policy.guard_threshold,  # fusion.guard_fpr's VGAE cut (null: no guard)
        "vehicle_fpr": policy.vehicle_fpr,  # `--calibrate` re-cuts inputs and guard at this share of a car
    }


def bundle(
    dataset: str,
    graphs_dir: Path,
    detector: Model,
    policy: FusionPolicy,
    files: dict[str, dict[str, Any]],
    opset: int,
    calibration: CalibrationParams,
) -> dict[str, Any]:
    """The detector's JSON: windowing, vocabulary, feature scalers, fusion state statistics, thresholds, how
    to calibrate on a new vehicle (`kdgat detect --calibrate`) and the ONNX files — everything `kdgat
    detect` reads besides the ONNX files, and nothing else."""
    meta = load_meta(graphs_dir)
    return {
        "format": BUNDLE_FORMAT,
        "dataset": dataset,
        "opset": opset,
        "windows": meta["params"]["windows"],
        "vocab": meta["vocab"],
        "node_features": meta["node_features"],
        "edge_features": meta["edge_features"],
        "scalers": {k: meta["scalers"][k] for k in ("node", "edge")},
        # windows.absent_ids: the known vehicles' expected IDs (`--calibrate` replaces them with the car's)
        "expected_ids": meta.get("expected_ids"),
        "byte_ranges": meta.get("byte_ranges"),  # windows.byte_ranges (`--calibrate`: none on the car)
        "detector": {
            "fusion": detector.name,
            "vgae": f"vgae_{detector.variant}",
            "gat": f"gat_{detector.variant}",
        },
        "policy": {
            "alphas": policy.alphas.tolist(),
            "state_columns": list(STATE_COLUMNS),
            "state_mean": policy.mean.tolist(),
            "state_std": policy.std.tolist(),
        },
        "thresholds": decision_rule(policy),
        # with align_ids, `--calibrate` pairs the new vehicle's IDs with these training captures' IDs
        "calibration": calibration.model_dump() | {"references": meta["alignment"]["references"]},
        "models": files,
    }


def write_bundle(data: dict[str, Any], out_dir: Path) -> None:
    write_json(data, out_dir / BUNDLE_FILE)
