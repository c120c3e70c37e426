"""The scenario registry: versioned ids, fixed configs, held-out test days."""

from __future__ import annotations

import numpy as np
import pytest

import powergrid
from powergrid.envs.days import held_out_days
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids
from powergrid.scenarios import TERMINAL_PRICE, Scenario, get


def test_registry_lists_versioned_ids():
    ids = list(powergrid.scenarios)
    assert {"p2p-2mg-v1", "p2p-3mg-v1", "p2p-5mg-v1", "p2p-10mg-v1", "price-2mg-v1"} <= set(ids)
    assert all(i.rsplit("-v", 1)[1].isdigit() for i in ids)
    assert "p2p-2mg-v1" in powergrid.scenarios and len(powergrid.scenarios) == len(ids)


@pytest.mark.parametrize("scenario_id, n", [("p2p-2mg-v1", 2), ("p2p-3mg-v1", 3),
                                            ("p2p-5mg-v1", 5), ("p2p-10mg-v1", 10),
                                            ("price-2mg-v1", 2)])
def test_make_builds_the_scenario_env(scenario_id, n):
    env = powergrid.make(scenario_id)
    assert isinstance(env, MultiAgentMicrogrids)
    assert len(env.possible_agents) == n
    assert env.config.storage_terminal_price == TERMINAL_PRICE > 0
    assert env.config.split == "train"


def test_p2p_2mg_is_the_seed_env_plus_terminal_value_and_split():
    seed_env = MultiAgentMicrogrids({"max_episode_steps": 24})
    env = powergrid.make("p2p-2mg-v1")
    assert env.config.replace(storage_terminal_price=0.0, split=None) == seed_env.config.replace(
        horizontal_protocol=env.config.horizontal_protocol)
    assert type(env.protocol) is type(seed_env.protocol)


def test_larger_scenarios_are_heterogeneous():
    env = powergrid.make("p2p-10mg-v1")
    kinds = {tuple(type(d).__name__ for d in m.devices) for m in env.config.microgrids}
    peaks = {m.peak_load_kw for m in env.config.microgrids}
    assert len(kinds) >= 4 and len(peaks) >= 8


def test_overrides_replace_config_keys():
    env = powergrid.make("p2p-3mg-v1", max_episode_steps=6, split=None)
    assert env.config.max_episode_steps == 6 and env.config.split is None


def test_make_vector_builds_the_batched_scenario_env():
    vec = powergrid.make_vector("p2p-5mg-v1", 3)
    assert isinstance(vec, VectorMicrogrids) and vec.num_envs == 3
    assert len(vec.possible_agents) == 5


def test_scenario_test_days_are_the_held_out_days():
    s = get("p2p-2mg-v1")
    assert s.test_days == held_out_days(365)
    assert not set(s.train_days) & set(s.test_days)
    assert len(s.train_days) + len(s.test_days) == 365


def test_training_resets_of_a_scenario_never_see_test_days():
    env = powergrid.make("p2p-2mg-v1", max_episode_steps=1)
    days = {env.reset(seed=s)[1]["MG1"]["start_day"] for s in range(300)}
    assert not days & set(get("p2p-2mg-v1").test_days)


def test_envs_of_one_scenario_do_not_share_protocol_state():
    a, b = powergrid.make("p2p-2mg-v1"), powergrid.make("p2p-2mg-v1")
    assert a.protocol is not b.protocol


def test_unknown_scenario_lists_ids_and_suggests_a_close_match():
    with pytest.raises(ValueError, match=r"did you mean 'p2p-2mg-v1'.*known scenarios"):
        powergrid.make("p2p-2mgv1")
    with pytest.raises(ValueError, match="p2p-10mg-v1"):
        powergrid.make("nonsense")


def test_scenario_id_must_carry_its_version():
    with pytest.raises(ValueError, match="must end with '-v2'"):
        Scenario("mine-v1", 2, "bad", {})


def test_scenarios_are_deterministic_under_a_seed():
    env = powergrid.make("p2p-3mg-v1")
    first = env.reset(seed=4, options={"split": "test"})[0]
    again = env.reset(seed=4, options={"split": "test"})[0]
    for a in first:
        np.testing.assert_array_equal(first[a], again[a])
