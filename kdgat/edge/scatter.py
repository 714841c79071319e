"""PyG's scatters as ONNX ScatterND while exporting: the same model and arithmetic, a faster lowering.

PyG sums and maxes over a node's edges (message passing, its softmax, the graph pooling) with
``Tensor.scatter_add_`` / ``scatter_reduce_`` and an index broadcast along the feature dimensions
(torch_geometric/utils/_scatter.py). Exported as is, they become ONNX ScatterElements, which ONNX Runtime
runs element by element: about 1.1 µs per edge for a 128-wide message on one core, 70–75 % of the
student GAT's time. The same scatter of whole rows is ScatterND with a reduction, which ONNX Runtime runs
a row at a time: 0.05 µs per edge. Within ``rows_as_scatter_nd()`` a row scatter-add becomes
``index_add`` (ScatterND add) and a row scatter-max the custom op ``kdgat::scatter_rows_max`` (ScatterND
max, TRANSLATIONS); every other scatter is left as it is.

A scatter is taken for a row scatter only when its index is a 1-D index broadcast over the other
dimensions, which the index's strides show (0 along every other dimension): an element-wise scatter is
never mistaken for one. Rows are reduced in edge order as in PyTorch, so the sums are the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from onnxscript import opset18 as op
from torch import Tensor

# the method itself, whatever rows_as_scatter_nd has put in its place meanwhile
_scatter_reduce_ = torch.Tensor.scatter_reduce_


@torch.library.custom_op("kdgat::scatter_rows_max", mutates_args=())
def scatter_rows_max(target: Tensor, rows: Tensor, src: Tensor, include_self: bool) -> Tensor:
    """``target`` with row ``rows[e]`` replaced by the elementwise max of the ``src`` rows sent to it (and of
    itself when ``include_self``); rows sent nothing keep their values (scatter_reduce_ "amax")."""
    index = rows.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    return _scatter_reduce_(target.clone(), 0, index, src, "amax", include_self=include_self)


@scatter_rows_max.register_fake
def _(target: Tensor, rows: Tensor, src: Tensor, include_self: bool) -> Tensor:
    del rows, src, include_self
    return torch.empty_like(target)


def scatter_rows_max_onnx(target: Any, rows: Any, src: Any, include_self: bool) -> Any:
    """ONNX of scatter_rows_max: ScatterND(max) of the rows; without include_self onto -inf, then rows
    that received nothing take ``target``'s values back (the model's values are finite)."""
    index = op.Unsqueeze(rows, op.Constant(value_ints=[-1]))  # type: ignore[arg-type]
    if include_self:
        return op.ScatterND(target, index, src, reduction="max")
    minus_inf = op.Constant(value_float=float("-inf"))
    lowest = op.Expand(op.CastLike(minus_inf, target), op.Shape(target))  # type: ignore[type-var]
    out = op.ScatterND(lowest, index, src, reduction="max")
    return op.Where(op.Equal(out, lowest), target, out)


# for torch.onnx.export(custom_translation_table=...)
TRANSLATIONS: dict[Callable[..., Any], Callable[..., Any]] = {
    torch.ops.kdgat.scatter_rows_max.default: scatter_rows_max_onnx
}


def _row_index(dim: int, index: Tensor, src: Tensor) -> Tensor | None:
    """The 1-D row index of a scatter along dim 0 whose index is a row index broadcast over the other
    dimensions (PyG's ``broadcast``: stride 0 there), else None."""
    if dim not in (0, -index.dim()) or index.dim() != src.dim() or index.shape != src.shape:
        return None
    if index.dim() == 1:
        return index
    if any(index.stride(d) != 0 for d in range(1, index.dim())):
        return None
    return index.reshape(index.shape[0], -1)[:, 0]


@contextlib.contextmanager
def rows_as_scatter_nd() -> Iterator[None]:
    """While exporting: row scatter-adds as index_add and row scatter-maxes as scatter_rows_max (in place
    or not)."""
    originals = {
        name: getattr(torch.Tensor, name)
        for name in ("scatter_add_", "scatter_add", "scatter_reduce_", "scatter_reduce")
    }

    def adder(name: str) -> Any:
        def add(self: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
            rows = _row_index(dim, index, src)
            if rows is None:
                return originals[name](self, dim, index, src)
            return self.index_add_(0, rows, src) if name.endswith("_") else self.index_add(0, rows, src)

        return add

    def reducer(name: str) -> Any:
        def reduce(
            self: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *, include_self: bool = True
        ) -> Tensor:
            rows = _row_index(dim, index, src)
            if rows is None or reduce != "amax":
                return originals[name](self, dim, index, src, reduce, include_self=include_self)
            out = scatter_rows_max(self, rows, src, include_self)
            return self.copy_(out) if name.endswith("_") else out

        return reduce

    for name in originals:
        setattr(torch.Tensor, name, adder(name) if name.startswith("scatter_add") else reducer(name))
    try:
        yield
    finally:
        for name, method in originals.items():
            setattr(torch.Tensor, name, method)
