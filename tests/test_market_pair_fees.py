"""Pair-dependent fees (heron.market.PairFees): every rule, scalar and batched."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.market import (
    ContinuousDoubleAuction,
    McAfee,
    Order,
    OrderBook,
    PairFees,
    PayAsBid,
    UniformPrice,
)
from heron.market.batched import clear_rows
from heron.protocols.p2p import P2PTradingProtocol

TOL = 1e-9
AGENTS = ("A", "B", "C", "D")
RULES = [UniformPrice(), UniformPrice(k=0.2), PayAsBid(), ContinuousDoubleAuction(), McAfee()]
order = st.tuples(st.sampled_from(AGENTS), st.sampled_from(["buy", "sell"]),
                  st.integers(1, 50).map(lambda q: q / 10), st.integers(0, 30).map(lambda p: p / 100))
books = st.lists(order, max_size=10)
fee_matrix = st.lists(st.sampled_from([0.0, 0.003, 0.01, 0.05]), min_size=16, max_size=16).map(
    lambda v: np.array(v).reshape(4, 4))


def book_of(specs) -> OrderBook:
    book = OrderBook()
    for spec in specs:
        book.submit(*spec)
    return book


# ------------------------------------------------------------------ the value type


@pytest.mark.parametrize("matrix, match", [
    (np.zeros((2, 3)), "matrix"), (np.array([[0, -1.0], [0, 0]]), "finite"),
    (np.array([[0, np.nan], [0, 0]]), "finite"), (np.array([[0, 1e300], [0, 0]]), "finite"),
])
def test_pair_fees_reject_bad_matrices_naming_the_problem(matrix, match):
    with pytest.raises(ValueError, match=match):
        PairFees(("A", "B"), matrix)


def test_pair_fees_reject_duplicate_agents_and_unknown_lookups():
    with pytest.raises(ValueError, match="unique"):
        PairFees(("A", "A"), np.zeros((2, 2)))
    fees = PairFees(("A", "B"), np.array([[0, 0.1], [0.2, 0]]))
    with pytest.raises(ValueError, match="'Z' has no pair fee"):
        fees("Z", "A")


def test_pair_fee_bound_is_the_worst_pair_as_buyer_or_seller():
    fees = PairFees(("A", "B", "C"), np.array([[9, 0.1, 0.0], [0.2, 9, 0.05], [0.3, 0.0, 9]]))
    assert fees("A", "B") == 0.1 and fees("B", "A") == 0.2
    assert fees.bound("A") == 0.3 and fees.bound("B") == 0.2 and fees.bound("C") == 0.3


def test_pair_fees_from_a_function_tabulate_every_ordered_pair():
    fees = PairFees.from_function("AB", lambda b, s: 0.01 if b < s else 0.02)
    np.testing.assert_array_equal(fees.per_unit, [[0.0, 0.01], [0.02, 0.0]])


def test_a_book_agent_without_a_pair_fee_is_rejected():
    book = book_of([("A", "buy", 1.0, 0.3), ("Z", "sell", 1.0, 0.1)])
    with pytest.raises(ValueError, match="'Z' has no pair fee"):
        UniformPrice().clear(book, 0.0, PairFees(("A", "B"), np.zeros((2, 2))))


# ------------------------------------------------------------------ scalar rules


@pytest.mark.parametrize("rule", RULES, ids=repr)
@settings(max_examples=150, deadline=None)
@given(specs=books, flat=st.sampled_from([0.0, 0.02]), matrix=fee_matrix)
def test_pair_fees_charge_each_trade_without_changing_matches_or_prices(rule, specs, flat,
                                                                         matrix):
    pair = PairFees(AGENTS, matrix)
    plain = rule.clear(book_of(specs), flat)
    priced = rule.clear(book_of(specs), flat, pair)
    assert len(priced.trades) == len(plain.trades)
    for t, u in zip(priced.trades, plain.trades):
        assert (t.buyer, t.seller, t.quantity, t.price, t.surplus) == (
            u.buyer, u.seller, u.quantity, u.price, u.surplus)
        assert t.fee == pytest.approx((flat + pair(t.buyer, t.seller)) * t.quantity, abs=TOL)
    paid = sum(t.buyer_pays for t in priced.trades)
    received = sum(t.seller_receives for t in priced.trades)
    assert paid == pytest.approx(received + priced.fees + priced.surplus, abs=TOL)


@pytest.mark.parametrize("rule", RULES, ids=repr)
@settings(max_examples=150, deadline=None)
@given(specs=books, lo=st.floats(0.0, 0.2), spread=st.floats(0.0, 0.3),
       flat_share=st.floats(0.0, 0.5), matrix=fee_matrix)
def test_trades_beat_the_grid_after_pair_fees_when_limits_lie_in_each_agents_band(
        rule, specs, lo, spread, flat_share, matrix):
    """Selling to the grid pays ``lo``, buying costs ``hi``; each agent's limit lies in
    ``[lo + F/2, hi - F/2]`` with ``F = protocol.fee_bound(agent)`` (flat + worst pair fee;
    an agent whose F exceeds the spread posts nothing): nobody ends up worse off."""
    hi = lo + spread
    proto = P2PTradingProtocol(rule, trading_fee=flat_share * spread,
                               pair_fee=PairFees(AGENTS, matrix))
    orders = []
    for agent, side, q, p in specs:
        f = proto.fee_bound(agent)
        if f > spread:
            continue
        band_lo, band_hi = lo + f / 2, hi - f / 2
        orders.append(Order(agent, side, q, band_lo + (p / 0.3) * (band_hi - band_lo)))
    for t in proto.clear(orders).trades:
        assert t.buyer_pays / t.quantity <= hi + TOL, "buyer would have been better off importing"
        assert t.seller_receives / t.quantity >= lo - TOL, "seller would have been better off exporting"


def test_a_neighbour_trade_is_cheaper_than_one_across_the_network():
    """Three agents on a line A - B - C with a fee growing with distance: B's energy costs
    A less in fees than C's, at the same clearing price."""
    position = {"A": 0.0, "B": 1.0, "C": 5.0}
    fees = PairFees.from_function("ABC", lambda b, s: 0.004 * abs(position[b] - position[s]))
    proto = P2PTradingProtocol("uniform", trading_fee=0.001, pair_fee=fees)
    near = proto.clear([Order("A", "buy", 1.0, 0.3), Order("B", "sell", 1.0, 0.1)])
    far = proto.clear([Order("A", "buy", 1.0, 0.3), Order("C", "sell", 1.0, 0.1)])
    assert near.clearing_price == far.clearing_price
    assert near.trades[0].fee < far.trades[0].fee
    assert near.payments("A") < far.payments("A")


