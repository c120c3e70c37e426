"""Horizontal (peer <-> peer) protocols."""

from heron.protocols.consensus import ConsensusProtocol
from heron.protocols.p2p import P2PTradingProtocol

# The name upstream HERON's docs use; the same class, so isinstance checks agree.
PeerToPeerTradingProtocol = P2PTradingProtocol

__all__ = ["ConsensusProtocol", "P2PTradingProtocol", "PeerToPeerTradingProtocol"]
