"""Clearing of B order books at once: the four rules as compiled kernels over arrays.

Why: a batched simulation steps thousands of markets per call; building ``Order`` objects
and an ``OrderBook`` per market costs more than the clearing. Here a batch of books is
three ``(B, K)`` arrays: slot ``k`` of row ``b`` is trader ``k``'s single order in market
``b`` (``side`` +1 buy, -1 sell, 0 none; ``quantity``; limit ``price``), arriving in slot
order (slot = ``order_id``). With one order per trader no self-trade can arise.

Results are exactly the scalar rule's (same float operations in the same order, tested
with hypothesis against :meth:`ClearingRule.clear`): per slot the quantity bought/sold,
the money paid/received before fees (a McAfee seller is credited net of the operator
surplus) and its half of each trade's fee; per row the clearing price (NaN without
trades), volume and surplus. A rule without a kernel (a user's own ``ClearingRule``) is
cleared row by row through its ``clear`` (:func:`clear_rows`).

Pair fees: an optional ``(K, K)`` (or ``(B, K, K)``) matrix ``pair_fee[buyer slot, seller
slot]`` adds a per-unit fee to every trade of that pair, as
:class:`~heron.market.fees.PairFees` does for the scalar rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from heron.market.clearing import ClearingRule

__all__ = ["BatchClearing", "clear_into", "clear_into_logged", "clear_kernel", "clear_logged",
           "clear_rows"]

UNIFORM, PAY_AS_BID, MCAFEE, CDA = 0, 1, 2, 3
#: columns of a trade log (:func:`clear_logged`), one row per trade
#: (``Trade``'s field order: a row unpacks into buyer, seller, quantity, price, fee, surplus)
LOG_BUYER, LOG_SELLER, LOG_QTY, LOG_PRICE, LOG_FEE, LOG_SURPLUS = range(6)
LOG_WIDTH = 6
_DUST = 1e-12  # as heron.market.clearing._DUST


@dataclass(frozen=True)
class BatchClearing:
    """Per-slot ``(B, K)`` fills and money, per-row ``(B,)`` price, volume, surplus."""

    bought: np.ndarray
    sold: np.ndarray
    paid: np.ndarray       # sum of quantity x price over the slot's buys
    received: np.ndarray   # sum of quantity x price - surplus over the slot's sells
    fees: np.ndarray       # the slot's half of every trade fee
    price: np.ndarray      # volume-weighted trade price, NaN without trades
    volume: np.ndarray
    surplus: np.ndarray


def check_books(side: np.ndarray, quantity: np.ndarray, price: np.ndarray,
                fee_per_unit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a batch of books once (the kernels trust their input)."""
    side = np.ascontiguousarray(side, dtype=np.int64)
    quantity = np.ascontiguousarray(quantity, dtype=np.float64)
    price = np.ascontiguousarray(price, dtype=np.float64)
    if side.ndim != 2 or quantity.shape != side.shape or price.shape != side.shape:
        raise ValueError(f"side, quantity and price must be (B, K) arrays of one shape, got "
                         f"{side.shape}, {quantity.shape}, {price.shape}")
    if not np.isin(side, (-1, 0, 1)).all():
        raise ValueError("side must hold +1 (buy), -1 (sell) or 0 (no order)")
    live = side != 0
    if not (np.isfinite(quantity[live]).all() and (quantity[live] > 0).all()):
        raise ValueError("every order's quantity must be a finite number > 0")
    if not (np.isfinite(price[live]).all() and (price[live] >= 0).all()):
        raise ValueError("every order's price must be a finite number >= 0")
    if not 0.0 <= fee_per_unit < np.inf:
        raise ValueError(f"fee_per_unit must be a finite number >= 0, got {fee_per_unit!r}")
    return side, quantity, price


def check_pair_fee(pair_fee: np.ndarray | None, B: int, K: int) -> np.ndarray:
    """The pair-fee matrix as a contiguous ``(1 or B, K, K)`` array (zeros when None)."""
    if pair_fee is None:
        return np.zeros((1, K, K))
    pf = np.array(pair_fee, dtype=np.float64)
    if pf.ndim == 2:
        pf = pf[None]
    if pf.ndim != 3 or pf.shape[1:] != (K, K) or pf.shape[0] not in (1, B):
        raise ValueError(f"pair_fee must be a ({K}, {K}) or ({B}, {K}, {K}) matrix "
                         f"[buyer slot, seller slot], got shape {np.shape(pair_fee)}")
    off = ~np.eye(K, dtype=bool)
    if not (np.isfinite(pf[:, off]).all() and (pf[:, off] >= 0).all()):
        raise ValueError("pair_fee entries must be finite numbers >= 0")
    pf[:, ~off] = 0.0  # never used: no slot trades with itself
    return np.ascontiguousarray(pf)


