"""Properties every clearing rule must satisfy on arbitrary books (hypothesis)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.market import ClearingResult, McAfee, OrderBook, UniformPrice, make_clearing_rule

TOL = 1e-9
RULES = ["uniform", "pay_as_bid", "cda", "mcafee"]

# Few agents and coarse prices so books often contain crossings, price ties and
# agents holding both a bid and an ask (the self-trade case).
order_spec = st.tuples(
    st.sampled_from(["MG1", "MG2", "MG3", "MG4", "MG5"]),
    st.sampled_from(["buy", "sell"]),
    st.one_of(st.integers(1, 5).map(float), st.floats(0.01, 50.0)),
    st.one_of(st.integers(0, 10).map(float), st.floats(0.0, 10.0)),
)
books = st.lists(order_spec, max_size=12)
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


@pytest.mark.parametrize("rule", RULES)
@thorough
@given(specs=books, fee=fees)
def test_every_trade_has_positive_quantity_and_volume_balances(rule, specs, fee):
    _, result = clear(rule, specs, fee)
    assert all(t.quantity > 0 for t in result.trades)
    bought = sum(result.bought(a) for a in {t.buyer for t in result.trades})
    sold = sum(result.sold(a) for a in {t.seller for t in result.trades})
    assert bought == pytest.approx(sold, abs=TOL)
    assert result.volume == pytest.approx(bought, abs=TOL)


@pytest.mark.parametrize("rule", RULES)
@thorough
@given(specs=books)
def test_trades_are_individually_rational(rule, specs):
    book, result = clear(rule, specs)
    by_id = {o.order_id: o for o in book.orders}
    for t in result.trades:
        assert t.price <= by_id[t.buy_order_id].price + TOL
        assert t.seller_price >= by_id[t.sell_order_id].price - TOL


@pytest.mark.parametrize("rule", RULES)
@thorough
@given(specs=books, fee=fees)
def test_money_is_conserved(rule, specs, fee):
    _, result = clear(rule, specs, fee)
    paid = sum(t.buyer_pays for t in result.trades)
    received = sum(t.seller_receives for t in result.trades)
    fees_ = sum(t.fee for t in result.trades)
    assert paid == pytest.approx(received + fees_ + result.surplus, abs=TOL * max(1.0, paid))
    assert sum(result.payments(a) for a in {"MG1", "MG2", "MG3", "MG4", "MG5"}) == (
        pytest.approx(fees_ + result.surplus, abs=TOL * max(1.0, paid))
    )
    assert all(t.fee == pytest.approx(fee * t.quantity, abs=TOL) for t in result.trades)


@pytest.mark.parametrize("rule", RULES)
@thorough
@given(specs=books)
def test_no_agent_trades_with_itself(rule, specs):
    _, result = clear(rule, specs)
    assert all(t.buyer != t.seller for t in result.trades)


@pytest.mark.parametrize("rule", RULES)
@thorough
@given(specs=books)
def test_no_order_trades_more_than_its_quantity_on_its_own_side(rule, specs):
    book, result = clear(rule, specs)
    by_id = {o.order_id: o for o in book.orders}
    filled: dict[int, float] = defaultdict(float)
    for t in result.trades:
        assert by_id[t.buy_order_id].agent == t.buyer and by_id[t.buy_order_id].is_buy
        assert by_id[t.sell_order_id].agent == t.seller and not by_id[t.sell_order_id].is_buy
        filled[t.buy_order_id] += t.quantity
        filled[t.sell_order_id] += t.quantity
    for oid, qty in filled.items():
        assert qty <= by_id[oid].quantity + TOL


@pytest.mark.parametrize("rule", RULES)
@thorough
@given(specs=books, fee=fees)
def test_clearing_is_deterministic(rule, specs, fee):
    _, first = clear(rule, specs, fee)
    _, second = clear(rule, specs, fee)
    assert first.trades == second.trades
    assert first.surplus == second.surplus


@thorough
@given(specs=books, k=st.floats(0.0, 1.0))
def test_uniform_rule_trades_everything_at_one_price(specs, k):
    result = UniformPrice(k).clear(build(specs))
    assert len({t.price for t in result.trades}) <= 1
    if result.trades:
        assert result.clearing_price == result.trades[0].price


@thorough
@given(specs=books)
def test_only_mcafee_keeps_a_surplus_and_it_is_never_negative(specs):
    for rule in ("uniform", "pay_as_bid", "cda"):
        assert clear(rule, specs)[1].surplus == 0.0
    assert McAfee().clear(build(specs)).surplus >= 0.0


@pytest.mark.parametrize("rule", ["uniform", "pay_as_bid", "cda"])
@thorough
@given(specs=books)
def test_efficient_rules_leave_no_crossing_orders_untraded(rule, specs):
    # With every agent on one side only (no self-netting), whatever is left unfilled
    # must not cross: the best untraded bid is below the best untraded ask.
    first_side: dict[str, str] = {}
    specs = [(a, first_side.setdefault(a, side), q, p) for a, side, q, p in specs]
    book, result = clear(rule, specs)
    filled: dict[int, float] = defaultdict(float)
    for t in result.trades:
        filled[t.buy_order_id] += t.quantity
        filled[t.sell_order_id] += t.quantity
    left_bids = [o.price for o in book.bids if o.quantity - filled[o.order_id] > 1e-6]
    left_asks = [o.price for o in book.asks if o.quantity - filled[o.order_id] > 1e-6]
    if left_bids and left_asks:
        assert max(left_bids) < min(left_asks)
