"""Sizing study: does the shared IEEE-34 feeder bind without coordination?

Runs the env with ``network="ieee34"`` (``STRESSED_FEEDER`` below) over days spread over
the year and reports, per policy, the share of days with at least one violation:
a microgrid bus or an IEEE-34 bus outside 0.95-1.05 pu, a line above 100 %, a PCC
transformer above 100 % of its kVA, or a failed power flow.

Policies: random; rule-based without a market (``horizontal_protocol=None``); rule-based
with P2P; and ``FlatExchangePolicy``, a coordinated dispatch with foresight that flattens
every PCC exchange with the batteries, the generator and PV curtailment (what a DSO-aware
schedule could do: it shows the violations are avoidable, not that it is optimal).

    PYTHONPATH=. python benchmarks/feeder_stress.py --days 50
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from heron.protocols.horizontal import P2PTradingProtocol
from powergrid.baselines import RandomPolicy, RuleBasedPolicy
from powergrid.devices import ESS, Generator, Solar
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.progress import progress

# Sizes (sources in docs/physics.md): microgrids of 300-400 kW peak, PCC transformers rated
# ~1.25x peak load as for a load-sized service transformer; residential PV at 100-150 % of
# peak load (the high-penetration range of hosting-capacity studies); the feeder's own
# published loads at 30 % so that the feeder alone, with its regulators at a fixed neutral
# tap and 1.00 pu at the substation, stays within 0.95-1.05 pu on every day of the year.
STRESSED_FEEDER: dict[str, Any] = {
    "network": "ieee34",
    "feeder": {"pcc_buses": ("850", "858", "834"), "pcc_kva": (400.0, 200.0, 200.0),
               "vm_source_pu": 1.01, "reg_taps": (0, 0), "feeder_load_scale": 0.3},
    "microgrids": [
        {"name": "MG1", "peak_load_kw": 300.0, "load_profile": "commercial",
         "devices": [{"type": "generator", "p_min_kw": 50.0, "p_max_kw": 300.0,
                      "ramp_kw_per_h": 150.0},
                     {"type": "ess", "capacity_kwh": 500.0, "p_max_kw": 150.0}]},
        {"name": "MG2", "peak_load_kw": 150.0, "load_profile": "residential",
         "devices": [{"type": "ess", "bus": "692", "capacity_kwh": 500.0, "p_max_kw": 150.0},
                     {"type": "solar", "capacity_kw": 300.0}]},
        {"name": "MG3", "peak_load_kw": 150.0, "load_profile": "residential",
         "devices": [{"type": "ess", "bus": "692", "capacity_kwh": 500.0, "p_max_kw": 150.0},
                     {"type": "solar", "capacity_kw": 250.0}]},
    ],
}


class FlatExchangePolicy:
    """Coordinated dispatch with perfect foresight: flatten every PCC exchange.

    From the episode's load and PV series it targets, per microgrid, a constant exchange
    equal to the day's mean net position (a microgrid with a generator also covers the
    others' mean deficit); the ESS covers the difference, the generator what the ESS
    cannot, and PV is curtailed above the target when the ESS is
    full. A DSO-style schedule showing the violations are avoidable, not an optimum.
    """

    def __init__(self, env: MultiAgentMicrogrids) -> None:
        self.env = env

    def _net_kw(self, agent: str, t: int) -> float:
        env, i = self.env, self.env._index[agent]
        pv = sum(d.params.capacity_kw for d in env.devices(agent) if isinstance(d, Solar))
        return pv * float(env.series.pv_per_kw[t]) - float(env.series.load_kw[t, i])

    def act(self, agent: str, obs: np.ndarray) -> np.ndarray:
        env, t = self.env, self.env._t
        steps = env.config.max_episode_steps
        net = self._net_kw(agent, t)
        means = {a: float(np.mean([self._net_kw(a, k) for k in range(steps)]))
                 for a in env.agents}
        target = means[agent]
        if any(isinstance(d, Generator) for d in env.devices(agent)):
            # a dispatchable microgrid also covers its neighbours' mean deficit
            target -= sum(min(m, 0.0) for a, m in means.items() if a != agent)
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

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {a: self.act(a, o) for a, o in obs.items()}


def violations(infos: dict[str, dict], band: tuple[float, float]) -> dict[str, bool]:
    """Which limits one step violates (any microgrid or the feeder)."""
    lo, hi = band
    i0 = next(iter(infos.values()))
    return {
        "overvoltage": any(i["v_max_pu"] > hi for i in infos.values())
        or i0["feeder_v_max_pu"] > hi,
        "undervoltage": any(i["v_min_pu"] < lo for i in infos.values())
        or i0["feeder_v_min_pu"] < lo,
        "line": any(i["line_loading_max_pct"] > 100 for i in infos.values()),
        "pcc": i0["pcc_loading_max_pct"] > 100,
        "pf_failed": not i0["pf_converged"],
    }


def run(policy_name: str, days: np.ndarray, base: dict[str, Any]) -> dict[str, Any]:
    cfg = dict(base)
    if policy_name == "rule-based (no trade)":
        cfg["horizontal_protocol"] = None
    else:
        cfg["horizontal_protocol"] = P2PTradingProtocol()
    env = MultiAgentMicrogrids(cfg)
    policy = {"random": lambda e: RandomPolicy(e, seed=0),
              "rule-based (no trade)": RuleBasedPolicy,
              "rule-based + P2P": RuleBasedPolicy,
              "coordinated (flat PCC)": FlatExchangePolicy}[policy_name](env)
    band = env.config.voltage_band
    kinds = {k: 0 for k in ("overvoltage", "undervoltage", "line", "pcc", "pf_failed")}
    bad_days, v_lo, v_hi, pcc_max, cost = 0, 9.0, 0.0, 0.0, 0.0
    hours: dict[str, np.ndarray] = {k: np.zeros(24, int) for k in kinds}
    for k, day in enumerate(progress(days, desc=policy_name, leave=False)):
        obs, _ = env.reset(seed=k, options={"start_day": int(day)})
        day_kinds = set()
        while env.agents:
            obs, rewards, _, _, infos = env.step(policy(obs))
            cost -= sum(rewards.values())
            hits = {n for n, hit in violations(infos, band).items() if hit}
            day_kinds |= hits
            for n in hits:
                hours[n][next(iter(infos.values()))["hour"]] += 1
            for i in infos.values():
                v_lo = min(v_lo, i["v_min_pu"], i["feeder_v_min_pu"])
                v_hi = max(v_hi, i["v_max_pu"], i["feeder_v_max_pu"])
                pcc_max = max(pcc_max, i["pcc_loading_max_pct"])
        bad_days += bool(day_kinds)
        for n in day_kinds:
            kinds[n] += 1
    n = len(days)
    return {"share": bad_days / n, "kinds": {k: v / n for k, v in kinds.items()},
            "v_range": (v_lo, v_hi), "pcc_max": pcc_max, "cost_per_day": cost / n,
            "hours": hours}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=50, help="days spread evenly over the year")
    ap.add_argument("--policies", nargs="*", default=["random", "rule-based (no trade)",
                                                      "rule-based + P2P",
                                                      "coordinated (flat PCC)"])
    args = ap.parse_args()
    days = np.linspace(0, 364 - 1, args.days).round().astype(int)
    print(f"{len(days)} days, network=ieee34, PCC buses "
          f"{STRESSED_FEEDER['feeder']['pcc_buses']}")
    print(f"{'policy':24s} {'days w/ violation':>17s} {'over-V':>7s} {'under-V':>7s} "
          f"{'PCC>100%':>8s} {'V range (pu)':>14s} {'max PCC %':>9s} {'$/day':>8s}")
    results: dict[str, dict[str, Any]] = {}
    for name in args.policies:
        r = run(name, days, STRESSED_FEEDER)
        k = r["kinds"]
        print(f"{name:24s} {r['share']:17.0%} {k['overvoltage']:7.0%} {k['undervoltage']:7.0%} "
              f"{k['pcc']:8.0%} {r['v_range'][0]:6.3f}-{r['v_range'][1]:.3f} "
              f"{r['pcc_max']:9.0f} {r['cost_per_day']:8.0f}")
        results[name] = r
    print("\nhours of day with violations (count over all days), by kind:")
    for name, r in results.items():
        for kind, h in r["hours"].items():
            if h.any():
                top = ", ".join(f"{k}h:{h[k]}" for k in np.argsort(-h)[:4] if h[k])
                print(f"  {name:24s} {kind:12s} {top}")


if __name__ == "__main__":
    main()
