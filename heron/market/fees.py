"""Pair-dependent fees: a per-unit charge that depends on who trades with whom.

Why: a flat fee treats every trade alike, but the cost of delivering a unit from a seller
to a buyer can depend on the pair (e.g. how far apart they are in a network). The market
stays domain-free: a :class:`PairFees` is just a matrix over agent names; the domain
decides what it means (``powergrid.network_costs`` builds one from electrical distance).

Convention, as for the flat fee: a trade of ``q`` between ``buyer`` and ``seller`` is
charged ``fee = (fee_per_unit + pair_fee(buyer, seller)) * q`` in total, half to each side,
so money stays conserved (``buyer_pays == seller_receives + fee + surplus``). The pair fee
does not change which orders match or at what price: it is the operator's charge for the
route. Individual rationality against an outside option therefore needs each agent's limit
inside the band narrowed by its *worst* pair (:meth:`PairFees.bound`), as with the flat fee.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from heron.market.orders import MAX_PRICE

__all__ = ["PairFees"]


@dataclass(frozen=True, eq=False)
class PairFees:
    """Per-unit fee ``per_unit[i, j]`` when ``agents[i]`` buys from ``agents[j]``.

    The diagonal is never used (no agent trades with itself). Entries must be finite and
    in ``[0, MAX_PRICE]``; unknown agents raise ``ValueError`` when looked up.
    """

    agents: tuple[str, ...]
    per_unit: np.ndarray

    def __post_init__(self) -> None:
        agents = tuple(self.agents)
        if not all(isinstance(a, str) and a for a in agents):
            raise ValueError(f"PairFees agents must be non-empty strings, got {agents!r}")
        if len(set(agents)) != len(agents):
            raise ValueError(f"PairFees agents must be unique, got {agents!r}")
        m = np.array(self.per_unit, dtype=float)  # a private, read-only copy
        k = len(agents)
        if m.shape != (k, k):
            raise ValueError(f"PairFees per_unit must be a ({k}, {k}) matrix (buyer, seller) "
                             f"for agents {agents}, got shape {m.shape}")
        off = m[~np.eye(k, dtype=bool)]
        if not (np.all(np.isfinite(off)) and np.all(off >= 0.0) and np.all(off <= MAX_PRICE)):
            raise ValueError(f"PairFees per_unit entries must be finite numbers in "
                             f"[0, {MAX_PRICE:g}], got {m.tolist()}")
        np.fill_diagonal(m, 0.0)
        m.setflags(write=False)
        object.__setattr__(self, "agents", agents)
        object.__setattr__(self, "per_unit", m)
        object.__setattr__(self, "_index", {a: i for i, a in enumerate(agents)})

    @classmethod
    def from_function(cls, agents: Sequence[str],
                      fee: Callable[[str, str], float]) -> PairFees:
        """Tabulate ``fee(buyer, seller)`` over every ordered pair of distinct ``agents``."""
        agents = tuple(agents)
        m = np.zeros((len(agents), len(agents)))
        for i, b in enumerate(agents):
            for j, s in enumerate(agents):
                if i != j:
                    m[i, j] = fee(b, s)
        return cls(agents, m)

    def index(self, agent: str) -> int:
        """Row/column of ``agent``; ``ValueError`` naming it when unknown."""
        try:
            return self._index[agent]  # type: ignore[attr-defined]
        except KeyError:
            raise ValueError(f"agent {agent!r} has no pair fee; PairFees covers "
                             f"{list(self.agents)}") from None

    def __call__(self, buyer: str, seller: str) -> float:
        """Per-unit pair fee of a trade (total, both halves)."""
        return float(self.per_unit[self.index(buyer), self.index(seller)])

    def bound(self, agent: str) -> float:
        """The largest pair fee ``agent`` can face, as buyer or as seller."""
        i = self.index(agent)
        return float(max(self.per_unit[i].max(initial=0.0), self.per_unit[:, i].max(initial=0.0)))

    def check_covers(self, agents: Sequence[str]) -> None:
        """Raise ``ValueError`` unless every agent in ``agents`` has a row."""
        for a in agents:
            self.index(a)

    def __repr__(self) -> str:
        return f"PairFees(agents={self.agents!r}, per_unit={self.per_unit.tolist()!r})"
