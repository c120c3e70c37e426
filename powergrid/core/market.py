"""The market stage: orders from net positions, clearing, and each side's money.

Two implementations of one contract (per agent (B, N) bought / sold kWh, paid /
received / fees in $, and the (B,) clearing price, NaN when nothing cleared):
:func:`clear_batch` runs the built-in clearing rules over every book at once
(``heron.market.batched``); the per-row path (``Simulation._market``) builds each row's
orders (:func:`row_orders`) and clears them through that row's
:class:`~powergrid.envs.coordination.Coordination` (any protocol, the broker of
distributed mode) or, in the plain built-in case, by the same compiled kernel
(:func:`compiled_clearing`, :func:`clear_compiled`), then :func:`settle_rows` sums them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from heron.market import ClearingResult, Order, Side, Trade
from heron.market.batched import CDA, PAY_AS_BID, clear_logged
from heron.market.clearing import CLEARING_RULES
from heron.protocols.horizontal import P2PTradingProtocol
from powergrid.core.state import live_rows
from powergrid.envs.series import limit_price

if TYPE_CHECKING:
    from powergrid.envs.coordination import Coordination

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


def compiled_clearing(coord: Coordination) -> tuple[int, float] | None:
    """``(code, k)`` of the compiled kernel that clears ``coord``'s market exactly as
    ``coord.clear`` does, or None: only the plain built-in case (the protocol exactly
    :class:`P2PTradingProtocol`, a built-in rule of its exact class, no pair fee, no
    broker to tell of trades). Anything a user overrides keeps the Python clearing."""
    proto = coord.horizontal
    if type(proto) is not P2PTradingProtocol or proto.pair_fee is not None:
        return None
    if coord.broker is not None or type(proto.clearing_rule) not in _BUILTIN_RULES:
        return None
    return proto.clearing_rule.kernel()


_BUILTIN_RULES = frozenset(CLEARING_RULES.values())


def clear_compiled(spec: tuple[int, float], orders: Sequence[Order],
                   fee: float) -> ClearingResult:
    """``orders`` cleared by the compiled kernel ``spec`` (see :func:`compiled_clearing`):
    the scalar rule's result (trades in its order, with the book's order ids = positions
    in ``orders``), from the kernel's trade log instead of an ``OrderBook``."""
    code, k = spec
    sides = [1.0 if o.side is Side.BUY else -1.0 for o in orders]
    if not (1.0 in sides and -1.0 in sides):  # one side only: nothing can cross
        return ClearingResult.from_trades(())
    book = np.array([(x, o.quantity, o.price) for x, o in zip(sides, orders)])
    log, price = clear_logged(code, k, book, fee)
    agents = [o.agent for o in orders]
    return _logged_result(code, log.tolist(), agents, range(len(orders)), price)


def logged_results(agents: Sequence[str], book: np.ndarray, log: np.ndarray,
                   ends: np.ndarray, live: np.ndarray, code: int, price: np.ndarray
                   ) -> tuple[list[ClearingResult | None], list[list[Order]]]:
    """Per row, the orders and result of a compiled clearing over slot = agent books
    (``book`` (3, B, N): side, quantity, limit; row b's trades are ``log[ends[b - 1]:
    ends[b]]``), exactly as :func:`row_orders` and :func:`clear_compiled` give them (order
    ids = positions among the row's orders). Rows not live: ``None`` and no orders."""
    B = len(ends)
    results: list[ClearingResult | None] = [None] * B
    orders: list[list[Order]] = [[] for _ in range(B)]
    sides, qty, limit = book.tolist()
    bounds, prices = [0, *ends.tolist()], price.tolist()
    for b in live_rows(live):
        own, ids = orders[b], [-1] * len(agents)
        for i, (x, a) in enumerate(zip(sides[b], agents)):
            if x:
                ids[i] = len(own)
                own.append(Order(a, Side.BUY if x > 0 else Side.SELL, qty[b][i], limit[b][i]))
        rows = log[bounds[b]:bounds[b + 1]].tolist()
        results[b] = _logged_result(code, rows, agents, ids, prices[b])
    return results, orders


def _logged_result(code: int, rows: list[list[float]], agents: Sequence[str],
                   ids: Sequence[int], price: float) -> ClearingResult:
    """A clearing rule's result from its kernel's log ``rows`` (columns ``LOG_*``, slots
    naming ``agents[slot]`` with order id ``ids[slot]``)."""
    trades = [Trade(agents[int(b)], agents[int(s)], q, p, f, ids[int(b)], ids[int(s)], sur)
              for b, s, q, p, f, sur in rows]
    # as the rules: pay-as-bid and CDA price by volume weight, the others at one price
    return ClearingResult.from_trades(trades, None if code in (PAY_AS_BID, CDA) else price)


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
