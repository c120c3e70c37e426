"""The shared-feeder scenarios (p2p-2mg-v2, p2p-3mg-v2): registered, on IEEE-34, PettingZoo
compliant, held-out days, and the evaluation's violation KPI sees the feeder's limits."""

from __future__ import annotations

import pytest
from pettingzoo.test import parallel_api_test

import powergrid
from powergrid.baselines import RuleBasedPolicy
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.evaluation import Episode
from powergrid.evaluation.feeder import violations
from powergrid.scenarios import FEEDER_PCC_BUSES, get


@pytest.mark.parametrize("scenario_id, n", [("p2p-2mg-v2", 2), ("p2p-3mg-v2", 3)])
def test_v2_scenarios_put_their_microgrids_on_the_ieee34_feeder_at_the_dso_buses(scenario_id, n):
    env = powergrid.make(scenario_id)
    assert env.config.network == "ieee34"
    assert env.config.feeder.pcc_buses == FEEDER_PCC_BUSES[:n] == ("850", "858", "834")[:n]
    net = env.network.net
    for name, bus in zip(env.possible_agents, FEEDER_PCC_BUSES):
        hv = net.trafo.hv_bus.iloc[env.network.pcc_trafo_rows[name]]
        assert net.bus.at[hv, "name"] == f"IEEE34.{bus}"


@pytest.mark.parametrize("scenario_id", ["p2p-2mg-v1", "p2p-3mg-v1", "p2p-5mg-v1",
                                         "p2p-10mg-v1", "price-2mg-v1"])
def test_v1_scenarios_keep_the_tied_topology(scenario_id):
    assert get(scenario_id).config().get("network", "tied") == "tied"


def test_the_raw_env_default_stays_on_the_tied_topology():
    assert MultiAgentMicrogrids().config.network == "tied"


@pytest.mark.parametrize("scenario_id", ["p2p-2mg-v2", "p2p-3mg-v2"])
def test_v2_scenarios_pass_the_pettingzoo_parallel_api_test(scenario_id):
    parallel_api_test(powergrid.make(scenario_id, split="test"), num_cycles=30)


def test_make_with_the_test_split_resets_only_on_held_out_days():
    sc = get("p2p-3mg-v2")
    env = powergrid.make(sc.id, split="test", max_episode_steps=1)
    days = {env.reset(seed=s)[1]["MG1"]["start_day"] for s in range(8)}
    assert days <= set(sc.test_days)
    assert len(sc.test_days) == 52


def test_shared_feeder_scenarios_differ_from_v1_only_in_the_network_and_microgrids():
    v1, v2 = get("p2p-3mg-v1").config(), get("p2p-3mg-v2").config()
    assert type(v1.pop("horizontal_protocol")) is type(v2.pop("horizontal_protocol"))
    changed = {k for k in v1.keys() | v2.keys() if str(v1.get(k)) != str(v2.get(k))}
    assert changed == {"network", "feeder", "microgrids", "network_costs"}


def test_evaluation_episode_flags_a_step_whose_only_violation_is_a_pcc_overload():
    env = powergrid.make("p2p-3mg-v2", split="test", max_episode_steps=1)
    obs, _ = env.reset(seed=0, options={"start_day": 171})
    # hour 0 of the rule: every battery charges at the start of the night tariff
    _, _, _, _, infos = env.step(RuleBasedPolicy(env)(obs))
    mg = [infos[a] for a in env.microgrid_agents]
    assert all(i["voltage_violation_pu"] == 0 and i["line_loading_max_pct"] < 100 for i in mg)
    assert mg[0]["pcc_loading_max_pct"] > 100
    ep = Episode.from_infos(env.microgrid_agents, [infos], 1.0, env.config.voltage_band)
    assert ep.violation.tolist() == [True]


FEEDER_INFO = {"v_min_pu": 0.97, "v_max_pu": 1.03, "line_loading_max_pct": 40.0,
               "feeder_v_min_pu": 0.96, "feeder_v_max_pu": 1.06, "pcc_loading_max_pct": 101.0,
               "pf_converged": True}


def test_violations_judges_the_feeder_buses_against_the_band():
    assert violations({"MG1": FEEDER_INFO}, (0.95, 1.05)) == {
        "overvoltage": True, "undervoltage": False, "line": False, "pcc": True,
        "pf_failed": False}
    assert violations({"MG1": FEEDER_INFO}, (0.90, 1.10))["overvoltage"] is False


def test_violations_ignores_an_operator_agent_without_bus_metrics():
    hit = violations({"MG1": FEEDER_INFO, "DSO": {"costs": {}}}, (0.90, 1.10))
    assert hit["pcc"] and not hit["overvoltage"]
