"""Network costs on the shared feeder: what each microgrid pays, and what it costs to compute.

Plays each policy on the days of a scenario's split (default: the held-out test days of
``p2p-3mg-v2``, where ``network_costs`` and the network-use fee are on) and reports per
microgrid the mean $/day of ``network_losses``, ``network_violation`` and P2P ``fees``,
the share of the network's losses allocated to the microgrids (the rest is the DSO's own
loads') and the share of the violation penalty they are charged. Then the pair fees, and
the env's steps/s with network costs on vs off (a ratio measured in the same run).

    PYTHONPATH=. python benchmarks/network_costs.py --scenario p2p-3mg-v2 --split test \
        --network-fee 5e-4
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import powergrid
from powergrid.evaluation import get_baseline
from powergrid.progress import progress

POLICIES = ("random", "no-trade", "rule")


def play(scenario: str, name: str, days: list[int], split: str | None,
         fee: float | None) -> dict[str, object]:
    spec = get_baseline(name)
    over = {} if fee is None else {"network_fee_per_kwh_per_ohm": fee}
    env = powergrid.make(scenario, **over,
                         **({} if spec.trading else {"horizontal_protocol": None}))
    policy = spec.factory(env)
    mgs = env.microgrid_agents
    sums = {k: np.zeros(len(mgs)) for k in ("network_losses", "network_violation", "fees")}
    loss_mg = loss_all = pen_mg = pen_dso = 0.0
    for day in progress(days, desc=name, leave=False):
        obs, _ = env.reset(seed=0, options={"start_day": day, "split": split})
        while env.agents:
            obs, _, _, _, infos = env.step(policy(obs))
            first = infos[mgs[0]]
            if not first["pf_converged"]:
                continue
            for i, a in enumerate(mgs):
                for k in sums:
                    sums[k][i] += infos[a]["costs"][k]
            shares_kw = first["network_losses_kw"] - first["network_losses_dso_kw"]
            loss_mg += shares_kw
            loss_all += first["network_losses_kw"]
            pen_mg += sum(infos[a]["costs"]["network_violation"] for a in mgs)
            pen_dso += first["network_violation_dso"]
    n = len(days)
    return {"agents": mgs, **{k: v / n for k, v in sums.items()},
            "loss_share_mg": loss_mg / loss_all if loss_all else float("nan"),
            "violation_share_mg": pen_mg / (pen_mg + pen_dso) if pen_mg + pen_dso else 0.0}


def steps_per_second(scenario: str, network_costs: bool, steps: int) -> float:
    env = powergrid.make(scenario, network_costs=network_costs)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    t0 = time.perf_counter()
    for _ in range(steps):
        if not env.agents:
            env.reset()
        env.step({a: rng.uniform(-1, 1, env.action_space(a).shape).astype(np.float32)
                  for a in env.agents})
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="p2p-3mg-v2")
    ap.add_argument("--split", default="test")
    ap.add_argument("--days", type=int, default=None, help="first N days of the split")
    ap.add_argument("--speed-steps", type=int, default=480)
    ap.add_argument("--network-fee", type=float, default=None,
                    help="network_fee_per_kwh_per_ohm (default: the scenario's)")
    args = ap.parse_args()
    sc = powergrid.scenarios.get(args.scenario)
    days = list(sc.days(args.split))[: args.days]
    print(f"{args.scenario}, {len(days)} {args.split} days; $/day per microgrid")
    print("| policy | microgrid | network_losses | network_violation | P2P fees |")
    print("|---|---|---|---|---|")
    shares = []
    for name in POLICIES:
        r = play(args.scenario, name, days, args.split, args.network_fee)
        for i, a in enumerate(r["agents"]):
            print(f"| {name} | {a} | {r['network_losses'][i]:,.2f} | "
                  f"{r['network_violation'][i]:,.2f} | {r['fees'][i]:,.2f} |")
        shares.append((name, r["loss_share_mg"], r["violation_share_mg"]))
    for name, lo, vi in shares:
        print(f"{name}: microgrids carry {100 * lo:.0f} % of the losses (the DSO's loads the "
              f"rest) and {100 * vi:.0f} % of the violation penalty")
    env = powergrid.make(args.scenario, **({} if args.network_fee is None else
                                           {"network_fee_per_kwh_per_ohm": args.network_fee}))
    fees = env.protocol.pair_fee
    if fees is not None:
        print("network-use fee $/kWh (buyer row, seller column):")
        for a in fees.agents:
            print(f"  {a}: " + "  ".join(f"{fees(a, b):.4f}" for b in fees.agents))
    on = steps_per_second(args.scenario, True, args.speed_steps)
    off = steps_per_second(args.scenario, False, args.speed_steps)
    print(f"scalar env: {on:,.0f} steps/s with network costs, {off:,.0f} without "
          f"(ratio {on / off:.2f}, same run)")


if __name__ == "__main__":
    main()
