"""Where a VectorMicrogrids step spends its time, per stage of the core (cProfile shares).

    python benchmarks/profile_core.py [--num-envs 1 1024] [--steps 300]

Shares (not absolute times) are what to read on a busy machine: cProfile slows every
Python call alike.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

import numpy as np

from powergrid.envs.vector import VectorMicrogrids

STAGES = ("_tariff", "_dispatch", "_market", "_settle", "_power_flow", "_safety",
          "_network_costs", "_storage_terminal", "observe", "reset_rows")


def profile(num_envs: int, steps: int) -> dict[str, float]:
    vec = VectorMicrogrids(num_envs)
    rng = np.random.default_rng(0)
    acts = [{a: rng.uniform(-1, 1, (num_envs, *vec.single_action_space(a).shape))
             for a in vec.possible_agents} for _ in range(8)]
    vec.reset(seed=0)
    for k in range(20):  # warm-up: numba compilation, caches
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[1, 1024])
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    for b in args.num_envs:
        shares = profile(b, max(10, args.steps if b < 64 else args.steps // 10))
        print(f"B = {b}: " + ", ".join(f"{k.strip('_')} {100 * v:.0f} %"
                                       for k, v in shares.items()))


if __name__ == "__main__":
    main()
