"""Hand-computed books specifying each clearing rule and the P2P trading protocol."""

from __future__ import annotations

import copy
import math
import pickle

import pytest

from heron.market import (
    CLEARING_RULES,
    ClearingResult,
    ContinuousDoubleAuction,
    McAfee,
    Order,
    OrderBook,
    PayAsBid,
    Side,
    Trade,
    UniformPrice,
    make_clearing_rule,
)
from heron.protocols.base import HorizontalProtocol
from heron.protocols.horizontal import P2PTradingProtocol

TOL = 1e-9
ALL_RULES = [UniformPrice(), PayAsBid(), ContinuousDoubleAuction(), McAfee()]


def make_book(*specs: tuple[str, str, float, float]) -> OrderBook:
    """Book from ``(agent, side, quantity, price)`` tuples, in arrival order."""
    book = OrderBook()
    for agent, side, quantity, price in specs:
        book.submit(agent, side, quantity, price)
    return book


def summary(result: ClearingResult) -> list[tuple[str, str, float, float]]:
    return [(t.buyer, t.seller, t.quantity, t.price) for t in result.trades]


def assert_trades(result: ClearingResult, expected: list[tuple[str, str, float, float]]) -> None:
    got = summary(result)
    assert [(b, s) for b, s, _, _ in got] == [(b, s) for b, s, _, _ in expected], got
    for (_, _, q, p), (_, _, eq, ep) in zip(got, expected, strict=True):
        assert q == pytest.approx(eq, abs=TOL)
        assert p == pytest.approx(ep, abs=TOL)


# A 6-agent book used by several rules. Bids: A 3@10, B 2@8, C 4@6; asks: D 2@4, E 3@7,
# F 5@9. Crossing: A-D 2, A-E 1, B-E 2; C(6) < F(9) stops. Marginal bid 8, marginal ask 7.
SIX_AGENTS = (
    ("A", "buy", 3.0, 10.0),
    ("D", "sell", 2.0, 4.0),
    ("B", "buy", 2.0, 8.0),
    ("E", "sell", 3.0, 7.0),
    ("C", "buy", 4.0, 6.0),
    ("F", "sell", 5.0, 9.0),
)


# --------------------------------------------------------------------------- all rules


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_empty_book_clears_to_no_trades_and_nan_price(rule):
    result = rule.clear(OrderBook())
    assert result.trades == () and result.volume == 0.0 and math.isnan(result.clearing_price)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_one_sided_book_clears_to_no_trades(rule):
    result = rule.clear(make_book(("A", "buy", 1.0, 5.0), ("B", "buy", 2.0, 9.0)))
    assert result.trades == () and result.volume == 0.0


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_non_crossing_book_clears_to_no_trades(rule):
    result = rule.clear(make_book(("A", "buy", 1.0, 0.1), ("B", "sell", 1.0, 0.2)))
    assert result.trades == () and math.isnan(result.clearing_price)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_an_agent_never_trades_with_itself(rule):
    result = rule.clear(make_book(("A", "buy", 1.0, 10.0), ("A", "sell", 1.0, 5.0)))
    assert result.trades == ()


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
@pytest.mark.parametrize("fee", [-0.1, math.nan, math.inf])
def test_invalid_fee_is_rejected(rule, fee):
    with pytest.raises(ValueError, match="fee_per_unit"):
        rule.clear(OrderBook(), fee)


@pytest.mark.parametrize(
    "rule", [UniformPrice(), PayAsBid(), ContinuousDoubleAuction()], ids=lambda r: r.name
)
def test_fee_per_unit_charges_each_trade_proportionally_to_quantity(rule):
    result = rule.clear(make_book(("S", "sell", 3.0, 0.1), ("B", "buy", 5.0, 0.2)), 0.01)
    (trade,) = result.trades
    assert trade.fee == pytest.approx(0.03, abs=TOL)
    assert trade.buyer_pays == pytest.approx(trade.value + 0.015, abs=TOL)
    assert result.fees == pytest.approx(0.03, abs=TOL)


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.name)
def test_trades_record_the_matched_order_ids(rule):
    # Two crossing pairs plus slack so McAfee's reduction leaves one trade.
    book = make_book(
        ("S1", "sell", 1.0, 1.0),
        ("B1", "buy", 1.0, 10.0),
        ("S2", "sell", 1.0, 2.0),
        ("B2", "buy", 1.0, 9.0),
    )
    for t in rule.clear(book).trades:
        assert book.orders[t.buy_order_id].agent == t.buyer
        assert book.orders[t.sell_order_id].agent == t.seller


# --------------------------------------------------------------------------- uniform


