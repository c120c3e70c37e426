"""Ahead market (heron.market.ahead): the commitment ledger and the imbalance settlement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.market import OrderBook, Side, UniformPrice
from heron.market.ahead import (
    BidCurve,
    CommitmentLedger,
    GateSchedule,
    ImbalancePrices,
    decode_ahead_action,
    decode_ahead_batch,
    settle_imbalance,
)

TOL = 1e-9
RETAIL, FEED_IN = 0.30, 0.05
qty = st.integers(-100, 100).map(lambda q: q / 10)
prices = st.builds(ImbalancePrices, st.integers(0, 300).map(lambda m: m / 100),
                   st.integers(0, 100).map(lambda m: m / 100))
outside = st.tuples(st.integers(0, 50), st.integers(0, 50)).map(
    lambda ab: (max(ab) / 100, min(ab) / 100))


DEFAULT = ImbalancePrices()


def settle(p, x, imb=DEFAULT):
    return settle_imbalance(p, x, RETAIL, FEED_IN, imb)


# ------------------------------------------------------------------ the rule, by example

def test_seller_short_of_its_commitment_buys_the_shortfall_at_the_imbalance_buy_price():
    s = settle(5.0, 3.0, ImbalancePrices(buy_markup=0.5))
    assert s.shortfall == pytest.approx(2.0) and s.excess == 0.0 and s.residual == 0.0
    assert s.imbalance_cost == pytest.approx(2.0 * RETAIL * 1.5)


def test_seller_that_ends_up_importing_pays_imbalance_for_the_commitment_and_retail_for_the_rest():
    s = settle(5.0, -1.0)
    assert s.shortfall == pytest.approx(5.0) and s.residual == pytest.approx(-1.0)
    assert s.grid_cost == pytest.approx(1.0 * RETAIL)


def test_buyer_taking_less_than_committed_sells_the_excess_at_the_imbalance_sell_price():
    s = settle(-5.0, -3.0, ImbalancePrices(sell_markdown=0.5))
    assert s.excess == pytest.approx(2.0) and s.shortfall == 0.0 and s.residual == 0.0
    assert s.imbalance_cost == pytest.approx(-2.0 * FEED_IN * 0.5)


def test_deviation_beyond_the_commitment_goes_to_the_grid_at_retail_and_feed_in():
    over_delivering_seller = settle(5.0, 7.0)
    over_taking_buyer = settle(-5.0, -7.0)
    assert over_delivering_seller.imbalance_cost == 0.0
    assert over_delivering_seller.grid_cost == pytest.approx(-2.0 * FEED_IN)
    assert over_taking_buyer.imbalance_cost == 0.0
    assert over_taking_buyer.grid_cost == pytest.approx(2.0 * RETAIL)


def test_default_imbalance_prices_are_worse_than_retail_and_feed_in():
    imb = ImbalancePrices()
    assert imb.buy(RETAIL) > RETAIL and imb.sell(FEED_IN) < FEED_IN


@pytest.mark.parametrize("kwargs, name", [
    ({"buy_markup": -0.1}, "buy_markup"), ({"buy_markup": float("nan")}, "buy_markup"),
    ({"sell_markdown": 1.5}, "sell_markdown"), ({"sell_markdown": -0.1}, "sell_markdown"),
    ({"sell_markdown": "0.1"}, "sell_markdown"),
])
def test_bad_imbalance_prices_raise_naming_the_field(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ImbalancePrices(**kwargs)


@pytest.mark.parametrize("p, x, buy, sell, what", [
    (float("nan"), 1.0, RETAIL, FEED_IN, "finite"), (1.0, float("inf"), RETAIL, FEED_IN, "finite"),
    (1.0, 1.0, -0.1, FEED_IN, "outside prices"), (1.0, 1.0, RETAIL, float("nan"), "outside prices"),
    (1.0, 1.0, 0.05, 0.30, "must not exceed"),
])
def test_bad_settlement_input_raises(p, x, buy, sell, what):
    with pytest.raises(ValueError, match=what):
        settle_imbalance(p, x, buy, sell)


@pytest.mark.parametrize("p, x, shortfall, excess, residual, imbalance, grid", [
    (5.0, 3.0, 2.0, 0.0, 0.0, 0.90, 0.0), (5.0, -1.0, 5.0, 0.0, -1.0, 2.25, 0.30),
    (-5.0, -3.0, 0.0, 2.0, 0.0, -0.05, 0.0), (-5.0, -7.0, 0.0, 0.0, -2.0, 0.0, 0.60),
])
def test_docs_worked_example_of_the_imbalance_settlement(p, x, shortfall, excess, residual,
                                                        imbalance, grid):
    s = settle(p, x)  # the table in docs/market.md, "Ahead market"
    got = (s.shortfall, s.excess, s.residual, s.imbalance_cost, s.grid_cost)
    assert got == pytest.approx((shortfall, excess, residual, imbalance, grid))


# ------------------------------------------------------------------ the invariants

@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(qty, qty), min_size=1, max_size=8), outside, prices)
def test_energy_is_conserved_and_volumes_are_non_negative(px, out, imb):
    p, x = np.array(px).T
    s = settle_imbalance(p, x, *out, imb)
    np.testing.assert_allclose(p - s.shortfall + s.excess + s.residual, x, atol=TOL)
    assert np.all(s.shortfall >= 0) and np.all(s.excess >= 0)
    assert np.all(s.shortfall <= np.maximum(p, 0) + TOL) and np.all(s.excess <= np.maximum(-p, 0) + TOL)


@settings(max_examples=300, deadline=None)
@given(st.lists(qty, min_size=1, max_size=8), outside, prices)
def test_zero_deviation_means_no_imbalance_and_no_residual(p, out, imb):
    s = settle_imbalance(p, p, *out, imb)
    assert np.all(s.shortfall == 0) and np.all(s.excess == 0) and np.all(s.residual == 0)
    assert np.all(s.total_cost == 0) and np.all(s.penalty == 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(qty, min_size=1, max_size=8), outside, prices)
def test_without_a_commitment_the_settlement_is_exactly_the_no_market_one(x, out, imb):
    buy, sell = out
    s = settle_imbalance(np.zeros(len(x)), x, buy, sell, imb)
    x = np.array(x)
    no_market = np.maximum(-x, 0) * buy - np.maximum(x, 0) * sell
    assert np.array_equal(s.total_cost, no_market) and np.all(s.imbalance_cost == 0)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(qty, qty), min_size=1, max_size=8), outside, prices)
def test_a_deviation_is_never_cheaper_than_settling_it_with_the_grid(px, out, imb):
    p, x = np.array(px).T
    buy, sell = out
    s = settle_imbalance(p, x, buy, sell, imb)
    d = x - p
    at_grid_prices = np.maximum(-d, 0) * buy - np.maximum(d, 0) * sell
    assert np.all(s.penalty >= -TOL)
    np.testing.assert_allclose(s.total_cost, at_grid_prices + s.penalty, atol=TOL)


# ------------------------------------------------------------------ the ledger

AGENTS = ("A", "B", "C", "D")
book_orders = st.lists(st.tuples(st.sampled_from(AGENTS), st.sampled_from(["buy", "sell"]),
                                 st.integers(1, 50).map(lambda q: q / 10),
                                 st.integers(0, 30).map(lambda c: c / 100)), max_size=10)


def cleared(specs, fee=0.0):
    book = OrderBook()
    for spec in specs:
        book.submit(*spec)
    return UniformPrice().clear(book, fee_per_unit=fee).trades if specs else ()


@settings(max_examples=200, deadline=None)
@given(book_orders, st.sampled_from([0.0, 0.01]), st.integers(1, 4))
def test_ledger_conserves_energy_and_money_of_the_committed_trades(specs, fee, lead):
    trades = cleared(specs, fee)
    ledger = CommitmentLedger(AGENTS)
    ledger.commit(gate=3, delivery=3 + lead, trades=trades)
    pos, cash = ledger.deliver(3 + lead)
    assert abs(pos.sum()) < TOL
    operator = sum(t.fee + t.surplus for t in trades)
    assert abs(cash.sum() + operator) < TOL


def test_ledger_keeps_each_delivery_step_apart_and_forgets_it_once_delivered():
    ledger = CommitmentLedger(("A", "B"))
    ledger.commit(0, 1, cleared([("A", "sell", 2.0, 0.1), ("B", "buy", 2.0, 0.2)]))
    ledger.commit(0, 2, cleared([("A", "buy", 1.0, 0.2), ("B", "sell", 1.0, 0.1)]))
    assert ledger.pending() == (1, 2)
    np.testing.assert_allclose(ledger.position(1), [2.0, -2.0])
    np.testing.assert_allclose(ledger.position(2), [-1.0, 1.0])
    ledger.deliver(1)
    assert ledger.pending() == (2,) and np.all(ledger.position(1) == 0)


@pytest.mark.parametrize("gate, delivery", [(3, 3), (3, 2)])
def test_ledger_refuses_delivery_not_after_gate_closure(gate, delivery):
    with pytest.raises(ValueError, match="after gate closure"):
        CommitmentLedger(("A", "B")).commit(gate, delivery, ())


def test_ledger_refuses_trades_of_unknown_agents():
    trades = cleared([("A", "sell", 1.0, 0.1), ("Z", "buy", 1.0, 0.2)])
    with pytest.raises(ValueError, match="'Z'"):
        CommitmentLedger(("A", "B")).commit(0, 1, trades)



# ------------------------------------------------------------------ order decisions

@pytest.mark.parametrize("side, prices", [("sell", (0.2, 0.1)), ("buy", (0.1, 0.2))])
def test_bid_curve_refuses_prices_against_its_side(side, prices):
    with pytest.raises(ValueError, match="prices must be non-"):
        BidCurve("A", side, prices, (1.0, 1.0))


@pytest.mark.parametrize("quantities, prices, what", [
    ((-1.0,), (0.1,), "quantity"), ((float("nan"),), (0.1,), "quantity"),
    ((1.0,), (float("nan"),), "price"), ((1.0, 1.0), (0.1,), "as many prices"),
    ((), (), "as many prices"),
])
def test_bid_curve_refuses_bad_pairs(quantities, prices, what):
    with pytest.raises(ValueError, match=what):
        BidCurve("A", "sell", prices, quantities)


def test_bid_curve_becomes_one_order_per_pair_in_the_book():
    curve = BidCurve("A", "sell", (0.1, 0.2), (1.0, 2.0))
    book = OrderBook()
    for spec in curve.orders():
        book.submit(*spec)
    book.submit("B", "buy", 3.0, 0.15)
    trades = UniformPrice().clear(book).trades
    assert sum(t.quantity for t in trades) == pytest.approx(1.0)  # only the 0.1 step is cheap enough


def test_ahead_action_sign_is_the_side_and_magnitude_the_share_of_max_quantity():
    sell = decode_ahead_action("A", [0.5, 1.0], max_quantity=10.0, price_low=0.05, price_high=0.30)
    buy = decode_ahead_action("A", [-1.0, 0.0], max_quantity=10.0, price_low=0.05, price_high=0.30)
    assert sell.side == "sell" and sell.quantities == (5.0,) and sell.prices == (pytest.approx(0.30),)
    assert buy.side == "buy" and buy.quantities == (10.0,) and buy.prices == (pytest.approx(0.05),)
    assert decode_ahead_action("A", [0.0, 0.5], 10.0, 0.05, 0.30) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=2, max_size=5))
def test_any_finite_ahead_action_decodes_to_a_valid_curve_within_the_bounds(action):
    curve = decode_ahead_action("A", action, max_quantity=10.0, price_low=0.05, price_high=0.30)
    if curve is None:
        assert action[0] == 0.0
        return
    assert curve.total <= 10.0 + TOL and len(curve.prices) == len(action) - 1
    assert all(0.05 - TOL <= p <= 0.30 + TOL for p in curve.prices)


@pytest.mark.parametrize("action, what", [
    ([float("nan"), 0.5], "finite"), ([0.5, float("inf")], "finite"), ([0.5], "k >= 1"),
])
def test_bad_ahead_action_raises_naming_the_agent(action, what):
    with pytest.raises(ValueError, match=f"'A'.*{what}|{what}.*'A'"):
        decode_ahead_action("A", action, 10.0, 0.05, 0.30)


# ------------------------------------------------------------------ timing

@pytest.mark.parametrize("lead, horizon, what", [
    (24, 24, "below the episode length"), (30, 24, "below the episode length"),
    (0, 24, "lead_steps"), (-1, 24, "lead_steps"), (1.5, 24, "lead_steps"),
    (float("nan"), 24, "lead_steps"), (1, 0, "horizon"),
])
def test_gate_schedule_refuses_a_lead_that_leaves_nothing_to_trade(lead, horizon, what):
    with pytest.raises(ValueError, match=what):
        GateSchedule(lead, horizon)


def test_orders_are_for_lead_steps_ahead_and_none_past_the_episode_end():
    gates = GateSchedule(lead_steps=2, horizon=24)
    assert gates.delivery_of(0) == 2 and gates.delivery_of(21) == 23
    assert gates.delivery_of(22) is None and gates.gate_of(5) == 4


@given(st.integers(1, 12), st.integers(0, 30), st.integers(0, 10))
def test_an_order_trades_exactly_when_its_latency_is_below_the_gate_lead(lead, s, latency):
    gates = GateSchedule(lead, horizon=48)
    assert gates.in_time(s, latency) == (latency < lead)


# ------------------------------------------------------------------ batched decoding

unit = st.integers(-12, 12).map(lambda v: v / 10)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(unit, min_size=4, max_size=4), min_size=1, max_size=4),
       st.integers(0, 30).map(lambda v: v / 100), st.integers(0, 30).map(lambda v: v / 100))
def test_batched_decoding_places_the_orders_of_each_agents_bid_curve(rows, a, b):
    acts = np.array(rows)[None]          # (1, N, 1 + 3)
    low, high = min(a, b), max(a, b)
    side, quantity, price = decode_ahead_batch(acts, 5.0, low, high)
    got = [(int(s), q, p) for s, q, p in zip(side[0], quantity[0], price[0]) if s != 0]
    want = []
    for k, row in enumerate(rows):
        curve = decode_ahead_action(f"a{k}", row, 5.0, low, high)
        if curve is not None:
            want += [(1 if c[1] is Side.BUY else -1, c[2], c[3]) for c in curve.orders()]
    assert got == want


def test_batched_decoding_posts_nothing_in_an_empty_band_or_below_the_minimum():
    acts = np.array([[[1.0, 0.5], [-0.001, 0.5]]])
    side, _, _ = decode_ahead_batch(acts, 1.0, 0.3, 0.2)
    assert not side.any()
    side, _, _ = decode_ahead_batch(acts, 1.0, 0.1, 0.2, min_quantity=0.01)
    assert side.tolist() == [[-1, 0]]


def test_batched_decoding_refuses_nan():
    with pytest.raises(ValueError, match="finite"):
        decode_ahead_batch(np.array([[[np.nan, 0.5]]]), 1.0, 0.1, 0.2)
