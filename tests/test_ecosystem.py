"""The tools users already have accept the env as shipped (Gymnasium, PettingZoo wrappers,
SuperSuit, Stable-Baselines3, TorchRL). Tests needing an optional package skip without it;
CI installs the ``ecosystem`` extra so they run there."""

from __future__ import annotations

import dataclasses
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test

import powergrid
from heron.protocols import PriceSignalProtocol, SetpointProtocol
from heron.protocols.horizontal import P2PTradingProtocol, PeerToPeerTradingProtocol
from powergrid.devices import DeviceParams, ESSParams, PowerDevice
from powergrid.envs import MultiAgentMicrogrids, default_microgrids
from powergrid.wrappers import ENV_ID, CentralizedMicrogrids, FlatInfos, SharedSpaces

CONFIGS = {
    "default": {},
    "no_trading": {"horizontal_protocol": None},
    "price_signal_agent": {"vertical_protocol": PriceSignalProtocol(mode="agent")},
    "setpoint": {"vertical_protocol": SetpointProtocol(), "setpoint_target_kw": 5000.0},
    "distributed": {"centralized": False, "latency_steps": 1},
}


@pytest.fixture(autouse=True)
def keep_multiprocessing_start_method():
    """Importing torchrl switches multiprocessing to "spawn" for the whole process; undo
    that so the rest of the suite (process pools, vector envs) keeps the platform default."""
    import multiprocessing

    method = multiprocessing.get_start_method(allow_none=True)
    yield
    if multiprocessing.get_start_method(allow_none=True) != method:
        multiprocessing.set_start_method(method, force=True)


def structure(value):
    """Keys and nesting of an info, without values (lists and None count as leaves)."""
    if isinstance(value, dict):
        return {k: structure(v) for k, v in value.items()}
    return None


def zero_actions(env):
    return {a: np.zeros(env.action_space(a).shape, np.float32) for a in env.agents}


# ------------------------------------------------------------------ spaces
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_observation_and_state_bound_is_finite(name):
    env = MultiAgentMicrogrids({"max_episode_steps": 4, **CONFIGS[name]})
    for a in env.possible_agents:
        space = env.observation_space(a)
        assert np.isfinite(space.low).all() and np.isfinite(space.high).all(), a
    assert np.isfinite(env.state_space.low).all() and np.isfinite(env.state_space.high).all()


def test_price_bounds_are_the_highest_retail_tariff():
    env = MultiAgentMicrogrids()
    labels = env.obs_labels["MG1"]
    high = env.observation_space("MG1").high
    for label in ("retail_price", "feed_in_price", "last_clearing_price"):
        assert high[labels.index(label)] == pytest.approx(max(env.retail_price))


def test_microgrids_with_equally_long_observations_share_one_space():
    env = MultiAgentMicrogrids()
    assert env.observation_space("MG1") == env.observation_space("MG2")


@dataclasses.dataclass(frozen=True)
class ThermostatParams(DeviceParams):
    """A custom device that declares no observation bounds."""

    name: str = "heat"
    bus: str = "675"

    def build(self) -> PowerDevice:
        return Thermostat(self.name, self.bus)


class Thermostat(PowerDevice):
    action_labels, obs_labels = ("heat",), ("room_temp",)

    def reset(self, rng) -> None:
        self.p_kw, self.cost, self.clipped = 0.0, 0.0, False

    def step(self, action, ctx) -> float:
        self.p_kw = -10.0 * (float(action[0]) + 1.0)
        return self.p_kw

    def observe(self) -> tuple[float, ...]:
        return (0.5,)


def test_custom_device_without_declared_bounds_gets_the_finite_default():
    from heron.devices.base import DEFAULT_OBS_BOUND

    mg1, mg2 = default_microgrids()
    mg2 = dataclasses.replace(mg2, devices=(*mg2.devices, ThermostatParams()))
    env = MultiAgentMicrogrids(microgrids=[mg1, mg2])
    i = env.obs_labels["MG2"].index("room_temp")
    space = env.observation_space("MG2")
    assert (space.low[i], space.high[i]) == DEFAULT_OBS_BOUND


