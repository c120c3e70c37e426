"""Power-flow throughput: pandapower.runpp vs FastSolver (single, numpy/numba, batched).

Run: ``python benchmarks/bench_pf.py [--quick]``. Every solve gets fresh random
set-points (as in an RL step) so warm starts are realistic, not trivially exact.
Timings are best-of-repeats to be robust to a busy machine.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandapower as pp

from powergrid.envs.config import default_microgrids
from powergrid.networks import FeederDevice, create_multi_microgrid
from powergrid.pf import FastSolver, PandapowerSolver
from powergrid.pf.fast import HAVE_NUMBA
from powergrid.progress import progress


def build_net(network: str = "tied") -> pp.pandapowerNet:
    """The env's own network: 115 kV slack bus tying the default MG1/MG2 IEEE-13 feeders,
    or (``"ieee34"``) the three microgrids of ``feeder_stress.py`` on the IEEE-34 feeder."""
    if network == "ieee34":
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer solves (CI smoke run)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--network", choices=("tied", "ieee34"), default="tied")
    args = parser.parse_args()
    n_pp, n_single, reps = (10, 500, 3) if args.quick else (50, 3000, 5)

    net = build_net(args.network)
    rng = np.random.default_rng(0)
    print(f"network: {len(net.bus)} buses, {len(net.line)} lines, {len(net.trafo)} trafos, "
          f"{len(net.load)} loads, {len(net.sgen)} sgens, {len(net.storage)} storages")

    kinds = [("numpy", False)] + ([("numba", True)] if HAVE_NUMBA else [])
    bar = progress(total=1 + 4 * len(kinds), desc="bench_pf", disable=args.no_progress)
    bar.set_description("bench_pf: pandapower runpp")
    ref = PandapowerSolver(net)
    x = random_inputs(net, rng, n_pp)
    ref.solve(*(a[0] for a in x))  # numba JIT / warm start
    t_pp = best_of(lambda: [ref.solve(*(a[i] for a in x)) for i in range(n_pp)], 2) / n_pp
    bar.write(f"pandapower runpp (PandapowerSolver): {t_pp * 1e3:8.2f} ms/solve "
              f"({1 / t_pp:9.0f} solves/s)")
    bar.update()

    x = random_inputs(net, rng, n_single)
    rows = [[a[i] for a in x] for i in range(n_single)]
    for label, use_numba in kinds:
        bar.set_description(f"bench_pf: FastSolver single ({label})")
        fast = FastSolver(net, use_numba=use_numba)
        fast.solve(*rows[0])
        iters = [fast.solve(*r).iterations for r in rows[:200]]
        t = best_of(lambda fast=fast: [fast.solve(*r) for r in rows], reps) / n_single
        bar.write(f"FastSolver single ({label}):      {t * 1e6:8.1f} us/solve "
                  f"({1 / t:9.0f} solves/s, x{t_pp / t:7.0f} vs pandapower, "
                  f"iters median {int(np.median(iters))}, max {max(iters)})")
        bar.update()

    for label, use_numba in kinds:
        fast = FastSolver(net, use_numba=use_numba)
        for B in (1, 64, 1024):
            bar.set_description(f"bench_pf: FastSolver batched ({label}) B={B}")
            n_batches = max(2, min(200, 20000 // B))
            xb = random_inputs(net, rng, B * n_batches)
            batches = [[a[k * B:(k + 1) * B] for a in xb] for k in range(n_batches)]
            fast.solve(*batches[0])
            t = best_of(lambda fast=fast, batches=batches: [fast.solve(*b) for b in batches],
                        reps)
            rate = B * n_batches / t
            bar.write(f"FastSolver batched ({label}) B={B:5d}: {rate:9.0f} solves/s "
                      f"({t / n_batches * 1e3:7.3f} ms/batch, x{rate * t_pp:7.0f} vs "
                      f"pandapower)")
            bar.update()
    bar.close()

    # Sanity: the fast answer is pandapower's answer.
    r = [a[0] for a in random_inputs(net, rng, 1)]
    fast.reset()
    fast = FastSolver(net)
    a, b = fast.solve(*r), ref.solve(*r)
    print(f"check: max |dvm| = {np.max(np.abs(a.vm_pu - b.vm_pu)):.2e} pu, "
          f"max |dva| = {np.max(np.abs(a.va_degree - b.va_degree)):.2e} deg")


if __name__ == "__main__":
    main()
