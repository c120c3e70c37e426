"""Orders and trades: the two value types every clearing rule speaks.

Quantities and prices are plain numbers in whatever units the domain uses (the core
never knows about watts or dollars); a trade's money is ``quantity * price``.

Bounds: ``0 < quantity <= MAX_QUANTITY`` and ``0 <= price <= MAX_PRICE`` (also for fees per
unit). Far beyond any real market, they keep every trade value (<= 1e24) and every sum
of trade values finite; a 1e200 x 1e200 order would otherwise trade for ``inf``.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from enum import Enum

MAX_QUANTITY = 1e12
MAX_PRICE = 1e12


class Side(str, Enum):
    """Which way an order trades; a ``str`` so it serialises and compares as "buy"/"sell"."""

    BUY = "buy"
    SELL = "sell"

    def __str__(self) -> str:
        return self.value


def _as_number(value: object, field: str, agent: object) -> float:
    """Coerce a real number (incl. numpy scalars) to ``float``; reject bools and strings."""
    if type(value) is float:  # fast path: the overwhelmingly common case
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"order {field} must be a real number, got {value!r} of type "
            f"{type(value).__name__} (agent {agent!r})"
        )
    return float(value)


def validate_order(
    agent: object, side: object, quantity: object, price: object
) -> tuple[str, Side, float, float]:
    """Check raw order fields and return them normalised to ``(agent, Side, float, float)``.

    Kept separate from :class:`Order` so callers (e.g. action decoders) can validate
    without building an order; every failure is a ``ValueError`` naming the field.
    """
    if not isinstance(agent, str) or not agent:
        raise ValueError(f"order agent must be a non-empty string, got {agent!r}")
    if type(side) is not Side:
        if side == "buy" or side == "sell":
            side = Side(side)
        else:
            raise ValueError(
                f"order side must be Side.BUY/Side.SELL or 'buy'/'sell', got {side!r} "
                f"(agent {agent!r})"
            )
    q = _as_number(quantity, "quantity", agent)
    if not (0.0 < q <= MAX_QUANTITY):  # also false for nan
        raise ValueError(f"order quantity must be a finite number > 0 and <= {MAX_QUANTITY:g}, "
                         f"got {q!r} (agent {agent!r})")
    p = _as_number(price, "price", agent)
    if not (0.0 <= p <= MAX_PRICE):
        raise ValueError(f"order price must be a finite number >= 0 and <= {MAX_PRICE:g}, "
                         f"got {p!r} (agent {agent!r})")
    return agent, side, q, p  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class Order:
    """A limit order: ``agent`` will buy (sell) up to ``quantity`` at ``price`` or better.

    ``order_id`` is the arrival sequence number assigned by :class:`~heron.market.book.OrderBook`
    (``-1`` until the order is in a book); clearing rules use it for time priority and
    deterministic tie-breaking. Fields are validated and normalised on construction
    (``side="buy"`` becomes ``Side.BUY``, numpy scalars become ``float``).
    """

    agent: str
    side: Side
    quantity: float
    price: float
    order_id: int = -1

    def __post_init__(self) -> None:
        agent, side, q, p = validate_order(self.agent, self.side, self.quantity, self.price)
        # Frozen dataclass: normalise in place only when needed (keeps construction cheap).
        if side is not self.side:
            object.__setattr__(self, "side", side)
        if q is not self.quantity:
            object.__setattr__(self, "quantity", q)
        if p is not self.price:
            object.__setattr__(self, "price", p)
        oid = self.order_id
        if type(oid) is not int:
            if isinstance(oid, bool) or not isinstance(oid, numbers.Integral):
                raise ValueError(f"order order_id must be an int, got {oid!r} (agent {agent!r})")
            object.__setattr__(self, "order_id", int(oid))

    @property
    def is_buy(self) -> bool:
        return self.side is Side.BUY

    # Frozen with immutable fields: copies can share the instance (cheap message payloads).
    def __copy__(self) -> Order:
        return self

    def __deepcopy__(self, memo: dict) -> Order:
        return self


@dataclass(frozen=True, slots=True)
class Trade:
    """A bilateral fill: ``seller`` delivers ``quantity`` to ``buyer`` at ``price`` per unit.

    Fee convention: ``fee`` is the TOTAL fee (money) charged by the market operator for
    this trade, split half to each side, so

    * ``buyer_pays      = quantity * price + fee / 2``
    * ``seller_receives = quantity * price - fee / 2 - surplus``

    ``surplus`` is money the operator retains on top of the fee; only McAfee trade
    reduction sets it (the buyer pays ``price`` per unit while the seller gets the lower
    ``seller_price``). Hence, for every trade, ``buyer_pays == seller_receives + fee +
    surplus``: money is conserved across buyer, seller and operator.
    """

    buyer: str
    seller: str
    quantity: float
    price: float
    fee: float = 0.0
    buy_order_id: int = -1
    sell_order_id: int = -1
    surplus: float = 0.0

    @property
    def value(self) -> float:
        """Gross value of the trade at the buyer's price, before fees."""
        return self.quantity * self.price

    @property
    def buyer_pays(self) -> float:
        return self.quantity * self.price + 0.5 * self.fee

    @property
    def seller_receives(self) -> float:
        return self.quantity * self.price - 0.5 * self.fee - self.surplus

    def __copy__(self) -> Trade:
        return self

    def __deepcopy__(self, memo: dict) -> Trade:
        return self

    @property
    def seller_price(self) -> float:
        """Per-unit price credited to the seller before fees (== ``price`` unless McAfee)."""
        return self.price - self.surplus / self.quantity
