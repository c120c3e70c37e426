"""Trading ahead of delivery: a ledger of commitments and the imbalance settlement.

Why: in an ahead market, orders for a delivery step are placed ``k >= 1`` steps before it, on
forecasts, and cleared at its gate closure (before delivery); at delivery the actual export differs from what was committed,
and the difference must be settled at prices worse than the outside option, or committing
would be free. Domain-free: quantities and prices are plain numbers (the domain decides
they are kWh and $/kWh); "outside buy/sell" is whatever the agent trades with when it has
no counterparty (for a microgrid: the utility's retail and feed-in prices).

Conventions
-----------
* Committed position ``p = sold - bought`` per agent and delivery step (units).
* Actual export ``x`` at delivery (units; negative = the agent imports).
* Deviation only counts against the commitment (:func:`settle_imbalance`):

  - a committed seller (``p > 0``) that delivers less than ``p`` buys the shortfall
    ``clip(p - x, 0, p)`` at the imbalance buy price;
  - a committed buyer (``p < 0``) that takes less than ``-p`` sells the excess
    ``clip(x - p, 0, -p)`` at the imbalance sell price;
  - the uncommitted residual ``x - p + shortfall - excess`` goes to the outside option as
    without a market (imports at outside buy, exports at outside sell).

* Imbalance prices (:class:`ImbalancePrices`): ``buy = outside_buy * (1 + buy_markup)``,
  ``sell = outside_sell * (1 - sell_markdown)``; defaults 0.5 and 0.5 (a shortfall costs
  1.5 x retail, an excess earns half the feed-in tariff).

Invariants (proved by ``tests/test_market_ahead.py``):

* energy: ``x == p - shortfall + excess + residual`` for every agent;
* zero deviation (``x == p``) means no imbalance and no residual; ``p == 0`` means exactly
  the no-market settlement;
* never cheaper than the grid: the delivery cost is at least what settling the whole
  deviation ``x - p`` at the outside prices would cost, so the imbalance penalty
  (:attr:`ImbalanceSettlement.penalty`) is ``>= 0``;
* money: every committed unit sold was bought (positions of one delivery step sum to 0) and
  what the agents pay at delivery is what the imbalance counterparty receives.

Timing (:class:`GateSchedule`): an agent submits at step ``s`` its orders for delivery
``d = s + lead`` (on forecasts ``lead`` steps ahead); the gate for ``d`` closes at step
``d - 1``, where everything that has arrived is cleared and committed. An order delayed by
``latency`` steps arrives at ``s + latency``, so it trades exactly when ``latency < lead``.

Order decisions (:class:`BidCurve`, :func:`decode_ahead_action`): in the ahead market an
agent chooses how much to commit, not only at what price; a curve of ``k`` price-quantity
pairs becomes ``k`` orders for the delivery step (one side, prices monotone).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from heron.market.orders import MAX_PRICE, Side, Trade, validate_order

__all__ = [
    "BidCurve",
    "DEFAULT_BUY_MARKUP",
    "DEFAULT_SELL_MARKDOWN",
    "CommitmentLedger",
    "GateSchedule",
    "ImbalancePrices",
    "ImbalanceSettlement",
    "decode_ahead_action",
    "decode_ahead_batch",
    "settle_imbalance",
]

DEFAULT_BUY_MARKUP = 0.5
DEFAULT_SELL_MARKDOWN = 0.5


@dataclass(frozen=True)
class ImbalancePrices:
    """How much worse than the outside option a deviation from a commitment is settled.

    ``buy_markup >= 0`` (shortfall bought at ``outside_buy * (1 + buy_markup)``) and
    ``0 <= sell_markdown <= 1`` (excess sold at ``outside_sell * (1 - sell_markdown)``).
    """

    buy_markup: float = DEFAULT_BUY_MARKUP
    sell_markdown: float = DEFAULT_SELL_MARKDOWN

    def __post_init__(self) -> None:
        for name, lo, hi in (("buy_markup", 0.0, MAX_PRICE), ("sell_markdown", 0.0, 1.0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise ValueError(f"imbalance {name} must be a real number, got {v!r}")
            if not (math.isfinite(v) and lo <= v <= hi):
                raise ValueError(f"imbalance {name} must be finite in [{lo:g}, {hi:g}], got {v!r}")
            object.__setattr__(self, name, float(v))

    def buy(self, outside_buy: np.ndarray | float) -> np.ndarray:
        """Price per unit of a shortfall: never below ``outside_buy``."""
        return np.asarray(outside_buy, dtype=float) * (1.0 + self.buy_markup)

    def sell(self, outside_sell: np.ndarray | float) -> np.ndarray:
        """Price per unit of an excess: never above ``outside_sell``."""
        return np.asarray(outside_sell, dtype=float) * (1.0 - self.sell_markdown)


@dataclass(frozen=True)
class ImbalanceSettlement:
    """Per-agent outcome of one delivery step (arrays shaped like the inputs).

    ``imbalance_cost`` is signed money the agent pays for its deviation (an excess sold
    back earns money, so it can be negative); ``grid_cost`` settles the residual at the
    outside prices; ``penalty`` is what the deviation cost on top of settling it at the
    outside prices (``>= 0``).
    """

    shortfall: np.ndarray
    excess: np.ndarray
    residual: np.ndarray
    imbalance_cost: np.ndarray
    grid_cost: np.ndarray
    penalty: np.ndarray

    @property
    def total_cost(self) -> np.ndarray:
        """Everything the agent pays at delivery (imbalance + residual)."""
        return self.imbalance_cost + self.grid_cost


def _prices(outside_buy, outside_sell) -> tuple[np.ndarray, np.ndarray]:
    buy = np.asarray(outside_buy, dtype=float)
    sell = np.asarray(outside_sell, dtype=float)
    if not (np.all(np.isfinite(buy)) and np.all(np.isfinite(sell))
            and np.all(buy >= 0.0) and np.all(sell >= 0.0)):
        raise ValueError(f"outside prices must be finite and >= 0, got buy={buy.tolist()}, "
                         f"sell={sell.tolist()}")
    if np.any(sell > buy):
        raise ValueError(f"outside sell price must not exceed the outside buy price "
                         f"(else trading with the outside pays), got buy={buy.tolist()}, "
                         f"sell={sell.tolist()}")
    return buy, sell


def settle_imbalance(committed, actual, outside_buy, outside_sell,
                     prices: ImbalancePrices = ImbalancePrices()) -> ImbalanceSettlement:
    """Settle committed positions ``p`` against actual exports ``x`` (broadcast arrays).

    See the module docstring for the rule; ``p == 0`` reproduces the no-market settlement
    (imports at ``outside_buy``, exports at ``outside_sell``) exactly.
    """
    p = np.asarray(committed, dtype=float)
    x = np.asarray(actual, dtype=float)
    if not (np.all(np.isfinite(p)) and np.all(np.isfinite(x))):
        raise ValueError(f"committed and actual quantities must be finite, got "
                         f"committed={p.tolist()}, actual={x.tolist()}")
    buy, sell = _prices(outside_buy, outside_sell)
    long = np.maximum(p, 0.0)
    short = np.maximum(-p, 0.0)
    shortfall = np.clip(p - x, 0.0, long)
    excess = np.clip(x - p, 0.0, short)
    residual = x - p + shortfall - excess
    imbalance_cost = shortfall * prices.buy(buy) - excess * prices.sell(sell)
    grid_cost = np.maximum(-residual, 0.0) * buy - np.maximum(residual, 0.0) * sell
    penalty = shortfall * (prices.buy(buy) - buy) + excess * (sell - prices.sell(sell))
    return ImbalanceSettlement(shortfall, excess, residual, imbalance_cost, grid_cost, penalty)


@dataclass(frozen=True)
class GateSchedule:
    """When orders for a delivery step are submitted and when its gate closes.

    ``lead_steps`` (``k >= 1``) is how far ahead agents trade; ``horizon`` the episode
    length in steps. ``lead_steps >= horizon`` would leave nothing to trade: refused.
    """

    lead_steps: int
    horizon: int

    def __post_init__(self) -> None:
        for name in ("horizon", "lead_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if self.lead_steps >= self.horizon:
            raise ValueError(f"gate lead_steps = {self.lead_steps} must be below the episode "
                             f"length {self.horizon} (else no delivery step can be traded)")

    def delivery_of(self, submitted_at: int) -> int | None:
        """The delivery step orders submitted at ``submitted_at`` are for (``None``: past the end)."""
        d = submitted_at + self.lead_steps
        return d if 0 <= submitted_at and d < self.horizon else None

    def gate_of(self, delivery: int) -> int:
        """The step at which the gate for ``delivery`` closes (just before delivery)."""
        return delivery - 1

    def in_time(self, submitted_at: int, latency_steps: int) -> bool:
        """Whether an order submitted at ``submitted_at`` arrives before its gate closes."""
        d = self.delivery_of(submitted_at)
        return d is not None and submitted_at + latency_steps <= self.gate_of(d)


class CommitmentLedger:
    """Committed positions (``sold - bought``) and trade money per delivery step.

    Gate closure ``t`` commits the trades for delivery ``t + k`` (``k >= 1``) with
    :meth:`commit`; delivery ``t`` reads them back with :meth:`deliver`, which also forgets
    them (a step is delivered once).
    """

    def __init__(self, agents: Iterable[str]) -> None:
        self.agents = tuple(agents)
        if len(set(self.agents)) != len(self.agents) or not all(self.agents):
            raise ValueError(f"ledger agents must be unique non-empty names, got {self.agents!r}")
        self._index = {a: i for i, a in enumerate(self.agents)}
        self._position: dict[int, np.ndarray] = {}
        self._cash: dict[int, np.ndarray] = {}

    def _row(self, table: dict[int, np.ndarray], delivery: int) -> np.ndarray:
        return table.setdefault(delivery, np.zeros(len(self.agents)))

    def _agent(self, name: str) -> int:
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"trade names agent {name!r}, not in the ledger's "
                             f"{list(self.agents)}") from None

    def commit(self, gate: int, delivery: int, trades: Iterable[Trade]) -> None:
        """Record ``trades`` cleared at gate closure ``gate`` for step ``delivery > gate``."""
        if not (isinstance(gate, (int, np.integer)) and isinstance(delivery, (int, np.integer))):
            raise ValueError(f"gate and delivery must be integer steps, got {gate!r}, {delivery!r}")
        if delivery <= gate:
            raise ValueError(f"delivery step {delivery} must come after gate closure {gate} "
                             f"(lead k = delivery - gate >= 1)")
        pos = self._row(self._position, int(delivery))
        cash = self._row(self._cash, int(delivery))
        for t in trades:
            b, s = self._agent(t.buyer), self._agent(t.seller)
            pos[s] += t.quantity
            pos[b] -= t.quantity
            cash[b] -= t.buyer_pays
            cash[s] += t.seller_receives

    def position(self, delivery: int) -> np.ndarray:
        """Committed ``sold - bought`` per agent for ``delivery`` (zeros if none); a copy."""
        return self._position.get(int(delivery), np.zeros(len(self.agents))).copy()

    def cash(self, delivery: int) -> np.ndarray:
        """Trade money per agent for ``delivery`` (received - paid, fees included); a copy."""
        return self._cash.get(int(delivery), np.zeros(len(self.agents))).copy()

    def deliver(self, delivery: int) -> tuple[np.ndarray, np.ndarray]:
        """``(position, cash)`` of ``delivery``, removed from the ledger."""
        n = len(self.agents)
        return (self._position.pop(int(delivery), np.zeros(n)),
                self._cash.pop(int(delivery), np.zeros(n)))

    def pending(self) -> tuple[int, ...]:
        """Delivery steps with commitments not yet delivered, in order."""
        return tuple(sorted(self._position))


@dataclass(frozen=True)
class BidCurve:
    """One agent's step-wise offer for a delivery step: ``quantities[i]`` at ``prices[i]``.

    A sell curve asks non-decreasing prices (the next unit costs more to give up), a buy
    curve bids non-increasing prices; quantities are ``> 0``. Anything else (NaN,
    a negative quantity, non-monotone prices, lengths that differ) is a ``ValueError``.
    """

    agent: str
    side: Side
    prices: tuple[float, ...]
    quantities: tuple[float, ...]

    def __post_init__(self) -> None:
        prices, quantities = tuple(self.prices), tuple(self.quantities)
        if not prices or len(prices) != len(quantities):
            raise ValueError(f"bid curve of {self.agent!r} needs as many prices as quantities "
                             f"(>= 1), got {len(prices)} prices and {len(quantities)} quantities")
        checked = [validate_order(self.agent, self.side, q, p) for q, p in zip(quantities, prices)]
        side = checked[0][1]
        prices = tuple(c[3] for c in checked)
        step = np.diff(prices)
        if np.any(step < 0 if side is Side.SELL else step > 0):
            order = "non-decreasing" if side is Side.SELL else "non-increasing"
            raise ValueError(f"bid curve of {self.agent!r}: {side} prices must be {order}, "
                             f"got {list(prices)}")
        object.__setattr__(self, "side", side)
        object.__setattr__(self, "prices", prices)
        object.__setattr__(self, "quantities", tuple(c[2] for c in checked))

    @property
    def total(self) -> float:
        return float(sum(self.quantities))

    def orders(self) -> list[tuple[str, Side, float, float]]:
        """``(agent, side, quantity, price)`` per pair, ready for ``OrderBook.submit``."""
        return [(self.agent, self.side, q, p) for q, p in zip(self.quantities, self.prices)]


def decode_ahead_action(agent: str, action, max_quantity: float, price_low: float,
                        price_high: float) -> BidCurve | None:
    """The ahead-market action ``(q, p_1, ..., p_k)`` as a :class:`BidCurve` (or ``None``).

    ``q`` in ``[-1, 1]``: sign = side (``> 0`` sell, ``< 0`` buy, ``0`` = no order),
    ``|q| * max_quantity`` is the total, split equally over the ``k`` price levels;
    ``p_i`` in ``[0, 1]`` maps to ``price_low + p_i * (price_high - price_low)``. Finite
    values outside the boxes are clipped (as a policy's raw output would be); the price
    levels are a set, so they are sorted into the side's monotone order. NaN/inf raise.
    """
    a = np.asarray(action, dtype=float)
    if a.ndim != 1 or a.size < 2:
        raise ValueError(f"ahead action for {agent!r} must be (quantity, price_1, ..., "
                         f"price_k) with k >= 1, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"ahead action for {agent!r} must be finite, got {a.tolist()}")
    if not (math.isfinite(max_quantity) and max_quantity > 0):
        raise ValueError(f"max_quantity must be finite and > 0, got {max_quantity!r}")
    if not (math.isfinite(price_low) and math.isfinite(price_high)
            and 0.0 <= price_low <= price_high <= MAX_PRICE):
        raise ValueError(f"price band must satisfy 0 <= price_low <= price_high <= "
                         f"{MAX_PRICE:g}, got [{price_low!r}, {price_high!r}]")
    q = float(np.clip(a[0], -1.0, 1.0))
    if q == 0.0:
        return None
    side = Side.SELL if q > 0 else Side.BUY
    levels = np.sort(price_low + np.clip(a[1:], 0.0, 1.0) * (price_high - price_low))
    if side is Side.BUY:
        levels = levels[::-1]
    share = abs(q) * max_quantity / levels.size
    return BidCurve(agent, side, tuple(levels.tolist()), (share,) * levels.size)


def decode_ahead_batch(actions, max_quantity, price_low, price_high,
                       min_quantity: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`decode_ahead_action` for ``(B, N, 1 + k)`` actions at once, as order books.

    Returns ``(side, quantity, price)`` of shape ``(B, N * k)`` in the layout of
    :mod:`heron.market.batched` (slot ``i * k + l`` is agent ``i``'s level ``l``; side +1
    buy, -1 sell, 0 none): the same orders as :meth:`BidCurve.orders` of each agent's
    decoded curve. ``max_quantity`` broadcasts to ``(B, N)``; so do the price bands, and a
    row whose band is empty (``low > high``) or whose total is ``<= min_quantity`` posts no
    order. NaN/inf actions raise.
    """
    a = np.asarray(actions, dtype=float)
    if a.ndim != 3 or a.shape[2] < 2:
        raise ValueError(f"ahead actions must be (B, N, 1 + k) with k >= 1, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("ahead actions must be finite")
    B, N, k = a.shape[0], a.shape[1], a.shape[2] - 1
    max_q = np.broadcast_to(np.asarray(max_quantity, float), (B, N))
    low = np.broadcast_to(np.asarray(price_low, float), (B, N))
    high = np.broadcast_to(np.asarray(price_high, float), (B, N))
    if not (np.all(np.isfinite(max_q)) and np.all(max_q > 0)):
        raise ValueError("max_quantity must be finite and > 0")
    q = np.clip(a[:, :, 0], -1.0, 1.0)
    total = np.abs(q) * max_q
    live = (q != 0.0) & (low <= high) & (total > min_quantity)
    levels = np.sort(low[..., None] + np.clip(a[:, :, 1:], 0.0, 1.0)
                     * (high - low)[..., None], axis=-1)
    buy = q < 0
    levels = np.where(buy[..., None], levels[..., ::-1], levels)
    side = np.where(live, np.where(buy, 1, -1), 0)
    share = total / k
    return (np.repeat(side, k, axis=1).astype(np.int64),
            np.repeat(np.where(live, share, 0.0), k, axis=1),
            np.where(live[..., None], levels, 0.0).reshape(B, N * k))
