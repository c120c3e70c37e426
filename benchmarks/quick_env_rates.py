"""Quick steps/s of the scalar env, VectorMicrogrids B=1 / 1,024 and the bare core step at
B = 1 (best of 4), one line.

    python benchmarks/quick_env_rates.py LABEL    # run from two checkouts, interleaved

For a loaded machine where ``bench_env.py --baseline`` takes too long: run it alternately
in this checkout and in a checkout of the baseline and compare adjacent runs. The loops
are bench_env.py's; only the bare core step is timed here alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids

try:  # run as a script: benchmarks/ is on sys.path
    from bench_env import best_rate, scalar_steps, vector_steps
except ImportError:  # imported as benchmarks.quick_env_rates
    from benchmarks.bench_env import best_rate, scalar_steps, vector_steps


def core_steps(n: int, seed: int = 0) -> Callable[[], int]:
    """``Simulation.step`` + ``observe`` at B = 1 with no front end (no validation, infos,
    clipping): the floor of a scalar env stepped through the core."""
    vec = VectorMicrogrids(1)
    rng = np.random.default_rng(seed)
    acts = [[rng.uniform(-1, 1, (1, *vec.single_action_space(a).shape))
             for a in vec.possible_agents] for _ in range(8)]
    vec.reset(seed=seed)
    sim, live = vec.sim, np.ones(1, bool)

    def run() -> int:
        for k in range(n):
            if sim.state.needs_reset[0]:
                vec.reset()
            sim.step(acts[k % 8], live)
            sim.observe()
        return n
    return run


if __name__ == "__main__":
    label = sys.argv[1] if len(sys.argv) > 1 else "this"
    rates = (best_rate(scalar_steps(MultiAgentMicrogrids({}), 1500), 4),
             best_rate(vector_steps(VectorMicrogrids(1), 1500), 4),
             best_rate(core_steps(1500), 4),
             best_rate(vector_steps(VectorMicrogrids(1024), 40), 4))
    print("{} scalar {:.0f}  B=1 {:.0f}  core B=1 {:.0f}  B=1024 {:.0f}".format(label, *rates))
