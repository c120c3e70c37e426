"""Clearing rules: turn one round's order book into bilateral trades.

Every rule is a deterministic pure function of the book (ties broken by ``order_id``) and
guarantees, for any valid book:

* each trade has ``quantity > 0`` and no order trades more than its quantity;
* individual rationality: no buyer pays more than its bid, no seller gets less than its ask;
* no self-trades: an agent's own bid and ask never fill against each other;
* money is conserved: ``sum(buyer_pays) == sum(seller_receives) + fees + surplus``.

Fees. Each trade of ``q`` is charged ``(fee_per_unit + pair_fee(buyer, seller)) * q``, split
half per side; the optional :class:`~heron.market.fees.PairFees` (default none) makes the
charge depend on the pair (e.g. network distance) without changing matches or prices.

Self-trades. Agents may post both a bid and an ask in a round. The two-sided auctions
(uniform, pay-as-bid, McAfee) first cross the *aggregate* curves, ignoring who owns which
order, then decompose the accepted quantities into bilateral trades greedily in priority
order, skipping same-agent pairs. Whatever cannot be paired is volume an agent would have
bought from and sold to itself; it is simply not traded. This changes no agent's net
position relative to the aggregate clearing (proof sketch: when a bid cannot be paired,
every remaining accepted ask belongs to its own agent, so the unpaired residue is the same
quantity on both sides of a single agent). The continuous double auction instead skips
resting orders of the incoming order's own agent.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np

from heron.market.batched import (
    CDA,
    MCAFEE,
    PAY_AS_BID,
    UNIFORM,
    BatchClearing,
    clear_kernel,
    clear_rows,
)
from heron.market.book import OrderBook
from heron.market.fees import PairFees
from heron.market.orders import MAX_PRICE, Order, Side, Trade

# Relative remainder below which an order (or an accepted fill) counts as used up: stops
# float round-off (0.3 - 0.1 - 0.2 != 0) from spawning 1e-17-sized trades. Always relative
# to the quantity being consumed, never to the size of the book or of the counterparty.
_DUST = 1e-12


@dataclass(frozen=True)
class ClearingResult:
    """The outcome of clearing one book.

    ``clearing_price`` is the volume-weighted mean trade price (``nan`` with no trades),
    ``volume`` the total traded quantity and ``surplus`` the budget surplus kept by the
    market operator (non-zero only under McAfee trade reduction).
    """

    trades: tuple[Trade, ...]
    clearing_price: float
    volume: float
    surplus: float = 0.0

    @classmethod
    def from_trades(
        cls, trades: Sequence[Trade], clearing_price: float | None = None
    ) -> ClearingResult:
        """Summarise ``trades``; pass ``clearing_price`` when it is known exactly (uniform)."""
        volume = 0.0
        value = 0.0
        surplus = 0.0
        for t in trades:
            volume += t.quantity
            value += t.quantity * t.price
            surplus += t.surplus
        if not trades:
            clearing_price = math.nan
        elif clearing_price is None:
            clearing_price = value / volume
        return cls(tuple(trades), clearing_price, volume, surplus)

    @property
    def fees(self) -> float:
        """Total fees collected by the operator."""
        return sum(t.fee for t in self.trades)

    def bought(self, agent: str) -> float:
        """Quantity ``agent`` bought."""
        return sum(t.quantity for t in self.trades if t.buyer == agent)

    def sold(self, agent: str) -> float:
        """Quantity ``agent`` sold."""
        return sum(t.quantity for t in self.trades if t.seller == agent)

    def payments(self, agent: str) -> float:
        """Net money ``agent`` paid, fee share included; negative when it received money."""
        paid = 0.0
        for t in self.trades:
            if t.buyer == agent:
                paid += t.buyer_pays
            if t.seller == agent:
                paid -= t.seller_receives
        return paid

    def __len__(self) -> int:
        return len(self.trades)


_EMPTY = ClearingResult((), math.nan, 0.0)


def _check_fee(fee_per_unit: float) -> None:
    if not 0.0 <= fee_per_unit <= MAX_PRICE:  # also rejects nan
        raise ValueError(f"fee_per_unit must be a number in [0, {MAX_PRICE:g}], got "
                         f"{fee_per_unit!r}")


_UnitFee = Callable[[str, str], float]


def _fees(fee_per_unit: float, pair_fee: PairFees | None, book: OrderBook) -> _UnitFee:
    """The per-unit fee of a (buyer, seller) trade: flat, plus the pair's if given."""
    if pair_fee is None:
        return lambda buyer, seller: fee_per_unit
    if not isinstance(pair_fee, PairFees):
        raise TypeError(f"pair_fee must be a PairFees or None, got {type(pair_fee).__name__}")
    pair_fee.check_covers({o.agent for o in book.orders})
    m, index = pair_fee.per_unit, pair_fee.index
    return lambda buyer, seller: fee_per_unit + float(m[index(buyer), index(seller)])


