"""IEEE-34 feeder, the shared-feeder multi-microgrid topology and the env on it."""

from __future__ import annotations

import functools

import numpy as np
import pandapower as pp
import pytest

import powergrid
from powergrid.baselines import RuleBasedPolicy
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids
from powergrid.evaluation.feeder import FlatExchangePolicy, violations
from powergrid.networks import (
    DEFAULT_PCC_BUSES,
    FeederDevice,
    SharedFeederSpec,
    create_ieee34,
    create_shared_feeder,
)
from powergrid.networks.ieee34 import MILE_KM, PUBLISHED_VM_PU, line_config_per_km
from powergrid.pf import FastSolver, PandapowerSolver
from tests.conftest import random_actions

RNG = np.random.default_rng(0)
FEEDERS = (
    ("MG1", 0.1, (FeederDevice("gen", "675", "sgen"), FeederDevice("ess", "671", "storage"))),
    ("MG2", 0.08, (FeederDevice("ess", "692", "storage"), FeederDevice("pv", "680", "sgen"))),
    ("MG3", 0.08, (FeederDevice("pv", "680", "sgen"),)),
)
IEEE34_ENV = {
    "network": "ieee34", "max_episode_steps": 24,
    "microgrids": [
        {"name": "MG1", "devices": [{"type": "ess"}], "peak_load_kw": 300.0},
        {"name": "MG2", "devices": [{"type": "ess", "bus": "692"},
                                    {"type": "solar", "capacity_kw": 300.0}],
         "peak_load_kw": 250.0, "load_profile": "residential"},
    ],
    "feeder": {"pcc_kva": 400.0, "vm_source_pu": 1.0, "reg_taps": (0, 0),
               "feeder_load_scale": 0.3},
}


def names(net: pp.pandapowerNet) -> list[str]:
    return [n.split(".", 1)[1] for n in net.bus["name"]]


def test_positive_sequence_of_config_300_is_self_minus_mutual_of_the_published_matrix():
    r, x, c, imax = line_config_per_km("300")
    # published 300: Z_self ~ 1.3300 + j1.3461, Z_mutual ~ 0.2099 + j0.5128 ohm/mile
    assert r * MILE_KM == pytest.approx(1.1201, abs=2e-4)
    assert x * MILE_KM == pytest.approx(0.8333, abs=2e-4)
    assert c > 0 and imax == pytest.approx(0.230)


def test_ieee34_converges_at_base_load_near_the_published_main_line_voltages():
    net = create_ieee34()
    pp.runpp(net)
    vm = dict(zip(names(net), net.res_bus["vm_pu"]))
    for bus, published in PUBLISHED_VM_PU.items():
        if bus != "890":  # behind XFM-1, constant-current load in the published case
            assert abs(vm[bus] - published) < 0.01, bus
    assert abs(vm["890"] - PUBLISHED_VM_PU["890"]) < 0.03
    assert net.res_load["p_mw"].sum() * 1e3 == pytest.approx(1769.0)


@functools.cache
def shared() -> tuple:
    mg = create_shared_feeder(FEEDERS)
    return mg, FastSolver(mg.net), PandapowerSolver(mg.net)


def test_shared_feeder_attaches_each_microgrid_at_its_default_bus_through_a_rated_pcc():
    mg, _, _ = shared()
    net = mg.net
    for name, bus in zip(("MG1", "MG2", "MG3"), DEFAULT_PCC_BUSES):
        tr = net.trafo.iloc[mg.pcc_trafo_rows[name]]
        assert net.bus.at[tr.hv_bus, "name"] == f"IEEE34.{bus}"
        assert net.bus.at[tr.lv_bus, "name"] == f"{name}.650"
        assert tr.sn_mva == pytest.approx(1.0)
    # feeder rows first, then one contiguous block per microgrid, as the env's maps expect
    assert list(mg.feeder_bus_rows) == list(range(len(mg.feeder_bus_rows)))
    blocks = np.concatenate([mg.bus_rows[n] for n in mg.names])
    assert list(blocks) == list(range(len(mg.feeder_bus_rows), len(net.bus)))


