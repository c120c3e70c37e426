"""Sizing study: does the shared IEEE-34 feeder bind without coordination?

Plays each policy on every day of a scenario's split (default: the 52 held-out test days
of ``p2p-3mg-v2``) and reports the share of
days with at least one violation (``powergrid.evaluation.feeder.violations``: a microgrid
or IEEE-34 bus outside 0.95-1.05 pu, a line above 100 %, a PCC transformer above 100 % of
its kVA, or a failed power flow), then which limits, at which hours.

Policies: ``random``, ``no-trade`` (rule-based without a market), ``rule`` (rule-based with
P2P), ``coordinated``: ``FlatExchangePolicy``, a dispatch with foresight that flattens
every PCC exchange (it shows the violations are avoidable, not that it is optimal), and
``volt-var``: the rule plus the IEEE 1547 Category B volt-var droop on every inverter
(``powergrid.baselines.VoltVarPolicy``, for scenarios with ``reactive_power``, e.g.
``p2p-3mg-v3``), ``oracle``: the perfect-foresight optimum with the network's limits (``limits="hard"``,
minutes per day; ``--every k`` plays every k-th day of the split). Each policy is played
as the evaluation runner plays it (its registered factory; ``violation_share`` of
``episode_metrics``) in one pass that also records which limits were hit.

    PYTHONPATH=. python benchmarks/feeder_stress.py --scenario p2p-3mg-v2 --split test
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

import powergrid
from powergrid.evaluation import Baseline, Episode, episode_metrics, get_baseline
from powergrid.evaluation.feeder import VIOLATION_KINDS, FlatExchangePolicy, violations
from powergrid.progress import progress
from powergrid.scenarios import shared_feeder_config

# The network and microgrids of p2p-3mg-v2 alone (benchmarks/bench_*.py build envs on it).
STRESSED_FEEDER: dict[str, Any] = shared_feeder_config(3)
POLICIES = ("random", "no-trade", "rule", "coordinated")
EXTRA = ("oracle", "volt-var")  # volt-var: the rule + IEEE 1547 droop (reactive_power on)


COORDINATED = Baseline("coordinated", "FlatExchangePolicy: flat PCC exchanges, with foresight",
                       FlatExchangePolicy)


def baseline(name: str) -> Baseline:
    return COORDINATED if name == COORDINATED.name else get_baseline(name)


def run(scenario: str, name: str, days: list[int], split: str | None) -> dict[str, Any]:
    """Play ``name`` on ``days``: per-day KPIs as the evaluation runner computes them
    (``Episode`` -> ``episode_metrics``), and per limit the share of days violating it,
    violations by hour, voltage and PCC extremes."""
    spec = baseline(name)
    env = powergrid.make(scenario, **({} if spec.trading else {"horizontal_protocol": None}))
    policy = spec.factory(env)
    band = env.config.voltage_band
    agents = env.microgrid_agents
    kinds = dict.fromkeys(VIOLATION_KINDS, 0)
    hours = {k: np.zeros(24, int) for k in VIOLATION_KINDS}
    v_lo, v_hi, pcc_max, bad_days, cost = np.inf, -np.inf, 0.0, 0, 0.0
    voltage_days = 0  # days with an over- or under-voltage (what reactive power can act on)
    for day in progress(days, desc=name, leave=False):
        if hasattr(policy, "start_episode"):
            policy.start_episode(day, 0)
        obs, _ = env.reset(seed=0, options={"start_day": day, "split": split})
        history = []
        while env.agents:
            obs, _, _, _, infos = env.step(policy(obs))
            history.append(infos)
        metrics = episode_metrics(Episode.from_infos(agents, history, env.config.dt_hours,
                                                     band))
        bad_days += metrics.violation_share > 0
        cost += metrics.cost
        day_kinds: set[str] = set()
        for infos in history:
            hits = {k for k, hit in violations(infos, band).items() if hit}
            day_kinds |= hits
            first = infos[agents[0]]
            for k in hits:
                hours[k][first["hour"]] += 1
            for i in (infos[a] for a in agents):
                v_lo = min(v_lo, i["v_min_pu"], i["feeder_v_min_pu"])
                v_hi = max(v_hi, i["v_max_pu"], i["feeder_v_max_pu"])
            pcc_max = max(pcc_max, first["pcc_loading_max_pct"])
        for k in day_kinds:
            kinds[k] += 1
        voltage_days += bool(day_kinds & {"overvoltage", "undervoltage"})
    n = len(days)
    return {"share": bad_days / n, "kinds": {k: v / n for k, v in kinds.items()},
            "voltage": voltage_days / n,
            "hours": hours, "v_range": (v_lo, v_hi), "pcc_max": pcc_max, "cost": cost / n}


def feeder_alone(scenario: str) -> tuple[float, float, int]:
    """IEEE-34 voltage range over every hour of the year with the microgrids disconnected
    (their loads 0, no devices), and the hours outside the band: what the feeder does on
    its own at the scenario's taps."""
    from powergrid.data import load_profiles
    from powergrid.pf import FastSolver

    env = powergrid.make(scenario)
    net = env.network
    solver = FastSolver(net.net)
    rows = net.feeder_load_rows
    p0 = net.net.load["p_mw"].to_numpy()[rows]
    q0 = net.net.load["q_mvar"].to_numpy()[rows]
    lo, hi, outside = np.inf, -np.inf, 0
    band = env.config.voltage_band
    for pu in progress(load_profiles().load("residential").ravel(), desc="feeder alone"):
        p, q = np.zeros(len(net.net.load)), np.zeros(len(net.net.load))
        p[rows], q[rows] = p0 * pu, q0 * pu
        vm = solver.solve(p, q).vm_pu[net.feeder_bus_rows]
        lo, hi = min(lo, float(vm.min())), max(hi, float(vm.max()))
        outside += bool(vm.min() < band[0] or vm.max() > band[1])
    return lo, hi, outside


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="p2p-3mg-v2")
    ap.add_argument("--split", default="test", choices=["train", "test", "all"])
    ap.add_argument("--policies", nargs="*", default=list(POLICIES),
                    choices=[*POLICIES, *EXTRA])
    ap.add_argument("--every", type=int, default=1, help="every k-th day of the split")
    ap.add_argument("--feeder-alone", action="store_true",
                    help="only the IEEE-34 voltage range over the year without microgrids")
    args = ap.parse_args()
    if args.feeder_alone:
        lo, hi, outside = feeder_alone(args.scenario)
        print(f"{args.scenario}: IEEE-34 alone, 8,760 hours: {lo:.3f}-{hi:.3f} pu, "
              f"{outside} hours outside the band")
        return
    split = None if args.split == "all" else args.split
    sc = powergrid.scenarios[args.scenario]
    days = list(sc.days(split))[::args.every]
    print(f"{sc.id}: {len(days)} {args.split} days, PCC buses "
          f"{sc.config()['feeder'].pcc_buses}")
    print(f"{'policy':12s} {'days w/ violation':>17s} {'any V':>6s} {'over-V':>7s} {'under-V':>7s} "
          f"{'line':>5s} {'PCC>100%':>8s} {'PF fail':>7s} {'V range (pu)':>13s} "
          f"{'max PCC %':>9s} {'$/day':>7s}")
    results: dict[str, dict[str, Any]] = {}
    for name in args.policies:
        r = run(sc.id, name, days, split)
        k = r["kinds"]
        print(f"{name:12s} {r['share']:17.0%} {r['voltage']:6.0%} {k['overvoltage']:7.0%} "
              f"{k['undervoltage']:7.0%} "
              f"{k['line']:5.0%} {k['pcc']:8.0%} {k['pf_failed']:7.0%} "
              f"{r['v_range'][0]:6.3f}-{r['v_range'][1]:.3f} {r['pcc_max']:9.0f} "
              f"{r['cost']:7.0f}", flush=True)
        results[name] = r
    print("\nhours of day with violations (count over all days), by limit:")
    for name, r in results.items():
        for kind, h in r["hours"].items():
            if h.any():
                top = ", ".join(f"{k}h:{h[k]}" for k in np.argsort(-h)[:4] if h[k])
                print(f"  {name:12s} {kind:12s} {top}")


if __name__ == "__main__":
    main()
