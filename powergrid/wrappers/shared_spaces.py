"""One observation and action space for every microgrid, whatever devices each one has.

Shared policies (parameter sharing, SuperSuit's vectorisers, RLlib's shared module) need
identical spaces *and* the same meaning at each position. The env already gives microgrids
with equally long observations the same bounds; this wrapper also aligns the meaning when
device sets differ:

* observations are laid out on the union of all microgrids' features, matched by label
  (the k-th ``soc`` of one microgrid sits where the k-th ``soc`` of every other sits);
  features a microgrid lacks read 0, and a one-hot agent indicator is appended;
* actions are laid out on the union of action labels (``"ess.p"``, ``"price"``, ...);
  components for devices a microgrid lacks are ignored.

Only microgrid agents are mapped; an operator agent ("DSO") keeps its own spaces.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.wrappers import BaseParallelWrapper

from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.spaces import box


def _slots(labels: tuple[str, ...]) -> list[tuple[str, int]]:
    """(label, occurrence) per component, so repeated labels (two batteries) stay apart."""
    seen: Counter[str] = Counter()
    out = []
    for label in labels:
        out.append((label, seen[label]))
        seen[label] += 1
    return out


def _union(per_agent: list[list[tuple[str, int]]]) -> list[tuple[str, int]]:
    order: list[tuple[str, int]] = []
    for slots in per_agent:
        order.extend(s for s in slots if s not in order)
    return order


class SharedSpaces(BaseParallelWrapper):
    """Identical, label-aligned spaces for all microgrids (see the module docstring)."""

    def __init__(self, env: MultiAgentMicrogrids, agent_indicator: bool = True):
        super().__init__(env)
        base = env.unwrapped
        self.microgrids = mgs = base.microgrid_agents
        obs_slots = {a: _slots(base.obs_labels[a]) for a in mgs}
        act_slots = {a: _slots(base.action_labels[a]) for a in mgs}
        self._obs_order = _union([obs_slots[a] for a in mgs])
        order = _union([act_slots[a] for a in mgs])
        # a component that ends every microgrid's action (the market price) ends this one too
        tail = [s for s in order if all(act_slots[a][-1] == s for a in mgs)]
        self._act_order = [s for s in order if s not in tail] + tail
        pos = {s: i for i, s in enumerate(self._obs_order)}
        apos = {s: i for i, s in enumerate(self._act_order)}
        self._obs_index = {a: np.array([pos[s] for s in obs_slots[a]]) for a in mgs}
        self._act_index = {a: np.array([apos[s] for s in act_slots[a]]) for a in mgs}
        n = len(self._obs_order)
        low, high = np.zeros(n, np.float32), np.zeros(n, np.float32)  # padding reads 0
        for a in mgs:
            space = env.observation_space(a)
            idx = self._obs_index[a]
            low[idx] = np.minimum(low[idx], space.low)
            high[idx] = np.maximum(high[idx], space.high)
        self.agent_indicator = agent_indicator
        k = len(mgs) if agent_indicator else 0
        shared_obs = box(np.append(low, np.zeros(k)), np.append(high, np.ones(k)))
        shared_act = spaces.Box(-1.0, 1.0, (len(self._act_order),), np.float32)
        self.obs_labels = {a: base.obs_labels[a] for a in base.possible_agents}
        self.action_labels = {a: base.action_labels[a] for a in base.possible_agents}
        self.observation_spaces = {a: env.observation_space(a) for a in base.possible_agents}
        self.action_spaces = {a: env.action_space(a) for a in base.possible_agents}
        shared_labels = tuple(f"{label}#{k}" if k else label for label, k in self._obs_order)
        shared_labels += tuple(f"is_{a}" for a in mgs) if agent_indicator else ()
        act_labels = tuple(f"{label}#{k}" if k else label for label, k in self._act_order)
        for a in mgs:
            self.observation_spaces[a] = shared_obs
            self.action_spaces[a] = shared_act
            self.obs_labels[a], self.action_labels[a] = shared_labels, act_labels

    def observation_space(self, agent: str) -> spaces.Box:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Box:
        return self.action_spaces[agent]

    def _map_obs(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(obs)
        n, k = len(self._obs_order), len(self.microgrids) if self.agent_indicator else 0
        for i, a in enumerate(self.microgrids):
            if a in obs:
                shared = np.zeros(n + k, np.float32)
                shared[self._obs_index[a]] = obs[a]
                if k:
                    shared[n + i] = 1.0
                out[a] = shared
        return out

    def reset(self, seed: int | None = None, options: dict | None = None):
        obs, infos = self.env.reset(seed=seed, options=options)
        if seed is not None:  # the shared action Box is one object: seed it once
            for i, a in enumerate(self.possible_agents):
                self.action_spaces[a].seed(seed + i)
        return self._map_obs(obs), infos

    def step(self, actions: dict[str, Any]):
        native = dict(actions)
        for a in self.microgrids:
            if a in actions:
                act = np.asarray(actions[a], np.float32)
                if act.shape != self.action_spaces[a].shape:
                    raise ValueError(f"action for {a!r} has shape {act.shape}, expected "
                                     f"{self.action_spaces[a].shape} (SharedSpaces layout "
                                     f"{self.action_labels[a]})")
                native[a] = act[self._act_index[a]]
        obs, rewards, terms, truncs, infos = self.env.step(native)
        return self._map_obs(obs), rewards, terms, truncs, infos

    def state(self) -> np.ndarray:
        return self.env.state()
