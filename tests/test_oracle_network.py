"""The oracle on the shared IEEE-34 feeder: linearised limits, replayed in the AC env."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from benchmarks.feeder_stress import STRESSED_FEEDER
from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.evaluation import optimum

# a stressed day: the network-blind optimum overloads a PCC transformer in the AC replay
DAY = 80
V_TOLERANCE_PU = 1e-3  # documented: |V_lin - V_ac| at the optimum (measured ~1e-4)


@functools.cache
def solved(limits: str):
    return optimum(STRESSED_FEEDER, DAY, seed=0, limits=limits)


def replayed_cost(result) -> float:
    env = MultiAgentMicrogrids(STRESSED_FEEDER)
    env.reset(seed=result.seed, options={"start_day": result.day})
    total = 0.0
    for step in result.actions:
        _, rewards, _, _, _ = env.step(step)
        total -= sum(rewards.values())
    return total


def test_the_network_blind_optimum_violates_a_limit_on_the_stressed_day():
    blind = solved("none")
    assert blind.network.limits == "none"
    assert blind.network.violation_steps >= 1


def test_the_network_aware_optimum_meets_every_limit_in_the_ac_replay():
    aware = solved("hard")
    assert aware.network.violation_steps == 0, aware.network.violations
    assert aware.safety_penalty == 0.0
    assert aware.network.pcc_loading_max_pct <= 100.0
    lo, hi = MultiAgentMicrogrids(STRESSED_FEEDER).config.voltage_band
    assert lo <= aware.network.v_range_pu[0] <= aware.network.v_range_pu[1] <= hi


def test_hard_limits_are_the_default_on_the_shared_feeder():
    assert solved("hard").network.limits == "hard"
    assert optimum(STRESSED_FEEDER, DAY, seed=0).network.violation_steps == 0


def test_network_aware_optimum_costs_no_more_than_the_rule_based_policy():
    env = MultiAgentMicrogrids(STRESSED_FEEDER)
    rule, _ = run_episode(env, RuleBasedPolicy(env), seed=0, options={"start_day": DAY})
    assert solved("hard").cost <= sum(rule.values())


def test_linear_voltages_are_close_to_ac_at_the_optimum():
    report = solved("hard").network
    assert report.linearisations >= 1  # the limits were modelled, not just met by luck
    assert report.v_error_max_pu <= V_TOLERANCE_PU


def test_the_reported_cost_is_the_ac_env_cost_of_the_actions():
    result = solved("hard")
    assert replayed_cost(result) == pytest.approx(result.cost, abs=1e-6)


def test_model_cost_and_replay_differ_only_by_the_network_penalty():
    result = solved("hard")
    model_without_network = result.model_cost - result.network.model_penalty
    assert result.cost - result.safety_penalty == pytest.approx(model_without_network, abs=1e-6)


def test_the_network_aware_optimum_keeps_the_flows_within_the_linear_limits():
    # the linear model's PCC loading is within its hard limit (100 % less the margin)
    report = solved("hard").network
    assert report.model_violation == 0.0
    assert report.loading_error_max_pct < 1.0


@pytest.mark.slow
def test_penalty_mode_pays_no_more_than_the_blind_optimum_on_an_undervoltage_day():
    # day 0: the blind optimum sags a bus below the band and pays the env's penalty
    blind = optimum(STRESSED_FEEDER, 0, seed=0, limits="none")
    priced = optimum(STRESSED_FEEDER, 0, seed=0, limits="penalty")
    assert blind.safety_penalty > 0.0
    assert priced.cost < blind.cost
    assert priced.safety_penalty < blind.safety_penalty


@pytest.mark.parametrize("limits", ["soft", "", "Hard"])
def test_unknown_limits_raise_value_error_naming_them(limits):
    with pytest.raises(ValueError, match="limits"):
        optimum(STRESSED_FEEDER, DAY, limits=limits)


def test_tied_network_has_no_network_report_and_stays_exact():
    result = optimum({"max_episode_steps": 24}, 10, seed=0)
    assert result.network is None
    assert result.model_cost == pytest.approx(result.cost, abs=1e-6)


def test_actions_are_valid_for_the_action_spaces_on_the_shared_feeder():
    env = MultiAgentMicrogrids(STRESSED_FEEDER)
    for step in solved("hard").actions:
        for a, act in step.items():
            assert act.shape == env.action_space(a).shape
            assert np.all(np.abs(act) <= 1.0)


@pytest.mark.slow
def test_a_day_no_plan_can_meet_is_solved_with_priced_limits_and_reported():
    # PCC transformers far below the residential microgrids' evening load
    import dataclasses

    config = {**STRESSED_FEEDER,
              "feeder": dataclasses.replace(STRESSED_FEEDER["feeder"],
                                            pcc_kva=(400.0, 60.0, 60.0))}
    result = optimum(config, DAY, seed=0)
    assert result.network.model_violation > 0.0
    assert result.network.violations["pcc"] > 0
    assert replayed_cost(result) == pytest.approx(result.cost, abs=1e-6)
