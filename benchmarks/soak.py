"""Soak test: many random steps with invariant checks every step and a memory-growth check.

    python benchmarks/soak.py --steps 100000

Checks, every step: finite observations and rewards; each microgrid's energy balance
closes; SOC inside its bounds; the market is budget-balanced (payments = receipts, fees =
fee x volume). Memory: resident set size after warm-up vs at the end (must grow < 5 %).
Exits non-zero on any violation. Not part of the default test suite (it takes minutes).
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time

import numpy as np

from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.progress import progress


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def check_step(obs, rewards, infos, fee: float) -> list[str]:
    errors = []
    for a, o in obs.items():
        if not np.all(np.isfinite(o)):
            errors.append(f"{a}: non-finite observation")
    for a, r in rewards.items():
        if not math.isfinite(r):
            errors.append(f"{a}: non-finite reward")
    pay = rev = fees = 0.0
    for a, i in infos.items():
        devs = i["devices"].values()
        m = i["market"]
        supply = sum(max(d["p_kw"], 0) for d in devs) + i["grid_import_kwh"] + m["bought_kwh"]
        demand = (i["load_kw"] + i["grid_export_kwh"] + m["sold_kwh"]
                  + sum(-min(d["p_kw"], 0) for d in devs))
        if abs(supply - demand) > 1e-6:
            errors.append(f"{a}: energy balance off by {supply - demand:.3g} kWh")
        if i["soc_violation"]:
            errors.append(f"{a}: SOC outside bounds")
        pay += i["costs"]["p2p_payment"]
        rev += i["costs"]["p2p_revenue"]
        fees += i["costs"]["fees"]
    volume = next(iter(infos.values()))["market"]["volume_kwh"]
    if abs(pay - rev) > 1e-9 or abs(fees - fee * volume) > 1e-9:
        errors.append("market not budget-balanced")
    return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fee", type=float, default=0.005)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args()

    env = MultiAgentMicrogrids({"trading_fee": args.fee})
    rng = np.random.default_rng(args.seed)
    obs, _ = env.reset(seed=args.seed)
    episodes, failures, rss0 = 0, [], None
    t0 = time.perf_counter()
    # a bar refreshed a few times a second costs well under 1 % of a ~150 us step
    bar = progress(range(args.steps), desc="soak", unit="step", mininterval=0.5,
                   disable=args.no_progress)
    for step in bar:
        if not env.agents:
            episodes += 1
            obs, _ = env.reset(seed=args.seed + episodes)
        # extreme but legal actions half of the time: the edges of the box are where bugs live
        actions = {a: (rng.choice([-1.0, 1.0], 3) if rng.random() < 0.5
                       else rng.uniform(-1, 1, 3)).astype(np.float32) for a in env.agents}
        obs, rewards, _, _, infos = env.step(actions)
        for e in check_step(obs, rewards, infos, args.fee):
            failures.append(f"step {step}: {e}")
            bar.set_postfix_str(f"{len(failures)} violations")
        if step + 1 == args.warmup:
            rss0 = rss_mb()
    elapsed = time.perf_counter() - t0
    rss1 = rss_mb()
    growth = 100 * (rss1 - rss0) / rss0 if rss0 else 0.0
    print(f"steps {args.steps}  episodes {episodes}  {args.steps / elapsed:,.0f} steps/s")
    print(f"RSS after warm-up {rss0:.1f} MB, at end {rss1:.1f} MB, growth {growth:+.2f} %")
    print(f"invariant violations: {len(failures)}")
    for f in failures[:10]:
        print("  ", f)
    return 1 if failures or growth >= 5.0 else 0


if __name__ == "__main__":
    sys.exit(main())
