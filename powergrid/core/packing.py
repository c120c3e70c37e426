"""Static arrays of a compiled kernel packed into one float and one int vector.

Why: a numba call pays ~0.2 µs to unbox each array argument (more for tuples), which at
B = 1 costs more than the work. A kernel's fixed inputs (network model, index maps,
parameters) are therefore packed once into ``(fv, iv, hdr)``; inside compiled code
``f1(fv, hdr, k)`` etc. return views of item ``k`` (no copy). Floats go to ``fv``, ints
and bools to ``iv``; ``hdr[k] = (offset, d0, d1, d2)`` with unused dims 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit


def pack(items: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fv, iv, hdr)`` of ``items`` (scalars or arrays of up to 3 dims), in order."""
    fparts: list[np.ndarray] = []
    iparts: list[np.ndarray] = []
    hdr = np.zeros((len(items), 4), np.int64)
    nf = ni = 0
    for k, item in enumerate(items):
        a = np.asarray(item)
        if a.ndim > 3 or np.iscomplexobj(a):
            raise ValueError(f"item {k}: pack takes real arrays of up to 3 dims, got "
                             f"{a.dtype} {a.shape}")
        is_float = np.issubdtype(a.dtype, np.floating)
        flat = a.ravel().astype(np.float64 if is_float else np.int64)
        shape = a.shape + (1,) * (3 - a.ndim)
        hdr[k] = (nf if is_float else ni, *shape)
        (fparts if is_float else iparts).append(flat)
        if is_float:
            nf += flat.size
        else:
            ni += flat.size
    fv = np.concatenate(fparts) if fparts else np.zeros(0)
    iv = np.concatenate(iparts) if iparts else np.zeros(0, np.int64)
    return np.ascontiguousarray(fv), np.ascontiguousarray(iv), hdr


@njit(cache=True, inline="always")
def f0(fv, hdr, k):  # pragma: no cover - compiled
    return fv[hdr[k, 0]]


@njit(cache=True, inline="always")
def f1(fv, hdr, k):  # pragma: no cover - compiled
    o = hdr[k, 0]
    return fv[o:o + hdr[k, 1]]


@njit(cache=True, inline="always")
def f2(fv, hdr, k):  # pragma: no cover - compiled
    o, a, b = hdr[k, 0], hdr[k, 1], hdr[k, 2]
    return fv[o:o + a * b].reshape((a, b))


@njit(cache=True, inline="always")
def f3(fv, hdr, k):  # pragma: no cover - compiled
    o, a, b, c = hdr[k, 0], hdr[k, 1], hdr[k, 2], hdr[k, 3]
    return fv[o:o + a * b * c].reshape((a, b, c))


@njit(cache=True, inline="always")
def i0(iv, hdr, k):  # pragma: no cover - compiled
    return iv[hdr[k, 0]]


@njit(cache=True, inline="always")
def i1(iv, hdr, k):  # pragma: no cover - compiled
    o = hdr[k, 0]
    return iv[o:o + hdr[k, 1]]


@njit(cache=True, inline="always")
def i2(iv, hdr, k):  # pragma: no cover - compiled
    o, a, b = hdr[k, 0], hdr[k, 1], hdr[k, 2]
    return iv[o:o + a * b].reshape((a, b))
