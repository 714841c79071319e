"""sign(x)·log1p(|x|), bit for bit as the study's fusion state has always computed it: with polars, whose
log1p is the C library's (``log1pf`` on float32 columns, ``log1p`` on float64). numpy's own SIMD log1p
differs in the last bit on about 3 % of values: used here it would move the fitted policies' states and so
the study's fusion outputs.

A polars call costs about 25 µs however few the values; one window of the detector on a live bus has six.
Up to SMALL values therefore go to the same C functions directly (through ctypes, about 0.4 µs a value),
more go through polars. Both are the C library's log1p: tests/test_fusion_state.py holds them to each
other bit for bit.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from functools import cache

import numpy as np
import polars as pl
from numpy.typing import NDArray

SMALL = 64  # values per call up to which the C library is called directly


@cache
def _c_log1p() -> dict[type, Callable[[float], float]] | None:
    """The C library's log1pf and log1p, or None where it cannot be loaded (then polars does every call)."""
    name = ctypes.util.find_library("m")
    try:
        libm = ctypes.CDLL(name)
        f32, f64 = libm.log1pf, libm.log1p
    except (OSError, AttributeError, TypeError):
        return None
    f32.restype, f32.argtypes = ctypes.c_float, [ctypes.c_float]
    f64.restype, f64.argtypes = ctypes.c_double, [ctypes.c_double]
    funcs: dict[type, Callable[[float], float]] = {np.float32: f32, np.float64: f64}
    # it must be the very log1p polars runs (the one the Rust standard library links), else polars decides
    probe = np.geomspace(1e-8, 1e8, 64)
    for dtype, f in funcs.items():
        x: NDArray[np.floating] = probe.astype(dtype)
        if not np.array_equal(_polars_log1p(x), np.array([f(v) for v in x.tolist()], dtype)):
            return None
    return funcs


def _polars_log1p(x: NDArray[np.floating]) -> NDArray[np.floating]:
    out: NDArray[np.floating] = pl.Series(x).log1p().to_numpy()
    return out


def log1p(x: NDArray[np.floating]) -> NDArray[np.floating]:
    """log1p of a float32 or float64 array (any shape), in its own precision, as polars computes it."""
    c = _c_log1p() if x.size <= SMALL else None
    if c is None:
        return _polars_log1p(x.ravel()).reshape(x.shape)
    f = c[x.dtype.type]
    return np.array([f(v) for v in x.ravel().tolist()], x.dtype).reshape(x.shape)


def signed_log1p(x: NDArray[np.number]) -> NDArray[np.floating]:
    """sign(x)·log1p(|x|): polars' ``col.sign() * col.abs().log1p()`` (integers as float64, as polars casts
    them; −0.0 stays −0.0, as polars' sign keeps it)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    out: NDArray[np.floating] = np.copysign(log1p(np.abs(x)), x)
    return out
