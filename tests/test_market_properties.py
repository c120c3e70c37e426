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

from heron.market import (
    MAX_PRICE,
    MAX_QUANTITY,
    ClearingResult,
    Order,
    OrderBook,
    UniformPrice,
    make_clearing_rule,
)

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


# --------------------------------------------------------------------------- outside options


@pytest.mark.parametrize("rule", RULES)
@settings(max_examples=200, deadline=None)
@given(specs=books, lo=st.floats(0.0, 1.0), spread=st.floats(0.0, 1.0),
       fee_share=st.floats(0.0, 1.0), k=st.sampled_from([0.5, 0.0, 1.0]))
def test_trades_beat_outside_options_after_fees_when_limits_lie_in_the_fee_band(
        rule, specs, lo, spread, fee_share, k):
    """Sellers' alternative pays ``lo`` per unit, buyers' costs ``hi``: with every limit in
    [lo + fee/2, hi - fee/2] (what the env's price band does), no side ends up worse off
    than its alternative once it has paid its half of the fee."""
    from heron.protocols.horizontal import P2PTradingProtocol

    hi, fee = lo + spread, fee_share * spread
    band_lo, band_hi = lo + fee / 2, hi - fee / 2
    orders = [Order(a, side, q, band_lo + (p / 10) * (band_hi - band_lo))
              for a, side, q, p in specs]
    rule_obj = UniformPrice(k) if rule == "uniform" else make_clearing_rule(rule)
    result = P2PTradingProtocol(rule_obj, trading_fee=fee).clear(orders)
    for t in result.trades:
        assert t.buyer_pays / t.quantity <= hi + TOL, "buyer would have been better off importing"
        assert t.seller_receives / t.quantity >= lo - TOL, "seller would have been better off exporting"


# Quantities across 15 orders of magnitude, one order per agent: nothing can self-net, so
# every accepted fill must be paired however small it is next to the other orders.
mixed_scale_books = st.lists(
    st.tuples(st.sampled_from(["buy", "sell"]), st.sampled_from([1e-9, 3e-9, 1e-3, 1.0, 1e6]),
              st.integers(0, 10)), min_size=1, max_size=8)


@pytest.mark.parametrize("rule", ["uniform", "pay_as_bid", "cda"])
@settings(max_examples=200, deadline=None)
@given(specs=mixed_scale_books)
def test_tiny_fills_next_to_huge_orders_are_traded_not_dropped_as_dust(rule, specs):
    book = build([(f"A{i}", side, q, p / 10) for i, (side, q, p) in enumerate(specs)])
    result = make_clearing_rule(rule).clear(book)
    filled = filled_quantities(result)
    left = lambda o: o.quantity - filled[o.order_id] > 1e-6 * o.quantity  # noqa: E731
    left_bids = [o.price for o in book.bids if left(o)]
    left_asks = [o.price for o in book.asks if left(o)]
    if left_bids and left_asks:
        assert max(left_bids) < min(left_asks), "a crossing fill was dropped"


@pytest.mark.parametrize("rule", RULES)
def test_two_tiny_bids_against_a_huge_ask_both_trade(rule):
    specs = [("A", "buy", 1e-9, 1.0), ("C", "buy", 1e-9, 1.0), ("D", "buy", 1e-9, 0.9),
             ("B", "sell", 1e6, 0.5)]
    _, result = clear(rule, specs)
    # McAfee's trade reduction drops the marginal bid (D) by design, never the others.
    expected = {"A", "C"} if rule == "mcafee" else {"A", "C", "D"}
    assert {t.buyer for t in result.trades} == expected
    assert all(t.quantity == pytest.approx(1e-9, rel=1e-9) for t in result.trades)


@pytest.mark.parametrize("field, value", [("quantity", 1e200), ("price", 1e200),
                                          ("quantity", MAX_QUANTITY * 2), ("price", MAX_PRICE * 2)])
def test_orders_beyond_documented_bounds_are_rejected(field, value):
    kwargs = {"quantity": 1.0, "price": 1.0, field: value}
    with pytest.raises(ValueError, match=f"order {field} must be .* <= 1e\\+12"):
        Order("A", "buy", **kwargs)


@pytest.mark.parametrize("rule", RULES)
def test_largest_valid_orders_trade_for_a_finite_value(rule):
    specs = [("A", "buy", MAX_QUANTITY, MAX_PRICE), ("B", "sell", MAX_QUANTITY, MAX_PRICE / 2),
             ("C", "buy", MAX_QUANTITY, MAX_PRICE), ("D", "sell", MAX_QUANTITY, 0.0)]
    _, result = clear(rule, specs, fee=MAX_PRICE)
    assert result.trades
    assert all(math.isfinite(t.buyer_pays) and math.isfinite(t.seller_receives)
               for t in result.trades)
    assert math.isfinite(result.clearing_price) and math.isfinite(result.fees)


def test_fee_beyond_the_price_bound_is_rejected():
    from heron.protocols.horizontal import P2PTradingProtocol

    with pytest.raises(ValueError, match="trading_fee must be <= 1e\\+12"):
        P2PTradingProtocol(trading_fee=1e308)
    with pytest.raises(ValueError, match="fee_per_unit"):
        UniformPrice().clear(OrderBook(), 1e308)