def test_shared_feeder_supports_ten_microgrids_with_default_buses():
    feeders = [(f"MG{i}", 0.02, ()) for i in range(10)]
    mg = create_shared_feeder(feeders, SharedFeederSpec(feeder_load_scale=0.3,
                                                        vm_source_pu=1.0, reg_taps=(0, 0)))
    pp.runpp(mg.net)
    assert len(set(mg.pcc_trafo_rows.values())) == 10


@pytest.mark.parametrize("spec, match", [
    ({"pcc_buses": ("850", "999", "834")}, "'999' is not a 24.9 kV bus"),
    ({"pcc_buses": ("850", "850", "834")}, r"two microgrids on one PCC bus \['850'\]"),
    ({"pcc_kva": (1000.0, 0.0, 500.0)}, "rating at bus '858' must be a finite kVA > 0"),
    ({"pcc_kva": -5.0}, "must be a finite kVA > 0"),
    ({"pcc_kva": (400.0, float("nan"), 200.0)}, "rating at bus '858' must be a finite kVA"),
    ({"pcc_kva": float("inf")}, "must be a finite kVA > 0"),
    ({"pcc_buses": ("850", "858")}, "one entry per microgrid"),
    ({"pcc_kva": (400.0, 200.0)}, "one entry per microgrid"),
], ids=["unknown bus", "two microgrids on one bus", "zero rating", "negative rating",
        "NaN rating", "infinite rating", "too few buses", "too few ratings"])
def test_shared_feeder_rejects_bad_pcc_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        create_shared_feeder(FEEDERS, SharedFeederSpec(**spec))


def test_fast_solver_matches_runpp_on_the_shared_feeder_with_reactive_injections():
    mg, fast, ref = shared()
    rng = np.random.default_rng(0)
    p0, q0 = mg.net.load["p_mw"].to_numpy(), mg.net.load["q_mvar"].to_numpy()
    for _ in range(8):
        k = rng.uniform(0.1, 0.6, len(p0))
        args = (p0 * k, q0 * k, rng.uniform(0, 0.3, fast.n_sgen),
                rng.uniform(-0.1, 0.1, fast.n_storage))
        q = {"sgen_q_mvar": rng.uniform(-0.1, 0.1, fast.n_sgen),
             "storage_q_mvar": rng.uniform(-0.05, 0.05, fast.n_storage)}
        a, b = fast.solve(*args, **q), ref.solve(*args, **q)
        assert a.converged and b.converged
        np.testing.assert_allclose(a.vm_pu, b.vm_pu, atol=1e-6, rtol=0)
        np.testing.assert_allclose(a.trafo_loading_percent, b.trafo_loading_percent, atol=1e-3,
                                   rtol=0)
        np.testing.assert_allclose(a.losses_mw, b.losses_mw, atol=1e-4, rtol=0)


def test_sgen_reactive_injection_raises_voltage_at_its_bus():
    mg, fast, _ = shared()
    bus = mg.net.sgen["bus"].iloc[0]
    row = mg.net.bus.index.get_loc(bus)
    base = fast.solve().vm_pu[row]
    q = np.zeros(fast.n_sgen)
    q[0] = 0.2
    assert fast.solve(sgen_q_mvar=q).vm_pu[row] > base + 1e-3


def test_env_on_ieee34_reports_feeder_metrics_and_keeps_own_feeder_metrics():
    env = MultiAgentMicrogrids(IEEE34_ENV)
    env.reset(seed=0, options={"start_day": 172})
    v_ranges = []
    while env.agents:
        _, _, _, _, infos = env.step(random_actions(env, RNG))
        info = infos["MG2"]
        assert info["pf_converged"]
        assert info["feeder_v_min_pu"] <= info["feeder_v_max_pu"]
        assert info["pcc_loading_max_pct"] >= max(i["pcc_loading_pct"] for i in infos.values())
        assert info["v_min_pu"] <= info["v_max_pu"]
        v_ranges.append(info["feeder_v_max_pu"] - info["feeder_v_min_pu"])
    assert max(v_ranges) > 0.01  # a real feeder: voltages differ along it


