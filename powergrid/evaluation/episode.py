"""One evaluated episode as arrays, the input of every KPI (built from the env's infos)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from powergrid.evaluation.feeder import violations

# the settlement terms of the cost (what a microgrid pays for its net position)
SETTLEMENT_TERMS = ("grid_import", "grid_export_revenue", "p2p_payment", "p2p_revenue", "fees")


@dataclass(frozen=True, eq=False)
class Episode:
    """T steps of N microgrids; every array is (T, N) unless marked (T,). Units as the env.

    ``cost`` is each microgrid's ``costs["total"]`` per step ($); ``settlement`` is the
    settlement part of it (grid import - export revenue + P2P payment - P2P revenue + fees);
    ``net_kwh`` the net position (generation + discharge - load - charge) x dt; prices are
    the tariffs each microgrid faced (a vertical price signal replaces the retail one).
    """

    agents: tuple[str, ...]
    dt_hours: float
    cost: np.ndarray
    settlement: np.ndarray
    net_kwh: np.ndarray
    retail: np.ndarray
    feed_in: np.ndarray
    grid_import_kwh: np.ndarray
    load_kwh: np.ndarray
    bought_kwh: np.ndarray
    upstream_import_kw: np.ndarray  # (T,) whole network, from the slack bus
    losses_kw: np.ndarray           # (T,)
    violation: np.ndarray           # (T,) bool: any bus off-band, line/PCC overloaded, no PF

    @classmethod
    def from_infos(cls, agents: Sequence[str], history: Sequence[Mapping[str, Mapping[str, Any]]],
                   dt_hours: float, voltage_band: Sequence[float] = (0.95, 1.05)) -> Episode:
        """From the per-step ``infos`` of ``MultiAgentMicrogrids.step`` for the microgrids.

        ``voltage_band`` (the env's) judges the shared feeder's buses; a step violates if
        any limit of ``powergrid.evaluation.feeder.violations`` is violated.
        """
        def per_agent(get) -> np.ndarray:
            return np.array([[float(get(step[a])) for a in agents] for step in history])

        first = agents[0]
        return cls(
            agents=tuple(agents), dt_hours=float(dt_hours),
            cost=per_agent(lambda i: i["costs"]["total"]),
            settlement=per_agent(lambda i: sum(
                (-1.0 if k.endswith("revenue") else 1.0) * i["costs"][k]
                for k in SETTLEMENT_TERMS)),
            net_kwh=per_agent(lambda i: i["net_kw"]) * dt_hours,
            retail=per_agent(lambda i: i["retail_price"]),
            feed_in=per_agent(lambda i: i["feed_in_price"]),
            grid_import_kwh=per_agent(lambda i: i["grid_import_kwh"]),
            load_kwh=per_agent(lambda i: i["load_kw"]) * dt_hours,
            bought_kwh=per_agent(lambda i: i["market"]["bought_kwh"]),
            upstream_import_kw=np.array([float(s[first]["upstream_import_kw"]) for s in history]),
            losses_kw=np.array([float(s[first]["network_losses_kw"]) for s in history]),
            violation=np.array([any(violations({a: s[a] for a in agents},
                                               voltage_band).values()) for s in history], bool),
        )