def test_uniform_trades_crossing_quantity_at_midpoint_of_marginal_prices():
    result = UniformPrice().clear(make_book(("B", "buy", 5.0, 0.2), ("S", "sell", 3.0, 0.1)))
    assert_trades(result, [("B", "S", 3.0, 0.15)])
    assert result.clearing_price == pytest.approx(0.15, abs=TOL)
    assert result.volume == pytest.approx(3.0, abs=TOL)


@pytest.mark.parametrize("k, price", [(0.0, 0.1), (0.25, 0.125), (1.0, 0.2)])
def test_uniform_k_interpolates_from_ask_to_bid(k, price):
    result = UniformPrice(k).clear(make_book(("B", "buy", 5.0, 0.2), ("S", "sell", 3.0, 0.1)))
    assert result.clearing_price == pytest.approx(price, abs=TOL)


@pytest.mark.parametrize("k", [-0.1, 1.1, math.nan, "0.5", True])
def test_uniform_rejects_k_outside_unit_interval(k):
    with pytest.raises(ValueError, match="k must be a number in"):
        UniformPrice(k)


def test_uniform_many_agents_price_set_by_last_accepted_bid_and_ask():
    result = UniformPrice().clear(make_book(*SIX_AGENTS))
    assert_trades(result, [("A", "D", 2.0, 7.5), ("A", "E", 1.0, 7.5), ("B", "E", 2.0, 7.5)])
    assert result.volume == pytest.approx(5.0, abs=TOL)
    assert result.sold("F") == 0.0 and result.bought("C") == 0.0


def test_uniform_partially_fills_the_long_side():
    result = UniformPrice().clear(make_book(("B", "buy", 5.0, 10.0), ("S", "sell", 2.0, 5.0)))
    assert result.bought("B") == pytest.approx(2.0, abs=TOL)


def test_uniform_price_tie_between_bids_goes_to_earlier_order():
    book = make_book(("A", "buy", 1.0, 10.0), ("B", "buy", 1.0, 10.0), ("S", "sell", 1.0, 5.0))
    assert_trades(UniformPrice().clear(book), [("A", "S", 1.0, 7.5)])


def test_uniform_price_tie_between_asks_goes_to_earlier_order():
    book = make_book(("B", "buy", 1.0, 10.0), ("S2", "sell", 1.0, 5.0), ("S1", "sell", 1.0, 5.0))
    assert_trades(UniformPrice().clear(book), [("B", "S2", 1.0, 7.5)])


def test_uniform_bid_equal_to_ask_trades_at_that_price():
    result = UniformPrice().clear(make_book(("B", "buy", 1.0, 3.0), ("S", "sell", 1.0, 3.0)))
    assert_trades(result, [("B", "S", 1.0, 3.0)])


def test_uniform_nets_an_agents_own_crossing_volume_and_trades_the_rest():
    # Aggregate crossing: A10-A5 1, A10-C6 1 -> price (10+6)/2. A's self-crossing unit is
    # netted out; only the C unit becomes a trade.
    book = make_book(("A", "buy", 2.0, 10.0), ("A", "sell", 1.0, 5.0), ("C", "sell", 1.0, 6.0))
    assert_trades(UniformPrice().clear(book), [("A", "C", 1.0, 8.0)])


def test_uniform_reroutes_around_self_matches():
    # Best bid A and best ask A are the same agent: A buys from S, B buys from A.
    book = make_book(
        ("A", "buy", 1.0, 10.0),
        ("B", "buy", 1.0, 9.0),
        ("A", "sell", 1.0, 1.0),
        ("S", "sell", 1.0, 2.0),
    )
    assert_trades(UniformPrice().clear(book), [("A", "S", 1.0, 5.5), ("B", "A", 1.0, 5.5)])


# --------------------------------------------------------------------------- pay as bid


def test_pay_as_bid_prices_each_trade_at_the_buyers_bid():
    result = PayAsBid().clear(make_book(*SIX_AGENTS))
    assert_trades(result, [("A", "D", 2.0, 10.0), ("A", "E", 1.0, 10.0), ("B", "E", 2.0, 8.0)])


def test_pay_as_bid_clearing_price_is_volume_weighted_mean():
    result = PayAsBid().clear(make_book(*SIX_AGENTS))
    assert result.clearing_price == pytest.approx((3 * 10.0 + 2 * 8.0) / 5, abs=TOL)


def test_pay_as_bid_accepts_the_same_quantities_as_uniform():
    uniform = UniformPrice().clear(make_book(*SIX_AGENTS))
    pab = PayAsBid().clear(make_book(*SIX_AGENTS))
    assert [t.quantity for t in pab.trades] == [t.quantity for t in uniform.trades]


