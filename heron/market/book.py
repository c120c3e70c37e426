"""A minimal limit-order book: collects one round's orders and exposes them in priority order.

The book does no matching itself; clearing rules (``heron.market.clearing``) read ``bids``
and ``asks``. It is rebuilt every environment step with a handful of orders, so it favours
plain dicts and on-demand sorting over clever data structures.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from heron.market.orders import Order, Side

_price = attrgetter("price")
_order_id = attrgetter("order_id")


class OrderBook:
    """Orders from one trading round, with arrival sequence numbers for time priority.

    If ``agents`` is given the book only accepts orders from those agents, which catches
    mis-wired action decoders early instead of silently trading for a ghost.
    """

    __slots__ = ("_agents", "_bids", "_asks", "_next_id")

    def __init__(self, agents: Iterable[str] | None = None) -> None:
        if isinstance(agents, str):  # frozenset("MG1") would accept agents "M", "G", "1"
            raise TypeError(f"agents must be an iterable of agent ids, not the string {agents!r}")
        self._agents: frozenset[str] | None = None if agents is None else frozenset(agents)
        # Dicts keep insertion (== order_id) order, so a stable sort by price alone
        # already yields price-time priority.
        self._bids: dict[int, Order] = {}
        self._asks: dict[int, Order] = {}
        self._next_id = 0

    def add(self, order: Order) -> Order:
        """Store ``order`` under the next sequence number and return the stored copy.

        Any ``order_id`` already on ``order`` is ignored: time priority is the book's call.
        """
        if not isinstance(order, Order):
            raise TypeError(f"OrderBook.add expects an Order, got {type(order).__name__}")
        if self._agents is not None and order.agent not in self._agents:
            raise ValueError(
                f"order from unknown agent {order.agent!r}; this book accepts "
                f"{sorted(self._agents)}"
            )
        oid = self._next_id
        self._next_id = oid + 1
        stored = Order(order.agent, order.side, order.quantity, order.price, oid)
        if stored.side is Side.BUY:
            self._bids[oid] = stored
        else:
            self._asks[oid] = stored
        return stored

    def submit(self, agent: str, side: Side | str, quantity: float, price: float) -> Order:
        """Validate and add an order built from raw fields."""
        return self.add(Order(agent, side, quantity, price))  # type: ignore[arg-type]

    def cancel(self, order_id: int) -> Order:
        """Remove and return the order with ``order_id``."""
        order = self._bids.pop(order_id, None)
        if order is None:
            order = self._asks.pop(order_id, None)
        if order is None:
            raise KeyError(
                f"no resting order with order_id {order_id!r} (it was never added, "
                f"already cancelled, or the book was cleared)"
            )
        return order

    @property
    def bids(self) -> tuple[Order, ...]:
        """Buy orders, best first: price descending, then earliest order_id."""
        # reverse=True keeps sort stability, so equal prices stay in arrival order.
        return tuple(sorted(self._bids.values(), key=_price, reverse=True))

    @property
    def asks(self) -> tuple[Order, ...]:
        """Sell orders, best first: price ascending, then earliest order_id."""
        return tuple(sorted(self._asks.values(), key=_price))

    @property
    def orders(self) -> tuple[Order, ...]:
        """All orders in arrival (order_id) order."""
        return tuple(sorted((*self._bids.values(), *self._asks.values()), key=_order_id))

    @property
    def agents(self) -> frozenset[str] | None:
        """The accepted agents, or ``None`` if the book accepts anyone."""
        return self._agents

    def orders_of(self, agent: str) -> tuple[Order, ...]:
        """``agent``'s orders in arrival order."""
        return tuple(o for o in self.orders if o.agent == agent)

    def clear(self) -> None:
        """Drop all orders and restart sequence numbers, as for a fresh round."""
        self._bids.clear()
        self._asks.clear()
        self._next_id = 0

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def __contains__(self, order_id: object) -> bool:
        return order_id in self._bids or order_id in self._asks

    def __repr__(self) -> str:
        return f"OrderBook(bids={len(self._bids)}, asks={len(self._asks)})"
