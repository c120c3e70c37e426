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