class ClearingRule(ABC):
    """Maps an :class:`OrderBook` to a :class:`ClearingResult`; stateless and deterministic."""

    name: ClassVar[str] = "rule"

    @abstractmethod
    def clear(self, book: OrderBook, fee_per_unit: float = 0.0,
              pair_fee: PairFees | None = None) -> ClearingResult:
        """Clear ``book``; each trade is charged ``fee = (fee_per_unit + pair_fee(buyer,
        seller)) * quantity`` (``pair_fee`` None: the flat fee only)."""

    def clear_batch(self, side: np.ndarray, quantity: np.ndarray, price: np.ndarray,
                    fee_per_unit: float = 0.0,
                    pair_fee: np.ndarray | None = None) -> BatchClearing:
        """Clear B books given as ``(B, K)`` arrays, one order per slot (see
        :mod:`heron.market.batched`); ``pair_fee`` is a ``(K, K)`` or ``(B, K, K)``
        per-unit fee matrix ``[buyer slot, seller slot]``. This default goes row by row
        through :meth:`clear`; the built-in rules override it with compiled kernels giving
        identical results."""
        return clear_rows(self, side, quantity, price, fee_per_unit, pair_fee)

    def kernel(self) -> tuple[int, float] | None:
        """``(code, k)`` of the compiled kernel (:func:`heron.market.batched.clear_into`)
        that clears this rule exactly, or None: lets a fused, compiled simulation step
        clear its books without leaving compiled code. A user's rule has none."""
        return None


class CompiledRule(ClearingRule):
    """A rule that :func:`heron.market.batched.clear_into` clears exactly: its batched
    clearing runs the compiled kernel named by :meth:`kernel` (the built-in rules).

    Each rule names its kernel by ``code``; only a rule with a parameter (uniform's ``k``)
    overrides :meth:`kernel`."""

    code: ClassVar[int]

    def kernel(self) -> tuple[int, float]:
        """``(code, k)`` of this rule's compiled kernel."""
        return self.code, 0.0

    def clear_batch(self, side: np.ndarray, quantity: np.ndarray, price: np.ndarray,
                    fee_per_unit: float = 0.0,
                    pair_fee: np.ndarray | None = None) -> BatchClearing:
        _check_fee(fee_per_unit)
        code, k = self.kernel()
        return clear_kernel(code, k, side, quantity, price, fee_per_unit, pair_fee)


# --------------------------------------------------------------------------- helpers


def _matched_trades(pairs: Iterable[tuple[Order, Order, float]], fee: _UnitFee, price: float | None,
                    surplus_per_unit: float = 0.0) -> list[Trade]:
    """Trades of matched ``(bid, ask, q)`` segments at ``price`` (None: the bid's price),
    each charged its pair's fee; ``surplus_per_unit`` is kept by the market (McAfee)."""
    return [Trade(bid.agent, ask.agent, q, bid.price if price is None else price,
                  fee(bid.agent, ask.agent) * q, bid.order_id, ask.order_id,
                  surplus_per_unit * q)
            for bid, ask, q in pairs]


class _Crossing(NamedTuple):
    """The aggregate curves crossed (:func:`_cross`): ``bid_fills`` / ``ask_fills`` are the
    accepted orders as ``[order, filled_quantity]`` in priority order, ``last`` the
    quantity of the final (marginal) segment, ``next_bid`` / ``next_ask`` the prices of the
    first unmatched step on each curve (None if that curve is exhausted), ``segments``
    every matched ``(bid, ask, quantity)``."""

    bid_fills: list[list]
    ask_fills: list[list]
    last: float
    next_bid: float | None
    next_ask: float | None
    segments: list[tuple[Order, Order, float]]


