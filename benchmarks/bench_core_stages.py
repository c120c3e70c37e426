"""The compiled step against the numpy stages, per configuration, in the same run.

    PYTHONPATH=. python benchmarks/bench_core_stages.py [--num-envs 1 1024] [--repeats 3]

For each configuration (the default fused step; per-row clearing through each row's
Coordination, as the scalar env on the core; consensus; the operator agent; the ahead
market; network costs) and batch size, VectorMicrogrids env-steps/s with the compiled
step (``powergrid.core.kernel``: fused, or compiled stages around the Python ones) and
with the numpy stages (``Simulation(fused=False)``), timed alternately (best of
``--repeats``), and their ratio. Episodes autoreset inside the timed loop, as in training.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from heron.protocols.horizontal import ConsensusProtocol
from heron.protocols.vertical import PriceSignalProtocol
from powergrid.core.step import Simulation
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids
from powergrid.scenarios import get

# name -> (config, row_market)
CONFIGS = {
    "default (fused)": ({}, False),
    "row market": ({}, True),
    "consensus": ({"horizontal_protocol": ConsensusProtocol()}, False),
    "price signal + DSO agent": ({"vertical_protocol": PriceSignalProtocol(mode="agent")},
                                 False),
    "ahead market": ({"market_timing": "ahead"}, False),
    "network costs (p2p-3mg-v2)": (get("p2p-3mg-v2").config(), False),
}


def make(config: dict, num_envs: int, row_market: bool, compiled: bool) -> VectorMicrogrids:
    vec = VectorMicrogrids(num_envs, config)
    if row_market or not compiled:
        vec.sim = Simulation(MultiAgentMicrogrids(vec.config), num_envs, fused=compiled,
                             row_market=row_market)
    assert (vec.sim.kernel is not None) == compiled
    return vec


def rate(vec: VectorMicrogrids, steps: int) -> float:
    """Env-steps/s over ``steps`` steps of random actions (drawn before timing)."""
    B = vec.num_envs
    rng = np.random.default_rng(0)
    acts = [{a: rng.uniform(-1, 1, (B, *vec.single_action_space(a).shape))
             for a in vec.possible_agents} for _ in range(8)]
    vec.reset(seed=0)
    for k in range(3):  # warm-up: numba compilation, caches
        vec.step(acts[k])
    t0 = time.perf_counter()
    for k in range(steps):
        vec.step(acts[k % 8])
    return B * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[1, 1024])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--env-steps", type=int, default=100_000,
                    help="env-steps per timing (steps x num_envs), at least one episode")
    ap.add_argument("--only", nargs="+", choices=list(CONFIGS), help="these configurations")
    args = ap.parse_args()
    for name in args.only or CONFIGS:
        config, row_market = CONFIGS[name]
        for B in args.num_envs:
            envs = {c: make(config, B, row_market, c) for c in (True, False)}
            T = envs[True].config.max_episode_steps
            steps = max(1, args.env_steps // B // T) * T
            best = dict.fromkeys(envs, 0.0)
            for _ in range(args.repeats):
                for c, vec in envs.items():  # whole episodes: resets weigh the same
                    best[c] = max(best[c], rate(vec, steps))
            kind = "fused" if envs[True].sim.kernel.fused else "stages"
            print(f"{name:28s} B={B:5d}: compiled ({kind}) {best[True]:>10,.0f}  numpy "
                  f"{best[False]:>10,.0f} env-steps/s  ratio {best[True] / best[False]:5.2f}",
                  flush=True)


if __name__ == "__main__":
    main()
