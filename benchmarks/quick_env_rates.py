"""Quick steps/s of the scalar env, VectorMicrogrids B=1 / 1,024 and the bare core step at
B = 1 (best of 4), one line.

    python benchmarks/quick_env_rates.py LABEL    # run from two checkouts, interleaved

For a loaded machine where ``bench_env.py --baseline`` takes too long: run it alternately
in this checkout and in a checkout of the baseline and compare adjacent runs.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids


def scalar(n: int = 1500) -> float:
    env = MultiAgentMicrogrids({})
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    acts = [{a: rng.uniform(-1, 1, env.action_space(a).shape) for a in env.possible_agents}
            for _ in range(8)]
    best = 0.0
    for _ in range(4):
        t0 = time.perf_counter()
        for k in range(n):
            if not env.agents:
                env.reset()
            env.step(acts[k % 8])
        best = max(best, n / (time.perf_counter() - t0))
    return best


def vector(num_envs: int, n: int) -> float:
    vec = VectorMicrogrids(num_envs)
    rng = np.random.default_rng(0)
    acts = [{a: rng.uniform(-1, 1, (num_envs, *vec.single_action_space(a).shape))
             for a in vec.possible_agents} for _ in range(8)]
    vec.reset(seed=0)
    best = 0.0
    for _ in range(4):
        t0 = time.perf_counter()
        for k in range(n):
            vec.step(acts[k % 8])
        best = max(best, n * num_envs / (time.perf_counter() - t0))
    return best


def core_b1(n: int = 1500) -> float:
    """``Simulation.step`` + ``observe`` at B = 1 with no front end (no validation, infos,
    clipping): the floor of a scalar env stepped through the core."""
    vec = VectorMicrogrids(1)
    rng = np.random.default_rng(0)
    acts = [[rng.uniform(-1, 1, (1, *vec.single_action_space(a).shape))
             for a in vec.possible_agents] for _ in range(8)]
    vec.reset(seed=0)
    sim, live = vec.sim, np.ones(1, bool)
    best = 0.0
    for _ in range(4):
        t0 = time.perf_counter()
        for k in range(n):
            if sim.state.needs_reset[0]:
                vec.reset()
            sim.step(acts[k % 8], live)
            sim.observe()
        best = max(best, n / (time.perf_counter() - t0))
    return best


if __name__ == "__main__":
    label = sys.argv[1] if len(sys.argv) > 1 else "this"
    print(f"{label} scalar {scalar():.0f}  B=1 {vector(1, 1500):.0f}  "
          f"core B=1 {core_b1():.0f}  B=1024 {vector(1024, 40):.0f}")
