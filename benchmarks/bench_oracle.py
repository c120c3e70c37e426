"""Oracle: optimum per day, its gap and replay error, and the time per day it takes to solve.

Time is also given as a ratio to one rule-based episode on the same day measured in the
same run, so a busy (shared) machine distorts the comparison less. The default days are
the README's ten evaluation days (seed k for the k-th day, as ``powergrid.baselines``).

    python benchmarks/bench_oracle.py [--configs default p2p-2mg-v1 p2p-10mg-v1] [--days N]

``--feeder`` instead measures the oracle on the shared IEEE-34 feeder
(``feeder_stress.STRESSED_FEEDER``, or ``--configs`` scenario ids on ``network="ieee34"``):
per day the network-blind and the network-aware (hard limits; with network costs in the
config also priced) optimum replayed in the AC env — cost, steps with a violation, safety
penalty, network costs, max |V_lin - V_ac|, the model's cost minus the replay's, seconds —
next to the rule-based policy's cost.

    nice -n 10 python benchmarks/bench_oracle.py --feeder --days 5
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from powergrid import scenarios
from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.evaluation import optimum, replay_cost
from powergrid.progress import progress

EVAL_DAYS = (0, 40, 80, 121, 161, 202, 242, 283, 323, 364)


def config_of(name: str) -> dict:
    """``default`` = the env's defaults; otherwise a scenario id (with split=None)."""
    base = {"max_episode_steps": 24} if name == "default" else scenarios[name].config()
    return {**base, "split": None}


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
        rows.append({"day": day, "optimum": opt.cost, "no_trade_optimum": no_trade.cost,
                     "rule_based": sum(rule.values()), "gap": max(opt.gap, no_trade.gap),
                     "replay_error": max(abs(replay_cost(config, r) - r.cost)
                                         for r in (opt, no_trade)),
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


def bench_feeder(name: str, config: dict, days: tuple[int, ...],
                 show_progress: bool = True) -> dict:
    """Blind vs network-aware optimum on a shared-feeder config, replayed in the AC env.

    Variants: ``none`` (limits and network costs blind), ``hard`` (hard limits, network
    costs left to the replay) and, when the config charges network costs, ``priced``
    (hard limits and the network costs optimised: the oracle's default there).
    """
    variants = {"none": {"limits": "none", "network_costs": False},
                "hard": {"limits": "hard", "network_costs": False}}
    if MultiAgentMicrogrids(config).config.network_costs:
        variants["priced"] = {"limits": "hard"}
    rows = []
    for k, day in enumerate(progress(days, desc=f"bench_oracle {name}", unit="day",
                                     disable=not show_progress)):
        env = MultiAgentMicrogrids(config)
        rule, _ = run_episode(env, RuleBasedPolicy(env), seed=k, options={"start_day": day})
        row = {"day": day, "rule_based": sum(rule.values())}
        for variant, kwargs in variants.items():
            t0 = time.perf_counter()
            r = optimum(config, day, seed=k, **kwargs)
            row[variant] = {"cost": r.cost, "violation_steps": r.network.violation_steps,
                            "safety_penalty": r.safety_penalty,
                            "network_cost": r.network.network_cost,
                            "v_error_max_pu": r.network.v_error_max_pu,
                            "model_minus_replay": r.model_cost - r.cost,
                            "linearisations": r.network.linearisations,
                            "seconds": time.perf_counter() - t0}
        rows.append(row)
    out = {"config": name, "days": list(days), "variants": list(variants),
           "mean_rule_based": float(np.mean([r["rule_based"] for r in rows]))}
    for limits in variants:
        col = {key: np.array([r[limits][key] for r in rows]) for key in rows[0][limits]}
        out[limits] = {"mean_cost": float(col["cost"].mean()),
                       "mean_network_cost": float(col["network_cost"].mean()),
                       "days_with_violation": int((col["violation_steps"] > 0).sum()),
                       "violation_steps": int(col["violation_steps"].sum()),
                       "mean_safety_penalty": float(col["safety_penalty"].mean()),
                       "max_v_error_pu": float(col["v_error_max_pu"].max()),
                       "max_abs_model_minus_replay": float(
                           np.abs(col["model_minus_replay"]).max()),
                       "mean_seconds": float(col["seconds"].mean()),
                       "max_seconds": float(col["seconds"].max())}
    out["per_day"] = rows
    return out


def feeder_main(args: argparse.Namespace, days: tuple[int, ...]) -> None:
    try:
        from feeder_stress import STRESSED_FEEDER  # as a script: benchmarks/ on sys.path
    except ImportError:
        from benchmarks.feeder_stress import STRESSED_FEEDER
    configs = ({"stressed-feeder": STRESSED_FEEDER} if args.configs is None
               else {name: config_of(name) for name in args.configs})
    results = [bench_feeder(name, cfg, days, not args.no_progress)
               for name, cfg in configs.items()]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{len(days)} days {list(days)}, seed k for the k-th day")
    print(f"{'config':16s} {'oracle':6s} {'$/day':>8s} {'rule $':>8s} {'days viol':>9s} "
          f"{'steps':>5s} {'safety $':>8s} {'network $':>9s} {'|V_lin-V_ac|':>12s} "
          f"{'model-AC $':>10s} {'s/day':>6s} {'max s':>6s}")
    for r in results:
        for limits in r["variants"]:
            x = r[limits]
            print(f"{r['config']:16s} {limits:6s} {x['mean_cost']:8.2f} "
                  f"{r['mean_rule_based']:8.2f} {x['days_with_violation']:9d} "
                  f"{x['violation_steps']:5d} {x['mean_safety_penalty']:8.3f} "
                  f"{x['mean_network_cost']:9.2f} "
                  f"{x['max_v_error_pu']:12.1e} {x['max_abs_model_minus_replay']:10.3f} "
                  f"{x['mean_seconds']:6.1f} {x['max_seconds']:6.1f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=None,
                        help="default: default p2p-2mg-v1 (--feeder: the stressed feeder)")
    parser.add_argument("--feeder", action="store_true",
                        help="the shared IEEE-34 feeder: blind vs network-aware optimum")
    parser.add_argument("--days", type=int, default=len(EVAL_DAYS),
                        help="how many of the ten evaluation days")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    days = EVAL_DAYS[:args.days]
    optimum(config_of("default"), days[0])  # warm-up: imports, numba compilation
    if args.feeder:
        feeder_main(args, days)
        return
    results = [bench(name, days, not args.no_progress)
               for name in args.configs or ["default", "p2p-2mg-v1"]]
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
