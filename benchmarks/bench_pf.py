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

from powergrid.pf import FastSolver, PandapowerSolver
from powergrid.pf.fast import HAVE_NUMBA


def build_net() -> pp.pandapowerNet:
    """27 buses: 115 kV slack, two 115/4.16 kV 5 MVA trafos, two 13-bus radial feeders."""
    net = pp.create_empty_network(sn_mva=1.0)
    hv = pp.create_bus(net, vn_kv=115.0, name="substation")
    pp.create_ext_grid(net, hv, vm_pu=1.02)
    parents = [-1, 0, 1, 2, 3, 1, 5, 6, 2, 8, 4, 10, 6]
    lengths = [0.0, 0.4, 0.3, 0.5, 0.35, 0.6, 0.25, 0.45, 0.3, 0.5, 0.2, 0.4, 0.3]
    for f in range(2):
        b = [pp.create_bus(net, vn_kv=4.16, name=f"f{f}_b{i}") for i in range(13)]
        pp.create_transformer_from_parameters(
            net, hv, b[0], sn_mva=5.0, vn_hv_kv=115.0, vn_lv_kv=4.16, vk_percent=8.0,
            vkr_percent=1.0, pfe_kw=5.0, i0_percent=0.2, shift_degree=30.0 * f,
        )
        for i in range(1, 13):
            pp.create_line_from_parameters(
                net, b[parents[i]], b[i], length_km=lengths[i], r_ohm_per_km=0.3,
                x_ohm_per_km=0.35, c_nf_per_km=10.0, max_i_ka=0.4,
            )
        for i in (2, 3, 4, 5, 7, 9, 11, 12):
            pp.create_load(net, b[i], p_mw=0.25, q_mvar=0.08)
        for i in (4, 9, 12):
            pp.create_sgen(net, b[i], p_mw=0.2)
        pp.create_storage(net, b[7], p_mw=0.0, max_e_mwh=2.0)
        pp.create_shunt(net, b[11], q_mvar=-0.3, p_mw=0.0)
    return net


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
    args = parser.parse_args()
    n_pp, n_single, reps = (10, 500, 3) if args.quick else (50, 3000, 5)

    net = build_net()
    rng = np.random.default_rng(0)
    print(f"network: {len(net.bus)} buses, {len(net.line)} lines, {len(net.trafo)} trafos, "
          f"{len(net.load)} loads, {len(net.sgen)} sgens, {len(net.storage)} storages")

    ref = PandapowerSolver(net)
    x = random_inputs(net, rng, n_pp)
    ref.solve(*(a[0] for a in x))  # numba JIT / warm start
    t_pp = best_of(lambda: [ref.solve(*(a[i] for a in x)) for i in range(n_pp)], 2) / n_pp
    print(f"pandapower runpp (PandapowerSolver): {t_pp * 1e3:8.2f} ms/solve "
          f"({1 / t_pp:9.0f} solves/s)")

    x = random_inputs(net, rng, n_single)
    rows = [[a[i] for a in x] for i in range(n_single)]
    kinds = [("numpy", False)] + ([("numba", True)] if HAVE_NUMBA else [])
    for label, use_numba in kinds:
        fast = FastSolver(net, use_numba=use_numba)
        fast.solve(*rows[0])
        iters = [fast.solve(*r).iterations for r in rows[:200]]
        t = best_of(lambda fast=fast: [fast.solve(*r) for r in rows], reps) / n_single
        print(f"FastSolver single ({label}):      {t * 1e6:8.1f} us/solve "
              f"({1 / t:9.0f} solves/s, x{t_pp / t:7.0f} vs pandapower, "
              f"iters median {int(np.median(iters))}, max {max(iters)})")

    for label, use_numba in kinds:
        fast = FastSolver(net, use_numba=use_numba)
        for B in (1, 64, 1024):
            n_batches = max(2, min(200, 20000 // B))
            xb = random_inputs(net, rng, B * n_batches)
            batches = [[a[k * B:(k + 1) * B] for a in xb] for k in range(n_batches)]
            fast.solve(*batches[0])
            t = best_of(lambda fast=fast, batches=batches: [fast.solve(*b) for b in batches],
                        reps)
            rate = B * n_batches / t
            print(f"FastSolver batched ({label}) B={B:5d}: {rate:9.0f} solves/s "
                  f"({t / n_batches * 1e3:7.3f} ms/batch, x{rate * t_pp:7.0f} vs pandapower)")

    # Sanity: the fast answer is pandapower's answer.
    r = [a[0] for a in random_inputs(net, rng, 1)]
    fast.reset()
    fast = FastSolver(net)
    a, b = fast.solve(*r), ref.solve(*r)
    print(f"check: max |dvm| = {np.max(np.abs(a.vm_pu - b.vm_pu)):.2e} pu, "
          f"max |dva| = {np.max(np.abs(a.va_degree - b.va_degree)):.2e} deg")


if __name__ == "__main__":
    main()
