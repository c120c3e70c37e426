"""Hostile inputs get clear errors naming the problem; out-of-range values are clipped."""

from __future__ import annotations

import numpy as np
import pytest

from powergrid.envs.config import EnvConfig
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids


@pytest.fixture(scope="module")
def live_env():
    env = MultiAgentMicrogrids({"max_episode_steps": 1000, "start_day": 5})
    env.reset(seed=0)
    return env


def ok(env, **override):
    acts = {a: np.zeros(env.action_space(a).shape, np.float32) for a in env.agents}
    acts.update(override)
    return acts


@pytest.mark.parametrize("bad, message", [
    (np.array([np.nan, 0, 0]), "NaN or inf"),
    (np.array([0, np.inf, 0]), "NaN or inf"),
    (np.zeros(4), r"shape \(4,\), expected \(3,\)"),
    (np.zeros((1, 3)), r"shape \(1, 3\)"),
    ("abc", "dtype <U3, expected real numbers"),
    ([None, 1, 2], "not numeric: element None"),
])
def test_bad_actions_raise_value_error_naming_agent(live_env, bad, message):
    with pytest.raises(ValueError, match=message) as exc:
        live_env.step(ok(live_env, MG1=bad))
    assert "MG1" in str(exc.value)


def test_unknown_agent_is_rejected(live_env):
    with pytest.raises(ValueError, match="unknown agent.*MG9"):
        live_env.step(ok(live_env, MG9=np.zeros(3)))


def test_missing_agent_is_rejected(live_env):
    with pytest.raises(ValueError, match="missing actions.*MG2"):
        live_env.step({"MG1": np.zeros(3)})


def test_actions_must_be_a_dict(live_env):
    with pytest.raises(ValueError, match="dict"):
        live_env.step([np.zeros(3), np.zeros(3)])


def test_castable_dtypes_and_lists_are_accepted(live_env):
    live_env.step({"MG1": [0, 1, -1], "MG2": np.zeros(3, dtype=np.int64)})


def test_out_of_range_actions_are_clipped_and_reported(live_env):
    _, _, _, _, infos = live_env.step(ok(live_env, MG1=np.array([5.0, -7.0, 0.0])))
    assert infos["MG1"]["action_clipped"] is True
    assert infos["MG2"]["action_clipped"] is False


def test_actions_for_a_done_agent_are_rejected():
    env = MultiAgentMicrogrids({"max_episode_steps": 1})
    env.reset(seed=0)
    env.step(ok(env))
    with pytest.raises(RuntimeError, match="episode has ended"):
        env.step({"MG1": np.zeros(3), "MG2": np.zeros(3)})


@pytest.mark.parametrize("config, key", [
    ({"max_episode_step": 24}, "max_episode_step"),
    ({"max_episode_steps": 0}, "max_episode_steps"),
    ({"max_episode_steps": 2.5}, "max_episode_steps"),
    ({"max_episode_steps": True}, "max_episode_steps"),
    ({"centralized": "yes"}, "centralized"),
    ({"microgrids": []}, "microgrids"),
    ({"start_day": 400}, "start_day"),
    ({"power_flow": "magic"}, "power_flow"),
    ({"dt_hours": -1}, "dt_hours"),
    ({"trading_fee": -0.1}, "trading_fee"),
    ({"drop_prob": 2.0}, "drop_prob"),
    ({"retail_price": [0.1] * 23}, "retail_price"),
    ({"horizontal_protocol": "p2p"}, "horizontal_protocol"),
    ({"voltage_band": (1.05, 0.95)}, "voltage_band"),
])
def test_bad_config_raises_value_error_naming_the_key(config, key):
    with pytest.raises(ValueError, match=key):
        MultiAgentMicrogrids(config)


@pytest.mark.parametrize("device, field", [
    ({"type": "ess", "capacity_kwh": -5}, "capacity_kwh"),
    ({"type": "ess", "soc_min": 0.9, "soc_max": 0.1}, "soc_min"),
    ({"type": "generator", "p_max_kw": float("nan")}, "p_max_kw"),
    ({"type": "solar", "capacity_kw": 0}, "capacity_kw"),
    ({"type": "battery"}, "unknown device type"),
    ({"type": "ess", "capacity": 5}, "capacity"),
])
def test_bad_device_parameters_name_the_field(device, field):
    with pytest.raises(ValueError, match=field):
        MultiAgentMicrogrids({"microgrids": [{"name": "MG1", "devices": [device]}]})


def test_unknown_microgrid_key_is_named():
    with pytest.raises(ValueError, match="peak_load"):
        MultiAgentMicrogrids({"microgrids": [{"name": "A", "devices": [], "peak_load": 5}]})


def test_config_prints_readably():
    text = str(EnvConfig())
    assert "max_episode_steps=24" in text and "MG1" in text and "Generator" in text


def test_config_dict_and_dataclass_are_equivalent():
    a = MultiAgentMicrogrids({"start_day": 3, "max_episode_steps": 2})
    b = MultiAgentMicrogrids(EnvConfig(start_day=3, max_episode_steps=2))
    oa, _ = a.reset(seed=1)
    ob, _ = b.reset(seed=1)
    for k in oa:
        np.testing.assert_array_equal(oa[k], ob[k])


def test_in_bounds_float32_actions_act_as_their_float64_values():
    envs = [MultiAgentMicrogrids({"max_episode_steps": 4}) for _ in range(2)]
    for env in envs:
        env.reset(seed=3)
    values = np.array([0.3, -0.7, 1.0], np.float32)
    steps = [env.step({a: values.astype(dtype) for a in env.agents})
             for env, dtype in zip(envs, (np.float32, np.float64))]
    assert steps[0][1] == steps[1][1]
    assert steps[0][4]["MG1"]["action_clipped"] is False
