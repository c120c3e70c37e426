"""Domain-free energy market: orders, an order book and pluggable clearing rules."""

from heron.market.ahead import (
    CommitmentLedger,
    GateSchedule,
    ImbalancePrices,
    ImbalanceSettlement,
    settle_imbalance,
)
from heron.market.batched import BatchClearing
from heron.market.book import OrderBook
from heron.market.clearing import (
    CLEARING_RULES,
    ClearingResult,
    ClearingRule,
    ContinuousDoubleAuction,
    McAfee,
    PayAsBid,
    UniformPrice,
    make_clearing_rule,
)
from heron.market.fees import PairFees
from heron.market.orders import MAX_PRICE, MAX_QUANTITY, Order, Side, Trade, validate_order

__all__ = [
    "CLEARING_RULES",
    "MAX_PRICE",
    "MAX_QUANTITY",
    "BatchClearing",
    "ClearingResult",
    "ClearingRule",
    "CommitmentLedger",
    "GateSchedule",
    "ContinuousDoubleAuction",
    "ImbalancePrices",
    "ImbalanceSettlement",
    "McAfee",
    "Order",
    "OrderBook",
    "PairFees",
    "PayAsBid",
    "Side",
    "Trade",
    "UniformPrice",
    "make_clearing_rule",
    "settle_imbalance",
    "validate_order",
]
