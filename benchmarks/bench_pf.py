"""Power-flow throughput: pandapower.runpp vs FastSolver (single, numpy/numba, batched).

Run: ``python benchmarks/bench_pf.py [--quick] [--json] [--baseline DIR]`` (DIR: a
checkout of the commit to compare with, timed in the same run). Every solve gets fresh random
set-points (as in an RL step) so warm starts are realistic, not trivially exact.
Timings are best-of-repeats to be robust to a busy machine.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np
import pandapower as pp

from powergrid.envs.config import default_microgrids
from powergrid.networks import FeederDevice, create_multi_microgrid
from powergrid.pf import FastSolver, PandapowerSolver
from powergrid.pf.fast import HAVE_NUMBA
from powergrid.progress import progress

try:  # run as a script: benchmarks/ is on sys.path
    from _baseline import best_by_setting, run_baseline
except ImportError:  # imported as benchmarks.bench_pf
    from benchmarks._baseline import best_by_setting, run_baseline


def build_net(network: str = "tied") -> pp.pandapowerNet:
    """The env's own network: 115 kV slack bus tying the default MG1/MG2 IEEE-13 feeders,
    or (``"ieee34"``) the three microgrids of ``feeder_stress.py`` on the IEEE-34 feeder."""
    if network == "ieee34":
        try:  # run as a script (benchmarks/ on sys.path) or imported as a module
            from feeder_stress import STRESSED_FEEDER
        except ImportError:
            from benchmarks.feeder_stress import STRESSED_FEEDER
        from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

        net = MultiAgentMicrogrids(STRESSED_FEEDER).network.net
        net.sgen["p_mw"] = 0.2
        return net
    specs = default_microgrids()
    mg = create_multi_microgrid([
        (m.name, m.load_scale, [FeederDevice(d.name, d.bus, d.build().element) for d in m.devices])
        for m in specs])
    mg.net.sgen["p_mw"] = 0.5  # a nominal DER output for random_inputs to scale
    return mg.net


def random_inputs(net: pp.pandapowerNet, rng: np.random.Generator, k: int) -> list[np.ndarray]:
    """``k`` random operating points as (k, n) arrays: loads 0-160 %, PV 0-150 %, storage +-0.5."""
    lp = net.load.p_mw.to_numpy() * rng.uniform(0.0, 1.6, (k, len(net.load)))
    lq = lp * rng.uniform(0.1, 0.4, lp.shape)
    sp = net.sgen.p_mw.to_numpy() * rng.uniform(0.0, 1.5, (k, len(net.sgen)))
    stp = rng.uniform(-0.5, 0.5, (k, len(net.storage)))
    return [lp, lq, sp, stp]


def best_of(fn: Callable[[], None], repeats: int) -> float:
    """Best wall time of ``repeats`` runs; the minimum filters scheduler noise."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(quick: bool, show_progress: bool = True, network: str = "tied") -> list[dict]:
    """Rows {setting, rate, unit, us}: runpp, FastSolver single and batched, numpy and numba."""
    n_pp, n_single, reps = (10, 500, 3) if quick else (50, 3000, 5)
    net = build_net(network)
    rng = np.random.default_rng(0)
    rows = []
    kinds = [("numpy", False)] + ([("numba", True)] if HAVE_NUMBA else [])
    bar = progress(total=1 + 4 * len(kinds), desc="bench_pf", disable=not show_progress)

    def row(setting: str, seconds: float, items: int = 1) -> None:
        rows.append({"setting": setting, "rate": items / seconds, "unit": "solves/s",
                     "us": seconds / items * 1e6})
        bar.update()

    ref = PandapowerSolver(net)
    x = random_inputs(net, rng, n_pp)
    ref.solve(*(a[0] for a in x))  # numba JIT / warm start
    row("pandapower runpp", best_of(
        lambda: [ref.solve(*(a[i] for a in x)) for i in range(n_pp)], 2) / n_pp)

    x = random_inputs(net, rng, n_single)
    singles = [[a[i] for a in x] for i in range(n_single)]
    for label, use_numba in kinds:
        fast = FastSolver(net, use_numba=use_numba)
        fast.solve(*singles[0])
        row(f"FastSolver single ({label})",
            best_of(lambda fast=fast: [fast.solve(*r) for r in singles], reps) / n_single)
    for label, use_numba in kinds:
        fast = FastSolver(net, use_numba=use_numba)
        for B in (1, 64, 1024):
            n_batches = max(2, min(200, 20000 // B))
            xb = random_inputs(net, rng, B * n_batches)
            batches = [[a[k * B:(k + 1) * B] for a in xb] for k in range(n_batches)]
            fast.solve(*batches[0])
            t = best_of(lambda fast=fast, batches=batches: [fast.solve(*b) for b in batches],
                        reps)
            row(f"FastSolver batched ({label}) B={B}", t, B * n_batches)
    bar.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer solves (CI smoke run)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--network", choices=("tied", "ieee34"), default="tied")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time the package checked out in DIR (e.g. the commit "
                             "before a change) in this run and print the ratios")
    args = parser.parse_args()
    extra = ["--no-progress", "--network", args.network] + (["--quick"] if args.quick else [])
    base_runs = [run_baseline(__file__, args.baseline, extra)] if args.baseline else []
    show = not args.no_progress
    runs = [measure(args.quick, show, args.network)]
    if args.baseline:  # alternate old and new so load drifts hit both
        base_runs.append(run_baseline(__file__, args.baseline, extra))
        runs.append(measure(args.quick, show, args.network))
    best = best_by_setting(*runs)
    if args.json:
        print(json.dumps(list(best.values()), indent=2))
        return
    net = build_net(args.network)
    print(f"network: {len(net.bus)} buses, {len(net.line)} lines, {len(net.trafo)} trafos, "
          f"{len(net.load)} loads, {len(net.sgen)} sgens, {len(net.storage)} storages")
    base = best_by_setting(*base_runs)
    t_pp = best["pandapower runpp"]["us"]
    head = f"{'setting':<36} {'us/solve':>10} {'solves/s':>12} {'x runpp':>9}"
    print(head + (f" {'x baseline':>11}" if base else ""))
    for name, r in best.items():
        line = f"{name:<36} {r['us']:>10.2f} {r['rate']:>12,.0f} {t_pp / r['us']:>9,.0f}"
        if name in base:
            line += f" {r['rate'] / base[name]['rate']:>11.2f}"
        print(line)

    # Sanity: the fast answer is pandapower's answer.
    rng = np.random.default_rng(1)
    r = [a[0] for a in random_inputs(net, rng, 1)]
    a, b = FastSolver(net).solve(*r), PandapowerSolver(net).solve(*r)
    print(f"check: max |dvm| = {np.max(np.abs(a.vm_pu - b.vm_pu)):.2e} pu, "
          f"max |dva| = {np.max(np.abs(a.va_degree - b.va_degree)):.2e} deg")


if __name__ == "__main__":
    main()
