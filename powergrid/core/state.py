"""The simulation state: every quantity that changes over an episode, with a batch axis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from powergrid.core.ahead import AheadState


@dataclass
class CoreState:
    """State of B envs; arrays are (B,) or (B, N) (N microgrids) unless noted.

    Devices, the power flow's warm start and the coordination objects keep their own
    state (they are stepped through their interfaces); everything else lives here.
    """

    t: np.ndarray               # step index per env (episodes may be out of phase)
    start_day: np.ndarray       # day of year each episode started on
    # the episode series, (B, T+1, ...) as powergrid.envs.series.EpisodeSeries
    hours: np.ndarray
    days: np.ndarray
    pv: np.ndarray
    retail: np.ndarray
    feed_in: np.ndarray
    load_forecast: np.ndarray   # (B, T+1, N)
    load_kw: np.ndarray         # (B, T+1, N)
    feeder_load_pu: np.ndarray  # (B, T+1) background loads of a shared feeder
    last_price: np.ndarray      # $/kWh, 0 when nothing cleared
    last_p2p: np.ndarray        # kWh sold - bought, last step
    last_grid: np.ndarray       # kWh export - import, last step
    v_min: np.ndarray           # own feeder, last power flow
    v_max: np.ndarray
    last_losses_kw: np.ndarray  # of the last converged solve
    last_pcc: np.ndarray        # (B, N) PCC loading %, of the last converged solve
    stored_start: np.ndarray    # kWh in storage at the episode start
    needs_reset: np.ndarray     # episode over: the next step autoresets the row
    ahead: AheadState | None = None  # the ahead market's books and commitments

    @classmethod
    def empty(cls, num_envs: int, n_agents: int, steps: int) -> CoreState:
        B, N, T1 = num_envs, n_agents, steps + 1
        return cls(
            t=np.zeros(B, np.intp), start_day=np.zeros(B, np.intp),
            hours=np.zeros((B, T1), np.intp), days=np.zeros((B, T1), np.intp),
            pv=np.zeros((B, T1)), retail=np.zeros((B, T1)), feed_in=np.zeros((B, T1)),
            load_forecast=np.zeros((B, T1, N)), load_kw=np.zeros((B, T1, N)),
            feeder_load_pu=np.zeros((B, T1)), last_price=np.zeros(B),
            last_p2p=np.zeros((B, N)), last_grid=np.zeros((B, N)), v_min=np.ones((B, N)),
            v_max=np.ones((B, N)), last_losses_kw=np.zeros(B), last_pcc=np.zeros((B, N)),
            stored_start=np.zeros((B, N)),
            needs_reset=np.zeros(B, bool))


def live_rows(live: np.ndarray) -> list[int]:
    """Indices of the live rows as Python ints (cheaper than ``np.flatnonzero`` at small B,
    where the per-row stages run)."""
    return [b for b, x in enumerate(live.tolist()) if x]