def _cross(bids: Sequence[Order], asks: Sequence[Order]) -> _Crossing:
    """Walk the aggregate demand and supply curves, ignoring agent identities.

    Each iteration matches the best remaining bid with the best remaining ask (one
    "segment" of the quantity-weighted step curves) while the bid price >= the ask price.
    """
    bf: list[list] = []
    af: list[list] = []
    segs: list[tuple[Order, Order, float]] = []
    # Iterators, not indices: an exhausted curve is simply None, which also covers an
    # empty side without a special case.
    bid_iter, ask_iter = iter(bids), iter(asks)
    b, a = next(bid_iter, None), next(ask_iter, None)
    rb = 0.0 if b is None else b.quantity
    ra = 0.0 if a is None else a.quantity
    fb = fa = x = 0.0
    while b is not None and a is not None and b.price >= a.price:
        x = rb if rb <= ra else ra
        segs.append((b, a, x))
        rb -= x
        ra -= x
        fb += x
        fa += x
        if rb <= _DUST * b.quantity:
            bf.append([b, fb])
            fb = 0.0
            b = next(bid_iter, None)
            rb = 0.0 if b is None else b.quantity
        if ra <= _DUST * a.quantity:
            af.append([a, fa])
            fa = 0.0
            a = next(ask_iter, None)
            ra = 0.0 if a is None else a.quantity
    if b is not None and fb > 0.0:
        bf.append([b, fb])
    if a is not None and fa > 0.0:
        af.append([a, fa])
    return _Crossing(
        bf,
        af,
        x if bf else 0.0,
        None if b is None else b.price,
        None if a is None else a.price,
        segs,
    )


def _pair(bf: list[list], af: list[list],
          segs: list[tuple[Order, Order, float]]) -> list[tuple[Order, Order, float]]:
    """Decompose accepted fills into ``(bid, ask, quantity)`` pairs, never same-agent.

    Without same-agent segments the crossing's own segments are that decomposition (the
    greedy below would rebuild them), and exactly: each is one ``min`` of two remainders,
    so a 1e-9 fill next to a 1e6 order is not lost to round-off in accumulated fills.
    Otherwise greedy in priority order: each bid takes from the best asks that still have
    quantity and belong to another agent.
    """
    for b, a, _ in segs:
        if b.agent == a.agent:
            break
    else:
        return segs
    rem = [f for _, f in af]
    # Dust is judged against each ask's accepted fill, not its order quantity: a 2e-9
    # fill of a 1e6 ask paired with two 1e-9 bids must leave 1e-9 for the second bid.
    dust = [f * _DUST for f in rem]
    n = len(rem)
    out: list[tuple[Order, Order, float]] = []
    for b, need in bf:
        eps = need * _DUST
        agent = b.agent
        for k in range(n):
            r = rem[k]
            if r <= 0.0:
                continue
            a = af[k][0]
            if a.agent == agent:
                continue
            if need < r:
                out.append((b, a, need))
                r -= need
                rem[k] = r if r > dust[k] else 0.0
                break
            out.append((b, a, r))
            rem[k] = 0.0
            need -= r
            if need <= eps:
                break
    return out


# --------------------------------------------------------------------------- rules


class _SealedBidRule(CompiledRule):
    """A two-sided auction that crosses the aggregate curves first and then prices what
    was accepted. Validating the fees, crossing and the no-trade answer are the same for
    all of them, so they live here and each rule states only its pricing (:meth:`_price`).
    """

    def clear(self, book: OrderBook, fee_per_unit: float = 0.0,
              pair_fee: PairFees | None = None) -> ClearingResult:
        _check_fee(fee_per_unit)
        fee = _fees(fee_per_unit, pair_fee, book)
        crossing = _cross(book.bids, book.asks)
        if not crossing.bid_fills:
            return _EMPTY
        return self._price(crossing, fee)

    @abstractmethod
    def _price(self, crossing: _Crossing, fee: _UnitFee) -> ClearingResult:
        """The trades of a book whose curves cross (``crossing`` has at least one fill)."""


