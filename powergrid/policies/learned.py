"""Policies trained by examples/07 (PPO / MAPPO) and 05 (RLlib MAPPO), loadable without training.

A checkpoint (``agent.pt`` of examples/07 or 05, a few tens of kB) holds the actor's weights (a
``nn.Sequential`` of ``Linear`` layers with ``Tanh`` between), the observation statistics
of gymnasium's ``NormalizeObservation`` at the end of training, the row layout
(``powergrid.policies.features``) and whether the action is a residual on
``RuleBasedPolicy``. Acting is deterministic: the Gaussian's mean, clipped to [-1, 1].
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from powergrid.baselines import RuleBasedPolicy
from powergrid.policies.features import RowLayout, agent_rows, rule_actions, split_rows

# name -> (file in powergrid/policies, scenario it was trained on)
SHIPPED: dict[str, tuple[str, str]] = {
    "ppo": ("ppo_p2p-2mg-v1.pt", "p2p-2mg-v1"),
    "mappo": ("mappo_p2p-2mg-v1.pt", "p2p-2mg-v1"),
    "rllib": ("rllib_p2p-2mg-v1.pt", "p2p-2mg-v1"),  # examples/05's exported actor
}
OBS_EPS = 1e-8  # NormalizeObservation's epsilon


def _torch():
    try:
        import torch
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("learned policies need torch: pip install 'heron-grid[train]'"
                                  ) from exc
    return torch


def checkpoint_path(name_or_path: str | Path) -> Path:
    """The file of a shipped policy name (``SHIPPED``) or a path to an examples/07 checkpoint."""
    if str(name_or_path) in SHIPPED:
        return Path(str(resources.files("powergrid.policies") / SHIPPED[str(name_or_path)][0]))
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"unknown policy {str(name_or_path)!r}: expected one of "
                         f"{list(SHIPPED)} or the path of a checkpoint written by examples/07")
    return path


class LearnedPolicy:
    """``obs dict -> action dict`` of a trained actor, for one MultiAgentMicrogrids env."""

    def __init__(self, env: Any, checkpoint: str | Path) -> None:
        torch = _torch()
        ckpt = torch.load(checkpoint_path(checkpoint), map_location="cpu", weights_only=True)
        self.layout = RowLayout(**{**ckpt["layout"], "agents": tuple(ckpt["layout"]["agents"])})
        trained = f"policy {str(checkpoint)!r} was trained on scenario {ckpt['scenario']!r}"
        if tuple(env.possible_agents) != self.layout.agents:
            raise ValueError(f"{trained} with agents {list(self.layout.agents)}; this env has "
                             f"{list(env.possible_agents)}")
        found = RowLayout.of(env, self.layout.rule_features)
        if found != self.layout:
            raise ValueError(f"{trained} with rows {self.layout}; this env has {found}")
        self.scenario, self.algorithm = ckpt["scenario"], ckpt["algorithm"]
        self.residual = bool(ckpt["residual"])
        self.rule = RuleBasedPolicy(env)
        self.mean = ckpt["obs_mean"].numpy().astype(np.float64)
        self.scale = np.sqrt(ckpt["obs_var"].numpy().astype(np.float64) + OBS_EPS)
        self.actor = _actor(torch, ckpt["actor"])

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not obs:
            return {}
        torch = _torch()
        rule = rule_actions(self.rule, self.layout, obs)
        rows = (agent_rows(self.layout, obs, rule) - self.mean) / self.scale
        with torch.no_grad():
            action = self.actor(torch.as_tensor(rows, dtype=torch.float32)).numpy()
        if self.residual:
            action = action + rule
        per_agent = split_rows(self.layout, np.clip(action, -1.0, 1.0).astype(np.float32))
        return {a: per_agent[a][0] for a in obs}


def _actor(torch: Any, state: dict) -> Any:
    """The ``nn.Sequential`` (Linear, Tanh, ..., Linear) whose state dict is ``state``."""
    nn = torch.nn
    indices = sorted({int(k.split(".")[0]) for k in state})
    layers: list[Any] = []
    for n, i in enumerate(indices):
        out_dim, in_dim = state[f"{i}.weight"].shape
        while len(layers) < i:
            layers.append(nn.Tanh())
        layers.append(nn.Linear(in_dim, out_dim))
        if n == len(indices) - 1:
            break
    actor = nn.Sequential(*layers)
    actor.load_state_dict(state)
    return actor.eval()


def load_policy(name_or_path: str | Path):
    """A factory ``env -> policy`` (the runner's interface) of a shipped or saved policy."""
    path = checkpoint_path(name_or_path)
    return lambda env: LearnedPolicy(env, path)
