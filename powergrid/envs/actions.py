"""Action checks shared by the scalar and the batched env: one wording for one mistake."""

from __future__ import annotations

import reprlib
from typing import Any

import numpy as np


def action_array(agent: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``value`` as a float64 array of ``shape``, or a ValueError naming the agent and problem."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action for {agent!r} is not numeric: {reprlib.repr(value)}") from exc
    if arr.shape != shape:
        raise ValueError(f"action for {agent!r} has shape {arr.shape}, expected {shape}")
    return arr
