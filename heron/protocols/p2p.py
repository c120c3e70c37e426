"""Peer-to-peer energy trading: agents post limit orders, a clearing rule matches them."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

from heron.market.book import OrderBook
from heron.market.clearing import ClearingResult, ClearingRule, make_clearing_rule
from heron.market.fees import PairFees
from heron.market.orders import MAX_PRICE, Order
from heron.protocols.base import HorizontalProtocol


class P2PTradingProtocol(HorizontalProtocol):
    """Clears each step's orders with a pluggable rule and a per-unit trading fee.

    Stateless between steps (a fresh book every call), so ``reset`` has nothing to do and
    the protocol pickles / deep-copies cleanly for vectorised and distributed rollouts.
    ``trading_fee`` is money per unit quantity; each trade's total fee is split half to
    the buyer and half to the seller (see :class:`~heron.market.orders.Trade`).
    ``pair_fee`` (a :class:`~heron.market.fees.PairFees`, default none) adds a per-unit
    fee that depends on the (buyer, seller) pair, e.g. a network-use charge.
    """

    name = "p2p_trading"

    def __init__(self, clearing: str | ClearingRule = "uniform", trading_fee: float = 0.0,
                 pair_fee: PairFees | None = None) -> None:
        if (
            isinstance(trading_fee, bool)
            or not isinstance(trading_fee, numbers.Real)
            or not 0.0 <= trading_fee < math.inf
        ):
            raise ValueError(f"trading_fee must be a finite number >= 0, got {trading_fee!r}")
        if trading_fee > MAX_PRICE:
            raise ValueError(f"trading_fee must be <= {MAX_PRICE:g} (the order price bound), "
                             f"got {trading_fee!r}")
        self.clearing_rule: ClearingRule = make_clearing_rule(clearing)
        self.trading_fee: float = float(trading_fee)
        if pair_fee is not None and not isinstance(pair_fee, PairFees):
            raise ValueError(f"pair_fee must be a PairFees or None, got "
                             f"{type(pair_fee).__name__}")
        self.pair_fee: PairFees | None = pair_fee

    @property
    def fee_per_unit(self) -> float:
        return self.trading_fee

    def fee_bound(self, agent: str) -> float:
        pair = 0.0 if self.pair_fee is None else self.pair_fee.bound(agent)
        return self.trading_fee + pair

    def clear(self, orders: Iterable[Order], agents: Iterable[str] | None = None) -> ClearingResult:
        """Clear ``orders``; their iteration order is their time priority.

        ``agents``, if given, restricts who may trade (unknown agents -> ``ValueError``).
        """
        book = OrderBook(agents)
        add = book.add
        for order in orders:
            add(order)
        if self.pair_fee is None:  # a user's rule may not take pair fees at all
            return self.clearing_rule.clear(book, self.trading_fee)
        return self.clearing_rule.clear(book, self.trading_fee, self.pair_fee)

    def __repr__(self) -> str:
        rule = self.clearing_rule
        # Show the short name when it fully describes the rule; otherwise its parameters.
        try:
            is_default = rule == type(rule)()
        except TypeError:  # a custom rule without a no-argument constructor
            is_default = False
        spec = repr(rule.name) if is_default else repr(rule)
        pair = "" if self.pair_fee is None else f", pair_fee={self.pair_fee!r}"
        return f"{type(self).__name__}(clearing={spec}, trading_fee={self.trading_fee!r}{pair})"
