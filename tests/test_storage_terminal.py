"""The terminal storage term: energy drawn from the batteries over an episode costs money."""

from __future__ import annotations

import numpy as np
import pytest

from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

PRICE = 0.12


def run(ess_action: float, price: float = PRICE, steps: int = 6):
    env = MultiAgentMicrogrids({"max_episode_steps": steps, "start_day": 100,
                                "storage_terminal_price": price})
    env.reset(seed=0)
    stored0 = {a: sum(d.soc * d.params.capacity_kwh for d in env.devices(a) if hasattr(d, "soc"))
               for a in env.agents}
    history = []
    while env.agents:
        acts = {}
        for a in env.agents:
            act = np.zeros(env.action_space(a).shape, np.float32)
            for k, label in enumerate(env.action_labels[a]):
                act[k] = ess_action if label.endswith("ess.p") else 0.0
            acts[a] = act
        history.append(env.step(acts))
    stored1 = {a: sum(d.soc * d.params.capacity_kwh for d in env.devices(a) if hasattr(d, "soc"))
               for a in stored0}
    return history, stored0, stored1


def test_draining_the_batteries_is_charged_on_the_last_step_only():
    history, e0, e1 = run(ess_action=1.0)
    *early, last = history
    for _, _, _, _, infos in early:
        assert all(infos[a]["costs"]["storage_terminal"] == 0.0 for a in infos)
    infos = last[4]
    for a in infos:
        assert e1[a] < e0[a]
        assert infos[a]["costs"]["storage_terminal"] == pytest.approx(PRICE * (e0[a] - e1[a]),
                                                                      abs=1e-9)


def test_ending_fuller_is_a_credit_and_enters_reward():
    history, e0, e1 = run(ess_action=-1.0)
    _, rewards, _, _, infos = history[-1]
    for a in infos:
        term = infos[a]["costs"]["storage_terminal"]
        assert term < 0 and term == pytest.approx(-PRICE * (e1[a] - e0[a]), abs=1e-9)
    base = run(ess_action=-1.0, price=0.0)[0][-1]
    for a in infos:
        assert rewards[a] == pytest.approx(base[1][a] - infos[a]["costs"]["storage_terminal"],
                                           abs=1e-9)


def test_default_price_is_zero_and_the_term_is_always_present():
    history, _, _ = run(ess_action=1.0, price=0.0)
    assert all(step[4][a]["costs"]["storage_terminal"] == 0.0
               for step in history for a in step[4])


def test_negative_terminal_price_is_rejected():
    with pytest.raises(ValueError, match="storage_terminal_price"):
        MultiAgentMicrogrids({"storage_terminal_price": -0.1})