@dataclass(frozen=True)
class UniformPrice(_SealedBidRule):
    """k-double auction: everyone trades at one price between the marginal bid and ask.

    The crossing quantity is found by matching sorted bids against sorted asks while the
    best bid >= the best ask; with ``b`` the last accepted bid's price and ``a`` the last
    accepted ask's price, every trade is at ``p = k*b + (1-k)*a``. All accepted bids are
    >= b and all accepted asks <= a, so ``a <= p <= b`` keeps every trader individually
    rational. ``k=1`` favours sellers, ``k=0`` buyers.
    """

    name: ClassVar[str] = "uniform"
    code: ClassVar[int] = UNIFORM
    k: float = 0.5

    def __post_init__(self) -> None:
        k = self.k
        if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0.0 <= k <= 1.0:
            raise ValueError(f"UniformPrice k must be a number in [0, 1], got {k!r}")

    def kernel(self) -> tuple[int, float]:
        return self.code, float(self.k)

    def _price(self, crossing: _Crossing, fee: _UnitFee) -> ClearingResult:
        bf, af, _, _, _, segs = crossing
        b = bf[-1][0].price
        a = af[-1][0].price
        k = self.k
        p = k * b + (1.0 - k) * a
        # Round-off could push p a ulp outside [a, b] and break IR; clamp.
        p = a if p < a else (b if p > b else p)
        return ClearingResult.from_trades(_matched_trades(_pair(bf, af, segs), fee, p), p)


@dataclass(frozen=True)
class PayAsBid(_SealedBidRule):
    """Discriminatory auction: same accepted quantities as :class:`UniformPrice`, but
    each trade is priced at its buyer's bid (sellers capture all the gains from trade)."""

    name: ClassVar[str] = "pay_as_bid"
    code: ClassVar[int] = PAY_AS_BID

    def _price(self, crossing: _Crossing, fee: _UnitFee) -> ClearingResult:
        bf, af, _, _, _, segs = crossing
        return ClearingResult.from_trades(_matched_trades(_pair(bf, af, segs), fee, None))


def _match_incoming(o: Order, resting: list[list], is_buy: bool, fee: _UnitFee,
                    trades: list[Trade]) -> float:
    """Fill incoming ``o`` against ``resting`` opposite orders at their prices; return the rest.

    Resting entries are ``[order, remaining]`` in priority order; filled ones are removed.
    """
    rem, eps = o.quantity, o.quantity * _DUST
    emptied = False
    for e in resting:
        r_order, r = e
        if (r_order.price > o.price) if is_buy else (r_order.price < o.price):
            break
        if r <= 0.0 or r_order.agent == o.agent:
            continue
        x = rem if rem < r else r
        buy, sell = (o, r_order) if is_buy else (r_order, o)
        trades.append(Trade(buy.agent, sell.agent, x, r_order.price, fee(buy.agent, sell.agent) * x,
                            buy.order_id, sell.order_id))
        r -= x
        if r <= _DUST * r_order.quantity:
            e[1] = 0.0
            emptied = True
        else:
            e[1] = r
        rem -= x
        if rem <= eps:
            break
    if emptied:
        resting[:] = [e for e in resting if e[1] > 0.0]
    return rem


@dataclass(frozen=True)
class ContinuousDoubleAuction(CompiledRule):
    """Continuous double auction replayed in arrival order.

    Each incoming order (by ``order_id``) trades against resting opposite orders in
    price-time priority at the *resting* order's price, skipping resting orders of its own
    agent; any remainder rests. The outcome depends on arrival order, like a real exchange.
    """

    name: ClassVar[str] = "cda"
    code: ClassVar[int] = CDA

    def clear(self, book: OrderBook, fee_per_unit: float = 0.0,
              pair_fee: PairFees | None = None) -> ClearingResult:
        _check_fee(fee_per_unit)
        fee = _fees(fee_per_unit, pair_fee, book)
        rest_b: list[list] = []  # [order, remaining]; price desc, then order_id asc
        rest_a: list[list] = []  # price asc, then order_id asc
        trades: list[Trade] = []
        for o in book.orders:
            is_buy = o.side is Side.BUY
            opposite, own = (rest_a, rest_b) if is_buy else (rest_b, rest_a)
            rem = _match_incoming(o, opposite, is_buy, fee, trades)
            if rem > o.quantity * _DUST:
                # behind every resting order of its side at an equal or better price
                k = 0
                while k < len(own) and (own[k][0].price >= o.price if is_buy
                                        else own[k][0].price <= o.price):
                    k += 1
                own.insert(k, [o, rem])
        if not trades:
            return _EMPTY
        return ClearingResult.from_trades(trades)


