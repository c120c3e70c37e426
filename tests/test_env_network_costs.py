"""Network costs in the env: config switches, cost terms, the network-use fee in the market."""

from __future__ import annotations

import numpy as np
import pytest

import powergrid
from powergrid.envs import MultiAgentMicrogrids
from powergrid.network_costs import NETWORK_COST_TERMS
from powergrid.scenarios import get


def feeder_env(**overrides) -> MultiAgentMicrogrids:
    cfg = get("p2p-3mg-v2").config(max_episode_steps=24, **overrides)
    return MultiAgentMicrogrids(cfg)


def rollout(env, seed=0, steps=24):
    env.reset(seed=seed, options={"start_day": 172})
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        acts = {a: rng.uniform(-1, 1, env.action_space(a).shape).astype(np.float32)
                for a in env.agents}
        out.append(env.step(acts))
    return out


def test_network_costs_are_off_by_default_and_add_no_cost_terms():
    env = MultiAgentMicrogrids()
    env.reset(seed=0)
    _, _, _, _, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
    assert not set(NETWORK_COST_TERMS) & set(infos["MG1"]["costs"])
    assert "network_losses_dso_kw" not in infos["MG1"]


def test_shared_feeder_scenarios_charge_network_costs():
    assert get("p2p-3mg-v2").config()["network_costs"] is True
    assert get("p2p-2mg-v2").config()["network_costs"] is True


def test_allocated_losses_and_the_dsos_share_add_up_to_the_network_losses_every_step():
    env = feeder_env(network_costs=True, loss_price=0.2)
    dt = env.config.dt_hours
    for *_, infos in rollout(env):
        mg = [infos[a] for a in env.microgrid_agents]
        if not mg[0]["pf_converged"]:
            continue
        allocated_kw = sum(i["costs"]["network_losses"] for i in mg) / (0.2 * dt)
        assert allocated_kw + mg[0]["network_losses_dso_kw"] == pytest.approx(
            mg[0]["network_losses_kw"], rel=1e-9, abs=1e-9)


def test_network_cost_terms_enter_the_reward():
    env = feeder_env(network_costs=True)
    for _, rewards, _, _, infos in rollout(env, steps=6):
        for a in env.microgrid_agents:
            c = infos[a]["costs"]
            assert set(NETWORK_COST_TERMS) <= set(c)
            assert c["network_violation"] >= 0
            assert rewards[a] == pytest.approx(-c["total"])
        off = {k: v for k, v in c.items() if k not in NETWORK_COST_TERMS + ("total",)}
        assert c["total"] == pytest.approx(
            sum(off.values()) - 2 * (off["grid_export_revenue"] + off["p2p_revenue"])
            + c["network_losses"] + c["network_violation"])


def test_switching_network_costs_on_changes_no_other_term():
    plain = rollout(feeder_env(network_costs=False, network_fee_per_kwh_per_ohm=0.0), steps=8)
    costed = rollout(feeder_env(network_costs=True, network_fee_per_kwh_per_ohm=0.0), steps=8)
    for (_, _, _, _, a), (_, _, _, _, b) in zip(plain, costed):
        for agent in a:
            ca, cb = a[agent]["costs"], b[agent]["costs"]
            assert {k: v for k, v in cb.items() if k in ca and k != "total"} == {
                k: v for k, v in ca.items() if k != "total"}


def test_the_network_use_fee_charges_trades_by_electrical_distance():
    env = feeder_env(network_costs=False, network_fee_per_kwh_per_ohm=5e-4)
    fees = env.protocol.pair_fee
    # MG2 (858) and MG3 (834) are neighbours; MG1 (850) sits across regulator 2
    assert fees("MG2", "MG3") < fees("MG1", "MG2") and fees("MG2", "MG3") < fees("MG1", "MG3")
    for _, _, _, _, infos in rollout(env):
        for a in env.microgrid_agents:
            for t in infos[a]["market"]["trades"]:
                assert t.fee == pytest.approx(fees(t.buyer, t.seller) * t.quantity)


def test_network_cost_config_is_validated():
    with pytest.raises(ValueError, match="network_costs"):
        MultiAgentMicrogrids(network_costs="yes")
    with pytest.raises(ValueError, match="network_fee_per_kwh_per_ohm"):
        MultiAgentMicrogrids(network_fee_per_kwh_per_ohm=-1.0)
    from heron.protocols.consensus import ConsensusProtocol

    with pytest.raises(ValueError, match="network_fee_per_kwh_per_ohm"):
        MultiAgentMicrogrids(horizontal_protocol=ConsensusProtocol(),
                             network_fee_per_kwh_per_ohm=1e-3)
    # without a market the fee has nothing to charge: accepted (the no-trade baselines)
    MultiAgentMicrogrids(horizontal_protocol=None, network_fee_per_kwh_per_ohm=1e-3)
    with pytest.raises(ValueError, match="loss_price"):
        MultiAgentMicrogrids(loss_price=-0.1)


def test_vector_env_allocates_the_network_losses_of_every_row():
    cfg = get("p2p-3mg-v2").config(max_episode_steps=4, loss_price=0.2)
    vec = powergrid.envs.VectorMicrogrids(3, cfg)
    vec.reset(seed=1)
    rng = np.random.default_rng(1)
    for _ in range(4):
        acts = {a: rng.uniform(-1, 1, (3, *vec.single_action_space(a).shape))
                for a in vec.possible_agents}
        *_, infos = vec.step(acts)
        mg = [infos[a] for a in vec.microgrid_agents]
        ok = mg[0]["pf_converged"]
        allocated_kw = sum(i["costs"]["network_losses"] for i in mg) / (0.2 * vec.config.dt_hours)
        np.testing.assert_allclose((allocated_kw + mg[0]["network_losses_dso_kw"])[ok],
                                   mg[0]["network_losses_kw"][ok], rtol=1e-9, atol=1e-9)
