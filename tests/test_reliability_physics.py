"""Issue 13 (part A): the env never reports made-up physics, never hides a broken device, and
behaves for any time step; each test is one behaviour, with the issue's reproducer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pettingzoo.test import render_test
from pettingzoo.utils.conversions import parallel_to_aec

from powergrid.devices import DeviceParams, PowerDevice
from powergrid.envs.config import default_microgrids
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids


def zeros(env):
    return {a: np.zeros(env.action_space(a).shape, np.float32) for a in env.agents}


# --------------------------------------------------------------------------- custom devices
@dataclasses.dataclass(frozen=True)
class BrokenParams(DeviceParams):
    """A custom device whose step output, cost or observation can be NaN."""

    name: str = "broken"
    bus: str = "675"
    bad: str = "power"  # "power" | "cost" | "observation"

    def build(self) -> Broken:
        return Broken(self)


class Broken(PowerDevice):
    action_labels, obs_labels = ("u",), ("broken_state",)

    def __init__(self, params: BrokenParams) -> None:
        super().__init__(params.name, params.bus)
        self.params = params

    def reset(self, rng) -> None:
        self.p_kw, self.cost, self.clipped = 0.0, 0.0, False

    def step(self, action, ctx) -> float:
        self.p_kw = float("nan") if self.params.bad == "power" else 0.0
        self.cost = float("nan") if self.params.bad == "cost" else 0.0
        return self.p_kw

    def observe(self) -> tuple[float, ...]:
        return (float("nan") if self.params.bad == "observation" else 0.0,)


def env_with_broken(bad: str) -> MultiAgentMicrogrids:
    mg1, mg2 = default_microgrids()
    mg2 = dataclasses.replace(mg2, devices=(*mg2.devices, BrokenParams(bad=bad)))
    return MultiAgentMicrogrids(microgrids=[mg1, mg2], start_day=172, max_episode_steps=4)


@pytest.mark.parametrize("bad, what", [("power", "p_kw=nan"), ("cost", "cost=nan")])
def test_custom_device_returning_nan_raises_naming_device_and_agent(bad, what):
    env = env_with_broken(bad)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=f"device 'broken'.*agent 'MG2'.*{what}"):
        env.step(zeros(env))


def test_custom_device_observing_nan_raises_instead_of_reporting_zero():
    env = env_with_broken("observation")
    with pytest.raises(ValueError, match="device 'broken'.*agent 'MG2'.*broken_state"):
        env.reset(seed=0)


# --------------------------------------------------------------------------- before reset
def test_state_before_reset_raises_the_same_clear_error_as_step():
    env = MultiAgentMicrogrids()
    with pytest.raises(RuntimeError, match=r"reset\(\)"):
        env.state()
    with pytest.raises(RuntimeError, match=r"reset\(\)"):
        env.step({})


def test_render_and_devices_work_before_reset():
    env = MultiAgentMicrogrids(render_mode="ansi")
    assert "MG1" in env.render() and "MG2" in env.render()
    assert [d.name for d in env.devices("MG1")] == ["gen", "ess"]


def test_state_of_a_finished_episode_is_its_final_state():
    env = MultiAgentMicrogrids(max_episode_steps=2, start_day=3)
    env.reset(seed=0)
    while env.agents:
        obs, *_ = env.step(zeros(env))
    assert env.state().shape == env.state_space.shape
    assert obs.keys() == {"MG1", "MG2"}


# --------------------------------------------------------------------------- render
def test_human_render_prints_and_returns_none(capsys):
    env = MultiAgentMicrogrids(render_mode="human", max_episode_steps=2)
    env.reset(seed=0)
    env.step(zeros(env))
    printed = capsys.readouterr().out
    assert "MG1" in printed
    assert env.render() is None
    assert "MG1" in capsys.readouterr().out


def test_pettingzoo_render_test_passes_for_every_render_mode():
    render_test(lambda render_mode: parallel_to_aec(
        MultiAgentMicrogrids(render_mode=render_mode, max_episode_steps=24)))


# --------------------------------------------------------------------------- time steps
WEEK_H = 168
START_DAY = 172


def week_env(dt: float, **cfg) -> tuple[MultiAgentMicrogrids, int]:
    steps = int(np.ceil(WEEK_H / dt - 1e-9))
    env = MultiAgentMicrogrids(dt_hours=dt, max_episode_steps=steps, start_day=START_DAY,
                               load_noise_std=0.0, **cfg)
    env.reset(seed=0)
    return env, steps


def minute_integral(hourly_by_day: np.ndarray, hours: float) -> float:
    """Independent reference: the hourly step function sampled per minute, summed (kWh)."""
    minutes = np.repeat(np.roll(hourly_by_day, -START_DAY, axis=0).ravel(), 60)
    return float(minutes[:round(hours * 60)].sum() / 60)


@pytest.mark.parametrize("dt", [0.5, 0.7, 1.0, 2.0, 3.0, 5.0, 24.0])
def test_pv_and_load_energy_per_step_is_the_integral_of_the_hourly_profiles(dt):
    env, steps = week_env(dt)
    pv_kwh = load_kwh = 0.0
    while env.agents:
        _, _, _, _, infos = env.step(zeros(env))
        pv_kwh += infos["MG2"]["devices"]["pv"]["available_kw"] * dt
        load_kwh += infos["MG1"]["load_kw"] * dt
    capacity = env.devices("MG2")[1].params.capacity_kw
    want_pv = capacity * minute_integral(env.profiles.pv_per_kw, steps * dt)
    want_load = 1000.0 * minute_integral(env.profiles.load("commercial"), steps * dt)
    assert want_pv > 0
    assert pv_kwh == pytest.approx(want_pv, rel=1e-9)
    assert load_kwh == pytest.approx(want_load, rel=1e-9)


@pytest.mark.parametrize("dt", [0.7, 2.0, 5.0])
def test_forecast_features_are_the_next_steps_mean(dt):
    env, _ = week_env(dt)
    labels = env.obs_labels["MG2"]
    obs, _ = env.reset(seed=0)
    for _ in range(12):
        prev = obs["MG2"]
        obs, *_ = env.step(zeros(env))
        for now, nxt in (("pv_now", "pv_next"), ("load_now", "load_next")):
            assert prev[labels.index(nxt)] == obs["MG2"][labels.index(now)]


def test_tariff_of_a_step_is_the_time_mean_of_the_hourly_tariff():
    retail = [0.10 + 0.01 * h for h in range(24)]
    env = MultiAgentMicrogrids(dt_hours=0.7, max_episode_steps=40, start_day=0,
                               retail_price=retail, feed_in_price=0.0)
    env.reset(seed=0)
    seen = [env.step(zeros(env))[4]["MG1"]["retail_price"] for _ in range(3)]
    # steps cover [0, 0.7), [0.7, 1.4), [1.4, 2.1) hours
    assert seen == pytest.approx([0.10, (0.3 * 0.10 + 0.4 * 0.11) / 0.7,
                                  (0.6 * 0.11 + 0.1 * 0.12) / 0.7], rel=1e-12)


def test_hour_labels_are_exact_for_fractional_steps():
    env = MultiAgentMicrogrids(dt_hours=0.7, max_episode_steps=100, start_day=10)
    env.reset(seed=0)
    infos = [env.step(zeros(env))[4]["MG1"] for _ in range(100)]
    assert (infos[90]["day"], infos[90]["hour"]) == (12, 15)  # t = 63 h = day +2, 15:00
    want = [int(np.floor(round(t * 7 / 10, 9))) for t in range(100)]
    assert [i["hour"] + 24 * (i["day"] - 10) for i in infos] == want


def test_daily_steps_see_the_sun():
    env, _ = week_env(24.0)
    pv = [env.step(zeros(env))[4]["MG2"]["devices"]["pv"]["available_kw"] for _ in range(7)]
    assert min(pv) > 0


# --------------------------------------------------------------------------- power-flow failure
NOON = 12


def stressed_env(peak_kw: float, power_flow: str = "fast") -> MultiAgentMicrogrids:
    mg1, mg2 = default_microgrids()
    return MultiAgentMicrogrids(microgrids=[dataclasses.replace(mg1, peak_load_kw=peak_kw), mg2],
                                start_day=172, max_episode_steps=NOON + 1, power_flow=power_flow)


def run_to_noon(peak_kw: float, power_flow: str = "fast"):
    """The issue's reproducer: MG1's peak load scaled up, neutral actions until 12:00."""
    env = stressed_env(peak_kw, power_flow)
    env.reset(seed=0)
    steps = [env.step(zeros(env)) for _ in range(NOON + 1)]
    obs, rewards, _, _, infos = steps[-1]
    return env, obs, rewards, infos, [s[4] for s in steps]


def test_failed_power_flow_reports_a_collapse_state_not_the_no_load_voltages():
    _, _, _, healthy, _ = run_to_noon(9_000)
    env, obs, _, infos, history = run_to_noon(10_000)
    info = infos["MG1"]
    assert healthy["MG1"]["pf_converged"] and not info["pf_converged"]
    assert info["v_min_pu"] < healthy["MG1"]["v_min_pu"] < 1.0
    lo, hi = env.config.voltage_band
    assert info["v_min_pu"] < lo and info["v_max_pu"] > hi  # outside the band: trouble
    assert info["voltage_violation_pu"] > 0 and info["line_loading_max_pct"] > 100.0
    labels = env.obs_labels["MG1"]
    assert obs["MG1"][labels.index("v_min_pu")] == pytest.approx(info["v_min_pu"])
    last_converged = [h["MG1"] for h in history if h["MG1"]["pf_converged"]][-1]
    assert info["v_min_pu"] <= last_converged["v_min_pu"]
    assert info["network_losses_kw"] == last_converged["network_losses_kw"] >= 0.0


def test_failed_power_flow_reports_upstream_import_by_energy_balance():
    env, _, _, infos, _ = run_to_noon(10_000)
    demand = -sum(i["net_kw"] for i in infos.values())
    losses = infos["MG1"]["network_losses_kw"]
    assert infos["MG1"]["upstream_import_kw"] == pytest.approx(demand + losses)
    assert env.state()[-2:] == pytest.approx(
        np.float32([(demand + losses) / 1e3, losses / 1e3]))


def test_failure_penalty_exceeds_every_converged_penalty_and_grows_with_stress():
    runs = [(run_to_noon(peak)[3]["MG1"]) for peak in
            (5_000, 8_000, 9_000, 9_500, 9_800, 10_000, 12_000, 20_000)]
    converged = [i["costs"]["safety_penalty"] for i in runs if i["pf_converged"]]
    failed = [i["costs"]["safety_penalty"] for i in runs if not i["pf_converged"]]
    assert len(converged) >= 4 and len(failed) >= 3
    assert min(failed) > max(converged)
    assert failed == sorted(failed) and len(set(failed)) == len(failed)


def test_fast_and_pandapower_give_the_same_rewards_and_infos_on_failed_steps():
    keys = ("pf_converged", "v_min_pu", "v_max_pu", "line_loading_max_pct",
            "voltage_violation_pu", "network_losses_kw", "upstream_import_kw")
    for peak in (10_000, 20_000):
        _, _, r_fast, i_fast, _ = run_to_noon(peak, "fast")
        _, _, r_pp, i_pp, _ = run_to_noon(peak, "pandapower")
        assert not i_fast["MG1"]["pf_converged"]
        for a in r_fast:
            assert r_fast[a] == pytest.approx(r_pp[a], abs=1e-6)
            for k in keys:
                assert i_fast[a][k] == pytest.approx(i_pp[a][k], abs=1e-6), (a, k)


def test_failure_bound_of_a_default_feeder_is_the_documented_1025_dollars():
    from powergrid.envs.safety import FailureRule

    env = MultiAgentMicrogrids()
    rule = FailureRule.build(env.config, env.network, env.possible_agents)
    # 13 buses x 0.45 pu x 100 $/pu + 11 lines x 400 % x 0.1 $/%
    assert rule.bound.tolist() == pytest.approx([1025.0, 1025.0])


def test_converged_solve_outside_the_admissible_box_counts_as_failed():
    from powergrid.envs.safety import FailureRule

    assert FailureRule.admissible(0.7, 1.1, 250.0)
    assert not FailureRule.admissible(0.45, 1.0, 50.0)
    assert not FailureRule.admissible(0.9, 1.6, 50.0)
    assert not FailureRule.admissible(0.9, 1.0, 600.0)


def test_vector_env_equals_scalar_env_on_a_failed_step():
    from powergrid.envs.vector import VectorMicrogrids

    scalar = stressed_env(10_000)
    vector = VectorMicrogrids(2, scalar.config)
    scalar.reset(seed=0)
    vector.reset(seed=0)
    acts = {a: np.zeros((2, *scalar.action_space(a).shape)) for a in scalar.agents}
    failed = 0
    for _ in range(NOON + 1):
        obs_s, r_s, _, _, i_s = scalar.step(zeros(scalar))
        obs_v, r_v, _, _, i_v = vector.step(acts)
        failed += not i_s["MG1"]["pf_converged"]
        for a in scalar.possible_agents:
            assert r_v[a][0] == pytest.approx(r_s[a], abs=1e-6)
            np.testing.assert_allclose(obs_v[a][0], obs_s[a], atol=1e-5)
            for k in ("pf_converged", "v_min_pu", "v_max_pu", "network_losses_kw",
                      "upstream_import_kw", "voltage_violation_pu", "line_loading_max_pct",
                      "pcc_loading_pct", "feeder_v_min_pu", "feeder_v_max_pu",
                      "pcc_loading_max_pct", "soc_violation"):
                assert i_v[a][k][0] == pytest.approx(i_s[a][k], abs=1e-6), (a, k)
    assert failed >= 1


def test_shared_feeder_failure_is_backend_independent_and_counts_the_feeder_loads():
    def noon(power_flow):
        mg1, mg2 = default_microgrids()
        env = MultiAgentMicrogrids(network="ieee34", power_flow=power_flow, start_day=172,
                                   max_episode_steps=NOON + 1,
                                   microgrids=[dataclasses.replace(mg1, peak_load_kw=3_000), mg2])
        env.reset(seed=0)
        return [env.step(zeros(env)) for _ in range(NOON + 1)][-1]

    (_, r_fast, _, _, i_fast), (_, r_pp, _, _, i_pp) = noon("fast"), noon("pandapower")
    assert not i_fast["MG1"]["pf_converged"]
    assert i_fast["MG1"]["feeder_v_min_pu"] <= i_fast["MG1"]["v_min_pu"] < 0.95
    for a in r_fast:
        assert r_fast[a] == pytest.approx(r_pp[a], abs=1e-6)
        assert i_fast[a]["pcc_loading_pct"] == pytest.approx(i_pp[a]["pcc_loading_pct"])
    demand = -sum(i["net_kw"] for i in i_fast.values()) + i_fast["MG1"]["network_losses_kw"]
    assert i_fast["MG1"]["upstream_import_kw"] > demand  # + the IEEE-34 feeder's own loads


def test_days_an_episode_touches_are_counted_exactly_for_fractional_steps():
    from powergrid.envs.days import episode_days

    assert episode_days(721, 0.7) == 22  # the last step starts at exactly 504 h = day 21
    assert (episode_days(24, 1.0), episode_days(25, 1.0), episode_days(7, 24.0)) == (1, 2, 7)
