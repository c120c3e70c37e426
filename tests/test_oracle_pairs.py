"""The oracle with pair-dependent P2P fees: pairwise trades, replayed to the reported cost."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from heron.market import PairFees
from heron.protocols import P2PTradingProtocol
from powergrid import scenarios
from powergrid.core.market import row_orders
from powergrid.envs.series import price_band
from powergrid.evaluation import optimum, replay_cost
from powergrid.evaluation.oracle_pairs import PairMarket, price_actions

AGENTS = ("MG1", "MG2", "MG3")
# MG1 is far from MG2 and MG3, which are neighbours (as on the IEEE-34 feeder)
FEES = PairFees(AGENTS, [[0.0, 0.02, 0.05], [0.02, 0.0, 0.01], [0.05, 0.01, 0.0]])
TIED = {**scenarios.get("p2p-3mg-v1").config(), "split": None}
PAIRED = {**TIED, "horizontal_protocol": P2PTradingProtocol(trading_fee=0.01, pair_fee=FEES)}
FLAT = {**TIED, "horizontal_protocol": P2PTradingProtocol(trading_fee=0.01)}
DAY = 100


@functools.cache
def solved(config_name: str):
    return optimum({"paired": PAIRED, "flat": FLAT}[config_name], DAY, seed=0)


def test_actions_replay_to_the_reported_cost_with_pair_fees():
    result = solved("paired")
    assert result.traded_kwh > 0.0
    assert result.cost_terms["fees"] > 0.0
    assert replay_cost(PAIRED, result) == pytest.approx(result.cost, abs=1e-6)


def test_pair_fees_cost_no_less_than_the_flat_fee_and_no_more_than_not_trading():
    no_trade = optimum(PAIRED, DAY, seed=0, trading=False)
    assert solved("flat").cost - 1e-6 <= solved("paired").cost <= no_trade.cost + 1e-6


@pytest.mark.parametrize("seller", [0, 1, 2])
def test_replayed_prices_fill_the_buyer_of_the_cheapest_pair_first(seller):
    # one seller with too little for two buyers: the nearer buyer must get all of it
    protocol = P2PTradingProtocol(trading_fee=0.01, pair_fee=FEES)
    market = PairMarket.of(protocol, list(AGENTS))
    retail, feed_in, dt = 0.30, 0.05, 1.0
    net = [-40.0] * 3
    net[seller] = 30.0
    buyers = [b for b in range(3) if b != seller]
    near = min(buyers, key=lambda b: FEES.per_unit[b, seller])
    actions = price_actions(market, net, retail, feed_in, 1e-9)
    bands = [price_band(feed_in, retail, protocol.fee_bound(a)) for a in AGENTS]
    result = protocol.clear(row_orders(AGENTS, net, actions, bands, dt))
    assert result.bought(AGENTS[near]) == pytest.approx(30.0)
    assert result.volume == pytest.approx(30.0)


def test_a_band_without_room_for_the_worst_pair_keeps_that_microgrid_out_of_the_model():
    market = PairMarket.of(P2PTradingProtocol(trading_fee=0.01, pair_fee=FEES), list(AGENTS))
    # spread 0.05: MG1 (worst pair 0.05 + 0.01) and MG3 (0.06) cannot trade, MG2 (0.03) can
    np.testing.assert_array_equal(market.eligible(0.10, 0.05), [False, True, False])


def test_pair_fees_with_four_microgrids_raise_not_implemented():
    config = scenarios.get("market-4mg-v1").config()
    names = [m.name for m in config["microgrids"]]
    fees = PairFees(names, np.full((4, 4), 0.01))
    with pytest.raises(NotImplementedError, match="pair fees with 4 microgrids"):
        optimum({**config, "split": None,
                 "horizontal_protocol": P2PTradingProtocol(pair_fee=fees)}, DAY)


def test_pair_fees_with_the_continuous_double_auction_raise_not_implemented():
    config = {**TIED, "horizontal_protocol": P2PTradingProtocol("cda", pair_fee=FEES)}
    with pytest.raises(NotImplementedError, match="continuous double auction"):
        optimum(config, DAY)


def test_the_network_use_fee_of_the_shared_feeder_replays_to_the_reported_cost():
    config = {**scenarios.get("p2p-3mg-v2").config(), "split": None,
              "network_fee_per_kwh_per_ohm": 5e-4}
    result = optimum(config, 80, seed=0)
    assert result.cost_terms["fees"] > 0.0
    assert result.network.violation_steps == 0
    assert replay_cost(config, result) == pytest.approx(result.cost, abs=1e-6)
