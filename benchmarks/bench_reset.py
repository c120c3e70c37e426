"""Reset speed: ``Simulation.reset_rows`` at B = 1, 64, 1024 and what it costs a trainer.

    PYTHONPATH=. python benchmarks/bench_reset.py [--quick] [--baseline DIR]

Why: the scalar env resets through ``reset_rows`` with one row once per episode, and at
B = 1024 every row of a 24-step batch restarts together every 25th step, so the per-row
Python work of a reset shows up in both steps/s figures. Rows: resets/s of every row at
once (``reset_rows`` as the vector env's autoreset calls it, row-resets per second), the
scalar env's ``reset()``, and VectorMicrogrids B = 1024 env-steps/s over whole episodes
(autoresets included). ``--baseline DIR`` times the package in DIR in the same run.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

import numpy as np

try:  # run as a script (benchmarks/ on sys.path) or imported as a module
    from _baseline import baseline_best, run_baseline
    from bench_env import best_rate, vector_steps
except ImportError:
    from benchmarks._baseline import baseline_best, run_baseline
    from benchmarks.bench_env import best_rate, vector_steps
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids


def row_resets(vec: VectorMicrogrids, n: int) -> Callable[[], int]:
    """Every row restarted ``n`` times, as the autoreset does (start days drawn)."""
    B, sim = vec.num_envs, vec.sim
    vec.reset(seed=0)
    rngs = [np.random.default_rng(b) for b in range(B)]
    mask = np.ones(B, bool)

    def run() -> int:
        for _ in range(n):
            sim.reset_rows(mask, rngs, [None] * B, None, [None] * B)
        return n * B
    return run


def scalar_resets(env: MultiAgentMicrogrids, n: int) -> Callable[[], int]:
    env.reset(seed=0)

    def run() -> int:
        for _ in range(n):
            env.reset()
        return n
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (smoke test)")
    ap.add_argument("--json", action="store_true", help="print results as JSON instead")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also time the package checked out in DIR in this run (before and "
                         "after this checkout) and print the ratios")
    args = ap.parse_args()
    extra = ["--quick"] if args.quick else []
    base_runs = [run_baseline(__file__, args.baseline, extra)] if args.baseline else []
    q, reps = args.quick, 2 if args.quick else 5
    stages: list[tuple[str, Callable[[], float], str]] = []
    for b in (1, 64, 1024):
        n = {1: 200, 64: 20, 1024: 3}[b] if q else {1: 2000, 64: 200, 1024: 20}[b]
        stages.append((f"reset_rows B={b}", lambda b=b, n=n: best_rate(
            row_resets(VectorMicrogrids(b), n), reps), "row resets/s"))
    stages.append(("scalar env reset()", lambda: best_rate(
        scalar_resets(MultiAgentMicrogrids(), 200 if q else 2000), reps), "resets/s"))
    stages.append(("VectorMicrogrids B=1024, 24-step episodes", lambda: best_rate(
        vector_steps(VectorMicrogrids(1024), 50 if q else 200), reps), "env steps/s"))
    results = [{"setting": s, "rate": fn(), "unit": u} for s, fn, u in stages]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    base = baseline_best(__file__, args.baseline, extra, base_runs)
    print(f"{'setting':<44} {'rate':>12} {'unit':<13}" + (f" {'x baseline':>11}" if base else ""))
    for r in results:
        line = f"{r['setting']:<44} {r['rate']:>12,.0f} {r['unit']:<13}"
        if r["setting"] in base:
            line += f" {r['rate'] / base[r['setting']]['rate']:>11.2f}"
        print(line)


if __name__ == "__main__":
    main()
