"""Where a VectorMicrogrids step spends its time, per stage of the core.

    python benchmarks/profile_core.py [--num-envs 1 1024] [--steps 300] [--general]

Default: the fused compiled step (``powergrid.core.kernel``), timed with perf_counter
around its parts (the compiled step, of which the batch power flow is re-timed on the same
inputs; the compiled observations; resets; the front end: validation, infos, clipping).
``--general``: the numpy stages (``FusedStep`` switched off), as cProfile shares.
Shares (not absolute times) are what to read on a busy machine.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

import numpy as np

from powergrid.envs.vector import VectorMicrogrids

STAGES = ("_tariff", "_dispatch", "_market", "_settle", "_power_flow", "_safety",
          "_network_costs", "_storage_terminal", "observe", "reset_rows")


def _setup(num_envs: int, fused: bool):
    vec = VectorMicrogrids(num_envs)
    if not fused:
        vec.sim.kernel = None
    rng = np.random.default_rng(0)
    acts = [{a: rng.uniform(-1, 1, (num_envs, *vec.single_action_space(a).shape))
             for a in vec.possible_agents} for _ in range(8)]
    vec.reset(seed=0)
    for k in range(20):  # warm-up: numba compilation, caches
        vec.step(acts[k % 8])
    return vec, acts


def profile_general(num_envs: int, steps: int) -> dict[str, float]:
    vec, acts = _setup(num_envs, fused=False)
    prof = cProfile.Profile()
    prof.enable()
    for k in range(steps):
        vec.step(acts[k % 8])
    prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = next(v[3] for k, v in stats.items() if k[2] == "step" and k[0].endswith("vector.py"))
    out = {s: sum(v[3] for k, v in stats.items() if k[2] == s and "powergrid/core" in k[0])
           for s in STAGES}
    out["front end (validation, infos, clipping)"] = total - sum(out.values())
    return {k: v / total for k, v in out.items()}


def profile_fused(num_envs: int, steps: int) -> dict[str, float]:
    # after the env (powergrid.core.layout cannot be the first module imported)
    import powergrid.core.kernel as kernel
    from powergrid.core.powerflow import CHUNK, solve_packed

    vec, acts = _setup(num_envs, fused=True)
    sim, fs = vec.sim, vec.sim.kernel
    spent = {"compiled step": 0.0, "power flow (in it)": 0.0, "observe": 0.0,
             "reset_rows": 0.0}

    def timed(name, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            out = fn(*a, **kw)
            spent[name] += time.perf_counter() - t0
            return out
        return wrapper

    step_kernel, observe, reset_rows = kernel._step, fs.observe, sim.reset_rows
    kernel._step = timed("compiled step", step_kernel)
    fs.observe = timed("observe", observe)
    sim.reset_rows = timed("reset_rows", reset_rows)
    pf = sim.pf
    V = pf.warm_start.copy()  # compile the Python entry of the solve (timing only)
    solve_packed(fs._X, V, np.zeros(vec.num_envs, bool), fs._vm.copy(), fs._loading.copy(),
                 fs._slack.copy(), CHUNK, *pf.packed)
    total = 0.0
    try:
        for k in range(steps):
            V0 = pf.warm_start.copy()
            t0 = time.perf_counter()
            vec.step(acts[k % 8])
            total += time.perf_counter() - t0
            # the same solve again, on the step's inputs and warm start (timing only)
            V, ok = V0.copy(), np.zeros(vec.num_envs, bool)
            vm, ld, sl = fs._vm.copy(), fs._loading.copy(), fs._slack.copy()
            t0 = time.perf_counter()
            solve_packed(fs._X, V, ok, vm, ld, sl, CHUNK, *pf.packed)
            spent["power flow (in it)"] += time.perf_counter() - t0
    finally:
        kernel._step = step_kernel
        fs.observe, sim.reset_rows = observe, reset_rows
    out = dict(spent)
    out["front end (validation, infos, clipping)"] = (
        total - spent["compiled step"] - spent["observe"] - spent["reset_rows"])
    out["step (µs)"] = 1e6 * total / steps * vec.num_envs  # shown as-is below
    return {k: (v if k == "step (µs)" else v / total) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[1, 1024])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--general", action="store_true", help="profile the numpy stages")
    args = ap.parse_args()
    for b in args.num_envs:
        n = max(10, args.steps if b < 64 else args.steps // 10)
        if args.general:
            shares = profile_general(b, n)
            print(f"B = {b} (numpy stages): " + ", ".join(
                f"{k.strip('_')} {100 * v:.0f} %" for k, v in shares.items()))
            continue
        shares = profile_fused(b, n)
        per_step = shares.pop("step (µs)") / b
        print(f"B = {b} (fused, {per_step:,.0f} µs/step): " + ", ".join(
            f"{k} {100 * v:.0f} %" for k, v in shares.items()))


if __name__ == "__main__":
    main()
