"""The oracle on the shared IEEE-34 feeder: linearised limits, replayed in the AC env."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from powergrid import scenarios
from powergrid.baselines import RuleBasedPolicy, run_episode
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.evaluation import optimum, replay_cost
from powergrid.network_costs import NETWORK_COST_TERMS
from powergrid.scenarios import shared_feeder_config

# p2p-3mg-v2's network and microgrids alone (as benchmarks/feeder_stress.py sizes them)
STRESSED_FEEDER = shared_feeder_config(3)
# a stressed day: the network-blind optimum overloads a PCC transformer in the AC replay
DAY = 80
V_TOLERANCE_PU = 1e-3  # documented: |V_lin - V_ac| at the optimum (measured ~1e-4)


@functools.cache
def solved(limits: str):
    return optimum(STRESSED_FEEDER, DAY, seed=0, limits=limits)


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
    assert replay_cost(STRESSED_FEEDER, result) == pytest.approx(result.cost, abs=1e-6)


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
    assert replay_cost(STRESSED_FEEDER, result) == pytest.approx(result.cost, abs=1e-6)


# ---------------------------------------------------------------------- network costs
V2 = {**scenarios.get("p2p-2mg-v2").config(), "split": None}  # network_costs=True
V2_DAY = 80


@functools.cache
def on_v2(network_costs: bool):
    return optimum(V2, V2_DAY, seed=0, network_costs=network_costs)


def test_network_costs_are_priced_by_default_when_the_config_charges_them():
    assert optimum(V2, V2_DAY, seed=0).cost == pytest.approx(on_v2(True).cost, abs=1e-9)


def test_pricing_the_network_costs_lowers_the_replayed_cost_on_a_v2_day():
    priced, blind = on_v2(True), on_v2(False)
    assert priced.cost < blind.cost
    assert priced.network.network_cost < blind.network.network_cost
    assert priced.network.violation_steps == 0


def test_the_network_cost_aware_optimum_costs_no_more_than_the_rule_based_policy_on_v2():
    env = MultiAgentMicrogrids(V2)
    rule, _ = run_episode(env, RuleBasedPolicy(env), seed=0, options={"start_day": V2_DAY})
    assert on_v2(True).cost <= sum(rule.values())


def test_the_replayed_network_costs_are_reported_and_close_to_the_model():
    result = on_v2(True)
    report = result.network
    assert report.network_cost == pytest.approx(
        sum(result.cost_terms[k] for k in NETWORK_COST_TERMS), abs=1e-9)
    assert report.network_cost > 0.0
    assert abs(report.model_network_cost - report.network_cost) <= 0.05 * report.network_cost
    assert replay_cost(V2, result) == pytest.approx(result.cost, abs=1e-6)


def test_network_cost_blind_optimum_models_none_but_the_replay_charges_them():
    report = on_v2(False).network
    assert report.model_network_cost == 0.0
    assert report.network_cost > 0.0


def test_pricing_network_costs_the_config_does_not_charge_raises_value_error():
    with pytest.raises(ValueError, match="network_costs"):
        optimum({**V2, "network_costs": False}, V2_DAY, network_costs=True)
