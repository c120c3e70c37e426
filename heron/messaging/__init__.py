"""Agent-to-agent messaging: immutable messages and brokers that carry them."""

from heron.messaging.broker import Broker, BrokerStats, InMemoryBroker, ScheduledBroker
from heron.messaging.message import Message

__all__ = ["Broker", "BrokerStats", "InMemoryBroker", "Message", "ScheduledBroker", "ZmqBroker"]


def __getattr__(name: str):  # ZmqBroker needs the optional pyzmq: import it only when asked
    if name == "ZmqBroker":
        from heron.messaging.zmq_broker import ZmqBroker

        return ZmqBroker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