def test_protocol_without_pair_fee_keeps_the_flat_fee_bound_and_repr():
    proto = P2PTradingProtocol("uniform", trading_fee=0.01)
    assert proto.fee_bound("anyone") == 0.01
    assert "pair_fee" not in repr(proto)
    with pytest.raises(ValueError, match="pair_fee must be a PairFees"):
        P2PTradingProtocol("uniform", pair_fee=np.zeros((2, 2)))


# ------------------------------------------------------------------ batched rules

slot = st.tuples(st.sampled_from([-1, 0, 1]), st.floats(1e-3, 10.0),
                 st.sampled_from([0.05, 0.1, 0.15, 0.2, 0.3]) | st.floats(0.0, 1.0))
batches = st.integers(1, 3).flatmap(
    lambda B: st.integers(2, 5).flatmap(
        lambda K: st.tuples(
            st.lists(st.lists(slot, min_size=K, max_size=K), min_size=B, max_size=B),
            st.lists(st.sampled_from([0.0, 0.004, 0.02]), min_size=K * K, max_size=K * K),
            st.booleans())))


@pytest.mark.parametrize("rule", RULES, ids=repr)
@settings(max_examples=100, deadline=None)
@given(case=batches, flat=st.sampled_from([0.0, 0.01]))
def test_compiled_batch_with_pair_fees_equals_the_scalar_rule_row_by_row(rule, case, flat):
    rows, fee_list, per_row = case
    a = np.array(rows, dtype=float)
    side, qty, prc = a[..., 0].astype(int), a[..., 1], a[..., 2]
    B, K = side.shape
    pf = np.array(fee_list).reshape(K, K)
    if per_row:  # a different matrix per row
        pf = np.stack([pf * (b + 1) for b in range(B)])
    fast = rule.clear_batch(side, qty, prc, flat, pf)
    ref = clear_rows(rule, side, qty, prc, flat, pf)
    for field in ("bought", "sold", "paid", "received", "fees", "price", "volume", "surplus"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(ref, field), err_msg=field)
    np.testing.assert_allclose(fast.paid.sum(1), fast.received.sum(1) + fast.surplus,
                               rtol=1e-9, atol=1e-12)


def test_batch_pair_fee_of_the_wrong_shape_or_sign_is_rejected():
    side, qty, prc = np.array([[1, -1]]), np.ones((1, 2)), np.array([[0.3, 0.1]])
    with pytest.raises(ValueError, match=r"pair_fee must be a \(2, 2\)"):
        UniformPrice().clear_batch(side, qty, prc, 0.0, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="pair_fee entries"):
        UniformPrice().clear_batch(side, qty, prc, 0.0, np.array([[0, -1.0], [0, 0]]))


def test_batch_pair_fee_of_a_near_pair_is_smaller_than_of_a_far_pair():
    # slot 0 buys; row 0 from slot 1 (near), row 1 from slot 2 (far)
    side = np.array([[1, -1, 0], [1, 0, -1]])
    qty = np.ones((2, 3))
    prc = np.array([[0.3, 0.1, 0.1], [0.3, 0.1, 0.1]])
    pf = np.array([[0, 0.002, 0.02], [0.002, 0, 0.018], [0.02, 0.018, 0]])
    r = UniformPrice().clear_batch(side, qty, prc, 0.0, pf)
    assert r.price[0] == r.price[1]
    assert r.fees[0, 0] < r.fees[1, 0]