def test_pay_as_bid_tie_between_bids_goes_to_earlier_order():
    book = make_book(("A", "buy", 1.0, 10.0), ("B", "buy", 1.0, 10.0), ("S", "sell", 1.5, 5.0))
    assert_trades(PayAsBid().clear(book), [("A", "S", 1.0, 10.0), ("B", "S", 0.5, 10.0)])


# --------------------------------------------------------------------------- CDA


def test_cda_incoming_buy_trades_at_resting_ask_price():
    book = make_book(("S", "sell", 1.0, 3.0), ("B", "buy", 1.0, 10.0))
    assert_trades(ContinuousDoubleAuction().clear(book), [("B", "S", 1.0, 3.0)])


def test_cda_incoming_sell_trades_at_resting_bid_price():
    book = make_book(("B", "buy", 1.0, 10.0), ("S", "sell", 1.0, 3.0))
    assert_trades(ContinuousDoubleAuction().clear(book), [("B", "S", 1.0, 10.0)])


def test_cda_replays_arrivals_with_price_time_priority_and_resting_remainders():
    # id0 A sells 2@5 and id1 B sells 1@4 rest. id2 C buys 2@6: takes B@4 then A@5.
    # id3 D buys 2@5: takes A's last unit @5, rests 1@5. id4 E sells 1@3: hits D @5.
    book = make_book(
        ("A", "sell", 2.0, 5.0),
        ("B", "sell", 1.0, 4.0),
        ("C", "buy", 2.0, 6.0),
        ("D", "buy", 2.0, 5.0),
        ("E", "sell", 1.0, 3.0),
    )
    assert_trades(
        ContinuousDoubleAuction().clear(book),
        [("C", "B", 1.0, 4.0), ("C", "A", 1.0, 5.0), ("D", "A", 1.0, 5.0), ("D", "E", 1.0, 5.0)],
    )


def test_cda_outcome_depends_on_arrival_order():
    early_buy = make_book(("B", "buy", 1.0, 10.0), ("S", "sell", 1.0, 3.0))
    early_sell = make_book(("S", "sell", 1.0, 3.0), ("B", "buy", 1.0, 10.0))
    rule = ContinuousDoubleAuction()
    assert rule.clear(early_buy).clearing_price != rule.clear(early_sell).clearing_price


def test_cda_equal_resting_prices_fill_earlier_order_first():
    book = make_book(("S1", "sell", 1.0, 5.0), ("S2", "sell", 1.0, 5.0), ("B", "buy", 1.5, 6.0))
    assert_trades(
        ContinuousDoubleAuction().clear(book), [("B", "S1", 1.0, 5.0), ("B", "S2", 0.5, 5.0)]
    )


def test_cda_skips_own_resting_order_and_leaves_it_for_others():
    # A's buy skips A's resting ask and rests; B's ask then hits A's bid at A's price.
    book = make_book(
        ("A", "sell", 1.0, 5.0),
        ("A", "buy", 1.0, 6.0),
        ("B", "sell", 1.0, 5.5),
        ("C", "buy", 1.0, 5.0),
    )
    assert_trades(
        ContinuousDoubleAuction().clear(book), [("A", "B", 1.0, 6.0), ("C", "A", 1.0, 5.0)]
    )


def test_cda_partially_filled_incoming_order_rests_its_remainder():
    book = make_book(("S", "sell", 1.0, 5.0), ("B", "buy", 3.0, 6.0), ("T", "sell", 4.0, 6.0))
    assert_trades(
        ContinuousDoubleAuction().clear(book), [("B", "S", 1.0, 5.0), ("B", "T", 2.0, 6.0)]
    )


# --------------------------------------------------------------------------- McAfee


def test_mcafee_all_efficient_pairs_trade_at_p0_when_it_lies_between_marginal_prices():
    # Unit bids 10, 9, 8, 3; asks 1, 2, 4, 9.5. K=3, p0=(3+9.5)/2=6.25 in [4, 8].
    book = make_book(
        ("B1", "buy", 1, 10),
        ("B2", "buy", 1, 9),
        ("B3", "buy", 1, 8),
        ("B4", "buy", 1, 3),
        ("S1", "sell", 1, 1),
        ("S2", "sell", 1, 2),
        ("S3", "sell", 1, 4),
        ("S4", "sell", 1, 9.5),
    )
    result = McAfee().clear(book)
    assert_trades(result, [("B1", "S1", 1, 6.25), ("B2", "S2", 1, 6.25), ("B3", "S3", 1, 6.25)])
    assert result.surplus == 0.0


