"""Inverter reactive power (config key reactive_power; powergrid.devices.inverter)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import powergrid
from powergrid.devices import ESS, ESSParams, GeneratorParams, SolarParams, StepContext
from powergrid.devices.inverter import KVA_PER_KW, headroom_kvar, q_action
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids

SHARED = {"network": "ieee34", "microgrids": powergrid.scenarios["p2p-3mg-v2"].config()[
    "microgrids"], "feeder": powergrid.scenarios["p2p-3mg-v2"].config()["feeder"]}


def _steps(env, actions, n):
    env.reset(seed=0, options={"start_day": 170})
    return [env.step(actions(env, t)) for t in range(n)]


def _neutral(q: float):
    """Rule-like actions: 0 on every component, ``q`` on every reactive one."""
    def act(env, t):
        return {a: np.array([q if lab.endswith(".q") else 0.0
                             for lab in env.action_labels[a]], np.float32) for a in env.agents}
    return act


def test_reactive_power_is_off_by_default_and_labels_are_unchanged():
    env = MultiAgentMicrogrids()
    assert env.config.reactive_power is False
    assert env.action_labels["MG2"] == ("ess.p", "pv.curtail", "price")
    _, _, _, _, infos = _steps(env, _neutral(0.0), 1)[0]
    assert "q_kvar" not in infos["MG2"]["devices"]["pv"]


def test_each_inverter_gets_one_q_component_after_its_active_power_before_the_price():
    env = MultiAgentMicrogrids(reactive_power=True)
    assert env.action_labels == {"MG1": ("gen.p", "ess.p", "ess.q", "price"),
                                 "MG2": ("ess.p", "ess.q", "pv.curtail", "pv.q", "price")}
    assert env.action_space("MG2").shape == (5,)


def test_q_zero_reproduces_the_unity_power_factor_env_exactly():
    off = _steps(MultiAgentMicrogrids(SHARED), _neutral(0.0), 12)
    on = _steps(MultiAgentMicrogrids({**SHARED, "reactive_power": True}), _neutral(0.0), 12)
    for (_, r_off, *_, i_off), (_, r_on, *_, i_on) in zip(off, on):
        assert r_off == r_on
        assert i_on["MG2"]["devices"]["pv"]["q_kvar"] == 0.0
        assert i_on["MG2"]["v_max_pu"] == i_off["MG2"]["v_max_pu"]


def test_injecting_q_raises_and_absorbing_q_lowers_the_voltage():
    cfg = {**SHARED, "reactive_power": True}
    (_, _, _, _, up), = _steps(MultiAgentMicrogrids(cfg), _neutral(0.3), 1)
    (_, _, _, _, down), = _steps(MultiAgentMicrogrids(cfg), _neutral(-0.3), 1)
    (_, _, _, _, zero), = _steps(MultiAgentMicrogrids(cfg), _neutral(0.0), 1)
    for a in ("MG2", "MG3"):
        assert up[a]["devices"]["pv"]["q_kvar"] > 0 > down[a]["devices"]["pv"]["q_kvar"]
        assert up[a]["v_max_pu"] > zero[a]["v_max_pu"] > down[a]["v_max_pu"]
    assert up["MG1"]["feeder_v_max_pu"] > down["MG1"]["feeder_v_max_pu"]


@settings(max_examples=80, deadline=None)
@given(p=st.floats(-1.0, 1.0), q=st.floats(-1.0, 1.0), soc=st.floats(0.1, 0.9),
       kva=st.sampled_from([None, 150.0, 400.0]))
def test_the_q_action_stays_inside_the_kva_circle(p, q, soc, kva):
    ess = ESSParams(p_max_kw=150.0, soc_init=soc, s_kva=kva).build()
    ess.enable_reactive_power()
    ess.reset(np.random.default_rng(0))
    ess.step(np.array([p, q]), StepContext(12, 1.0, 0.5))
    s = ess.s_kva
    assert math.hypot(ess.p_kw, ess.q_kvar) <= s * (1 + 1e-12)
    assert ess.q_kvar == q * headroom_kvar(s, ess.p_kw)
    if headroom_kvar(s, ess.p_kw) > 0:
        assert q_action(s, ess.p_kw, ess.q_kvar) == pytest.approx(q, abs=1e-12)


def test_default_inverter_rating_is_oversized_over_the_rated_active_power():
    assert ESSParams(p_max_kw=150.0).build().s_kva == pytest.approx(KVA_PER_KW * 150.0)
    assert SolarParams(capacity_kw=300.0).build().s_kva == pytest.approx(KVA_PER_KW * 300.0)
    assert SolarParams(capacity_kw=300.0, inverter_kw=200.0).build().s_kva == pytest.approx(
        KVA_PER_KW * 200.0)
    assert SolarParams(s_kva=320.0, capacity_kw=300.0).build().s_kva == 320.0


def test_full_active_power_at_the_rating_leaves_no_reactive_power():
    pv = SolarParams(capacity_kw=100.0, s_kva=100.0).build()
    pv.enable_reactive_power()
    pv.reset(np.random.default_rng(0))
    pv.step(np.array([-1.0, 1.0]), StepContext(12, 1.0, 1.0))
    assert pv.p_kw == 100.0 and pv.q_kvar == 0.0


@pytest.mark.parametrize("kva, match", [(0.0, "s_kva"), (-5.0, "s_kva"), (math.nan, "s_kva"),
                                        (math.inf, "s_kva"), (149.0, "rated active power 150")])
def test_bad_inverter_ratings_are_refused_naming_the_field(kva, match):
    with pytest.raises(ValueError, match=match) as err:
        ESSParams(name="bat", p_max_kw=150.0, s_kva=kva)
    assert "'bat'" in str(err.value)
    with pytest.raises(ValueError, match="s_kva"):
        SolarParams(capacity_kw=150.0, s_kva=kva)


@pytest.mark.parametrize("q_kvar", [200.0, -200.0, math.nan, math.inf])
def test_a_setpoint_outside_the_circle_or_not_finite_is_refused_naming_the_device(q_kvar):
    ess = ESS(ESSParams(name="bat", p_max_kw=150.0, s_kva=165.0))
    ess.enable_reactive_power()
    ess.reset(np.random.default_rng(0))
    ess.step(np.array([1.0, 0.0]), StepContext(12, 1.0, 0.0))  # 150 kW: 68.7 kvar left
    with pytest.raises(ValueError, match="'bat'"):
        ess.set_reactive(q_kvar)
    assert ess.set_reactive(-60.0) == -60.0 and ess.q_kvar == -60.0


def test_a_setpoint_with_reactive_power_off_is_refused():
    pv = SolarParams(name="roof").build()
    with pytest.raises(ValueError, match="'roof' has reactive power off"):
        pv.set_reactive(1.0)


def test_a_generator_has_no_inverter():
    with pytest.raises(ValueError, match="no inverter"):
        GeneratorParams(name="diesel").build().enable_reactive_power()


@pytest.mark.parametrize("value", [1, "yes", None])
def test_reactive_power_must_be_a_bool(value):
    with pytest.raises(ValueError, match="reactive_power"):
        MultiAgentMicrogrids(reactive_power=value)


V3 = {k: v for k, v in powergrid.scenarios["p2p-3mg-v3"].config().items() if k != "split"}


@pytest.mark.parametrize("config", [SHARED, {}, V3], ids=["ieee34", "tied", "v3"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_vector_rows_reproduce_scalar_inverter_q_and_voltages(config, seed):
    """Also the network costs (in the rewards), which see Q through the solved state."""
    cfg = {**config, "reactive_power": True, "max_episode_steps": 6}
    B = 3
    vec = VectorMicrogrids(B, cfg)
    envs = [MultiAgentMicrogrids(cfg) for _ in range(B)]
    vec.reset(seed=seed)
    for i, e in enumerate(envs):
        e.reset(seed=seed + i)
    rng = np.random.default_rng(seed)
    for _ in range(cfg["max_episode_steps"]):
        acts = {a: rng.uniform(-1, 1, (B, *vec.single_action_space(a).shape))
                for a in vec.possible_agents}
        _, rew, _, _, info = vec.step(acts)
        for i, e in enumerate(envs):
            _, r, _, _, inf = e.step({a: acts[a][i] for a in e.agents})
            for k, a in enumerate(e.microgrid_agents):
                for bd, d in zip(vec.sim.devices[k], e.devices(a)):
                    assert bd.q_kvar[i] == d.q_kvar
                assert info[a]["v_max_pu"][i] == pytest.approx(inf[a]["v_max_pu"], abs=1e-9)
                assert rew[a][i] == pytest.approx(r[a], abs=1e-6)


def test_pandapower_env_sees_the_same_inverter_q():
    cfg = {**SHARED, "reactive_power": True}
    act = _neutral(0.7)
    fast = _steps(MultiAgentMicrogrids(cfg), act, 3)
    ref = _steps(MultiAgentMicrogrids({**cfg, "power_flow": "pandapower"}), act, 3)
    for (*_, i_fast), (*_, i_ref) in zip(fast, ref):
        for a in i_fast:
            assert i_fast[a]["v_max_pu"] == pytest.approx(i_ref[a]["v_max_pu"], abs=1e-6)
            assert i_fast[a]["v_min_pu"] == pytest.approx(i_ref[a]["v_min_pu"], abs=1e-6)


def test_p2p_3mg_v3_is_v2_with_reactive_power():
    v2, v3 = (powergrid.scenarios[i].config() for i in ("p2p-3mg-v2", "p2p-3mg-v3"))
    assert type(v2.pop("horizontal_protocol")) is type(v3.pop("horizontal_protocol"))
    assert v3.pop("reactive_power") is True and "reactive_power" not in v2
    assert {k: str(v) for k, v in v2.items()} == {k: str(v) for k, v in v3.items()}


def test_p2p_3mg_v3_passes_the_pettingzoo_parallel_api_test():
    from pettingzoo.test import parallel_api_test

    parallel_api_test(powergrid.make("p2p-3mg-v3", split="test"), num_cycles=30)


# ---------------------------------------------------------------- volt-var baseline
def test_category_b_curve_is_the_ieee_1547_default():
    from powergrid.baselines import CATEGORY_B

    v = np.array([0.90, 0.92, 0.95, 0.98, 1.0, 1.02, 1.05, 1.08, 1.10])
    np.testing.assert_allclose(CATEGORY_B(v), [0.44, 0.44, 0.22, 0, 0, 0, -0.22, -0.44, -0.44],
                               atol=1e-12)


@pytest.mark.parametrize("v, q", [((1.0,), (0.0,)), ((1.0, 0.9), (0.1, 0.0)),
                                  ((0.9, 1.1), (-0.2, 0.2)), ((0.9, 1.1), (2.0, 0.0)),
                                  ((0.9, math.nan), (0.1, 0.0))])
def test_a_bad_volt_var_curve_is_refused(v, q):
    from powergrid.baselines import VoltVarCurve

    with pytest.raises(ValueError, match="VoltVarCurve"):
        VoltVarCurve(v, q)


def test_volt_var_is_the_rule_without_reactive_power():
    from powergrid.baselines import RuleBasedPolicy, VoltVarPolicy

    env = powergrid.make("p2p-3mg-v2", split="test")
    obs, _ = env.reset(seed=0, options={"start_day": 244})
    rule, vv = RuleBasedPolicy(env), VoltVarPolicy(env)
    while env.agents:
        a_rule, a_vv = rule(obs), vv(obs)
        assert all(np.array_equal(a_rule[a], a_vv[a]) for a in a_rule)
        obs, *_ = env.step(a_vv)


def _day(policy_type, day=244):
    env = powergrid.make("p2p-3mg-v3", split="test", load_noise_std=0.0)
    policy = policy_type(env)
    obs, _ = env.reset(seed=0, options={"start_day": day})
    steps = []
    while env.agents:
        action = policy(obs)
        obs, _, _, _, infos = env.step(action)
        steps.append((action, infos, getattr(policy, "iterations", 0)))
    return env, steps


def test_volt_var_absorbs_when_high_injects_when_low_and_lowers_the_peak_voltage():
    from powergrid.baselines import RuleBasedPolicy, VoltVarPolicy

    _, rule = _day(RuleBasedPolicy)
    env, vv = _day(VoltVarPolicy)
    peak = [max(i[a]["v_max_pu"] for a in env.microgrid_agents) for _, i, _ in rule]
    assert max(peak) > 1.05  # the rule over-volts on this day
    assert max(max(i[a]["v_max_pu"] for a in env.microgrid_agents) for _, i, _ in vv) < max(peak)
    q = [i["MG2"]["devices"]["pv"]["q_kvar"] for _, i, _ in vv]
    v = [i["MG2"]["v_max_pu"] for _, i, _ in vv]
    assert all(qk < 0 for qk, vk in zip(q, v) if vk > 1.03)
    assert all(qk > 0 for qk, vk in zip(q, [i["MG2"]["v_min_pu"] for _, i, _ in vv]) if vk < 0.97)
    assert all(0 < it < 60 for _, _, it in vv)  # the fixed point converged every step


def test_volt_var_rests_at_unity_power_factor_inside_the_deadband():
    from powergrid.baselines import VoltVarPolicy

    env, vv = _day(VoltVarPolicy, day=171)
    quiet = [i for _, i, _ in vv
             if all(0.985 < i[a]["v_min_pu"] and i[a]["v_max_pu"] < 1.015
                    for a in env.microgrid_agents)]
    assert quiet
    for i in quiet:
        assert all(abs(i[a]["devices"][d]["q_kvar"]) < 1.0
                   for a in ("MG2", "MG3") for d in ("ess", "pv"))
