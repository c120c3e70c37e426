"""Input checks shared by heron's protocols: fail at the boundary with the field named."""

from __future__ import annotations

import math
from numbers import Real


def finite_float(name: str, value: object) -> float:
    """Coerce a real scalar to float, refusing bools, non-numbers and NaN/inf."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out
