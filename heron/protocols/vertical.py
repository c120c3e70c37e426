"""Vertical (parent -> child) protocols: set-point dispatch and price signals.

Both are deliberately unit-free: a set-point is whatever quantity the child controls, and a
price is whatever the operator charges per unit of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Integral
from typing import Literal

import numpy as np

from heron.protocols.base import VerticalProtocol
from heron.validation import finite_float

PriceMode = Literal["fixed", "rule", "agent"]
_PRICE_MODES: tuple[str, ...] = ("fixed", "rule", "agent")


def _finite_array(name: str, value: object) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=float)).copy()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number or numeric array, got {value!r}") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr.tolist()}")
    return arr


class SetpointProtocol(VerticalProtocol):
    """A parent tells each child what to do and optionally penalises how far it strays.

    The penalty lets a learning child be rewarded for tracking without the protocol knowing
    what the set-point physically means.
    """

    name = "setpoint"

    def __init__(self, tracking_weight: float = 0.0) -> None:
        weight = finite_float("tracking_weight", tracking_weight)
        if weight < 0:
            raise ValueError(f"tracking_weight must be >= 0 (it scales a penalty), got {weight}")
        self.tracking_weight = weight

    def dispatch(
        self, setpoints: Mapping[str, float | np.ndarray], children: Iterable[str]
    ) -> dict[str, np.ndarray]:
        """Validate set-points and return one float array per addressed child.

        Children without a set-point are omitted (they act autonomously this step). Output
        follows ``children`` order so downstream iteration is deterministic; arrays are copies
        so a child mutating its set-point cannot corrupt the parent's.
        """
        child_list = list(children)
        known = set(child_list)
        unknown = [c for c in setpoints if c not in known]
        if unknown:
            raise ValueError(
                f"set-points for unknown children {unknown}; expected any of {child_list}"
            )
        return {
            c: _finite_array(f"set-point for {c!r}", setpoints[c])
            for c in child_list
            if c in setpoints
        }

    def tracking_error(self, setpoint: float | np.ndarray, actual: float | np.ndarray) -> float:
        """Absolute deviation (L1 norm for arrays) of ``actual`` from ``setpoint``."""
        sp = _finite_array("setpoint", setpoint)
        act = _finite_array("actual", actual)
        if sp.shape != act.shape:
            raise ValueError(f"setpoint shape {sp.shape} does not match actual shape {act.shape}")
        return float(np.abs(sp - act).sum())

    def penalty(self, setpoint: float | np.ndarray, actual: float | np.ndarray) -> float:
        """``tracking_weight * tracking_error``: non-negative, zero when tracking is perfect."""
        return self.tracking_weight * self.tracking_error(setpoint, actual)

    @staticmethod
    def proportional_split(total: float, capacities: Mapping[str, float]) -> dict[str, float]:
        """Share ``total`` among children in proportion to their capacities.

        The simplest fair rule-based parent: everyone runs at the same fraction of capacity.
        With zero total capacity nobody can contribute, so everyone gets zero.
        """
        target = finite_float("total", total)
        caps = {c: finite_float(f"capacity of {c!r}", v) for c, v in capacities.items()}
        negative = {c: v for c, v in caps.items() if v < 0}
        if negative:
            raise ValueError(f"capacities must be >= 0, got {negative}")
        cap_sum = math.fsum(caps.values())
        if cap_sum == 0.0:
            return {c: 0.0 for c in caps}
        return {c: target * v / cap_sum for c, v in caps.items()}

    def __repr__(self) -> str:
        return f"SetpointProtocol(tracking_weight={self.tracking_weight})"


class PriceSignalProtocol(VerticalProtocol):
    """An operator broadcasts one price per step to every child.

    Three operators share this interface so experiments can swap them: ``"fixed"`` (a tariff),
    ``"rule"`` (raises price under deficit, lowers it under surplus) and ``"agent"`` (a learning
    operator whose action in [-1, 1] is mapped onto ``price_bounds``).
    """

    name = "price_signal"

    def __init__(
        self,
        base_price: float | Sequence[float] | None = None,
        *,
        mode: PriceMode = "rule",
        sensitivity: float = 0.5,
        price_bounds: tuple[float, float] = (0.0, 1.0),
        scale: float = 1.0,
    ) -> None:
        if mode not in _PRICE_MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {list(_PRICE_MODES)}")
        try:
            low, high = price_bounds
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"price_bounds must be a (low, high) pair, got {price_bounds!r}"
            ) from exc
        low = finite_float("price_bounds[0]", low)
        high = finite_float("price_bounds[1]", high)
        if not low < high:
            raise ValueError(f"price_bounds must satisfy low < high, got ({low}, {high})")
        self.mode: PriceMode = mode
        self.price_bounds = (low, high)
        self.sensitivity = finite_float("sensitivity", sensitivity)
        if self.sensitivity < 0:
            # A negative sensitivity would lower prices under deficit: almost surely a sign slip.
            raise ValueError(f"sensitivity must be >= 0, got {self.sensitivity}")
        self.scale = self._check_scale(scale)
        # No base given: sit mid-range so the rule operator can move both ways.
        if base_price is None:
            base_price = (low + high) / 2.0
        if isinstance(base_price, np.ndarray):
            base_price = base_price.tolist()  # 0-d -> scalar, 1-d -> per-step list
        if isinstance(base_price, Sequence) and not isinstance(base_price, str):
            if len(base_price) == 0:
                raise ValueError("base_price sequence must not be empty")
            self.base_price: float | tuple[float, ...] = tuple(
                self._check_base(f"base_price[{i}]", p) for i, p in enumerate(base_price)
            )
        else:
            self.base_price = self._check_base("base_price", base_price)

    def _check_base(self, name: str, value: object) -> float:
        base = finite_float(name, value)
        low, high = self.price_bounds
        if not low <= base <= high:
            raise ValueError(f"{name}={base} lies outside price_bounds ({low}, {high})")
        return base

    @staticmethod
    def _check_scale(value: object) -> float:
        scale = finite_float("scale", value)
        if scale <= 0:
            raise ValueError(f"scale must be > 0 (it divides aggregate_net), got {scale}")
        return scale

    def base_at(self, step: int) -> float:
        """The configured base price for ``step`` (a sequence repeats, e.g. a daily tariff)."""
        if isinstance(step, bool) or not isinstance(step, Integral) or step < 0:
            raise ValueError(f"step must be an int >= 0, got {step!r}")
        if isinstance(self.base_price, tuple):
            return self.base_price[int(step) % len(self.base_price)]
        return self.base_price

    def price(
        self,
        step: int,
        aggregate_net: float | None = None,
        action: float | None = None,
        base: float | None = None,
        *,
        scale: float | None = None,
    ) -> float:
        """The price for ``step``, always within ``price_bounds``.

        ``aggregate_net > 0`` means the children together need more than they supply (net
        demand); ``base`` overrides the configured base price and ``scale`` the configured
        scale for this call only.
        """
        configured = self.base_at(step)
        base_price = configured if base is None else self._check_base("base", base)
        low, high = self.price_bounds
        if self.mode == "fixed":
            return base_price
        if self.mode == "rule":
            if aggregate_net is None:
                raise ValueError("mode 'rule' needs aggregate_net (net demand > 0, surplus < 0)")
            net = finite_float("aggregate_net", aggregate_net)
            s = self.scale if scale is None else self._check_scale(scale)
            raw = base_price * (1.0 + self.sensitivity * math.tanh(net / s))
            return min(max(raw, low), high)
        if action is None:
            raise ValueError("mode 'agent' needs action in [-1, 1]")
        a = finite_float("action", action)
        # Unsquashed Gaussian policies overshoot [-1, 1]; clip rather than punish the learner.
        a = min(max(a, -1.0), 1.0)
        return low + (a + 1.0) / 2.0 * (high - low)

    def broadcast(self, price: float, children: Iterable[str]) -> dict[str, float]:
        """Give every child the same price: a price signal is public, not negotiated."""
        p = finite_float("price", price)
        return {c: p for c in children}

    def __repr__(self) -> str:
        return (
            f"PriceSignalProtocol(base_price={self.base_price!r}, mode={self.mode!r}, "
            f"sensitivity={self.sensitivity}, price_bounds={self.price_bounds}, scale={self.scale})"
        )
