"""Specification of orders, trades and the order book."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from heron.market import Order, OrderBook, Side, Trade, validate_order

# --------------------------------------------------------------------------- Side


def test_side_values_are_the_strings_buy_and_sell():
    assert Side.BUY == "buy"
    assert Side.SELL == "sell"
    assert str(Side.BUY) == "buy"


# --------------------------------------------------------------------------- Order


def test_order_keeps_its_fields_and_defaults_order_id_to_minus_one():
    o = Order("MG1", Side.BUY, 2.5, 0.12)
    assert (o.agent, o.side, o.quantity, o.price, o.order_id) == ("MG1", Side.BUY, 2.5, 0.12, -1)


@pytest.mark.parametrize("raw, side", [("buy", Side.BUY), ("sell", Side.SELL)])
def test_order_converts_side_strings_to_side(raw, side):
    assert Order("MG1", raw, 1.0, 1.0).side is side


@pytest.mark.parametrize("bad", ["BUY", "bid", "", None, 1])
def test_order_rejects_unknown_side_naming_the_field(bad):
    with pytest.raises(ValueError, match="side"):
        Order("MG1", bad, 1.0, 1.0)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_order_rejects_non_positive_or_non_finite_quantity(bad):
    with pytest.raises(ValueError, match="quantity must be a finite number > 0"):
        Order("MG1", Side.BUY, bad, 1.0)


def test_quantity_error_message_names_value_and_agent():
    with pytest.raises(ValueError) as info:
        Order("MG1", Side.BUY, math.nan, 1.0)
    assert str(info.value) == "order quantity must be a finite number > 0 and <= 1e+12, got nan (agent 'MG1')"


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf])
def test_order_rejects_negative_or_non_finite_price(bad):
    with pytest.raises(ValueError, match="price must be a finite number >= 0"):
        Order("MG1", Side.SELL, 1.0, bad)


def test_order_accepts_zero_price():
    assert Order("MG1", Side.SELL, 1.0, 0.0).price == 0.0


@pytest.mark.parametrize("bad", ["", None, 3])
def test_order_rejects_empty_or_non_string_agent(bad):
    with pytest.raises(ValueError, match="agent"):
        Order(bad, Side.BUY, 1.0, 1.0)


@pytest.mark.parametrize("field", ["quantity", "price"])
@pytest.mark.parametrize("bad", ["1.0", True, None])
def test_order_rejects_non_numeric_quantity_and_price(field, bad):
    kwargs = {"quantity": 1.0, "price": 1.0, field: bad}
    with pytest.raises(ValueError, match=field):
        Order("MG1", Side.BUY, **kwargs)


def test_order_normalises_numpy_and_int_numbers_to_float():
    o = Order("MG1", Side.BUY, np.float32(2.0), 3)
    assert type(o.quantity) is float and o.quantity == 2.0
    assert type(o.price) is float and o.price == 3.0


def test_order_is_immutable_and_hashable():
    o = Order("MG1", Side.BUY, 1.0, 1.0)
    with pytest.raises(AttributeError):
        o.price = 2.0  # type: ignore[misc]
    assert hash(o) == hash(Order("MG1", Side.BUY, 1.0, 1.0))


def test_order_pickles():
    o = Order("MG1", Side.BUY, 1.0, 1.0, 4)
    assert pickle.loads(pickle.dumps(o)) == o


def test_validate_order_returns_normalised_fields():
    assert validate_order("MG1", "sell", 2, 0.5) == ("MG1", Side.SELL, 2.0, 0.5)


# --------------------------------------------------------------------------- Trade


def test_trade_value_is_quantity_times_price():
    assert Trade("B", "S", 2.0, 0.25).value == pytest.approx(0.5, abs=1e-12)


def test_trade_fee_is_split_half_to_each_side():
    t = Trade("B", "S", quantity=2.0, price=0.25, fee=0.1)
    assert t.buyer_pays == pytest.approx(0.55, abs=1e-12)
    assert t.seller_receives == pytest.approx(0.45, abs=1e-12)


def test_trade_money_is_conserved_with_operator_surplus():
    t = Trade("B", "S", quantity=2.0, price=0.3, fee=0.1, surplus=0.2)
    assert t.buyer_pays == pytest.approx(t.seller_receives + t.fee + t.surplus, abs=1e-12)
    assert t.seller_price == pytest.approx(0.2, abs=1e-12)


# --------------------------------------------------------------------------- OrderBook


def test_book_assigns_sequential_order_ids_in_arrival_order():
    book = OrderBook()
    a = book.add(Order("A", Side.BUY, 1.0, 1.0, order_id=99))
    b = book.submit("B", "sell", 1.0, 1.0)
    assert (a.order_id, b.order_id) == (0, 1)


def test_book_add_returns_stored_copy_with_same_fields():
    order = Order("A", Side.BUY, 1.5, 2.0)
    stored = OrderBook().add(order)
    assert (stored.agent, stored.side, stored.quantity, stored.price) == ("A", Side.BUY, 1.5, 2.0)


def test_book_rejects_unknown_agent_naming_it():
    book = OrderBook(agents=["MG1", "MG2"])
    book.submit("MG1", "buy", 1.0, 1.0)
    with pytest.raises(ValueError, match="'MG9'"):
        book.submit("MG9", "buy", 1.0, 1.0)


def test_book_rejects_non_orders():
    with pytest.raises(TypeError, match="Order"):
        OrderBook().add(("A", "buy", 1.0, 1.0))  # type: ignore[arg-type]


def test_book_submit_validates_fields():
    with pytest.raises(ValueError, match="quantity"):
        OrderBook().submit("A", "buy", -1.0, 1.0)


def test_bids_are_sorted_by_price_descending_then_arrival():
    book = OrderBook()
    book.submit("A", "buy", 1.0, 5.0)
    book.submit("B", "buy", 1.0, 7.0)
    book.submit("C", "buy", 1.0, 5.0)
    book.submit("D", "sell", 1.0, 9.0)
    assert [o.agent for o in book.bids] == ["B", "A", "C"]


def test_asks_are_sorted_by_price_ascending_then_arrival():
    book = OrderBook()
    book.submit("A", "sell", 1.0, 5.0)
    book.submit("B", "sell", 1.0, 3.0)
    book.submit("C", "sell", 1.0, 5.0)
    book.submit("D", "buy", 1.0, 1.0)
    assert [o.agent for o in book.asks] == ["B", "A", "C"]


def test_bids_and_asks_are_tuples():
    book = OrderBook()
    assert book.bids == () and book.asks == ()


def test_cancel_removes_and_returns_the_order():
    book = OrderBook()
    keep = book.submit("A", "buy", 1.0, 1.0)
    gone = book.submit("B", "sell", 1.0, 1.0)
    assert book.cancel(gone.order_id) == gone
    assert book.asks == () and book.bids == (keep,) and len(book) == 1


def test_cancel_unknown_id_raises_key_error():
    book = OrderBook()
    book.submit("A", "buy", 1.0, 1.0)
    with pytest.raises(KeyError, match="order_id 7"):
        book.cancel(7)


def test_cancel_twice_raises_key_error():
    book = OrderBook()
    o = book.submit("A", "buy", 1.0, 1.0)
    book.cancel(o.order_id)
    with pytest.raises(KeyError):
        book.cancel(o.order_id)


def test_orders_of_returns_one_agents_orders_in_arrival_order():
    book = OrderBook()
    first = book.submit("A", "sell", 1.0, 9.0)
    book.submit("B", "buy", 1.0, 1.0)
    second = book.submit("A", "buy", 2.0, 1.0)
    assert book.orders_of("A") == (first, second)
    assert book.orders_of("Z") == ()


def test_len_counts_all_orders():
    book = OrderBook()
    book.submit("A", "sell", 1.0, 9.0)
    book.submit("B", "buy", 1.0, 1.0)
    assert len(book) == 2


def test_clear_empties_the_book_and_restarts_order_ids():
    book = OrderBook()
    book.submit("A", "sell", 1.0, 9.0)
    book.clear()
    assert len(book) == 0
    assert book.submit("A", "buy", 1.0, 1.0).order_id == 0
