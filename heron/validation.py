"""Input checks shared by heron and powergrid: fail at the boundary with the field named.

:class:`Range` is the one description of "a sane number" used by configs, device
parameters, orders and protocols, so every absurd value gets the same kind of message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real


def finite_float(name: str, value: object) -> float:
    """Coerce a real scalar to float, refusing bools, non-numbers and NaN/inf."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {out}")
    return out


@dataclass(frozen=True)
class Range:
    """An interval of real numbers (``integer=True``: of ints) that a value must lie in.

    Bools are never numbers here (``True`` as a capacity is a bug, not 1.0); numpy scalars
    are. Finite bounds on physical and money inputs keep every downstream product finite.
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    unit: str = ""

    def coerce(self, value: object) -> float | int | None:
        """``value`` as ``float`` (``int`` if ``integer``) when it lies in the range, else None."""
        if isinstance(value, bool) or not isinstance(value, Integral if self.integer else Real):
            return None
        if self.integer:
            v: float | int = int(value)  # type: ignore[call-overload]
        else:
            try:
                v = float(value)  # type: ignore[arg-type]
            except OverflowError:  # an int beyond the float range
                return None
            if not math.isfinite(v):
                return None
        if v < self.low or v > self.high or (self.low_open and v == self.low) or (
                self.high_open and v == self.high):
            return None
        return v

    def describe(self) -> str:
        """What is expected, e.g. ``a finite number in (0, 1e+06] kW``."""
        kind = "an int" if self.integer else "a finite number"
        if self.low == -math.inf and self.high == math.inf:
            return kind
        if self.high == math.inf:
            return f"{kind} {'>' if self.low_open else '>='} {self.low:g}{self._unit}"
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        return f"{kind} in {lo}{self.low:g}, {self.high:g}{hi}{self._unit}"

    @property
    def _unit(self) -> str:
        return f" {self.unit}" if self.unit else ""

    def require(self, name: str, value: object) -> float | int:
        """The coerced value, or a ``ValueError`` naming ``name``, the value and the range."""
        v = self.coerce(value)
        if v is None:
            raise ValueError(f"{name} must be {self.describe()}, got {value!r}")
        return v
