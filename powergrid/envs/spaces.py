"""Observation bounds: one table per feature group, resolved to finite Boxes for a config.

Every bound is finite so that observation normalisers (SuperSuit ``normalize_obs_v0``,
running mean/std filters) and bounded policy heads work. A bound comes with a unit:

* ``""``: the number as written (dimensionless features, p.u. voltages, hour sin/cos).
* ``PRICE``: a multiple of the env's price cap, the largest price any agent can face: the
  highest retail tariff hour, or the upper ``price_bounds`` of a ``PriceSignalProtocol``.
  Every tariff, signal and clearing price lies in [0, cap], since trades clear inside
  [feed-in, retail] of the hour.
* ``PER_PEAK``: kWh per kW of the agent's peak load, i.e. a multiple of ``dt_hours``. The
  bound ±10 peak-hours per hour is ten times what the shipped devices can move (their total
  power is at most 1.7x the peak load), so it binds only for exotic custom devices.

A value outside its bound is clipped to the bound and the agent's
``infos[a]["obs_clipped"]`` is True for that step, so it never passes silently (a
microgrid's NaN/inf feature raises before that, naming the device).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from gymnasium import spaces
from numba import njit

PRICE = "price"
PER_PEAK = "per_peak"
EXCHANGE_BOUND = 10.0  # peak-hours per hour of step, see the module docstring

Feature = tuple[str, float, float, str]  # (label, low, high, unit)


def resolve(features: Iterable[Feature], price_cap: float, dt_hours: float
            ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """Labels and float32 (low, high) of a feature table for one env's price cap and dt."""
    scale = {"": 1.0, PRICE: float(price_cap), PER_PEAK: float(dt_hours)}
    rows = list(features)
    for label, _, _, unit in rows:
        if unit not in scale:
            raise ValueError(f"feature {label!r} has unknown unit {unit!r}; "
                             f"expected one of {sorted(scale)}")
    low = np.array([lo * scale[u] for _, lo, _, u in rows], np.float32)
    high = np.array([hi * scale[u] for _, _, hi, u in rows], np.float32)
    return tuple(r[0] for r in rows), low, high


def price_cap(retail_price: np.ndarray, vertical: object | None) -> float:
    """The largest price in the env: the tariff's peak or a price signal's upper bound."""
    cap = float(np.max(retail_price))
    bounds = getattr(vertical, "price_bounds", None)
    if bounds is not None:
        cap = max(cap, float(bounds[1]))
    return cap if cap > 0 else 1.0


def box(low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray) -> spaces.Box:
    return spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32),
                      dtype=np.float32)


def unify_same_shape(boxes: Mapping[str, spaces.Box], agents: Sequence[str]
                     ) -> dict[str, spaces.Box]:
    """Give agents whose observations have the same shape the same (widest) bounds.

    Shared policies and vectorisers (SuperSuit, RLlib's shared module) need identical
    spaces; widening a bound never clips a value the narrower one allowed.
    """
    out = dict(boxes)
    by_shape: dict[tuple[int, ...], list[str]] = {}
    for a in agents:
        by_shape.setdefault(boxes[a].shape, []).append(a)
    for group in by_shape.values():
        low = np.min([boxes[a].low for a in group], axis=0)
        high = np.max([boxes[a].high for a in group], axis=0)
        for a in group:
            out[a] = box(low, high)
    return out


def clip_observation(obs: np.ndarray, space: spaces.Box) -> tuple[np.ndarray, bool]:
    """``obs`` inside ``space`` (NaN/inf replaced first) and whether anything was changed."""
    finite = np.isfinite(obs).all()
    if not finite:  # never hand a policy NaN/inf, whatever happened
        obs = np.nan_to_num(obs, nan=0.0, posinf=0.0, neginf=0.0)
    clipped = np.minimum(np.maximum(obs, space.low), space.high)
    return clipped, bool(not finite or (clipped != obs).any())


