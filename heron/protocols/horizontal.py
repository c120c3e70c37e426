"""Horizontal (peer <-> peer) protocols."""

from heron.protocols.consensus import ConsensusProtocol
from heron.protocols.p2p import P2PTradingProtocol

__all__ = ["ConsensusProtocol", "P2PTradingProtocol"]
