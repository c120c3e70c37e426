"""Configs, device parameters, reset seeds and options: bad input fails at once, naming it.

Issue 13: each case used to be accepted and simulate something else, or fail later with
an error that did not name the key (TypeError, unpacking, MemoryError, OverflowError).
"""

from __future__ import annotations

import numpy as np
import pytest

from heron.protocols.horizontal import P2PTradingProtocol
from powergrid.devices import ESSParams, GeneratorParams, SolarParams
from powergrid.envs.config import EnvConfig, MicrogridSpec
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.options import RESET_OPTIONS
from powergrid.envs.vector import VectorMicrogrids

# ------------------------------------------------------------------ config keys

BAD_CONFIG = {
    "tariff as dict": ("retail_price", {h: 0.1 for h in range(24)}, "for a dict use"),
    "tariff as set": ("feed_in_price", set(range(24)), "24 hourly prices"),
    "tariff as str": ("retail_price", "0.1", "24 hourly prices"),
    "tariff nan": ("retail_price", float("nan"), "24 hourly prices"),
    "tariff 23 values": ("retail_price", [0.1] * 23, "24 hourly prices"),
    "tariff absurd": ("retail_price", 1e308, r"\[0, 1000\] \$/kWh"),
    "fee absurd": ("trading_fee", 1e308, r"\[0, 1000\] \$/kWh"),
    "voltage band scalar": ("voltage_band", 1.0, r"\(low, high\)"),
    "voltage band triple": ("voltage_band", (0.9, 1.0, 1.1), r"\(low, high\)"),
    "voltage band as str": ("voltage_band", "ab", r"\(low, high\)"),
    "drop_prob None": ("drop_prob", None, r"\[0, 1\]"),
    "episode too long": ("max_episode_steps", 10**12, r"an int in \[1, 100000\]"),
    "episode steps bool": ("max_episode_steps", True, "an int"),
    "latency float": ("latency_steps", 1.5, "an int"),
    "penalty absurd": ("pf_failure_penalty", 1e300, r"\$"),
    "noise std negative": ("load_noise_std", -0.1, r"\[0, 1\]"),
    "setpoint absurd": ("setpoint_target_kw", 1e300, "kW"),
    "start_day beyond year": ("start_day", 400, r"\[0, 364\]"),
    "clearing typo": ("clearing", "unifrom", "did you mean 'uniform'"),
    "microgrids as dict": ("microgrids", {"MG1": {"devices": []}}, "non-empty list"),
    "centralized as str": ("centralized", "yes", "True or False"),
}


@pytest.mark.parametrize("key, value, expected", BAD_CONFIG.values(), ids=BAD_CONFIG.keys())
def test_invalid_config_value_raises_value_error_naming_key(key, value, expected):
    with pytest.raises(ValueError, match=rf"config key '{key}' = .* expected .*{expected}"):
        EnvConfig.from_dict({key: value})


def test_tariff_accepts_list_tuple_array_or_one_number_as_24_floats():
    for value in ([0.2] * 24, tuple([0.2] * 24), np.full(24, 0.2), 0.2, np.float32(0.25)):
        prices = EnvConfig.from_dict({"retail_price": value}).retail_price
        assert len(prices) == 24 and all(type(p) is float for p in prices)


def test_numpy_integers_are_accepted_for_int_keys():
    cfg = EnvConfig.from_dict({"max_episode_steps": np.int64(5), "start_day": np.int32(3)})
    assert (type(cfg.max_episode_steps), type(cfg.start_day)) == (int, int)


def test_hand_built_protocol_with_absurd_fee_is_rejected_by_env():
    with pytest.raises(ValueError, match="trading_fee .* of horizontal_protocol"):
        MultiAgentMicrogrids({"horizontal_protocol": P2PTradingProtocol(trading_fee=1e9)})


def test_vector_env_refuses_episode_series_beyond_memory_limit():
    with pytest.raises(ValueError, match="GiB of episode series"):
        VectorMicrogrids(100_000, {"max_episode_steps": 100_000})


# ------------------------------------------------------------------ device parameters

BAD_DEVICE = {
    "name not str": (GeneratorParams, {"name": 5}, "name = 5: expected a non-empty str"),
    "bus not str": (ESSParams, {"bus": 671}, "bus = 671: expected an IEEE-13 bus name"),
    "capacity bool": (ESSParams, {"capacity_kwh": True}, "capacity_kwh = True"),
    "generator absurd": (GeneratorParams, {"p_max_kw": 1e308}, r"p_max_kw = 1e\+308"),
    "fuel cost absurd": (GeneratorParams, {"cost_b_per_kwh": 1e308}, "cost_b_per_kwh"),
    "startup absurd": (GeneratorParams, {"startup_cost": 1e308}, "startup_cost"),
    "ess power absurd": (ESSParams, {"p_max_kw": 1e300}, "p_max_kw"),
    "pv absurd": (SolarParams, {"capacity_kw": 1e300}, "capacity_kw"),
    "inverter nan": (SolarParams, {"inverter_kw": float("nan")}, "inverter_kw"),
}


@pytest.mark.parametrize("cls, kwargs, expected", BAD_DEVICE.values(), ids=BAD_DEVICE.keys())
def test_invalid_device_parameter_raises_value_error_naming_field(cls, kwargs, expected):
    with pytest.raises(ValueError, match=expected):
        cls(**kwargs)


def test_device_numbers_are_stored_as_plain_floats():
    assert type(ESSParams(capacity_kwh=np.float32(500)).capacity_kwh) is float


def test_microgrid_devices_must_be_a_list():
    with pytest.raises(ValueError, match="devices must be a list"):
        MicrogridSpec("MG1", {"type": "ess"})  # type: ignore[arg-type]


