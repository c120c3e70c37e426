"""Named baselines for the runner: random, no-trade, rule-based and the optimum.

A policy is a callable ``obs dict -> action dict`` built for one env by a factory
``env -> policy`` (as ``powergrid.baselines``). A policy that needs to know which episode
it is about to play (the oracle plans the whole day) also defines
``start_episode(day: int, seed: int)``; the runner calls it before every episode.
Factories given to ``evaluate(..., workers > 1)`` must be picklable (module-level).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from powergrid.baselines import Policy, RandomPolicy, RuleBasedPolicy, VoltVarPolicy

PolicyFactory = Callable[[Any], Policy]


@dataclass(frozen=True)
class Baseline:
    """A registered policy; ``trading=False`` plays it in the scenario's env without a market."""

    name: str
    description: str
    factory: PolicyFactory
    trading: bool = True


class OraclePolicy:
    """Replays the perfect-foresight optimum of each episode (open loop, ignores obs)."""

    def __init__(self, env: Any) -> None:
        # The oracle is given the day explicitly, so its own env needs no split.
        self.config = env.config.replace(split=None)
        self.result = None
        self._t = 0

    def start_episode(self, day: int, seed: int) -> None:
        try:
            from powergrid.evaluation.oracle import optimum
        except ModuleNotFoundError as exc:  # an install without the MILP
            raise NotImplementedError(f"the oracle is not available: {exc}") from exc

        self.result = optimum(self.config, int(day), seed=int(seed), trading=True)
        self._t = 0

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.result is None:
            raise RuntimeError("OraclePolicy needs start_episode(day, seed) before acting")
        action = self.result.actions[self._t]
        self._t += 1
        return action


def _random(env: Any) -> Policy:
    return RandomPolicy(env, seed=0)


def _learned(name: str, env: Any) -> Policy:
    from powergrid.policies import LearnedPolicy  # torch loads only when asked for

    return LearnedPolicy(env, name)


BASELINES: dict[str, Baseline] = {b.name: b for b in (
    Baseline("random", "uniform random actions (seeded)", _random),
    Baseline("no-trade", "RuleBasedPolicy without the P2P market (the score's 0)",
             RuleBasedPolicy, trading=False),
    Baseline("rule", "RuleBasedPolicy (powergrid.baselines) with the market", RuleBasedPolicy),
    Baseline("volt-var", "RuleBasedPolicy plus the IEEE 1547 Category B volt-var droop on "
             "every inverter's q (VoltVarPolicy; = rule without reactive_power)", VoltVarPolicy),
    Baseline("oracle", "the perfect-foresight optimum replayed (the score's 1)", OraclePolicy),
    Baseline("ppo", "shipped PPO weights (examples/07, p2p-2mg-v1; needs torch)",
             partial(_learned, "ppo")),
    Baseline("mappo", "shipped MAPPO weights (examples/07 --mappo, p2p-2mg-v1; needs torch)",
             partial(_learned, "mappo")),
    Baseline("rllib", "shipped RLlib MAPPO weights (examples/05, p2p-2mg-v1; needs torch)",
             partial(_learned, "rllib")),
)}


def get_baseline(name: str) -> Baseline:
    if name in BASELINES:
        return BASELINES[name]
    close = difflib.get_close_matches(str(name), list(BASELINES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown policy {name!r}{hint}; registered policies: {list(BASELINES)} "
                     f"(or pass a factory env -> policy)")
