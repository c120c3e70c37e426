"""Coordination protocols: vertical (parent -> child) and horizontal (peer <-> peer)."""

from heron.protocols.base import HorizontalProtocol, Protocol, VerticalProtocol
from heron.protocols.consensus import ConsensusProtocol, ConsensusResult
from heron.protocols.p2p import P2PTradingProtocol
from heron.protocols.vertical import PriceSignalProtocol, SetpointProtocol

__all__ = [
    "ConsensusProtocol",
    "ConsensusResult",
    "HorizontalProtocol",
    "P2PTradingProtocol",
    "PriceSignalProtocol",
    "Protocol",
    "SetpointProtocol",
    "VerticalProtocol",
]
