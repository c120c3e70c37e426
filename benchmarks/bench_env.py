"""Env throughput: scalar env (pandapower vs fast PF), PF solves/s, VectorMicrogrids, N scaling.

Every ratio is against the pandapower baseline measured in the same run, and each figure
is the best of a few repeats after a warm-up, so a busy (shared) machine distorts it less.

    python benchmarks/bench_env.py [--quick] [--json] [--baseline DIR] [--only TEXT ...]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from powergrid.envs.config import default_microgrids
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids
from powergrid.progress import progress

try:  # run as a script: benchmarks/ is on sys.path
    from _baseline import best_by_setting, run_baseline
except ImportError:  # imported as benchmarks.bench_env
    from benchmarks._baseline import best_by_setting, run_baseline


def best_rate(fn: Callable[[], int], repeats: int) -> float:
    """Items per second of ``fn`` (which returns how many items it did), best of repeats."""
    fn()  # warm-up: numba compilation, caches, warm starts
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        best = max(best, n / (time.perf_counter() - t0))
    return best


def scalar_steps(env: MultiAgentMicrogrids, n: int, seed: int = 0) -> Callable[[], int]:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)

    def run() -> int:
        for _ in range(n):
            if not env.agents:
                env.reset()
            env.step({a: rng.uniform(-1, 1, env.action_space(a).shape) for a in env.agents})
        return n
    return run


def vector_steps(vec: VectorMicrogrids, n: int, seed: int = 0) -> Callable[[], int]:
    rng = np.random.default_rng(seed)
    acts = [{a: rng.uniform(-1, 1, (vec.num_envs, *vec.single_action_space(a).shape))
             for a in vec.possible_agents} for _ in range(8)]
    vec.reset(seed=seed)

    def run() -> int:
        for k in range(n):
            vec.step(acts[k % 8])
        return n * vec.num_envs  # env-steps (autoreset steps included, as a trainer sees them)
    return run


def pf_solves(env: MultiAgentMicrogrids, n: int, seed: int = 0) -> Callable[[], int]:
    rng = np.random.default_rng(seed)
    net = env.network.net
    solver = env.solver
    inputs = []
    for _ in range(16):
        lp = rng.uniform(0.0, 0.12, len(net.load))
        inputs.append((lp, 0.4 * lp, rng.uniform(0, 0.8, len(net.sgen)),
                       rng.uniform(-0.25, 0.25, len(net.storage))))

    def run() -> int:
        for k in range(n):
            solver.solve(*inputs[k % 16])
        return n
    return run


def n_microgrids(n: int) -> list:
    base = default_microgrids()
    return [replace(base[k % len(base)], name=f"MG{k + 1}") for k in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run (smoke test)")
    ap.add_argument("--json", action="store_true", help="print results as JSON instead")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also time the package checked out in DIR (e.g. the commit before a "
                         "change) in this run, before and after this checkout, and print "
                         "the ratios")
    ap.add_argument("--only", metavar="TEXT", action="append", default=[],
                    help="time only the settings whose label contains TEXT (repeatable; the "
                         "pandapower rows always run: every ratio is against them)")
    args = ap.parse_args()
    extra = (["--no-progress"] + (["--quick"] if args.quick else [])
             + [f"--only={t}" for t in args.only])
    base_runs = [run_baseline(__file__, args.baseline, extra)] if args.baseline else []
    q = args.quick
    reps = 2 if q else 5  # best-of: this class of VM shows +-30 % run-to-run noise

    def pp_rate() -> float:
        env = MultiAgentMicrogrids({"power_flow": "pandapower"})
        return best_rate(scalar_steps(env, 3 if q else 10), 1 if q else 2)

    fast_env = MultiAgentMicrogrids({"power_flow": "fast"})
    stages: list[tuple[str, Callable[[], float], str]] = [
        ("single env, power_flow=pandapower", pp_rate, "env steps/s"),
        ("single env, power_flow=fast",
         lambda: best_rate(scalar_steps(fast_env, 300 if q else 2000), reps), "env steps/s"),
        ("PF solves (single FastSolver)",
         lambda: best_rate(pf_solves(fast_env, 500 if q else 5000), reps), "solves/s"),
    ]
    for b in (1, 64, 1024):
        n = {1: 300, 64: 100, 1024: 25}[b] if q else {1: 2000, 64: 400, 1024: 100}[b]
        stages.append((f"VectorMicrogrids B={b}", lambda b=b, n=n: best_rate(
            vector_steps(VectorMicrogrids(b), n), reps), "env steps/s"))
    for n_mg in (2, 4, 8):
        stages.append((f"single env (fast), N={n_mg} microgrids", lambda n_mg=n_mg: best_rate(
            scalar_steps(MultiAgentMicrogrids({"microgrids": n_microgrids(n_mg)}),
                         200 if q else 1000), reps), "env steps/s"))
    # the shared IEEE-34 feeder (75 buses), against its own pandapower run
    try:  # run as a script (benchmarks/ on sys.path) or imported as a module
        from feeder_stress import STRESSED_FEEDER
    except ImportError:
        from benchmarks.feeder_stress import STRESSED_FEEDER

    env34 = MultiAgentMicrogrids(STRESSED_FEEDER)
    stages += [
        ("ieee34 single env, power_flow=pandapower", lambda: best_rate(scalar_steps(
            MultiAgentMicrogrids({**STRESSED_FEEDER, "power_flow": "pandapower"}),
            3 if q else 10), 1 if q else 2), "env steps/s"),
        ("ieee34 single env, power_flow=fast",
         lambda: best_rate(scalar_steps(env34, 300 if q else 2000), reps), "env steps/s"),
        ("ieee34 PF solves (single FastSolver)",
         lambda: best_rate(pf_solves(env34, 500 if q else 5000), reps), "solves/s"),
        ("ieee34 VectorMicrogrids B=1024", lambda: best_rate(vector_steps(
            VectorMicrogrids(1024, STRESSED_FEEDER), 10 if q else 40), reps), "env steps/s"),
    ]
    if args.only:
        stages = [st for st in stages
                  if "pandapower" in st[0] or any(t in st[0] for t in args.only)]
    rows: list[tuple[str, float, str]] = []
    with progress(total=len(stages), desc="bench_env", disable=args.no_progress) as bar:
        for label, measure, unit in stages:
            bar.set_description(f"bench_env: {label}")
            rows.append((label, measure(), unit))
            bar.update()
    pp = rows[0][1]
    pp34 = next(r for s, r, _ in rows if s == "ieee34 single env, power_flow=pandapower")

    results = [{"setting": s, "rate": r, "unit": u,
                "speedup_vs_pandapower": r / (pp34 if s.startswith("ieee34") else pp)}
               for s, r, u in rows]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    if args.baseline:  # old code once more, after the new: load drifts hit both
        base_runs.append(run_baseline(__file__, args.baseline, extra))
    base = best_by_setting(*base_runs)
    print(f"{'setting':<40} {'rate':>14} {'unit':<12} {'x pandapower':>13}"
          + (f" {'x baseline':>11}" if base else ""))
    for r in results:
        line = (f"{r['setting']:<40} {r['rate']:>14,.0f} {r['unit']:<12} "
                f"{r['speedup_vs_pandapower']:>13,.1f}")
        if r["setting"] in base:
            line += f" {r['rate'] / base[r['setting']]['rate']:>11.2f}"
        print(line)


if __name__ == "__main__":
    main()