def test_declared_observation_bounds_must_match_the_labels():
    from powergrid.devices import ESS

    class Broken(ESS):
        obs_bounds = ((0.0, 1.0), (0.0, 1.0))

    with pytest.raises(ValueError, match="obs_bounds"):
        Broken(ESSParams()).observation_bounds()


def test_observation_outside_its_bound_is_clipped_and_flagged():
    env = MultiAgentMicrogrids({"max_episode_steps": 3})
    env.reset(seed=0)
    env._sim.state.load_forecast[:] *= 1e6  # the load forecast far beyond its bound
    obs, _, _, _, infos = env.step({a: np.ones(3, np.float32) for a in env.agents})
    for a in env.possible_agents:
        assert env.observation_space(a).contains(obs[a])
        assert infos[a]["obs_clipped"] is True


def test_ordinary_episode_never_clips_an_observation():
    env = MultiAgentMicrogrids({"max_episode_steps": 24})
    env.reset(seed=1)
    while env.agents:
        _, _, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
        assert not any(i["obs_clipped"] for i in infos.values())


# ------------------------------------------------------------------ infos
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_reset_infos_have_the_structure_of_step_infos(name):
    env = MultiAgentMicrogrids({"max_episode_steps": 4, **CONFIGS[name]})
    _, reset_infos = env.reset(seed=0)
    _, _, _, _, step_infos = env.step(zero_actions(env))
    assert set(reset_infos) == set(step_infos)
    for a in step_infos:
        assert structure(reset_infos[a]) == structure(step_infos[a]), a


def test_reset_infos_report_nothing_measured_yet():
    env = MultiAgentMicrogrids({"max_episode_steps": 4, "start_day": 10})
    _, infos = env.reset(seed=0)
    info = infos["MG1"]
    assert info["start_day"] == info["day"] == 10 and info["hour"] == 0
    assert math.isnan(info["costs"]["total"]) and info["market"]["orders"] == []
    assert info["pf_converged"] is False


def test_reset_infos_do_not_disturb_the_seeded_episode():
    a, b = MultiAgentMicrogrids({"max_episode_steps": 4}), MultiAgentMicrogrids(
        {"max_episode_steps": 4})
    a.reset(seed=3)
    obs_a = a.reset(seed=3)[0]  # second reset: the info template exists already
    obs_b = b.reset(seed=3)[0]
    for agent in obs_a:
        np.testing.assert_array_equal(obs_a[agent], obs_b[agent])


# ------------------------------------------------------------------ options
def test_share_reward_gives_every_microgrid_the_joint_reward():
    own = MultiAgentMicrogrids({"max_episode_steps": 2, "start_day": 100})
    shared = MultiAgentMicrogrids({"max_episode_steps": 2, "start_day": 100,
                                   "share_reward": True})
    own.reset(seed=0)
    shared.reset(seed=0)
    _, r_own, _, _, _ = own.step(zero_actions(own))
    _, r_shared, _, _, infos = shared.step(zero_actions(shared))
    joint = r_own["MG1"] + r_own["MG2"]
    assert r_shared == {"MG1": pytest.approx(joint), "MG2": pytest.approx(joint)}
    assert infos["MG1"]["costs"]["total"] == pytest.approx(-r_own["MG1"])


def test_share_reward_must_be_a_bool():
    with pytest.raises(ValueError, match="share_reward"):
        MultiAgentMicrogrids({"share_reward": "yes"})


def test_peer_to_peer_trading_protocol_is_the_p2p_protocol():
    assert PeerToPeerTradingProtocol is P2PTradingProtocol
    env = MultiAgentMicrogrids({"horizontal_protocol": PeerToPeerTradingProtocol()})
    assert isinstance(env.protocol, P2PTradingProtocol)


# ------------------------------------------------------------------ SharedSpaces
def mixed_microgrids():
    mg1, mg2 = default_microgrids()
    mg2 = dataclasses.replace(mg2, devices=(*mg2.devices, ESSParams(name="ess2", bus="675")))
    return [mg1, mg2]


