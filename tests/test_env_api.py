"""The seed snippet, PettingZoo conformance and episode semantics of MultiAgentMicrogrids."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

from heron.protocols.horizontal import P2PTradingProtocol
from powergrid.envs.config import default_microgrids
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids
from tests.conftest import random_actions


def test_seed_snippet_runs_verbatim():
    env_config = {"centralized": True, "max_episode_steps": 24,
                  "horizontal_protocol": P2PTradingProtocol()}
    env = MultiAgentMicrogrids(env_config)
    obs, info = env.reset()
    for _ in range(24):
        actions = {agent_id: env.action_spaces[agent_id].sample() for agent_id in env.agents}
        obs, rewards, terminateds, truncateds, infos = env.step(actions)
    assert all(truncateds.values()) and env.agents == []


def test_default_agents_and_action_layout():
    env = MultiAgentMicrogrids()
    assert env.possible_agents == ["MG1", "MG2"]
    assert env.action_labels["MG1"] == ("gen.p", "ess.p", "price")
    assert env.action_labels["MG2"] == ("ess.p", "pv.curtail", "price")
    assert env.action_space("MG1") is env.action_spaces["MG1"]


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("centralized", [True, False])
def test_pettingzoo_parallel_api(n, centralized):
    specs = [m for _ in range(3) for m in default_microgrids()][:n]
    mgs = [{"name": f"MG{i + 1}", "devices": s.devices, "peak_load_kw": s.peak_load_kw,
            "load_profile": s.load_profile} for i, s in enumerate(specs)]
    env = MultiAgentMicrogrids({"microgrids": mgs, "centralized": centralized})
    parallel_api_test(env, num_cycles=30)


def test_pettingzoo_parallel_seed():
    parallel_seed_test(lambda: MultiAgentMicrogrids({"max_episode_steps": 24}))


def test_truncates_at_max_episode_steps_then_agents_empty():
    env = MultiAgentMicrogrids({"max_episode_steps": 5})
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(5):
        _, _, term, trunc, _ = env.step(random_actions(env, rng))
        assert not any(term.values())
        assert all(trunc.values()) == (t == 4)
    assert env.agents == []
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step({"MG1": np.zeros(3), "MG2": np.zeros(3)})


def test_step_before_reset_is_an_error():
    with pytest.raises(RuntimeError, match="reset"):
        MultiAgentMicrogrids().step({"MG1": np.zeros(3), "MG2": np.zeros(3)})


def test_same_seed_gives_identical_episodes():
    def rollout(seed):
        env = MultiAgentMicrogrids()
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(1)
        out = [obs]
        while env.agents:
            obs, rew, _, _, infos = env.step(random_actions(env, rng))
            out.append((obs, rew, {a: i["costs"] for a, i in infos.items()}))
        return out

    a, b = rollout(7), rollout(7)
    assert repr(a) == repr(b)
    assert repr(rollout(8)) != repr(a)


def test_different_seeds_pick_different_days():
    env = MultiAgentMicrogrids()
    days = {env.reset(seed=s)[1]["MG1"]["start_day"] for s in range(10)}
    assert len(days) > 5


def test_reset_mid_episode_starts_cleanly():
    env = MultiAgentMicrogrids({"start_day": 10})
    first, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(5):
        env.step(random_actions(env, rng))
    again, _ = env.reset(seed=3)
    for a in first:
        np.testing.assert_array_equal(first[a], again[a])
    assert env.agents == env.possible_agents


def test_two_instances_do_not_share_state():
    e1, e2 = MultiAgentMicrogrids(), MultiAgentMicrogrids()
    e1.reset(seed=1)
    e2.reset(seed=1)
    rng1, rng2 = np.random.default_rng(5), np.random.default_rng(5)
    ref = MultiAgentMicrogrids()
    ref.reset(seed=1)
    rng_ref = np.random.default_rng(5)
    for _ in range(24):
        o1, r1, *_ = e1.step(random_actions(e1, rng1))
        e2.step({a: -np.ones(3, np.float32) for a in e2.agents})  # interleaved, different
        _ = random_actions(e2, rng2)
        o_ref, r_ref, *_ = ref.step(random_actions(ref, rng_ref))
        assert r1 == r_ref
        for a in o1:
            np.testing.assert_array_equal(o1[a], o_ref[a])


def test_env_pickles_before_reset_and_deepcopies_mid_episode():
    env = MultiAgentMicrogrids()
    clone = pickle.loads(pickle.dumps(env))
    clone.reset(seed=0)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    env.step(random_actions(env, rng))
    twin = copy.deepcopy(env)
    actions = random_actions(env, rng)
    _, r1, *_ = env.step(actions)
    _, r2, *_ = twin.step(actions)
    assert r1 == r2


def test_env_pickles_mid_episode_and_continues_with_the_same_rewards():
    env = MultiAgentMicrogrids()
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    env.step(random_actions(env, rng))
    clone = pickle.loads(pickle.dumps(env))  # the generated info renderers are rebuilt
    for _ in range(2):
        actions = random_actions(env, rng)
        (o1, r1, *_), (o2, r2, *_) = env.step(actions), clone.step(actions)
        assert r1 == r2 and all(np.array_equal(o1[a], o2[a]) for a in o1)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_made_mid_episode_keeps_its_devices_and_infos_live(how):
    # the compiled twins' states are views of the kernel's arrays: a copy must rebind them
    env = MultiAgentMicrogrids()
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(3):
        env.step(random_actions(env, rng))
    clone = copy.deepcopy(env) if how == "deepcopy" else pickle.loads(pickle.dumps(env))
    for _ in range(4):
        actions = random_actions(env, rng)
        infos1, infos2 = env.step(actions)[4], clone.step(actions)[4]
        for a in env.agents:
            assert repr(infos1[a]) == repr(infos2[a])
            for d1, d2 in zip(env.devices(a), clone.devices(a)):
                assert (d1.p_kw, d1.cost) == (d2.p_kw, d2.cost)
                assert infos2[a]["devices"][d2.name]["p_kw"] == d2.p_kw


def test_a_copied_vector_env_steps_its_own_devices_across_an_autoreset():
    vec = VectorMicrogrids(2, {"max_episode_steps": 4})
    vec.reset(seed=0)
    acts = {a: np.full((2, *vec.single_action_space(a).shape), 0.7) for a in vec.possible_agents}
    for _ in range(3):
        vec.step(acts)
    clone = copy.deepcopy(vec)
    for _ in range(6):  # the autoreset resets the devices the clone's kernel steps
        (o1, r1, *_), (o2, r2, *_) = vec.step(acts), clone.step(acts)
        assert all(np.array_equal(o1[a], o2[a]) and np.array_equal(r1[a], r2[a]) for a in o1)


def test_state_has_global_dimension():
    env = MultiAgentMicrogrids()
    env.reset(seed=0)
    s = env.state()
    assert s.shape == env.state_space.shape and np.all(np.isfinite(s))


def test_observations_are_labelled_and_inside_their_space(env):
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    while env.agents:
        for a, o in obs.items():
            assert len(env.obs_labels[a]) == o.shape[0]
            assert env.observation_space(a).contains(o)
        obs, *_ = env.step(random_actions(env, rng))


def test_render_ansi_lists_every_agent():
    env = MultiAgentMicrogrids({"render_mode": "ansi"})
    env.reset(seed=0)
    env.step({a: np.zeros(3, np.float32) for a in env.agents})
    text = env.render()
    assert all(a in text for a in env.possible_agents)


def test_ten_microgrids_run_and_trade():
    base = default_microgrids()
    mgs = [{"name": f"MG{i + 1}", "devices": base[i % 2].devices,
            "peak_load_kw": base[i % 2].peak_load_kw * (0.6 + 0.1 * i),
            "load_profile": base[i % 2].load_profile} for i in range(10)]
    env = MultiAgentMicrogrids({"microgrids": mgs, "start_day": 172, "max_episode_steps": 24})
    obs, _ = env.reset(seed=0)
    assert len(obs) == 10 and len(env.network.net.bus) == 1 + 10 * 13
    rng = np.random.default_rng(0)
    volume = 0.0
    while env.agents:
        _, _, _, _, infos = env.step(random_actions(env, rng))
        volume += infos["MG1"]["market"]["volume_kwh"]
        assert all(i["pf_converged"] for i in infos.values())
    assert volume > 0