@dataclass(frozen=True)
class SideBySide:
    """Several agents' Boxes with their bounds side by side, so that one pass casts,
    checks and clips every agent's observation of a step (what ``clip_observation`` does
    per agent, at a fraction of the per-call numpy overhead of a small env)."""

    low: np.ndarray      # float32, every agent's low, concatenated
    high: np.ndarray
    offsets: np.ndarray  # int64 (agents + 1,): agent k's features are [offsets[k], offsets[k+1])

    @classmethod
    def of(cls, boxes: Sequence[spaces.Box]) -> SideBySide:
        dims = [int(np.prod(b.shape)) for b in boxes]
        return cls(np.concatenate([b.low.ravel() for b in boxes]).astype(np.float32),
                   np.concatenate([b.high.ravel() for b in boxes]).astype(np.float32),
                   np.cumsum([0, *dims]).astype(np.int64))

    def clip(self, raw: np.ndarray) -> tuple[np.ndarray, list[bool]] | None:
        """``raw`` (the agents' float64 features side by side) as a new float32 array
        inside the bounds, and per agent whether a value was clipped; None when a value is
        NaN/inf in float32 (the caller raises, naming it)."""
        out = np.empty(len(self.low), np.float32)
        flags = np.empty(len(self.offsets) - 1, np.bool_)
        if not _clip_side_by_side(raw, self.low, self.high, self.offsets, out, flags):
            return None
        return out, flags.tolist()

    def clip_rows(self, raw: np.ndarray) -> list[np.ndarray]:
        """``raw`` (B, total) float64 features of B envs as each agent's new (B, dim)
        float32 array inside its bounds, NaN as 0 and +-inf as the bound (``np.nan_to_num``
        then the clip, as the vector env always did); the agents' arrays are contiguous
        blocks of one new buffer (one allocation and one compiled pass per step)."""
        B, off = raw.shape[0], self.offsets.tolist()
        buf = np.empty(B * off[-1], np.float32)
        _clip_rows(raw, self.low, self.high, self.offsets, buf)
        return [buf[B * a:B * b].reshape(B, b - a) for a, b in zip(off[:-1], off[1:])]

    def check_layout(self, offsets: Sequence[int]) -> None:
        """The agents' features sit at ``offsets`` (the core's ``Simulation.obs_offsets``,
        the one definition of the layout), else an AssertionError naming both."""
        if tuple(self.offsets.tolist()) != tuple(offsets):
            raise AssertionError(f"observation spaces {self.offsets.tolist()} do not match "
                                 f"the core's layout {list(offsets)}")


@njit(cache=True, inline="always")
def clip_value(x, low, high):  # pragma: no cover - compiled
    """``np.minimum(np.maximum(x, low), high)`` of one value (numpy's comparisons)."""
    c = x if x >= low else low
    return c if c <= high else high


@njit(cache=True)
def _clip_rows(raw, low, high, offsets, out):  # pragma: no cover - compiled
    """:meth:`SideBySide.clip_rows` into ``out``: agent k's (B, dim_k) block row-major at
    ``B * offsets[k]``; the float32 cast, NaN -> 0 and +-inf -> +-float32 max
    (``np.nan_to_num``), then ``np.minimum(np.maximum(x, low), high)``."""
    B = raw.shape[0]
    big = np.float32(np.finfo(np.float32).max)
    for k in range(offsets.shape[0] - 1):
        lo, d = offsets[k], offsets[k + 1] - offsets[k]
        for b in range(B):
            o = B * lo + b * d
            for j in range(d):
                q = lo + j
                x = np.float32(raw[b, q])
                if math.isnan(x):
                    x = np.float32(0.0)
                elif math.isinf(x):
                    x = big if x > 0 else -big
                out[o + j] = clip_value(x, low[q], high[q])


@njit(cache=True)
def _clip_side_by_side(raw, low, high, offsets, out, flags):  # pragma: no cover - compiled
    """The float32 cast, then ``np.minimum(np.maximum(x, low), high)`` element by element
    (numpy's comparisons), and per agent whether a value changed; False if a value is not
    finite."""
    finite = True
    for k in range(offsets.shape[0] - 1):
        changed = False
        for q in range(offsets[k], offsets[k + 1]):
            x = np.float32(raw[q])
            finite &= math.isfinite(x)
            c = clip_value(x, low[q], high[q])
            changed |= c != x
            out[q] = c
        flags[k] = changed
    return finite