def test_mcafee_reduces_the_marginal_pair_when_p0_is_outside():
    # Unit bids 10, 9, 5, 4.8; asks 1, 2, 4, 9. K=3, p0=6.9 > b_K=5 -> drop pair 3:
    # buyers pay b_K=5, sellers receive a_K=4, operator keeps 2 * (5 - 4).
    book = make_book(
        ("B1", "buy", 1, 10),
        ("B2", "buy", 1, 9),
        ("B3", "buy", 1, 5),
        ("B4", "buy", 1, 4.8),
        ("S1", "sell", 1, 1),
        ("S2", "sell", 1, 2),
        ("S3", "sell", 1, 4),
        ("S4", "sell", 1, 9),
    )
    result = McAfee().clear(book)
    assert_trades(result, [("B1", "S1", 1, 5.0), ("B2", "S2", 1, 5.0)])
    assert [t.seller_price for t in result.trades] == pytest.approx([4.0, 4.0], abs=TOL)
    assert result.surplus == pytest.approx(2.0, abs=TOL)
    assert result.payments("B1") == pytest.approx(5.0, abs=TOL)
    assert result.payments("S1") == pytest.approx(-4.0, abs=TOL)


def test_mcafee_reduces_when_no_untraded_order_exists():
    book = make_book(
        ("B1", "buy", 1, 10), ("B2", "buy", 1, 9), ("S1", "sell", 1, 1), ("S2", "sell", 1, 2)
    )
    result = McAfee().clear(book)
    assert_trades(result, [("B1", "S1", 1, 9.0)])
    assert result.trades[0].seller_price == pytest.approx(2.0, abs=TOL)
    assert result.surplus == pytest.approx(7.0, abs=TOL)


def test_mcafee_single_crossing_pair_does_not_trade():
    result = McAfee().clear(make_book(("B", "buy", 1, 10), ("S", "sell", 1, 1)))
    assert result.trades == () and result.surplus == 0.0


def test_mcafee_divisible_reduction_removes_only_the_final_segment():
    # A 10@10 vs B 1@1, C 1@2: segments A-B 1, A-C 1; next bid is A's remainder @10, no
    # next ask -> drop the A-C segment. A still buys B's unit at b_K=10, B gets a_K=2.
    book = make_book(("A", "buy", 10, 10), ("B", "sell", 1, 1), ("C", "sell", 1, 2))
    result = McAfee().clear(book)
    assert_trades(result, [("A", "B", 1.0, 10.0)])
    assert result.surplus == pytest.approx(8.0, abs=TOL)


def test_mcafee_divisible_p0_branch_when_final_segment_exhausts_both_orders():
    # A 2@10 takes C 1@1 and D 1@4 exactly; next bid B@3, next ask E@8 -> p0=5.5 in [4, 10].
    book = make_book(
        ("A", "buy", 2, 10),
        ("B", "buy", 1, 3),
        ("C", "sell", 1, 1),
        ("D", "sell", 1, 4),
        ("E", "sell", 1, 8),
    )
    assert_trades(McAfee().clear(book), [("A", "C", 1.0, 5.5), ("A", "D", 1.0, 5.5)])


def test_mcafee_tie_between_bids_goes_to_earlier_order():
    book = make_book(
        ("A", "buy", 1, 10), ("B", "buy", 1, 10), ("D", "sell", 1, 2), ("E", "sell", 1, 2)
    )
    assert_trades(McAfee().clear(book), [("A", "D", 1.0, 10.0)])


def test_mcafee_money_balances_with_fees_and_surplus():
    book = make_book(
        ("B1", "buy", 1, 10), ("B2", "buy", 1, 9), ("S1", "sell", 1, 1), ("S2", "sell", 1, 2)
    )
    result = McAfee().clear(book, fee_per_unit=0.5)
    paid = sum(t.buyer_pays for t in result.trades)
    received = sum(t.seller_receives for t in result.trades)
    assert paid == pytest.approx(received + result.fees + result.surplus, abs=TOL)
    assert result.payments("B1") == pytest.approx(9.25, abs=TOL)
    assert result.payments("S1") == pytest.approx(-1.75, abs=TOL)


# --------------------------------------------------------------------------- result helpers