def test_absurd_peak_load_names_microgrid():
    with pytest.raises(ValueError, match="microgrid 'MG1': peak_load_kw"):
        MicrogridSpec("MG1", (), peak_load_kw=1e308)


# ------------------------------------------------------------------ reset seed and options


@pytest.fixture(scope="module")
def env():
    return MultiAgentMicrogrids({"max_episode_steps": 3})


@pytest.fixture(scope="module")
def vec():
    return VectorMicrogrids(2, {"max_episode_steps": 3})


BAD_START_DAY = [400, -1, 1.7, "5", 1e20, True]


@pytest.mark.parametrize("day", BAD_START_DAY)
def test_scalar_reset_rejects_start_day_outside_year(env, day):
    with pytest.raises(ValueError, match=r"reset option 'start_day' = .* \[0, 364\]"):
        env.reset(options={"start_day": day})


@pytest.mark.parametrize("day", BAD_START_DAY)
def test_vector_reset_rejects_start_day_outside_year(vec, day):
    with pytest.raises(ValueError, match=r"reset option 'start_day' = .* \[0, 364\]"):
        vec.reset(options={"start_day": day})


def test_vector_reset_names_the_bad_env_in_per_env_start_days(vec):
    with pytest.raises(ValueError, match=r"'start_day\[1\]' = 365"):
        vec.reset(options={"start_day": [3, 365]})


def test_reported_start_day_is_the_simulated_day(env, vec):
    _, infos = env.reset(options={"start_day": np.int64(364)})
    assert infos["MG1"]["start_day"] == 364 and env.series.days[0] == 364
    _, infos = vec.reset(options={"start_day": [0, 364]})
    assert infos["MG1"]["start_day"].tolist() == [0, 364]
    assert vec.sim.state.hours.shape[0] == 2


@pytest.mark.parametrize("reset", ["env", "vec"])
def test_unknown_reset_option_raises_with_close_match_hint(reset, request):
    with pytest.raises(ValueError, match="unknown reset option 'start_dya'.*did you mean "
                                         "'start_day'"):
        request.getfixturevalue(reset).reset(options={"start_dya": 3})


def test_every_reset_option_has_a_check():
    assert all(callable(check) for check in RESET_OPTIONS.values())


def test_reset_accepts_numpy_integer_seed_like_int():
    a, b = MultiAgentMicrogrids({"max_episode_steps": 3}), MultiAgentMicrogrids({"max_episode_steps": 3})
    obs_a, info_a = a.reset(seed=np.int64(5))
    obs_b, info_b = b.reset(seed=5)
    assert info_a == info_b
    assert all(np.array_equal(obs_a[k], obs_b[k]) for k in obs_a)
    assert np.array_equal(a.action_space("MG1").sample(), b.action_space("MG1").sample())


@pytest.mark.parametrize("seed", [-1, 1.5, "5", True, [1, 2]])
def test_bad_seed_is_rejected_before_any_state_changes(seed):
    env = MultiAgentMicrogrids({"max_episode_steps": 3})
    env.reset(seed=1)
    rng_state = env._rng.bit_generator.state
    day, t = env.start_day, env._t
    with pytest.raises(ValueError, match="reset seed must be None or an int >= 0"):
        env.reset(seed=seed)
    assert env._rng.bit_generator.state == rng_state
    assert (env.start_day, env._t) == (day, t)


def test_bad_option_is_rejected_before_the_seed_is_applied():
    env = MultiAgentMicrogrids({"max_episode_steps": 3})
    env.reset(seed=1)
    rng_state = env._rng.bit_generator.state
    with pytest.raises(ValueError, match="start_day"):
        env.reset(seed=2, options={"start_day": 400})
    assert env._rng.bit_generator.state == rng_state


@pytest.mark.parametrize("seed", [-1, "5", [1, 2, 3], [1, -2]])
def test_vector_reset_rejects_bad_seeds(vec, seed):
    with pytest.raises(ValueError, match="reset seed must be"):
        vec.reset(seed=seed)


def test_vector_reset_accepts_numpy_integer_seeds(vec):
    vec.reset(seed=np.int64(3))
    vec.reset(seed=np.array([3, 4]))


# ------------------------------------------------------------------ protocols and feeder


def test_vertical_protocols_with_absurd_prices_or_weights_are_rejected_by_env():
    from heron.protocols import PriceSignalProtocol, SetpointProtocol

    with pytest.raises(ValueError, match="price_bounds .* outside the env's range"):
        MultiAgentMicrogrids({"vertical_protocol": PriceSignalProtocol(price_bounds=(0, 1e308))})
    with pytest.raises(ValueError, match="tracking_weight .* outside the env's range"):
        MultiAgentMicrogrids({"vertical_protocol": SetpointProtocol(tracking_weight=1e308)})


@pytest.mark.parametrize("kwargs, match", [
    ({"feeder_load_scale": True}, "feeder_load_scale must be"),
    ({"feeder_load_scale": 1e308}, "feeder_load_scale must be"),
    ({"pcc_kva": 1e308}, "PCC transformer rating .* kVA"),
])
def test_shared_feeder_spec_rejects_absurd_values(kwargs, match):
    from powergrid.networks.multi_microgrid import SharedFeederSpec

    with pytest.raises(ValueError, match=match):
        SharedFeederSpec(**kwargs).resolved(2)


def test_vector_env_accepts_numpy_integer_num_envs():
    assert VectorMicrogrids(np.int64(2), {"max_episode_steps": 2}).num_envs == 2


def test_order_book_refuses_a_string_as_its_agent_list():
    from heron.market import OrderBook

    with pytest.raises(TypeError, match="not the string 'MG1'"):
        OrderBook("MG1")
