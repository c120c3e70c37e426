"""The oracle with inverter reactive power: Q in the kVA circle, dV/dQ in the network model."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from powergrid import scenarios
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.evaluation import optimum, replay_cost

V3 = {**scenarios.get("p2p-3mg-v3").config(), "split": None}  # p2p-3mg-v2 + reactive power
DAY = 80


@functools.cache
def solved(reactive: bool, **kwargs):
    return optimum({**V3, "reactive_power": reactive}, DAY, seed=0, **kwargs)


def replayed_q_kvar(result) -> np.ndarray:
    """Every inverter's reactive power (kvar) per step of the replay."""
    env = MultiAgentMicrogrids(V3)
    env.reset(seed=result.seed, options={"start_day": result.day})
    out = []
    for step in result.actions:
        env.step(step)
        out.append([d.q_kvar for a in env.possible_agents for d in env.devices(a)
                    if getattr(d, "reactive", False)])
    return np.array(out)


def test_reactive_power_lowers_the_network_aware_optimum_on_v3():
    with_q, without = solved(True), solved(False)
    assert with_q.cost < without.cost
    assert with_q.network.network_cost < without.network.network_cost
    assert with_q.network.violation_steps == 0


def test_actions_with_reactive_power_replay_to_the_reported_cost():
    result = solved(True)
    assert replay_cost(V3, result) == pytest.approx(result.cost, abs=1e-6)


def test_the_optimum_uses_reactive_power_within_the_action_bounds():
    env = MultiAgentMicrogrids(V3)
    for step in solved(True).actions:
        for a, act in step.items():
            assert act.shape == env.action_space(a).shape
            assert np.all(np.abs(act) <= 1.0)
    assert np.abs(replayed_q_kvar(solved(True))).max() > 1.0


def test_the_network_blind_optimum_holds_reactive_power_at_zero():
    blind = solved(True, limits="none", network_costs=False)
    assert np.all(replayed_q_kvar(blind) == 0.0)
