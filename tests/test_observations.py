"""The single env's observations: fresh arrays each step, float32 inside their spaces,
per-agent clipping flags (NaN/inf features: tests/test_reliability_physics.py)."""

from __future__ import annotations

import numpy as np

from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids


def _ones(env):
    return {a: np.ones(env.action_space(a).shape, np.float32) for a in env.agents}


def test_an_observation_kept_from_one_step_is_not_changed_by_the_next():
    env = MultiAgentMicrogrids({"max_episode_steps": 4})
    obs0, _ = env.reset(seed=0)
    kept = {a: o.copy() for a, o in obs0.items()}
    obs1, *_ = env.step(_ones(env))
    assert any(not np.array_equal(obs1[a], kept[a]) for a in kept)  # the step changed them
    for a in kept:
        np.testing.assert_array_equal(obs0[a], kept[a])


def test_mutating_one_agents_observation_leaves_the_others_alone():
    env = MultiAgentMicrogrids({"max_episode_steps": 4})
    obs, _ = env.reset(seed=0)
    before = obs["MG2"].copy()
    obs["MG1"][:] = 123.0
    np.testing.assert_array_equal(obs["MG2"], before)


def test_observations_are_float32_inside_their_spaces():
    env = MultiAgentMicrogrids({"max_episode_steps": 4})
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        for a, o in obs.items():
            assert o.dtype == np.float32 and env.observation_space(a).contains(o)
        obs, *_ = env.step(_ones(env))


def test_only_the_agent_whose_feature_left_its_bound_is_flagged_clipped():
    env = MultiAgentMicrogrids({"max_episode_steps": 4})
    env.reset(seed=0)
    env._sim.state.load_forecast[..., 0] *= 1e6  # MG1's forecast only
    _, _, _, _, infos = env.step(_ones(env))
    assert infos["MG1"]["obs_clipped"] is True
    assert infos["MG2"]["obs_clipped"] is False
