"""What a failed power flow reports and costs: one rule shared by both env flavours.

A backend that does not converge leaves an iterate that is not a physical state (the fast
solver's is the no-load profile, with negative losses; pandapower's is the previous step),
so nothing a microgrid pays or observes on a failed step may depend on it.

The rule:

* **Admissible states.** A solve counts as converged only if the backend converged *and*
  every bus voltage (microgrids' and shared feeder's) is in ``[V_FLOOR_PU, V_CEIL_PU]``
  and every microgrid line loading is at most ``LOADING_CEIL_PCT``. Beyond these the "solution" is the unstable branch of the
  PV curve or numerical noise, not an operating point.
* **Penalty bound.** Hence any converged state costs a feeder at most
  ``bound = voltage_penalty_per_pu * n_bus * max(low - V_FLOOR_PU, V_CEIL_PU - high)
  + line_overload_penalty_per_pct * n_line * (LOADING_CEIL_PCT - 100)``.
* **Failure penalty.** On a failed step every microgrid (the network as a whole has no
  operating point) pays ``bound + pf_failure_penalty * (1 + stress)``, where ``stress`` is
  the apparent power its microgrid demands through its PCC transformer (|load - devices|,
  with the loads' reactive power) divided by that transformer's rating. It exceeds what any
  converged state pays, grows with the stress and uses only set-points, so it is the same
  for every backend.
* **Reported state.** Infos and observations show the collapse state: ``v_min_pu`` =
  ``V_FLOOR_PU``, ``v_max_pu`` = ``V_CEIL_PU``, ``line_loading_max_pct`` =
  ``LOADING_CEIL_PCT``, ``voltage_violation_pu`` its violation, ``feeder_v_*`` the same
  edges — worse than any converged state, so never healthier than the last one. PCC
  loadings are the larger of the last converged one and the demanded loading (100 x
  stress). Network losses are the last converged losses (>= 0, 0 before any converged
  solve) and the upstream import is the energy balance: the microgrids' net demand plus
  the shared feeder's own loads plus those losses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from powergrid.envs.config import EnvConfig
from powergrid.networks.multi_microgrid import MicrogridNetwork

V_FLOOR_PU = 0.5
V_CEIL_PU = 1.5
LOADING_CEIL_PCT = 500.0


@dataclass(frozen=True)
class FailureRule:
    """Per-feeder constants of the rule above; arrays are (N,) in microgrid order."""

    voltage_violation_pu: np.ndarray  # violation of the collapse state
    bound: np.ndarray                 # $: the most a converged state costs the feeder
    base: float                       # $: pf_failure_penalty
    rated_kva: np.ndarray             # substation transformer rating
    q_per_kw: np.ndarray              # reactive load per kW of the feeder's load

    @classmethod
    def build(cls, cfg: EnvConfig, network: MicrogridNetwork,
              agents: Sequence[str]) -> FailureRule:
        lo, hi = cfg.voltage_band
        n_bus = np.array([len(network.bus_rows[a]) for a in agents], float)
        n_line = np.array([len(network.line_rows[a]) for a in agents], float)
        violation = n_bus * max(lo - V_FLOOR_PU, V_CEIL_PU - hi, 0.0)
        bound = (cfg.voltage_penalty_per_pu * violation
                 + cfg.line_overload_penalty_per_pct * n_line * (LOADING_CEIL_PCT - 100.0))
        sn_mva = network.net.trafo["sn_mva"].to_numpy(float)
        rated = np.array([1e3 * sn_mva[network.pcc_trafo_rows[a]] for a in agents])
        q = np.array([float(np.dot(network.load_share[network.load_rows[a]],
                                   network.load_q_ratio[network.load_rows[a]]))
                      for a in agents])
        return cls(violation, bound, float(cfg.pf_failure_penalty), rated, q)

    @staticmethod
    def admissible(v_min: float | np.ndarray, v_max: float | np.ndarray,
                   loading_max: float | np.ndarray) -> bool | np.ndarray:
        """Whether a converged solve's extremes (over all feeders) are an operating point."""
        return (v_min >= V_FLOOR_PU) & (v_max <= V_CEIL_PU) & (loading_max <= LOADING_CEIL_PCT)

    def stress(self, net_kw: np.ndarray, load_kw: np.ndarray) -> np.ndarray:
        """Demanded substation loading (fraction of rating) from set-points, (..., N)."""
        return np.hypot(net_kw, load_kw * self.q_per_kw) / self.rated_kva

    def penalty(self, net_kw: np.ndarray, load_kw: np.ndarray) -> np.ndarray:
        """$ each microgrid pays on a failed step, (..., N)."""
        return self.bound + self.base * (1.0 + self.stress(net_kw, load_kw))

    @staticmethod
    def losses_kw(last_converged_kw: float | np.ndarray) -> float | np.ndarray:
        return np.maximum(last_converged_kw, 0.0)

    @staticmethod
    def upstream_import_kw(net_kw: np.ndarray, losses_kw: float | np.ndarray,
                           background_kw: float | np.ndarray = 0.0) -> float | np.ndarray:
        """Energy balance at the slack: microgrids' net demand, other loads and losses."""
        return -np.sum(net_kw, axis=-1) + background_kw + losses_kw
