"""Distributed averaging: peers agree on one scalar by talking only to their neighbours.

The protocol simulates the synchronous iteration ``x <- W x`` that real peers would run by
exchanging estimates; it exists so environments can study what agreement costs (iterations)
and what happens when the communication graph is sparse or broken.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Literal

import numpy as np

from heron.protocols.base import HorizontalProtocol
from heron.validation import finite_float

# Smallest weight / largest weight that mixing keeps representable (far above the
# subnormal range even after many 1/(1+degree) factors).
_MIN_WEIGHT_RATIO = 1e-280

Topology = Literal["complete", "ring"] | Mapping[str, Sequence[str]]


@dataclass(frozen=True)
class ConsensusResult:
    """Outcome of one agreement round.

    ``value`` is the network-wide agreed value, ``values`` each peer's final estimate, and
    ``residual`` the spread (max - min) of those estimates: zero means perfect agreement.
    """

    value: float
    values: dict[str, float]
    iterations: int
    converged: bool
    residual: float


class ConsensusProtocol(HorizontalProtocol):
    """Average (or weighted-average) consensus over a communication graph.

    Mixing uses Metropolis-Hastings weights by default because they need only local degree
    information and are doubly stochastic on any undirected graph, so the average is preserved
    exactly. With ``step_size`` the Laplacian iteration ``x <- x - step_size * L x`` is used
    instead, which needs ``step_size < 1 / max_degree`` to be stable.

    ``tolerance`` is relative to the largest input magnitude (at least 1), so agreement on
    large quantities is attainable in floating point. Edges in a mapping topology are treated
    as undirected, because one-way links would break average preservation.
    """

    name = "consensus"

    def __init__(
        self,
        tolerance: float = 1e-6,
        max_iterations: int = 100,
        step_size: float | None = None,
        topology: Topology = "complete",
    ) -> None:
        if isinstance(tolerance, bool) or not isinstance(tolerance, Real):
            raise ValueError(f"tolerance must be a positive finite number, got {tolerance!r}")
        if not (math.isfinite(tolerance) and tolerance > 0):
            raise ValueError(f"tolerance must be a positive finite number, got {tolerance}")
        if isinstance(max_iterations, bool) or not isinstance(max_iterations, Integral):
            raise ValueError(f"max_iterations must be an int >= 1, got {max_iterations!r}")
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be an int >= 1, got {max_iterations}")
        if step_size is not None:
            if isinstance(step_size, bool) or not isinstance(step_size, Real):
                raise ValueError(f"step_size must be a positive finite number, got {step_size!r}")
            if not (math.isfinite(step_size) and step_size > 0):
                raise ValueError(f"step_size must be a positive finite number, got {step_size}")
        if isinstance(topology, str):
            if topology not in ("complete", "ring"):
                raise ValueError(
                    f"unknown topology {topology!r}; expected 'complete', 'ring' or a "
                    "mapping peer -> neighbours"
                )
        elif isinstance(topology, Mapping):
            for peer, neighbours in topology.items():
                if isinstance(neighbours, str) or not isinstance(neighbours, Iterable):
                    raise ValueError(
                        f"neighbours of {peer!r} must be a sequence of peer ids, got {neighbours!r}"
                    )
            topology = {p: tuple(ns) for p, ns in topology.items()}
        else:
            raise ValueError(f"topology must be 'complete', 'ring' or a mapping, got {topology!r}")
        self.tolerance = float(tolerance)
        self.max_iterations = int(max_iterations)
        self.step_size = None if step_size is None else float(step_size)
        self.topology = topology

    def agree(
        self, values: Mapping[str, float], weights: Mapping[str, float] | None = None
    ) -> ConsensusResult:
        """Run consensus on ``values``; with ``weights`` agree on their weighted average.

        The weighted case uses ratio consensus: average ``w_i * x_i`` and ``w_i`` separately
        and divide, so peers never need to know the total weight. Never raises for failing
        to converge: a disconnected graph or hitting ``max_iterations`` gives
        ``converged=False`` with the remaining spread.
        """
        peers = list(values)
        if not peers:
            raise ValueError("values must contain at least one peer")
        x0 = np.array([finite_float(f"value of {p!r}", values[p]) for p in peers])
        w = self._weights(peers, weights)
        if len(peers) == 1:
            only = float(x0[0])
            return ConsensusResult(only, {peers[0]: only}, 0, True, 0.0)

        adjacency = self._adjacency(peers)
        connected = _is_connected(adjacency)
        mixing = self._mixing_matrix(adjacency)
        # Iterate on x0 / scale (in [-1, 1]) with weights scaled to max 1: the average is
        # scale-invariant, and no product or sum can overflow (weights of 1e308 times
        # values would be inf, then NaN). Results are scaled back at the end.
        scale = float(np.max(np.abs(x0))) or 1.0
        x = x0 / scale
        # Tolerance relative to the inputs' magnitude: rounding makes tiny absolute spreads
        # unreachable for large values.
        threshold = self.tolerance * max(1.0, scale) / scale

        num, den = w * x, w.copy()
        estimates = num / den
        residual = _spread(estimates)
        iterations = 0
        converged = connected and residual <= threshold
        while not converged and iterations < self.max_iterations:
            num, den = mixing @ num, mixing @ den
            new_estimates = num / den
            iterations += 1
            change = float(np.max(np.abs(new_estimates - estimates)))
            estimates = new_estimates
            residual = _spread(estimates)
            if connected:
                converged = residual <= threshold
            elif change <= threshold:
                # Each component has settled on its own average; more rounds change nothing.
                break

        # Mixing preserves sum(num) and sum(den), so this is the exact (weighted) average;
        # averages stay within the inputs' range, which the clip enforces against round-off.
        lo, hi = float(x0.min()), float(x0.max())
        with np.errstate(over="ignore"):  # a rounding-up overflow is clipped back just below
            value = min(max(float(num.sum() / den.sum()) * scale, lo), hi)
            estimates = np.clip(estimates * scale, lo, hi)
        return ConsensusResult(
            value=value,
            values={p: float(v) for p, v in zip(peers, estimates, strict=True)},
            iterations=iterations,
            converged=bool(converged),
            # a spread of +-1e308 inputs exceeds the float range: report the largest float
            residual=min(residual * scale, sys.float_info.max),
        )

    def _weights(self, peers: list[str], weights: Mapping[str, float] | None) -> np.ndarray:
        if weights is None:
            return np.ones(len(peers))
        missing = [p for p in peers if p not in weights]
        known = set(peers)
        extra = [p for p in weights if p not in known]
        if missing or extra:
            raise ValueError(
                f"weights must have exactly the peers of values; missing {missing}, extra {extra}"
            )
        w = np.array([finite_float(f"weight of {p!r}", weights[p]) for p in peers])
        if np.any(w <= 0):
            bad = {p: float(v) for p, v in zip(peers, w, strict=True) if v <= 0}
            raise ValueError(f"weights must be > 0 (ratio consensus divides by them), got {bad}")
        # Only ratios matter: scale to max 1 so 1e308 weights cannot overflow, 5e-324 ones
        # cannot underflow to 0 while mixing.
        w = w / w.max()
        if w.min() < _MIN_WEIGHT_RATIO:
            raise ValueError(f"weights span more than {-math.log10(_MIN_WEIGHT_RATIO):.0f} "
                             f"orders of magnitude (min/max = {w.min():.3g}); ratio consensus "
                             f"cannot mix them in floating point: rescale or drop the tiny ones")
        return w

    def _adjacency(self, peers: list[str]) -> list[set[int]]:
        n = len(peers)
        if self.topology == "complete":
            return [set(range(n)) - {i} for i in range(n)]
        if self.topology == "ring":
            # Ring follows the order of ``values`` so it is reproducible.
            return [{(i - 1) % n, (i + 1) % n} - {i} for i in range(n)]
        index = {p: i for i, p in enumerate(peers)}
        unknown = sorted(
            {p for p in self.topology if p not in index}
            | {q for ns in self.topology.values() for q in ns if q not in index}
        )
        if unknown:
            raise ValueError(f"topology refers to unknown peers {unknown}; known peers: {peers}")
        adjacency: list[set[int]] = [set() for _ in peers]
        for p, neighbours in self.topology.items():
            for q in neighbours:
                i, j = index[p], index[q]
                if i != j:  # a self-loop carries no information
                    adjacency[i].add(j)
                    adjacency[j].add(i)
        return adjacency

    def _mixing_matrix(self, adjacency: list[set[int]]) -> np.ndarray:
        n = len(adjacency)
        degree = [len(a) for a in adjacency]
        mixing = np.zeros((n, n))
        if self.step_size is not None:
            max_degree = max(degree)
            if max_degree and self.step_size >= 1.0 / max_degree:
                raise ValueError(
                    f"step_size={self.step_size} is unstable for max degree {max_degree}; "
                    f"it must be < {1.0 / max_degree}"
                )
            for i, neighbours in enumerate(adjacency):
                for j in neighbours:
                    mixing[i, j] = self.step_size
        else:
            for i, neighbours in enumerate(adjacency):
                for j in neighbours:
                    mixing[i, j] = 1.0 / (1.0 + max(degree[i], degree[j]))
        # Self-weight absorbs the rest so rows (and, by symmetry, columns) sum to one.
        np.fill_diagonal(mixing, 1.0 - mixing.sum(axis=1))
        return mixing

    def __repr__(self) -> str:
        return (
            f"ConsensusProtocol(tolerance={self.tolerance}, max_iterations={self.max_iterations}, "
            f"step_size={self.step_size}, topology={self.topology!r})"
        )


def _spread(estimates: np.ndarray) -> float:
    return float(np.max(estimates) - np.min(estimates))


def _is_connected(adjacency: list[set[int]]) -> bool:
    seen = {0}
    frontier = [0]
    while frontier:
        node = frontier.pop()
        for nxt in adjacency[node] - seen:
            seen.add(nxt)
            frontier.append(nxt)
    return len(seen) == len(adjacency)
