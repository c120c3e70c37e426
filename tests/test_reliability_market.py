"""Trading never loses against the grid once fees are paid, in both envs (issue 13).

A seller's alternative is exporting at the feed-in tariff, a buyer's importing at retail.
With fee f per kWh split half per side, the env's price band is
[feed-in + f/2, retail - f/2], and no order is posted when it is empty.
"""

from __future__ import annotations

import functools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.protocols import ConsensusProtocol
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids

TOL = 1e-12


def losing_trade_sides(infos: dict) -> tuple[int, int]:
    """(sides worse off than the grid, all sides) of one step's trades."""
    losing = sides = 0
    seen = set()
    for info in infos.values():
        retail, feed_in = info["retail_price"], info["feed_in_price"]
        for t in info["market"]["trades"]:
            if id(t) in seen:
                continue
            seen.add(id(t))
            half_fee = t.fee / 2 / t.quantity
            losing += (t.price + half_fee > retail + TOL) + (t.seller_price - half_fee
                                                             < feed_in - TOL)
            sides += 2
    return losing, sides


def run_day(env, actions, seed=0, start_day=172):
    env.reset(seed=seed, options={"start_day": start_day})
    losing = sides = 0
    while env.agents:
        _, _, _, _, infos = env.step(actions(env))
        lo, n = losing_trade_sides(infos)
        losing, sides = losing + lo, sides + n
    return losing, sides


def neutral(env):
    return {a: np.zeros(env.action_space(a).shape) for a in env.agents}


def test_neutral_price_action_with_fee_never_sells_below_feed_in():
    # The case: fee 0.07, neutral prices; 18 of 34 trade sides used to lose.
    env = MultiAgentMicrogrids({"trading_fee": 0.07, "max_episode_steps": 24})
    losing, sides = run_day(env, neutral)
    assert sides > 0 and losing == 0


def test_no_orders_when_fee_exceeds_every_tariff_spread():
    env = MultiAgentMicrogrids({"trading_fee": 0.3, "max_episode_steps": 24})
    env.reset(seed=0, options={"start_day": 172})
    while env.agents:
        _, _, _, _, infos = env.step(neutral(env))
        assert all(not i["market"]["orders"] and i["costs"]["fees"] == 0 for i in infos.values())


@functools.cache
def env_for(clearing: str, fee: float) -> MultiAgentMicrogrids:
    return MultiAgentMicrogrids({"trading_fee": fee, "clearing": clearing,
                                 "max_episode_steps": 6})


@settings(max_examples=25, deadline=None)
@given(clearing=st.sampled_from(["uniform", "pay_as_bid", "cda", "mcafee"]),
       fee=st.sampled_from([0.0, 0.01, 0.07, 0.15]), seed=st.integers(0, 2**16),
       start_day=st.integers(0, 364))
def test_every_rule_and_fee_keeps_trading_individually_rational_against_the_grid(
        clearing, fee, seed, start_day):
    env = env_for(clearing, fee)
    rng = np.random.default_rng(seed)
    losing, _ = run_day(env, lambda e: {a: rng.uniform(-1, 1, e.action_space(a).shape)
                                        for a in e.agents}, seed, start_day)
    assert losing == 0


def test_consensus_trading_is_individually_rational_against_the_grid():
    env = MultiAgentMicrogrids({"horizontal_protocol": ConsensusProtocol(),
                                "max_episode_steps": 24})
    rng = np.random.default_rng(0)
    losing, sides = run_day(env, lambda e: {a: rng.uniform(-1, 1, e.action_space(a).shape)
                                            for a in e.agents})
    assert sides > 0 and losing == 0


def test_vector_env_with_fee_never_loses_against_the_grid():
    vec = VectorMicrogrids(16, {"trading_fee": 0.07, "max_episode_steps": 24})
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    traded = 0
    for _ in range(24):
        acts = {a: rng.uniform(-1, 1, (16, *vec.single_action_space(a).shape))
                for a in vec.possible_agents}
        _, _, _, _, infos = vec.step(acts)
        for info in infos.values():
            c = info["costs"]
            state, rows = vec.sim.state, np.arange(vec.num_envs)
            obs_retail = state.retail[rows, state.t - 1]
            obs_feed_in = state.feed_in[rows, state.t - 1]
            buy, sell = info["bought_kwh"] > 0, info["sold_kwh"] > 0
            traded += int(buy.sum() + sell.sum())
            assert np.all(c["p2p_payment"][buy] + c["fees"][buy]
                          <= obs_retail[buy] * info["bought_kwh"][buy] + 1e-9)
            assert np.all(c["p2p_revenue"][sell] - c["fees"][sell]
                          >= obs_feed_in[sell] * info["sold_kwh"][sell] - 1e-9)
    assert traded > 0
