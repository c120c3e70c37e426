"""Horizontal (peer <-> peer) protocols."""

from heron.protocols.p2p import P2PTradingProtocol

# from heron.protocols.consensus import ConsensusProtocol  # added with consensus.py

__all__ = ["P2PTradingProtocol"]
