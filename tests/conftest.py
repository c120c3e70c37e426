"""Shared fixtures: small, fast env factories."""

from __future__ import annotations

import pytest

from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids


@pytest.fixture
def env() -> MultiAgentMicrogrids:
    return MultiAgentMicrogrids({"max_episode_steps": 24, "start_day": 172})


def random_actions(env, rng):
    return {a: rng.uniform(-1, 1, env.action_space(a).shape).astype("float32")
            for a in env.agents}
