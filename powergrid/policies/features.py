"""The learner's view of a multi-agent batch: one row per (env, agent), shared by all agents.

A policy with parameter sharing sees every microgrid as a row of one batch (as SuperSuit's
``pettingzoo_env_to_vec_env`` does): the agent's observation, a one-hot agent id (so the
shared network can still act differently per microgrid) and, optionally, the action of
``RuleBasedPolicy`` for that observation. The rule's action is both a feature (it encodes
the tariff valley/peak and sunny-hour tests the rule uses) and, in residual mode, the
offset the learned action is added to. Rows are env-major: row ``b * n_agents + i`` is
agent ``i`` of env ``b``. Training (examples/07) and the shipped policies use this one
definition, so their inputs cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from powergrid.baselines import RuleBasedPolicy


@dataclass(frozen=True)
class RowLayout:
    """How per-agent observations become rows: agents, sizes and whether the rule is used."""

    agents: tuple[str, ...]
    obs_dim: int
    act_dim: int
    rule_features: bool

    @property
    def n_agents(self) -> int:
        return len(self.agents)

    @property
    def row_dim(self) -> int:
        return self.obs_dim + self.n_agents + (self.act_dim if self.rule_features else 0)

    @classmethod
    def of(cls, env, rule_features: bool) -> RowLayout:
        """The layout of a MultiAgentMicrogrids or VectorMicrogrids env (identical shapes)."""
        agents = tuple(env.possible_agents)
        space = (env.observation_space if hasattr(env, "observation_space")
                 else env.single_observation_space)
        act = env.action_space if hasattr(env, "action_space") else env.single_action_space
        obs_dims = {space(a).shape[0] for a in agents}
        act_dims = {act(a).shape[0] for a in agents}
        if len(obs_dims) != 1 or len(act_dims) != 1:
            raise ValueError("a shared policy needs the same observation and action sizes for "
                             f"every agent, got observation sizes {sorted(obs_dims)} and action "
                             f"sizes {sorted(act_dims)} for {list(agents)}")
        return cls(agents, obs_dims.pop(), act_dims.pop(), rule_features)


def rule_actions(rule: RuleBasedPolicy, layout: RowLayout,
                 obs: Mapping[str, np.ndarray]) -> np.ndarray:
    """(B * n_agents, act_dim) actions of the rule for batched observations ``obs[a]: (B, d)``."""
    batch = np.stack([np.atleast_2d(obs[a]) for a in layout.agents], axis=1)  # (B, N, d)
    out = np.empty(batch.shape[:2] + (layout.act_dim,), np.float32)
    for b in range(batch.shape[0]):
        for i, a in enumerate(layout.agents):
            out[b, i] = rule.act(a, batch[b, i])
    return out.reshape(-1, layout.act_dim)


def agent_rows(layout: RowLayout, obs: Mapping[str, np.ndarray],
               rule_action: np.ndarray | None) -> np.ndarray:
    """(B * n_agents, row_dim) float32 rows: observation, one-hot agent id, rule action."""
    batch = np.stack([np.atleast_2d(obs[a]) for a in layout.agents], axis=1)  # (B, N, d)
    n_envs = batch.shape[0]
    ids = np.broadcast_to(np.eye(layout.n_agents, dtype=np.float32),
                          (n_envs, layout.n_agents, layout.n_agents))
    parts = [batch.astype(np.float32), ids]
    if layout.rule_features:
        if rule_action is None:
            raise ValueError("this layout has rule features: pass the rule's actions")
        parts.append(rule_action.reshape(n_envs, layout.n_agents, layout.act_dim))
    return np.concatenate(parts, axis=2).reshape(n_envs * layout.n_agents, layout.row_dim)


def split_rows(layout: RowLayout, rows: np.ndarray) -> dict[str, np.ndarray]:
    """(B * n_agents, act_dim) row actions -> ``{agent: (B, act_dim)}``."""
    per_env = rows.reshape(-1, layout.n_agents, rows.shape[-1])
    return {a: per_env[:, i] for i, a in enumerate(layout.agents)}


def central_state(layout: RowLayout, rows: np.ndarray, agent_ids: bool = True) -> np.ndarray:
    """MAPPO critic input per row: every agent's row of the same env concatenated.

    This is the env's joint observation (``state()`` of the scalar env without its two
    power-flow scalars, which no reward depends on today), plus the row's own agent id.
    """
    n = layout.n_agents
    per_env = rows.reshape(-1, n * rows.shape[-1])
    joint = np.repeat(per_env, n, axis=0)
    if not agent_ids:
        return joint
    ids = np.tile(np.eye(n, dtype=rows.dtype), (per_env.shape[0], 1))
    return np.concatenate([joint, ids], axis=1)
