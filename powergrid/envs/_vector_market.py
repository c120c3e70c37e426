"""Uniform-price (k-double auction) clearing of B independent books, one order per agent.

Replays ``heron.market.clearing._cross`` + ``UniformPrice`` with numpy over the batch:
the same segment walk with the same float operations and the same dust rule, so fills
and the price match the scalar rule bit for bit (per-agent totals of the scalar trades
can differ by an ulp when an order is split across several counterparties). One order
per agent means no agent is ever on both sides, so ``_pair``'s self-trade skipping never
applies and each agent's bought/sold quantity is simply its fill.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from heron.market.clearing import _DUST


class BatchClearing(NamedTuple):
    bought: np.ndarray  # (B, N) quantity bought by each agent
    sold: np.ndarray    # (B, N)
    price: np.ndarray   # (B,) uniform price, NaN where nothing traded


def clear_uniform(is_buy: np.ndarray, is_sell: np.ndarray, qty: np.ndarray,
                  price: np.ndarray, k: float) -> BatchClearing:
    """Clear B books; row b holds agent i's order in column i (agent order = arrival order)."""
    n_env, n = qty.shape
    rows = np.arange(n_env)
    # Stable sorts keep equal prices in arrival order: price-time priority as in OrderBook.
    # A padding column (no order) lets exhausted pointers index safely.
    bid_p = np.where(is_buy, price, -np.inf)
    ob = np.argsort(-bid_p, axis=1, kind="stable")
    ask_p = np.where(is_sell, price, np.inf)
    oa = np.argsort(ask_p, axis=1, kind="stable")
    pad = np.zeros((n_env, 1))
    bp = np.hstack([np.take_along_axis(bid_p, ob, 1), pad - np.inf])
    ap = np.hstack([np.take_along_axis(ask_p, oa, 1), pad + np.inf])
    bq = np.hstack([np.take_along_axis(np.where(is_buy, qty, 0.0), ob, 1), pad])
    aq = np.hstack([np.take_along_axis(np.where(is_sell, qty, 0.0), oa, 1), pad])
    nb, na = is_buy.sum(1), is_sell.sum(1)

    bfill = np.zeros((n_env, n + 1))
    afill = np.zeros((n_env, n + 1))
    i = np.zeros(n_env, np.intp)
    j = np.zeros(n_env, np.intp)
    rb, ra = bq[:, 0].copy(), aq[:, 0].copy()
    fb, fa = np.zeros(n_env), np.zeros(n_env)
    live = (nb > 0) & (na > 0)
    while True:
        go = live & (bp[rows, i] >= ap[rows, j])
        if not go.any():
            break
        x = np.where(go, np.minimum(rb, ra), 0.0)
        rb -= x
        ra -= x
        fb += x
        fa += x
        for fill, ptr, rem, acc, q in ((bfill, i, rb, fb, bq), (afill, j, ra, fa, aq)):
            done = go & (rem <= _DUST * q[rows, ptr])
            r, c = rows[done], ptr[done]
            fill[r, c] = acc[done]
            acc[done] = 0.0
            ptr[done] += 1
            rem[done] = q[r, c + 1]
        live = go & (i < nb) & (j < na)
    # A partially filled marginal order is accepted too.
    for fill, ptr, acc, cnt in ((bfill, i, fb, nb), (afill, j, fa, na)):
        tail = (ptr < cnt) & (acc > 0.0)
        fill[rows[tail], ptr[tail]] = acc[tail]

    n_bf = (bfill > 0.0).sum(1)
    n_af = (afill > 0.0).sum(1)
    traded = n_bf > 0
    b = bp[rows, np.maximum(n_bf - 1, 0)]
    a = ap[rows, np.maximum(n_af - 1, 0)]
    with np.errstate(invalid="ignore"):  # rows without trades give inf - inf; masked below
        p = k * b + (1.0 - k) * a
        # Same clamp as UniformPrice: round-off must not push p outside [a, b].
        p = np.where(p < a, a, np.where(p > b, b, p))
    bought = np.zeros((n_env, n))
    sold = np.zeros((n_env, n))
    np.put_along_axis(bought, ob, bfill[:, :n], 1)
    np.put_along_axis(sold, oa, afill[:, :n], 1)
    return BatchClearing(bought, sold, np.where(traded, p, np.nan))
