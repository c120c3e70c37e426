"""The market stage: orders from net positions, clearing, and each side's money.

Two implementations of one contract (per agent (B, N) bought / sold kWh, paid /
received / fees in $, and the (B,) clearing price, NaN when nothing cleared):
:func:`clear_batch` runs the built-in clearing rules over every book at once
(``heron.market.batched``); :func:`clear_rows` sends each row's orders through that
row's :class:`~powergrid.envs.coordination.Coordination` (any protocol, the broker of
distributed mode), as the scalar env does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from heron.market import ClearingResult, Order, Side
from powergrid.envs.series import limit_price

EPS_KWH = 1e-9


@dataclass
class MarketResult:
    bought: np.ndarray    # (B, N) kWh
    sold: np.ndarray
    paid: np.ndarray      # (B, N) $
    received: np.ndarray
    fees: np.ndarray
    price: np.ndarray     # (B,) $/kWh, NaN when nothing cleared
    results: list | None = None  # per row ClearingResult (row path), for nested infos
    orders: list | None = None   # per row order lists (row path)

    @classmethod
    def none(cls, B: int, N: int) -> MarketResult:
        z = np.zeros((B, N))
        return cls(z, z, z, z, z, np.full(B, np.nan))


def clear_batch(rule, fee: float, net_kw: np.ndarray, price_actions: np.ndarray,
                low: np.ndarray, high: np.ndarray, dt: float) -> MarketResult:
    """All B books at once; slot i is agent i's order, in agent order as in the scalar env."""
    qty = np.abs(net_kw) * dt
    order = (qty > EPS_KWH) & (low <= high)  # an empty band: the fee eats every gain
    limit = limit_price(price_actions, low, high)
    side = np.where(order, np.where(net_kw > 0, -1, 1), 0)
    m = rule.clear_batch(side, qty, limit, fee)
    return MarketResult(m.bought, m.sold, m.paid, m.received, m.fees, m.price)


def row_orders(agents: Sequence[str], net_kw: Sequence[float], price_actions: Sequence[float],
               bands: Sequence[tuple[float, float]], dt: float) -> list[Order]:
    """One row's orders: surplus offers, deficit bids, |net| kWh at the action's limit."""
    orders = []
    for a, net, act, (low, high) in zip(agents, net_kw, price_actions, bands):
        qty = abs(net) * dt
        if qty > EPS_KWH and low <= high:  # else the fee eats every gain from trade
            orders.append(Order(a, Side.SELL if net > 0 else Side.BUY, qty,
                                limit_price(float(act), low, high)))
    return orders


def settle_rows(agents: Sequence[str], results: Sequence[ClearingResult | None],
                orders: list) -> MarketResult:
    """Per-agent quantities and money of per-row clearing results: one pass over each
    row's trades, each agent's sums in trade order (as ``ClearingResult.bought``/``sold``
    add them)."""
    B, N = len(results), len(agents)
    out = MarketResult(*(np.zeros((B, N)) for _ in range(5)), np.full(B, np.nan),
                       list(results), orders)
    index = {a: i for i, a in enumerate(agents)}
    for b, market in enumerate(results):
        if market is None or not market.trades:
            continue
        bought, sold, paid, received, fees = ([0.0] * N for _ in range(5))
        for tr in market.trades:
            i, s = index.get(tr.buyer), index.get(tr.seller)
            if i is not None:
                bought[i] += tr.quantity
                paid[i] += tr.value
                fees[i] += tr.fee / 2
            if s is not None:
                sold[s] += tr.quantity
                if s != i:  # a trade's money counts once per agent, as its buyer first
                    # McAfee keeps a surplus: the seller is credited below the buyer's price
                    received[s] += tr.value - tr.surplus
                    fees[s] += tr.fee / 2
        out.bought[b], out.sold[b], out.paid[b] = bought, sold, paid
        out.received[b], out.fees[b] = received, fees
        if market.volume > 0:
            out.price[b] = market.clearing_price
    return out
