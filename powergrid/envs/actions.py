"""Action checks shared by the scalar and the batched env: one wording for one mistake."""

from __future__ import annotations

import math
import numbers
import reprlib
from typing import Any

import numpy as np
from numba import njit

from powergrid.envs.spaces import clip_value
from powergrid.pf.jit import cache_depends_on

# dtype kinds accepted as actions: signed/unsigned integers and floats. Booleans are
# refused (a mask passed by mistake, not a set-point); complex, strings, bytes, dates and
# durations are refused rather than coerced, since numpy would silently drop the
# imaginary part or parse "1.0" / a timestamp as a number.
_REAL_KINDS = frozenset("iuf")


def action_array(agent: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float64 array of ``shape``, or a ValueError naming the agent and problem.

    Accepts arrays, lists and scalars of real numbers (Python or numpy ints and floats of
    any width). NaN/inf and range are checked by the caller (they clip finite values).
    """
    arr = value if type(value) is np.ndarray else _as_array(agent, value)
    kind = arr.dtype.kind
    if kind not in _REAL_KINDS:
        if kind != "O":
            raise ValueError(f"action for {agent!r} has dtype {arr.dtype}, expected real "
                             f"numbers (int or float): {reprlib.repr(value)}")
        arr = _from_objects(agent, arr, value)
    if arr.shape != shape:
        raise ValueError(f"action for {agent!r} has shape {arr.shape}, expected {shape}")
    return arr if kind == "f" and arr.itemsize == 8 else np.asarray(arr, dtype=np.float64)


def _as_array(agent: str, value: Any) -> np.ndarray:
    try:
        return np.asarray(value)
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. ragged nested lists
        raise ValueError(f"action for {agent!r} is not numeric: {reprlib.repr(value)}") from exc


def _from_objects(agent: str, arr: np.ndarray, value: Any) -> np.ndarray:
    """Object arrays (mixed types, ints beyond int64): every element must be a real number."""
    flat = arr.ravel().tolist()
    for x in flat:
        if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
            raise ValueError(f"action for {agent!r} is not numeric: element {x!r} of type "
                             f"{type(x).__name__} in {reprlib.repr(value)}")
    try:
        return np.array([float(x) for x in flat], np.float64).reshape(arr.shape)
    except OverflowError as exc:
        raise ValueError(f"action for {agent!r} has a value beyond the float64 range "
                         f"(expected numbers in [-1, 1]): {reprlib.repr(value)}") from exc


@njit(cache=True)
def clip_batch(arr, out, clipped):  # pragma: no cover - compiled
    """(B, dim) float64 actions clipped to [-1, 1] into ``out`` (``np.minimum(np.maximum(
    x, -1), 1)``), ``clipped[b]`` whether row b changed; the first row holding NaN/inf, or
    -1 (then ``out`` is complete). One compiled pass instead of four numpy calls."""
    for b in range(arr.shape[0]):
        changed = False
        for q in range(arr.shape[1]):
            x = arr[b, q]
            if not math.isfinite(x):
                return b
            c = clip_value(x, -1.0, 1.0)
            changed |= c != x
            out[b, q] = c
        clipped[b] = changed
    return -1


# clip_batch inlines spaces.clip_value: recompile when that module changes
cache_depends_on((clip_batch,), "powergrid.envs.spaces")