def test_shared_spaces_give_different_device_sets_one_space():
    env = SharedSpaces(MultiAgentMicrogrids(microgrids=mixed_microgrids()))
    assert env.observation_space("MG1") == env.observation_space("MG2")
    assert env.action_space("MG1") == env.action_space("MG2")
    assert env.action_labels["MG1"][-1] == "price"


def test_shared_spaces_align_features_by_label_and_mark_the_agent():
    base = MultiAgentMicrogrids(microgrids=mixed_microgrids())
    env = SharedSpaces(base)
    obs, _ = env.reset(seed=0)
    labels = env.obs_labels["MG1"]
    native, _ = MultiAgentMicrogrids(microgrids=mixed_microgrids()).reset(seed=0)
    for a in ("MG1", "MG2"):
        soc = native[a][list(base.obs_labels[a]).index("soc")]
        assert obs[a][labels.index("soc")] == soc
        assert obs[a][labels.index(f"is_{a}")] == 1.0
    assert obs["MG1"][labels.index("pv_available")] == 0.0  # MG1 has no PV: padded


def test_shared_spaces_route_each_action_component_to_its_device():
    env = SharedSpaces(MultiAgentMicrogrids({"max_episode_steps": 2, "start_day": 172}))
    env.reset(seed=0)
    labels = env.action_labels["MG1"]
    act = np.zeros(len(labels), np.float32)
    act[labels.index("ess.p")] = -1.0  # charge; every other device idles
    env.step({"MG1": act, "MG2": act})
    for a in ("MG1", "MG2"):
        ess = {d.name: d for d in env.unwrapped.devices(a)}["ess"]
        assert ess.p_kw == pytest.approx(-ess.params.p_max_kw)


def test_shared_spaces_pass_the_pettingzoo_api_and_seed_tests():
    parallel_api_test(SharedSpaces(MultiAgentMicrogrids(microgrids=mixed_microgrids())),
                      num_cycles=30)
    parallel_seed_test(lambda: SharedSpaces(MultiAgentMicrogrids({"max_episode_steps": 24})))


# ------------------------------------------------------------------ FlatInfos
def test_flat_infos_are_numbers_with_the_same_keys_from_reset_and_step():
    env = FlatInfos(MultiAgentMicrogrids({"max_episode_steps": 3}))
    _, reset_infos = env.reset(seed=0)
    _, rewards, _, _, step_infos = env.step(zero_actions(env))
    for a in step_infos:
        assert list(reset_infos[a]) == list(step_infos[a])
        assert all(isinstance(v, float) for v in step_infos[a].values())
        assert step_infos[a]["costs/total"] == pytest.approx(-rewards[a])
    assert step_infos["MG1"]["market/orders"] == 1.0  # a list becomes its length


# ------------------------------------------------------------------ Gymnasium
def test_centralized_env_is_registered_on_import():
    assert ENV_ID in gym.registry
    assert powergrid.__name__ == "powergrid"
    env = gym.make(ENV_ID, config={"max_episode_steps": 4})
    assert isinstance(env.unwrapped, CentralizedMicrogrids)


def test_centralized_env_passes_gymnasium_check_env():
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env warns about every doubtful choice
        # through gym.make, so the env has a spec and check_env also tests render modes
        check_env(gym.make(ENV_ID, config={"max_episode_steps": 24}).unwrapped,
                  skip_render_check=False)


def test_centralized_reward_is_the_microgrids_total():
    env = CentralizedMicrogrids({"max_episode_steps": 4})
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(np.zeros(env.action_space.shape))
    assert reward == pytest.approx(sum(info["rewards"].values()))
    assert not terminated and not truncated


def test_centralized_env_rejects_a_wrong_action_shape():
    env = CentralizedMicrogrids()
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\), expected \(6,\)"):
        env.step(np.zeros(2))


def test_centralized_env_runs_under_async_vector_env():
    venv = gym.vector.AsyncVectorEnv(
        [lambda: gym.make(ENV_ID, config={"max_episode_steps": 4})] * 2)
    try:
        obs, _ = venv.reset(seed=0)
        assert obs.shape == (2, venv.single_observation_space.shape[0])
        for _ in range(6):  # through an autoreset
            obs, rewards, _, _, _ = venv.step(venv.action_space.sample())
            assert np.isfinite(rewards).all()
            assert venv.single_observation_space.contains(obs[0])
    finally:
        venv.close()


