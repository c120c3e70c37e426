"""Oracle: optimum per day, its gap and replay error, and the time per day it takes to solve.

Time is also given as a ratio to one rule-based episode on the same day measured in the
same run, so a busy (shared) machine distorts the comparison less. The default days are
the README's ten evaluation days (seed k for the k-th day, as ``powergrid.baselines``).

    python benchmarks/bench_oracle.py [--configs default p2p-2mg-v1 p2p-10mg-v1] [--days N]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from powergrid import scenarios
from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.evaluation import OracleResult, optimum
from powergrid.progress import progress

EVAL_DAYS = (0, 40, 80, 121, 161, 202, 242, 283, 323, 364)


def config_of(name: str) -> dict:
    """``default`` = the env's defaults; otherwise a scenario id (with split=None)."""
    base = {"max_episode_steps": 24} if name == "default" else scenarios[name].config()
    return {**base, "split": None}


def replay_error(config: dict, result: OracleResult) -> float:
    env = MultiAgentMicrogrids(config)
    env.reset(seed=result.seed, options={"start_day": result.day})
    total = 0.0
    for step in result.actions:
        _, rewards, _, _, _ = env.step(step)
        total -= sum(rewards.values())
    return abs(total - result.cost)


def bench(name: str, days: tuple[int, ...], show_progress: bool = True) -> dict:
    config = config_of(name)
    rows = []
    for k, day in enumerate(progress(days, desc=f"bench_oracle {name}", unit="day",
                                     disable=not show_progress)):
        env = MultiAgentMicrogrids(config)
        t0 = time.perf_counter()
        rule, _ = run_episode(env, RuleBasedPolicy(env), seed=k, options={"start_day": day})
        t_rule = time.perf_counter() - t0
        t0 = time.perf_counter()
        opt = optimum(config, day, seed=k)
        t_opt = time.perf_counter() - t0
        no_trade = optimum(config, day, seed=k, trading=False)
        no_trade_config = {**config, "horizontal_protocol": None}
        rows.append({"day": day, "optimum": opt.cost, "no_trade_optimum": no_trade.cost,
                     "rule_based": sum(rule.values()), "gap": max(opt.gap, no_trade.gap),
                     "replay_error": max(replay_error(config, opt),
                                         replay_error(no_trade_config, no_trade)),
                     "seconds": t_opt, "solve_seconds": opt.solve_time_s,
                     "ratio_to_rule_episode": t_opt / t_rule})
    col = {key: np.array([r[key] for r in rows]) for key in rows[0]}
    return {"config": name, "days": list(days),
            "mean_optimum": float(col["optimum"].mean()),
            "mean_no_trade_optimum": float(col["no_trade_optimum"].mean()),
            "mean_rule_based": float(col["rule_based"].mean()),
            "max_gap": float(col["gap"].max()), "max_replay_error": float(col["replay_error"].max()),
            "mean_seconds": float(col["seconds"].mean()), "max_seconds": float(col["seconds"].max()),
            "mean_ratio_to_rule_episode": float(col["ratio_to_rule_episode"].mean())}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=["default", "p2p-2mg-v1"])
    parser.add_argument("--days", type=int, default=len(EVAL_DAYS),
                        help="how many of the ten evaluation days")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    days = EVAL_DAYS[:args.days]
    optimum(config_of("default"), days[0])  # warm-up: imports, numba compilation
    results = [bench(name, days, not args.no_progress) for name in args.configs]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'config':14s} {'optimum':>9s} {'no-trade':>9s} {'rule':>9s} {'max gap $':>10s} "
          f"{'replay err $':>12s} {'s/day':>6s} {'max s':>6s} {'x rule ep':>9s}")
    for r in results:
        print(f"{r['config']:14s} {r['mean_optimum']:9.2f} {r['mean_no_trade_optimum']:9.2f} "
              f"{r['mean_rule_based']:9.2f} {r['max_gap']:10.1e} {r['max_replay_error']:12.1e} "
              f"{r['mean_seconds']:6.2f} {r['max_seconds']:6.2f} "
              f"{r['mean_ratio_to_rule_episode']:9.1f}")


if __name__ == "__main__":
    main()
