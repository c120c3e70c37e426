"""What does trading ahead cost? The naive forecast-following rule, ahead vs real time.

Plays every held-out test day of ``market-4mg-v1`` (real-time market) and of
``market-4mg-ahead-v1`` (orders for step t+k placed at t on forecasts, deviations settled
as ``imbalance``) under the rule-based policy, which in the ahead market commits the net
position it forecasts for the delivery step (``powergrid.baselines.RuleBasedPolicy``), for
gate leads ``k`` (``--leads``; k = 1 is the registered scenario) and, as a reference, with
the same commitments but zero quantity (nothing traded ahead: everything at the tariff).
Per day: P2P volume, the committed volume, the deviation settled as imbalance (shortfall +
excess, kWh), the imbalance cost and the total cost of the four microgrids.

    nice -n 10 python benchmarks/bench_ahead_market.py            # the docs/market.md table
    nice -n 10 python benchmarks/bench_ahead_market.py --days 5   # quick look
    nice -n 10 python benchmarks/bench_ahead_market.py --rates    # vector env speed, same run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import powergrid  # noqa: E402
from powergrid.baselines import RuleBasedPolicy, run_episode  # noqa: E402


class NoCommitment(RuleBasedPolicy):
    """Rule-based dispatch; commits nothing (quantity 0), so it settles like no trade."""

    def act(self, agent: str, obs: np.ndarray) -> np.ndarray:
        action = super().act(agent, obs)
        labels = self.env.action_labels[agent]
        if "quantity" in labels:
            action[labels.index("quantity")] = 0.0
        return action


def measure(scenario: str, policy_cls: type, days: list[int], **overrides) -> dict[str, float]:
    env = powergrid.make(scenario, split="test", **overrides)
    policy = policy_cls(env)
    rows = []
    for k, day in enumerate(days):
        costs, hist = run_episode(env, policy, seed=k, options={"start_day": int(day)})
        p2p = committed = deviation = imbalance = 0.0
        for infos in hist:
            p2p += infos["MG1"]["market"]["volume_kwh"]
            for i in infos.values():
                m = i["market"]
                committed += abs(m["sold_kwh"] - m["bought_kwh"])
                deviation += m.get("shortfall_kwh", 0.0) + m.get("excess_kwh", 0.0)
                imbalance += i["costs"].get("imbalance", 0.0)
        rows.append((p2p, committed, deviation, imbalance, sum(costs.values())))
    return dict(zip(("p2p", "committed", "deviation", "imbalance", "cost"),
                    np.mean(rows, axis=0).tolist()))


def rates(num_envs: int = 256, steps: int = 60, repeats: int = 3) -> None:
    """Env-steps/s of VectorMicrogrids, real time vs ahead, interleaved in one run (best of
    ``repeats``); episodes reset inside the timed loop, as in training."""
    from powergrid.envs.vector import VectorMicrogrids

    best = {"real_time": 0.0, "ahead": 0.0}
    for _ in range(repeats):
        for timing in best:
            vec = VectorMicrogrids(num_envs, {"market_timing": timing})
            vec.reset(seed=0)
            rng = np.random.default_rng(0)
            acts = [{a: rng.uniform(-1, 1, (num_envs, *vec.single_action_space(a).shape))
                     for a in vec.possible_agents} for _ in range(steps)]
            vec.step(acts[0])  # warm-up
            t0 = time.perf_counter()
            for a in acts:
                vec.step(a)
            best[timing] = max(best[timing], num_envs * steps / (time.perf_counter() - t0))
    print(f"VectorMicrogrids B={num_envs}: real time {best['real_time']:,.0f}, ahead "
          f"{best['ahead']:,.0f} env-steps/s (ahead / real time "
          f"{best['ahead'] / best['real_time']:.2f})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=None, help="first N test days only")
    parser.add_argument("--leads", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rates", action="store_true", help="time the vector env instead")
    args = parser.parse_args(argv)
    if args.rates:
        rates()
        return
    days = list(powergrid.scenarios["market-4mg-v1"].test_days)[:args.days]
    cases = [("real time", "market-4mg-v1", RuleBasedPolicy, {})]
    cases += [(f"ahead k={k}", "market-4mg-ahead-v1", RuleBasedPolicy, {"gate_lead_steps": k})
              for k in args.leads]
    cases.append(("ahead, no commitment", "market-4mg-ahead-v1", NoCommitment, {}))
    print(f"rule-based policy, {len(days)} test days, means per day (all four microgrids)\n")
    print("| market | P2P kWh/day | committed kWh/day | deviation kWh/day | imbalance $/day "
          "| cost $/day |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, scenario, policy, overrides in cases:
        r = measure(scenario, policy, days, **overrides)
        print(f"| {name} | {r['p2p']:.1f} | {r['committed']:.1f} | {r['deviation']:.1f} "
              f"| {r['imbalance']:.2f} | {r['cost']:.1f} |")


if __name__ == "__main__":
    main()