# ------------------------------------------------------------------ optional packages
def test_supersuit_vectorises_into_two_processes():
    ss = pytest.importorskip("supersuit")
    pytest.importorskip("stable_baselines3")
    venv = ss.pettingzoo_env_to_vec_env_v1(MultiAgentMicrogrids({"max_episode_steps": 4}))
    venv = ss.concat_vec_envs_v1(venv, 2, num_cpus=2, base_class="stable_baselines3")
    try:
        assert venv.num_envs == 4  # 2 copies x 2 microgrids
        obs = venv.reset()
        for _ in range(6):
            obs, rewards, _, _ = venv.step(np.stack([venv.action_space.sample()
                                                     for _ in range(venv.num_envs)]))
        assert obs.shape == (4, 15) and np.isfinite(rewards).all()
    finally:
        venv.close()


def test_supersuit_normalizes_observations():
    ss = pytest.importorskip("supersuit")
    env = ss.normalize_obs_v0(MultiAgentMicrogrids({"max_episode_steps": 4}))
    obs, _ = env.reset(seed=0)
    assert all(((o >= 0) & (o <= 1)).all() for o in obs.values())


def test_stable_baselines3_ppo_trains_through_supersuit():
    ss = pytest.importorskip("supersuit")
    sb3 = pytest.importorskip("stable_baselines3")
    venv = ss.pettingzoo_env_to_vec_env_v1(MultiAgentMicrogrids({"max_episode_steps": 24}))
    venv = ss.concat_vec_envs_v1(venv, 1, num_cpus=1, base_class="stable_baselines3")
    # no seed=: PPO would call venv.seed(), which SuperSuit 3.11's ConcatVecEnv lacks
    model = sb3.PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1,
                    device="cpu", verbose=0)
    model.learn(total_timesteps=64)
    action, _ = model.predict(venv.reset(), deterministic=True)
    assert action.shape == (2, 3)
    venv.close()


def test_torchrl_pettingzoo_wrapper_rolls_out():
    pytest.importorskip("torchrl")
    from torchrl.envs.libs.pettingzoo import PettingZooWrapper

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "tested with PettingZoo 1.24.3"
        env = PettingZooWrapper(env=FlatInfos(MultiAgentMicrogrids({"max_episode_steps": 4})),
                                return_state=True)
    td = env.rollout(6, break_when_any_done=False)  # across a reset
    assert td.batch_size == (6,)
    groups = [k for k in td.keys() if k in env.group_map]
    assert groups
    for group in groups:
        assert ("next", group, "info", "costs/total") in td.keys(True, True)


@pytest.mark.slow  # spawns worker processes that each import the stack: minutes on 2 cores
def test_ecosystem_docs_recipes_run(tmp_path, monkeypatch):
    pytest.importorskip("supersuit")
    pytest.importorskip("stable_baselines3")
    pytest.importorskip("torchrl")
    import re
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "ecosystem.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.S | re.M)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)  # the SB3 recipe saves its model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in blocks:  # one PPO iteration is enough to show the recipe works
            exec(compile(block.replace("total_timesteps=20_000", "total_timesteps=2048"),
                         str(page), "exec"), {})
    assert (tmp_path / "ppo_microgrids.zip").exists()


def test_vector_env_shares_rewards_like_the_scalar_env():
    from powergrid.envs import VectorMicrogrids

    cfg = {"max_episode_steps": 3, "start_day": 100, "share_reward": True}
    vec, env = VectorMicrogrids(1, cfg), MultiAgentMicrogrids(cfg)
    vec.reset(seed=0)
    env.reset(seed=0)
    _, r_vec, _, _, _ = vec.step({a: np.zeros((1, 3)) for a in vec.possible_agents})
    _, r_env, _, _, _ = env.step(zero_actions(env))
    for a in env.possible_agents:
        assert r_vec[a][0] == pytest.approx(r_env[a], rel=1e-9)
    assert r_vec["MG1"][0] == r_vec["MG2"][0]