def test_result_bought_sold_and_payments_per_agent():
    result = ClearingResult.from_trades(
        [
            Trade("A", "B", 2.0, 3.0, fee=0.2),
            Trade("B", "C", 1.0, 4.0),
        ]
    )
    assert result.bought("A") == 2.0 and result.sold("A") == 0.0
    assert result.bought("B") == 1.0 and result.sold("B") == 2.0
    assert result.payments("A") == pytest.approx(6.1, abs=TOL)
    assert result.payments("B") == pytest.approx(4.0 - 5.9, abs=TOL)
    assert result.payments("Z") == 0.0
    assert result.volume == 3.0
    assert result.clearing_price == pytest.approx(10.0 / 3.0, abs=TOL)


# --------------------------------------------------------------------------- registry


def test_registry_maps_names_to_rule_classes():
    assert CLEARING_RULES == {
        "uniform": UniformPrice,
        "pay_as_bid": PayAsBid,
        "cda": ContinuousDoubleAuction,
        "mcafee": McAfee,
    }
    for name, cls in CLEARING_RULES.items():
        assert cls.name == name


@pytest.mark.parametrize("name", sorted(CLEARING_RULES))
def test_make_clearing_rule_builds_rule_from_name(name):
    assert isinstance(make_clearing_rule(name), CLEARING_RULES[name])


def test_make_clearing_rule_passes_instances_through():
    rule = UniformPrice(0.3)
    assert make_clearing_rule(rule) is rule


def test_make_clearing_rule_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="'uniform', 'pay_as_bid', 'cda', 'mcafee'"):
        make_clearing_rule("vickrey")


def test_make_clearing_rule_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match="clearing rule"):
        make_clearing_rule(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- P2P protocol


def test_p2p_is_a_horizontal_protocol_named_p2p_trading():
    proto = P2PTradingProtocol()
    assert isinstance(proto, HorizontalProtocol) and proto.name == "p2p_trading"
    assert isinstance(proto.clearing_rule, UniformPrice) and proto.trading_fee == 0.0


@pytest.mark.parametrize("fee", [-1.0, math.nan, math.inf, "0.1", None])
def test_p2p_rejects_invalid_trading_fee(fee):
    with pytest.raises(ValueError, match="trading_fee"):
        P2PTradingProtocol(trading_fee=fee)


def test_p2p_rejects_unknown_rule_name():
    with pytest.raises(ValueError, match="unknown clearing rule"):
        P2PTradingProtocol("nope")


def test_p2p_clear_applies_rule_and_fee():
    proto = P2PTradingProtocol("pay_as_bid", trading_fee=0.01)
    result = proto.clear([Order("MG1", Side.BUY, 5.0, 0.2), Order("MG2", Side.SELL, 3.0, 0.1)])
    assert_trades(result, [("MG1", "MG2", 3.0, 0.2)])
    assert result.trades[0].fee == pytest.approx(0.03, abs=TOL)


def test_p2p_clear_uses_iteration_order_as_time_priority():
    orders = [
        Order("B", Side.BUY, 1.0, 10.0),
        Order("A", Side.BUY, 1.0, 10.0),
        Order("S", Side.SELL, 1.0, 5.0),
    ]
    assert_trades(P2PTradingProtocol().clear(orders), [("B", "S", 1.0, 7.5)])


def test_p2p_clear_rejects_orders_from_unknown_agents():
    with pytest.raises(ValueError, match="'MG3'"):
        P2PTradingProtocol().clear([Order("MG3", Side.BUY, 1.0, 1.0)], agents=["MG1", "MG2"])


def test_p2p_clear_starts_from_a_fresh_book_every_call():
    proto = P2PTradingProtocol()
    orders = [Order("B", Side.BUY, 1.0, 10.0), Order("S", Side.SELL, 1.0, 5.0)]
    assert proto.clear(orders).trades == proto.clear(orders).trades


def test_p2p_repr_shows_rule_and_fee():
    assert repr(P2PTradingProtocol()) == "P2PTradingProtocol(clearing='uniform', trading_fee=0.0)"
    assert repr(P2PTradingProtocol(UniformPrice(0.3), 0.5)) == (
        "P2PTradingProtocol(clearing=UniformPrice(k=0.3), trading_fee=0.5)"
    )


@pytest.mark.parametrize(
    "clone", [copy.deepcopy, lambda p: pickle.loads(pickle.dumps(p))], ids=["deepcopy", "pickle"]
)
def test_p2p_survives_copying_with_identical_behaviour(clone):
    proto = P2PTradingProtocol("mcafee", trading_fee=0.1)
    twin = clone(proto)
    orders = [
        Order("B1", Side.BUY, 1, 10),
        Order("B2", Side.BUY, 1, 9),
        Order("S1", Side.SELL, 1, 1),
        Order("S2", Side.SELL, 1, 2),
    ]
    assert repr(twin) == repr(proto)
    assert twin.clear(orders) == proto.clear(orders)
