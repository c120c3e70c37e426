"""Batched clearing (heron.market.batched) equals each scalar rule, book by book."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.market import (
    ClearingRule,
    ContinuousDoubleAuction,
    McAfee,
    PayAsBid,
    UniformPrice,
)
from heron.market.batched import clear_rows

RULES = [UniformPrice(), UniformPrice(k=0.2), PayAsBid(), ContinuousDoubleAuction(), McAfee()]
# coarse prices make ties (and McAfee's p0 branch) common; quantities span many scales
price = st.sampled_from([0.05, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3]) | st.floats(0.0, 1.0)
quantity = st.floats(1e-6, 1e3) | st.sampled_from([1.0, 2.0, 0.5])
slot = st.tuples(st.sampled_from([-1, 0, 1]), quantity, price)
books = st.integers(1, 4).flatmap(
    lambda B: st.integers(1, 7).flatmap(
        lambda K: st.lists(st.lists(slot, min_size=K, max_size=K), min_size=B, max_size=B)))


def arrays(rows):
    a = np.array(rows, dtype=float)  # (B, K, 3)
    return a[..., 0].astype(int), a[..., 1], a[..., 2]


@pytest.mark.parametrize("rule", RULES, ids=lambda r: repr(r))
@settings(max_examples=150, deadline=None)
@given(rows=books, fee=st.sampled_from([0.0, 0.01, 0.037]))
def test_compiled_batch_clearing_equals_the_scalar_rule_row_by_row(rule, rows, fee):
    side, qty, prc = arrays(rows)
    fast = rule.clear_batch(side, qty, prc, fee)
    ref = clear_rows(rule, side, qty, prc, fee)
    for field in ("bought", "sold", "paid", "received", "fees", "price", "volume", "surplus"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(ref, field), err_msg=field)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: repr(r))
@settings(max_examples=60, deadline=None)
@given(rows=books, fee=st.sampled_from([0.0, 0.02]))
def test_batch_clearing_conserves_energy_and_money(rule, rows, fee):
    side, qty, prc = arrays(rows)
    r = rule.clear_batch(side, qty, prc, fee)
    np.testing.assert_allclose(r.bought.sum(1), r.sold.sum(1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.bought.sum(1), r.volume, rtol=1e-12, atol=1e-12)
    assert np.all(r.bought <= np.where(side > 0, qty, 0) * (1 + 1e-12))
    assert np.all(r.sold <= np.where(side < 0, qty, 0) * (1 + 1e-12))
    np.testing.assert_allclose(r.paid.sum(1), r.received.sum(1) + r.surplus, rtol=1e-9,
                               atol=1e-12)


def test_a_custom_rule_is_cleared_row_by_row_through_its_clear():
    class NoTrade(ClearingRule):
        def clear(self, book, fee_per_unit=0.0):
            from heron.market import ClearingResult
            return ClearingResult.from_trades([])

    side = np.array([[1, -1]])
    r = NoTrade().clear_batch(side, np.ones((1, 2)), np.array([[0.3, 0.1]]))
    assert r.volume[0] == 0 and np.isnan(r.price[0])
    assert UniformPrice().clear_batch(side, np.ones((1, 2)), np.array([[0.3, 0.1]])).volume[0] == 1


def test_batch_books_of_different_shapes_raise():
    with pytest.raises(ValueError, match="one shape"):
        UniformPrice().clear_batch(np.zeros((2, 3)), np.ones((2, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="quantity"):
        UniformPrice().clear_batch(np.array([[1]]), np.array([[-1.0]]), np.array([[0.1]]))
