"""Agent-to-agent messaging: immutable messages and brokers that carry them."""

from heron.messaging.broker import Broker, BrokerStats, InMemoryBroker
from heron.messaging.message import Message

__all__ = ["Broker", "BrokerStats", "InMemoryBroker", "Message"]
