"""Network limits on the shared feeder: which limits a step violates, and a dispatch that
avoids them (the coordinated yardstick of the ``p2p-*mg-v2`` scenarios, docs/physics.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from powergrid.devices import ESS, Generator, Solar

VIOLATION_KINDS = ("overvoltage", "undervoltage", "line", "pcc", "pf_failed")


def violations(infos: Mapping[str, Mapping[str, Any]],
               band: Sequence[float]) -> dict[str, bool]:
    """Which limits one step violates, anywhere: a microgrid or IEEE-34 bus outside
    ``band``, a microgrid line above 100 %, a PCC transformer above 100 % of its kVA, or
    a failed power flow. ``infos`` are one step's infos of the microgrid agents."""
    lo, hi = band
    mg = [i for i in infos.values() if "v_min_pu" in i]  # not the DSO operator
    first = mg[0]
    return {
        "overvoltage": any(i["v_max_pu"] > hi for i in mg) or first["feeder_v_max_pu"] > hi,
        "undervoltage": any(i["v_min_pu"] < lo for i in mg) or first["feeder_v_min_pu"] < lo,
        "line": any(i["line_loading_max_pct"] > 100.0 for i in mg),
        "pcc": first["pcc_loading_max_pct"] > 100.0,
        "pf_failed": not first["pf_converged"],
    }


class FlatExchangePolicy:
    """Coordinated dispatch with perfect foresight of the day: flatten every PCC exchange.

    Per microgrid it targets a constant exchange equal to the day's mean net position
    (PV minus realised load; a microgrid with a generator also covers the others' mean
    deficit). The ESS covers the difference, the generator what the ESS cannot, and PV is
    curtailed above the target. What a DSO-aware schedule could do without any network
    model: it shows the violations are avoidable; it is not an optimum (no prices, and
    P2P orders at mid-band). Works with ``powergrid.evaluation.evaluate`` as a factory.
    """

    def __init__(self, env: Any) -> None:
        self.env = env
        self._series: Any = None
        self._targets: dict[str, float] = {}
        self._t = 0

    def start_episode(self, day: int, seed: int) -> None:
        self._series = None  # the plan is made from the series reset() draws

    def _plan(self) -> None:
        env = self.env
        self._series, self._t = env.series, 0
        steps = env.config.max_episode_steps
        net = {a: self._net_kw(a, np.arange(steps)) for a in env.microgrid_agents}
        means = {a: float(np.mean(n)) for a, n in net.items()}
        self._targets = dict(means)
        for a in means:
            if any(isinstance(d, Generator) for d in env.devices(a)):
                self._targets[a] -= sum(min(m, 0.0) for b, m in means.items() if b != a)

    def _net_kw(self, agent: str, t: np.ndarray | int) -> np.ndarray:
        env = self.env
        i = env.microgrid_agents.index(agent)
        pv = sum(d.params.capacity_kw for d in env.devices(agent) if isinstance(d, Solar))
        return pv * env.series.pv_per_kw[t] - env.series.load_kw[t, i]

    def act(self, agent: str, t: int) -> np.ndarray:
        env = self.env
        net = float(self._net_kw(agent, t))
        target = self._targets[agent]
        action = np.zeros(len(env.action_labels[agent]), np.float32)
        k = 0
        for d in env.devices(agent):
            if isinstance(d, ESS):
                u = float(np.clip((target - net) / d.params.p_max_kw, -1, 1))
                action[k] = u
                net += u * d.params.p_max_kw
            elif isinstance(d, Generator):
                u = float(np.clip((target - net) / d.params.p_max_kw, 0, 1))
                action[k] = 2 * u - 1
                net += u * d.params.p_max_kw
            elif isinstance(d, Solar):
                avail = d.params.capacity_kw * float(env.series.pv_per_kw[t])
                excess = max(net - max(target, 0.0), 0.0)
                action[k] = float(np.clip(excess / avail, 0, 1)) if avail > 1e-6 else 0.0
            k += d.action_dim
        return action

    def __call__(self, obs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._series is not self.env.series:  # a new episode
            self._plan()
        t = self._t
        self._t += 1
        return {a: self.act(a, t) if a in self._targets else
                np.zeros(self.env.action_spaces[a].shape, np.float32) for a in obs}