def _empty(B: int, K: int) -> tuple[np.ndarray, ...]:
    z = [np.zeros((B, K)) for _ in range(5)]
    return (*z, np.full(B, np.nan), np.zeros(B), np.zeros(B))


def clear_kernel(code: int, k: float, side: np.ndarray, quantity: np.ndarray,
                 price: np.ndarray, fee_per_unit: float,
                 pair_fee: np.ndarray | None = None) -> BatchClearing:
    """Clear every row with the compiled rule ``code`` (UNIFORM, PAY_AS_BID, MCAFEE, CDA)."""
    side, quantity, price = check_books(side, quantity, price, fee_per_unit)
    pf = check_pair_fee(pair_fee, *side.shape)
    out = _empty(*side.shape)
    clear_into(code, float(k), side, quantity, price, float(fee_per_unit), pf, *out)
    return BatchClearing(*out)


def clear_rows(rule: ClearingRule, side: np.ndarray, quantity: np.ndarray, price: np.ndarray,
               fee_per_unit: float, pair_fee: np.ndarray | None = None) -> BatchClearing:
    """Per-row fallback: an ``OrderBook`` and ``rule.clear`` for every row (agents are the
    slot numbers as strings)."""
    from heron.market.book import OrderBook
    from heron.market.fees import PairFees
    from heron.market.orders import Order, Side

    side, quantity, price = check_books(side, quantity, price, fee_per_unit)
    B, K = side.shape
    pf = None if pair_fee is None else check_pair_fee(pair_fee, B, K)
    slots = tuple(str(j) for j in range(K))
    bought, sold, paid, received, fees, p, volume, surplus = _empty(B, K)
    for b in range(B):
        book = OrderBook()
        for j in np.flatnonzero(side[b]):
            book.add(Order(str(j), Side.BUY if side[b, j] > 0 else Side.SELL,
                           float(quantity[b, j]), float(price[b, j])))
        if pf is None:  # a user's rule may not take pair fees at all
            res = rule.clear(book, fee_per_unit)
        else:
            res = rule.clear(book, fee_per_unit, PairFees(slots, pf[b if len(pf) > 1 else 0]))
        for t in res.trades:
            i, s = int(t.buyer), int(t.seller)
            bought[b, i] += t.quantity
            paid[b, i] += t.value
            fees[b, i] += t.fee / 2
            sold[b, s] += t.quantity
            received[b, s] += t.value - t.surplus
            fees[b, s] += t.fee / 2
        if res.trades:
            p[b], volume[b], surplus[b] = res.clearing_price, res.volume, res.surplus
    return BatchClearing(bought, sold, paid, received, fees, p, volume, surplus)


@njit(cache=True, inline="always")
def _trade(b, i, s, q, pr, sur, fee, pf, bought, sold, paid, received, fees,
           log, nlog):  # pragma: no cover - compiled
    """Book one trade of q at pr (surplus sur) between buy slot i and sell slot s of row b;
    with a ``log`` (rows > 0) also append (buyer slot, seller slot, q, pr, sur, fee) to it."""
    v = q * pr
    f = (fee + pf[b if pf.shape[0] > 1 else 0, i, s]) * q
    if log.shape[0] > 0:
        n = nlog[0]
        log[n, LOG_BUYER] = i
        log[n, LOG_SELLER] = s
        log[n, LOG_QTY] = q
        log[n, LOG_PRICE] = pr
        log[n, LOG_SURPLUS] = sur
        log[n, LOG_FEE] = f
        nlog[0] = n + 1
    bought[b, i] += q
    paid[b, i] += v
    fees[b, i] += f / 2
    sold[b, s] += q
    received[b, s] += v - sur
    fees[b, s] += f / 2


@njit(cache=True, inline="always")
def _insert_sorted(slots, n, j, key):  # pragma: no cover - compiled
    """Insert slot j into slots[:n], kept ascending by key[slot]; ties keep arrival order
    (the permutation of a stable sort, as OrderBook.bids/asks), without allocating."""
    q = n
    while q > 0 and key[slots[q - 1]] > key[j]:
        slots[q] = slots[q - 1]
        q -= 1
    slots[q] = j


