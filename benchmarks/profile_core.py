"""Where a VectorMicrogrids step spends its time, per stage of the core.

    PYTHONPATH=. python benchmarks/profile_core.py [--num-envs 1 1024] [--steps 300] [--general]

Default: the fused compiled step (``powergrid.core.kernel``), timed with perf_counter
around public methods (``FusedStep.step``: the compiled call with its output tables;
``Simulation.observe_all``; ``Simulation.reset_rows``; the rest is the front end: validation,
infos, clipping). The batch power flow inside the compiled call cannot be timed from
outside, so a twin env on the numpy stages steps the same actions from the same seeds
(the two are held equal by the tests) and the compiled solve its ``BatchPowerFlow``
calls (``powergrid.core.powerflow.solve_packed``: the same solve on the same set-points
and warm start) is timed instead. ``--general``: the numpy stages (``Simulation(fused=False)``), as
cProfile shares. Shares (not absolute times) are what to read on a busy machine.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import pstats
import time

import numpy as np

import powergrid.core.powerflow as powerflow
from powergrid.envs.vector import VectorMicrogrids

try:  # run as a script: benchmarks/ is on sys.path
    from bench_core_stages import make
    from single_env_stages import wrap
except ImportError:  # imported as benchmarks.profile_core
    from benchmarks.bench_core_stages import make
    from benchmarks.single_env_stages import wrap

STAGES = ("_tariff", "_dispatch", "_market", "_settle", "_power_flow", "_safety",
          "_network_costs", "_storage_terminal", "observe", "reset_rows")
WARM_UP = 20  # steps: numba compilation, caches


def _setup(num_envs: int, fused: bool) -> tuple[VectorMicrogrids, list[dict]]:
    vec = make({}, num_envs, row_market=False, compiled=fused)
    rng = np.random.default_rng(0)
    acts = [{a: rng.uniform(-1, 1, (num_envs, *vec.single_action_space(a).shape))
             for a in vec.possible_agents} for _ in range(8)]
    vec.reset(seed=0)
    return vec, acts


def profile_general(num_envs: int, steps: int) -> dict[str, float]:
    vec, acts = _setup(num_envs, fused=False)
    for k in range(WARM_UP):
        vec.step(acts[k % 8])
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
    vec, acts = _setup(num_envs, fused=True)
    twin, _ = _setup(num_envs, fused=False)  # the same trajectory, for the power flow
    assert vec.sim.kernel is not None and vec.sim.kernel.fused, "not the fused step"
    acc: collections.Counter = collections.Counter()
    missing: list[str] = []
    wrap(vec.sim.kernel, ("step",), "compiled step", acc, missing)
    wrap(vec.sim, ("observe_all", "reset_rows"), "sim", acc, missing)
    solve = powerflow.solve_packed  # what the twin's BatchPowerFlow.solve calls
    wrap(powerflow, ("solve_packed",), "power flow", acc, missing)
    if missing:
        raise SystemExit(f"not found (renamed?): {', '.join(missing)}")
    total = 0.0
    try:
        for k in range(WARM_UP + steps):
            if k == WARM_UP:
                acc.clear()
            t0 = time.perf_counter()
            vec.step(acts[k % 8])
            if k >= WARM_UP:
                total += time.perf_counter() - t0
            twin.step(acts[k % 8])
    finally:
        powerflow.solve_packed = solve
    spent = {"compiled step": acc["compiled step.step"],
             "power flow (in it)": acc["power flow.solve_packed"],
             "observe": acc["sim.observe_all"], "reset_rows": acc["sim.reset_rows"]}
    spent["front end (validation, infos, clipping)"] = (
        total - spent["compiled step"] - spent["observe"] - spent["reset_rows"])
    out = {k: v / total for k, v in spent.items()}
    out["step (µs)"] = 1e6 * total / steps * vec.num_envs  # shown as-is below
    return out


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
