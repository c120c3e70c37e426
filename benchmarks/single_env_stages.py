"""Microseconds per step in each stage of one default single-env step (wrapped timing).

    PYTHONPATH=. python benchmarks/single_env_stages.py [--steps N]

Each stage method is wrapped with ``perf_counter`` (so the total is a little above an
unwrapped step; nested stages are counted in their parent too). The stages are internal
methods, named here on purpose: this is a profiling aid for the core's developers, not
an API; a renamed stage is reported as missing rather than failing the run.
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

import powergrid.core.kernel as kernel_module
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

SIM = ("step", "_plain_rows", "_tariff", "_market", "_settle", "observe_all")
KERNEL = ("step_rows", "dispatch", "book", "grid", "traded", "book_costs", "finish", "output",
          "observe_into")
# module functions the compiled whole step calls (rebuilding Order/Trade results)
MODULE = ("logged_results",)
ENV = ("_validate_actions", "_sync_devices", "_step_infos", "_observations")


def wrap(obj: object, names: tuple[str, ...], label: str, acc: collections.Counter,
         missing: list[str]) -> None:
    for name in names:
        f = getattr(obj, name, None)
        if f is None:
            missing.append(f"{label}.{name}")
            continue

        def timed(*a, _f=f, _key=f"{label}.{name}", **k):
            t = time.perf_counter()
            try:
                return _f(*a, **k)
            finally:
                acc[_key] += time.perf_counter() - t
        setattr(obj, name, timed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5000)
    args = ap.parse_args()
    env = MultiAgentMicrogrids({"max_episode_steps": 24})
    acc: collections.Counter = collections.Counter()
    missing: list[str] = []
    sim = env.sim
    wrap(sim, SIM, "sim", acc, missing)
    if sim.kernel is not None:
        wrap(sim.kernel, KERNEL, "kernel", acc, missing)
    wrap(env, ENV, "env", acc, missing)
    wrap(kernel_module, MODULE, "kernel", acc, missing)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    acts = [{a: rng.uniform(-1, 1, env.action_space(a).shape) for a in env.possible_agents}
            for _ in range(8)]

    def run(n: int) -> None:
        for i in range(n):
            if not env.agents:
                env.reset()
            env.step(acts[i % 8])

    run(500)  # warm-up: numba, caches
    acc.clear()
    t = time.perf_counter()
    run(args.steps)
    total = (time.perf_counter() - t) / args.steps * 1e6
    print(f"total {total:.0f} us/step (wrapped)")
    for key, v in sorted(acc.items(), key=lambda kv: -kv[1]):
        print(f"{key:28s} {v / args.steps * 1e6:7.1f} us")
    if missing:
        print("not found (renamed?):", ", ".join(missing))


if __name__ == "__main__":
    main()