@njit(cache=True)
def _auction_rows(code, k, side, qty, prc, fee, pf, bought, sold, paid, received, fees, price,
                  volume, surplus, log, nlog):  # pragma: no cover - compiled
    """Uniform k-DA, pay-as-bid or McAfee on every row: cross the curves, then price
    segments. The row loop is inside and the scratch shared by all rows: a compiled call
    per row (its array arguments reference-counted) costs more than a small book."""
    K = side.shape[1]
    bids, asks = np.empty(K, np.int64), np.empty(K, np.int64)
    key = np.empty(K)
    seg_b, seg_a, seg_q = np.empty(2 * K, np.int64), np.empty(2 * K, np.int64), np.empty(2 * K)
    for b in range(side.shape[0]):
        nb = 0
        na = 0
        for j in range(K):  # best first: bids by descending, asks by ascending price
            if side[b, j] > 0:
                key[j] = -prc[b, j]
                _insert_sorted(bids, nb, j, key)
                nb += 1
            elif side[b, j] < 0:
                key[j] = prc[b, j]
                _insert_sorted(asks, na, j, key)
                na += 1
        if nb == 0 or na == 0:
            continue
        n = 0
        i = 0
        j = 0
        rb = qty[b, bids[0]]
        ra = qty[b, asks[0]]
        while prc[b, bids[i]] >= prc[b, asks[j]]:
            x = rb if rb <= ra else ra
            seg_b[n] = bids[i]
            seg_a[n] = asks[j]
            seg_q[n] = x
            n += 1
            rb -= x
            ra -= x
            if rb <= _DUST * qty[b, bids[i]]:
                i += 1
                if i < nb:
                    rb = qty[b, bids[i]]
            if ra <= _DUST * qty[b, asks[j]]:
                j += 1
                if j < na:
                    ra = qty[b, asks[j]]
            if i >= nb or j >= na:
                break
        if n == 0:
            continue
        b_k = prc[b, seg_b[n - 1]]
        a_k = prc[b, seg_a[n - 1]]
        m = n
        sur_per_unit = 0.0
        if code == UNIFORM:
            p = k * b_k + (1.0 - k) * a_k
            p = a_k if p < a_k else (b_k if p > b_k else p)
        elif code == MCAFEE:
            p = b_k
            reduce = True
            if i < nb and j < na:
                p0 = 0.5 * (prc[b, bids[i]] + prc[b, asks[j]])
                if a_k <= p0 <= b_k:
                    p = p0
                    reduce = False
            if reduce:  # trade reduction: the marginal segment does not trade
                m = n - 1
                sur_per_unit = b_k - a_k
        else:
            p = 0.0
        vol = 0.0
        val = 0.0
        sur_total = 0.0
        for s in range(m):
            q = seg_q[s]
            pr = prc[b, seg_b[s]] if code == PAY_AS_BID else p
            sur = sur_per_unit * q
            _trade(b, seg_b[s], seg_a[s], q, pr, sur, fee, pf, bought, sold, paid, received, fees,
                   log, nlog)
            vol += q
            val += q * pr
            sur_total += sur
        if m == 0:
            continue
        price[b] = val / vol if code == PAY_AS_BID else p
        volume[b] = vol
        surplus[b] = sur_total


