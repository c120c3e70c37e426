"""The trained policies shipped in powergrid/policies load without training and beat the rule."""

from __future__ import annotations

import numpy as np
import pytest

import powergrid
from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.policies import SHIPPED, LearnedPolicy, load_policy

DAYS = (0, 122, 212, 302)  # held-out test days across the seasons


def _team_cost(env, policy, day: int) -> float:
    costs, _ = run_episode(env, policy, seed=0, options={"start_day": day, "split": "test"})
    return sum(costs.values())


def test_shipped_mappo_costs_less_than_rule_based_on_test_days():
    pytest.importorskip("torch")
    env = powergrid.make("p2p-2mg-v1")
    learned = [_team_cost(env, LearnedPolicy(env, "mappo"), d) for d in DAYS]
    rule = [_team_cost(env, RuleBasedPolicy(env), d) for d in DAYS]
    assert np.mean(learned) < np.mean(rule)
    assert sum(a < b for a, b in zip(learned, rule)) >= 3


def test_every_shipped_policy_acts_within_the_action_space():
    pytest.importorskip("torch")
    env = powergrid.make("p2p-2mg-v1")
    obs, _ = env.reset(seed=0, options={"split": "test"})
    for name in SHIPPED:
        actions = load_policy(name)(env)(obs)
        for a in env.possible_agents:
            assert env.action_space(a).contains(actions[a]), (name, a, actions[a])


def test_shipped_policy_refuses_an_env_it_was_not_trained_for():
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="was trained on"):
        LearnedPolicy(powergrid.make("p2p-3mg-v1"), "mappo")


def test_unknown_policy_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="expected one of"):
        load_policy("dqn")


def test_runner_knows_the_shipped_policies_by_name():
    from powergrid.evaluation import BASELINES

    assert {"ppo", "mappo", "rllib"} <= set(BASELINES)