@dataclass(frozen=True)
class McAfee(_SealedBidRule):
    """McAfee (1992) trade-reduction double auction, generalised to divisible quantities.

    Unit-demand original: sort bids ``b_1 >= b_2 >= ...`` and asks ``a_1 <= a_2 <= ...``,
    let ``K`` be the last index with ``b_K >= a_K`` and ``p0 = (b_{K+1} + a_{K+1}) / 2``.
    If ``a_K <= p0 <= b_K`` all ``K`` pairs trade at ``p0``; otherwise the K-th pair is
    excluded and the other ``K-1`` buyers pay ``b_K`` while their sellers get ``a_K``.

    Divisible generalisation implemented here (equivalent to expanding every order into
    unit steps when all quantities are 1): walk the aggregate step curves as
    :class:`UniformPrice` does. Each matched (bid, ask) *segment* plays the role of a
    unit pair; the marginal pair is the final segment, between the last accepted bid
    (price ``b_K``) and the last accepted ask (price ``a_K``). ``b_{K+1}`` / ``a_{K+1}``
    are the prices of the first unmatched step on each curve -- the unfilled remainder of
    a partially filled marginal order, else the next order. If both exist and
    ``a_K <= p0 <= b_K``, every accepted quantity trades at ``p0``. Otherwise the final
    segment's quantity is removed from the marginal bid and ask (whatever else those two
    orders filled still trades); buyers pay ``b_K`` and sellers receive ``a_K`` per unit,
    and the difference is returned as operator ``surplus`` (``Trade.price == b_K``,
    ``Trade.seller_price == a_K``). Note the ``p0`` branch is reachable only when the
    final segment exhausts both marginal orders, since a partial order's remainder
    does not cross the other curve.

    Properties: individually rational and weakly budget-balanced (``surplus >= 0``) for
    any book; dominant-strategy truthful only for unit-demand traders (one unit each).
    With divisible multi-unit orders a trader can shade its price to move the marginal
    price and it is not truthful, and reduction can forgo the whole final segment's gains.

    Two agents never trade: with one buyer and one seller the only matched segment is the
    final one and there is no ``(K+1)``-th bid or ask to set ``p0``, so it is always
    reduced away (the price of truthfulness). This is why McAfee clears nothing in
    ``p2p-2mg-v1``; it needs at least two buyers and two sellers crossing in the same hour
    (see the ``market-4mg-v1`` scenario and docs/market.md).
    """

    name: ClassVar[str] = "mcafee"
    code: ClassVar[int] = MCAFEE

    def _price(self, crossing: _Crossing, fee: _UnitFee) -> ClearingResult:
        bf, af, last, next_bid, next_ask, segs = crossing
        b_k = bf[-1][0].price
        a_k = af[-1][0].price
        if next_bid is not None and next_ask is not None:
            p0 = 0.5 * (next_bid + next_ask)
            if a_k <= p0 <= b_k:
                trades = _matched_trades(_pair(bf, af, segs), fee, p0)
                return ClearingResult.from_trades(trades, p0) if trades else _EMPTY
        # Trade reduction: drop the marginal segment from both marginal orders.
        for fills in (bf, af):
            entry = fills[-1]
            before = entry[1]
            entry[1] -= last
            if entry[1] <= _DUST * before:  # relative to the fill, not the order's size
                fills.pop()
        segs = segs[:-1]  # the final segment is the marginal (bid, ask) pair
        trades = _matched_trades(_pair(bf, af, segs), fee, b_k, b_k - a_k)
        if not trades:
            return _EMPTY
        return ClearingResult.from_trades(trades, b_k)


CLEARING_RULES: dict[str, type[ClearingRule]] = {
    "uniform": UniformPrice,
    "pay_as_bid": PayAsBid,
    "cda": ContinuousDoubleAuction,
    "mcafee": McAfee,
}


def make_clearing_rule(rule: str | ClearingRule | type[ClearingRule]) -> ClearingRule:
    """Resolve a rule name (see ``CLEARING_RULES``), rule class or instance to an instance."""
    if isinstance(rule, ClearingRule):
        return rule
    if isinstance(rule, str):
        cls = CLEARING_RULES.get(rule)
        if cls is None:
            valid = ", ".join(repr(n) for n in CLEARING_RULES)
            raise ValueError(
                f"unknown clearing rule {rule!r}; expected one of {valid} or a ClearingRule"
            )
        return cls()
    if isinstance(rule, type) and issubclass(rule, ClearingRule):
        return rule()
    raise TypeError(
        f"clearing rule must be a name ({', '.join(CLEARING_RULES)}) or a ClearingRule, "
        f"got {type(rule).__name__}"
    )
