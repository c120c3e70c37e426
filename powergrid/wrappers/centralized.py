"""One policy for every microgrid: the multi-agent env seen as a single-agent ``gymnasium.Env``.

The observation is every agent's observation concatenated (in ``possible_agents`` order),
the action every agent's action concatenated, the reward the sum of the microgrids'
rewards (the total cost of the system, in -$), and ``info["agents"]`` the per-agent infos.
Registered with Gymnasium on ``import powergrid``::

    import gymnasium as gym
    import powergrid  # noqa: F401  (registers the ids)
    env = gym.make("heron-grid/CentralizedMicrogrids-v0", config={"max_episode_steps": 24})

or without the import: ``gym.make("powergrid:heron-grid/CentralizedMicrogrids-v0")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from powergrid.envs.config import EnvConfig
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.spaces import box

ENV_ID = "heron-grid/CentralizedMicrogrids-v0"


class CentralizedMicrogrids(gym.Env):
    """A central controller of all microgrids (and the operator, if configured)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(self, config: Mapping[str, Any] | EnvConfig | None = None,
                 render_mode: str | None = None):
        cfg = EnvConfig.from_dict(config)
        if render_mode is not None:
            if render_mode not in self.metadata["render_modes"]:
                raise ValueError(f"render_mode {render_mode!r} is not supported; expected "
                                 f"None or one of {self.metadata['render_modes']}")
            cfg = cfg.replace(render_mode=render_mode)
        self.env = MultiAgentMicrogrids(cfg)
        self.render_mode = render_mode
        self.agents = list(self.env.possible_agents)
        self.microgrids = self.env.microgrid_agents
        obs = [self.env.observation_space(a) for a in self.agents]
        act = [self.env.action_space(a) for a in self.agents]
        self.observation_space = box(np.concatenate([s.low for s in obs]),
                                     np.concatenate([s.high for s in obs]))
        self.action_space = gym.spaces.Box(-1.0, 1.0, (sum(s.shape[0] for s in act),),
                                           np.float32)
        bounds = np.cumsum([0] + [s.shape[0] for s in act])
        self._act_slices = {a: slice(int(lo), int(hi))
                            for a, lo, hi in zip(self.agents, bounds[:-1], bounds[1:])}
        self.obs_labels = tuple(f"{a}.{x}" for a in self.agents for x in self.env.obs_labels[a])
        self.action_labels = tuple(f"{a}.{x}" for a in self.agents
                                   for x in self.env.action_labels[a])

    def _obs(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([obs[a] for a in self.agents]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        obs, infos = self.env.reset(seed=seed, options=options)
        return self._obs(obs), {"agents": infos}

    def step(self, action: np.ndarray):
        action = np.asarray(action, np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}, expected "
                             f"{self.action_space.shape} ({', '.join(self.action_labels)})")
        obs, rewards, terms, truncs, infos = self.env.step(
            {a: action[s] for a, s in self._act_slices.items()})
        reward = float(sum(rewards[a] for a in self.microgrids))
        return (self._obs(obs), reward, any(terms.values()), any(truncs.values()),
                {"agents": infos, "rewards": rewards})

    def render(self) -> str | None:
        return self.env.render()

    def close(self) -> None:
        self.env.close()

