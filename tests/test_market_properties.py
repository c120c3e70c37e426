"""Properties every clearing rule must satisfy on arbitrary books (hypothesis).

Each rule gets one hypothesis test that checks every invariant on the same generated
books: generating examples dominates the runtime, so checking all properties per example
keeps 500 examples per rule affordable. Each invariant is a named ``assert_*`` helper.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.market import ClearingResult, OrderBook, UniformPrice, make_clearing_rule

TOL = 1e-9
RULES = ["uniform", "pay_as_bid", "cda", "mcafee"]
AGENTS = ("MG1", "MG2", "MG3", "MG4", "MG5")


def decode(code: int) -> tuple[str, str, float, float]:
    """One integer -> one order; far cheaper to generate than a tuple of strategies.

    Quantities 0.1..50.0 in steps of 0.1 (not binary-exact, so round-off is exercised);
    prices 0.0..10.0 in steps of 0.1 (coarse, so price ties and crossings are common).
    """
    agent = AGENTS[code % 5]
    side = "buy" if (code // 5) % 2 else "sell"
    quantity = ((code // 10) % 500 + 1) / 10
    price = ((code // 5000) % 101) / 10
    return agent, side, quantity, price


# Few agents, so books often hold agents with both a bid and an ask (self-trade case).
books = st.lists(st.integers(0, 5000 * 101 - 1).map(decode), max_size=12)
fees = st.sampled_from([0.0, 0.0, 0.05, 1.0])
thorough = settings(max_examples=500, deadline=None)


def build(specs) -> OrderBook:
    book = OrderBook()
    for spec in specs:
        book.submit(*spec)
    return book


def clear(rule_name: str, specs, fee: float = 0.0) -> tuple[OrderBook, ClearingResult]:
    book = build(specs)
    return book, make_clearing_rule(rule_name).clear(book, fee)


def filled_quantities(result: ClearingResult) -> dict[int, float]:
    filled: dict[int, float] = defaultdict(float)
    for t in result.trades:
        filled[t.buy_order_id] += t.quantity
        filled[t.sell_order_id] += t.quantity
    return filled


# --------------------------------------------------------------------------- invariants


def assert_positive_quantities_and_balanced_volume(result: ClearingResult) -> None:
    assert all(t.quantity > 0 for t in result.trades)
    bought = sum(result.bought(a) for a in AGENTS)
    sold = sum(result.sold(a) for a in AGENTS)
    assert bought == pytest.approx(sold, abs=TOL)
    assert result.volume == pytest.approx(bought, abs=TOL)


def assert_individually_rational(book: OrderBook, result: ClearingResult) -> None:
    by_id = {o.order_id: o for o in book.orders}
    for t in result.trades:
        assert t.price <= by_id[t.buy_order_id].price + TOL, "buyer paid above its bid"
        assert t.seller_price >= by_id[t.sell_order_id].price - TOL, "seller got below its ask"


def assert_money_conserved(result: ClearingResult, fee: float) -> None:
    paid = sum(t.buyer_pays for t in result.trades)
    received = sum(t.seller_receives for t in result.trades)
    fees_total = sum(t.fee for t in result.trades)
    scale = TOL * max(1.0, paid)
    assert paid == pytest.approx(received + fees_total + result.surplus, abs=scale)
    net_payments = sum(result.payments(a) for a in AGENTS)
    assert net_payments == pytest.approx(fees_total + result.surplus, abs=scale)
    for t in result.trades:
        assert t.fee == pytest.approx(fee * t.quantity, abs=TOL)


def assert_no_self_trades(result: ClearingResult) -> None:
    assert all(t.buyer != t.seller for t in result.trades)


def assert_orders_not_overfilled(book: OrderBook, result: ClearingResult) -> None:
    by_id = {o.order_id: o for o in book.orders}
    for t in result.trades:
        buy, sell = by_id[t.buy_order_id], by_id[t.sell_order_id]
        assert buy.is_buy and buy.agent == t.buyer
        assert not sell.is_buy and sell.agent == t.seller
    for oid, qty in filled_quantities(result).items():
        assert qty <= by_id[oid].quantity + TOL


def assert_deterministic(rule: str, specs, fee: float, k: float, result: ClearingResult) -> None:
    again = (UniformPrice(k) if rule == "uniform" else make_clearing_rule(rule)).clear(
        build(specs), fee
    )
    assert again.trades == result.trades
    assert again.surplus == result.surplus


def assert_surplus_only_under_mcafee(rule: str, result: ClearingResult) -> None:
    if rule == "mcafee":
        assert result.surplus >= 0.0
    else:
        assert result.surplus == 0.0


def assert_single_price(result: ClearingResult) -> None:
    assert len({t.price for t in result.trades}) <= 1
    if result.trades:
        assert result.clearing_price == result.trades[0].price
    else:
        assert math.isnan(result.clearing_price)


def assert_no_crossing_orders_left_when_agents_are_one_sided(rule: str, specs) -> None:
    """Efficiency of uniform / pay-as-bid / CDA: without self-netting, what is left
    unfilled must not cross (best untraded bid < best untraded ask)."""
    first_side: dict[str, str] = {}
    specs = [(a, first_side.setdefault(a, side), q, p) for a, side, q, p in specs]
    book, result = clear(rule, specs)
    filled = filled_quantities(result)
    left_bids = [o.price for o in book.bids if o.quantity - filled[o.order_id] > 1e-6]
    left_asks = [o.price for o in book.asks if o.quantity - filled[o.order_id] > 1e-6]
    if left_bids and left_asks:
        assert max(left_bids) < min(left_asks)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("rule", RULES)
@thorough
@given(specs=books, fee=fees, k=st.sampled_from([0.5, 0.0, 1.0, 0.3]))
def test_clearing_satisfies_market_invariants_on_random_books(rule, specs, fee, k):
    book = build(specs)
    result = (UniformPrice(k) if rule == "uniform" else make_clearing_rule(rule)).clear(book, fee)
    assert_positive_quantities_and_balanced_volume(result)
    assert_individually_rational(book, result)
    assert_money_conserved(result, fee)
    assert_no_self_trades(result)
    assert_orders_not_overfilled(book, result)
    assert_deterministic(rule, specs, fee, k, result)
    assert_surplus_only_under_mcafee(rule, result)
    if rule == "uniform":
        assert_single_price(result)
    if rule != "mcafee":  # McAfee trades efficiency for truthfulness by design
        assert_no_crossing_orders_left_when_agents_are_one_sided(rule, specs)


def test_decoded_books_cover_self_trades_ties_and_crossings():
    # Guards the generator: the interesting cases must actually be reachable.
    a = decode(0)
    assert decode(5)[0] == a[0] and decode(5)[1] != a[1]  # same agent, both sides
    assert decode(1)[3] == a[3]  # price tie
    assert 0.1 <= min(decode(c)[2] for c in range(0, 5000, 10)) <= 50.0
