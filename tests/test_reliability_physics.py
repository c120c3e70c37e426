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