def test_own_feeder_voltage_range_is_the_solved_voltages_of_its_buses():
    # the pandapower backend keeps its solved net: the infos must be its MG2 bus voltages
    env = MultiAgentMicrogrids({**IEEE34_ENV, "power_flow": "pandapower", "max_episode_steps": 3})
    env.reset(seed=0, options={"start_day": 172})
    net, rows = env.solver.net, env.network.bus_rows["MG2"]
    while env.agents:
        _, _, _, _, infos = env.step(random_actions(env, RNG))
        vm = net.res_bus["vm_pu"].reindex(net.bus.index).to_numpy()[rows]
        assert infos["MG2"]["v_min_pu"] == pytest.approx(vm.min(), abs=1e-9)
        assert infos["MG2"]["v_max_pu"] == pytest.approx(vm.max(), abs=1e-9)


def test_default_tied_network_reports_the_115kv_bus_as_the_feeder():
    env = MultiAgentMicrogrids({"max_episode_steps": 2})
    env.reset(seed=1)
    _, _, _, _, infos = env.step(random_actions(env, RNG))
    assert infos["MG1"]["feeder_v_min_pu"] == pytest.approx(1.02)
    assert 0 < infos["MG1"]["pcc_loading_pct"] < 100


@pytest.mark.parametrize("cfg, match", [
    ({"network": "ieee123"}, "config key 'network'"),
    ({"feeder": {"pcc_kva": 500.0}}, "config key 'feeder'"),
    ({"network": "ieee34", "feeder": {"pcc_buses": ("850", "850")}}, "two microgrids"),
    ({"network": "ieee34", "feeder": {"pcc_kva": 0}}, "kVA > 0"),
    ({"network": "ieee34", "feeder": {"pcc_busses": ("850", "858")}}, "did you mean 'pcc_buses'"),
])
def test_env_config_rejects_bad_network_settings(cfg, match):
    with pytest.raises(ValueError, match=match):
        MultiAgentMicrogrids(cfg)


def test_vector_env_steps_the_shared_feeder_like_scalar_envs():
    vec = VectorMicrogrids(2, IEEE34_ENV)
    envs = [MultiAgentMicrogrids(IEEE34_ENV) for _ in range(2)]
    obs_v, _ = vec.reset(seed=0)
    obs_s = [e.reset(seed=i)[0] for i, e in enumerate(envs)]
    rng = np.random.default_rng(0)
    for _ in range(6):
        for i, o in enumerate(obs_s):
            for a in vec.possible_agents:
                np.testing.assert_allclose(obs_v[a][i], o[a], atol=1e-6)
        acts = {a: rng.uniform(-1, 1, (2, *vec.single_action_space(a).shape))
                for a in vec.possible_agents}
        obs_v, rew_v, _, _, info_v = vec.step(acts)
        for i, env in enumerate(envs):
            obs_s[i], rew, _, _, info = env.step({a: acts[a][i] for a in env.agents})
            for a in vec.possible_agents:
                assert rew_v[a][i] == pytest.approx(rew[a], abs=1e-6)
                assert info_v[a]["upstream_import_kw"][i] == pytest.approx(
                    info[a]["upstream_import_kw"], abs=1e-6)


def stress_day(policy_cls, day: int) -> set[str]:
    env = powergrid.make("p2p-3mg-v2", split="test")
    policy = policy_cls(env)
    obs, _ = env.reset(seed=0, options={"start_day": day})
    kinds: set[str] = set()
    while env.agents:
        obs, _, _, _, infos = env.step(policy(obs))
        kinds |= {k for k, hit in violations(infos, env.config.voltage_band).items() if hit}
    return kinds


@pytest.mark.parametrize("day", [171, 253])  # a summer and an autumn test day
def test_shared_feeder_scenario_binds_under_rule_based_and_a_flat_schedule_avoids_it(day):
    assert "pcc" in stress_day(RuleBasedPolicy, day)
    assert stress_day(FlatExchangePolicy, day) == set()