@njit(cache=True)
def _cda_rows(side, qty, prc, fee, pf, bought, sold, paid, received, fees, price, volume,
              surplus, log, nlog):  # pragma: no cover - compiled
    """Continuous double auction replayed in slot (arrival) order on every row (the row
    loop inside, as :func:`_auction_rows`)."""
    K = side.shape[1]
    rest, rem = np.empty((2, K), np.int64), np.empty((2, K))
    count = np.zeros(2, np.int64)
    for b in range(side.shape[0]):
        count[0] = 0  # resting slots: [0] bids, [1] asks, best first
        count[1] = 0
        vol = 0.0
        val = 0.0
        for o in range(K):
            if side[b, o] == 0:
                continue
            is_buy = side[b, o] > 0
            opp = 1 if is_buy else 0
            own = 0 if is_buy else 1
            left = qty[b, o]
            eps = qty[b, o] * _DUST
            emptied = False
            for e in range(count[opp]):
                r_slot = rest[opp, e]
                r = rem[opp, e]
                if (prc[b, r_slot] > prc[b, o]) if is_buy else (prc[b, r_slot] < prc[b, o]):
                    break
                if r <= 0.0:
                    continue
                x = left if left < r else r
                pr = prc[b, r_slot]
                if is_buy:
                    _trade(b, o, r_slot, x, pr, 0.0, fee, pf, bought, sold, paid, received, fees,
                           log, nlog)
                else:
                    _trade(b, r_slot, o, x, pr, 0.0, fee, pf, bought, sold, paid, received, fees,
                           log, nlog)
                vol += x
                val += x * pr
                r -= x
                if r <= _DUST * qty[b, r_slot]:
                    rem[opp, e] = 0.0
                    emptied = True
                else:
                    rem[opp, e] = r
                left -= x
                if left <= eps:
                    break
            if emptied:
                c = 0
                for e in range(count[opp]):
                    if rem[opp, e] > 0.0:
                        rest[opp, c] = rest[opp, e]
                        rem[opp, c] = rem[opp, e]
                        c += 1
                count[opp] = c
            if left > qty[b, o] * _DUST:
                # behind every resting order of its side at an equal or better price
                pos = 0
                while pos < count[own] and (prc[b, rest[own, pos]] >= prc[b, o] if is_buy
                                            else prc[b, rest[own, pos]] <= prc[b, o]):
                    pos += 1
                for e in range(count[own], pos, -1):
                    rest[own, e] = rest[own, e - 1]
                    rem[own, e] = rem[own, e - 1]
                rest[own, pos] = o
                rem[own, pos] = left
                count[own] += 1
        if vol > 0.0:
            price[b] = val / vol
            volume[b] = vol


@njit(cache=True)
def clear_into(code, k, side, qty, prc, fee, pf, bought, sold, paid, received, fees, price,
               volume, surplus):  # pragma: no cover - compiled
    """Clear every row with rule ``code`` into the outputs (zeros, price NaN on entry);
    the inputs are trusted (:func:`check_books`). For compiled callers (a fused step)."""
    clear_into_logged(code, k, side, qty, prc, fee, pf, bought, sold, paid, received, fees,
                      price, volume, surplus, np.empty((0, LOG_WIDTH)), np.zeros(1, np.int64))


@njit(cache=True)
def clear_logged(code, k, book, fee):  # pragma: no cover - compiled
    """One book given as a ``(K, 3)`` array of (side, quantity, price) per slot (trusted;
    no pair fees) with its trade log: the ``(n, LOG_WIDTH)`` trades in the rule's trade
    order (columns ``LOG_*``) and the clearing price (NaN without trades). Lets a caller
    rebuild the scalar rule's ``Trade`` list without clearing in Python."""
    K = book.shape[0]
    side = np.empty((1, K), np.int64)
    qty, prc = np.empty((1, K)), np.empty((1, K))
    for j in range(K):
        side[0, j] = int(book[j, 0])
        qty[0, j] = book[j, 1]
        prc[0, j] = book[j, 2]
    z = np.zeros((5, 1, K))  # per-slot sums the caller does not need
    price = np.full(1, np.nan)
    # every trade fills an auction segment (at most 2K) or empties a CDA order (at most 2K)
    log, nlog = np.empty((2 * K, LOG_WIDTH)), np.zeros(1, np.int64)
    clear_into_logged(code, k, side, qty, prc, fee, np.zeros((1, K, K)), z[0], z[1], z[2],
                      z[3], z[4], price, np.zeros(1), np.zeros(1), log, nlog)
    return log[:nlog[0]], price[0]


@njit(cache=True)
def clear_into_logged(code, k, side, qty, prc, fee, pf, bought, sold, paid, received, fees,
                      price, volume, surplus, log, nlog):  # pragma: no cover - compiled
    """:func:`clear_into` that also appends every trade to ``log`` (columns ``LOG_*``, room
    for 2K trades per row; a (0, LOG_WIDTH) log records nothing), ``nlog[0]`` counting
    them: a compiled caller can rebuild the scalar rule's ``Trade`` list."""
    if code == CDA:
        _cda_rows(side, qty, prc, fee, pf, bought, sold, paid, received, fees, price, volume,
                  surplus, log, nlog)
    else:
        _auction_rows(code, k, side, qty, prc, fee, pf, bought, sold, paid, received, fees,
                      price, volume, surplus, log, nlog)
