"""Protocol ABCs: vertical protocols flow parent -> child, horizontal ones peer <-> peer."""

from __future__ import annotations

from abc import ABC
from typing import ClassVar


class Protocol(ABC):
    """A coordination rule that an environment runs once per step.

    Protocols are stateless between episodes unless they say otherwise; ``reset`` is
    called by the environment at the start of every episode.
    """

    name: ClassVar[str] = "protocol"

    def reset(self) -> None:
        """Forget per-episode state (default: nothing to forget)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class VerticalProtocol(Protocol):
    """Parent -> child coordination (set-points, price signals)."""

    direction: ClassVar[str] = "vertical"


class HorizontalProtocol(Protocol):
    """Peer <-> peer coordination (trading, consensus)."""

    direction: ClassVar[str] = "horizontal"

    @property
    def fee_per_unit(self) -> float:
        """Money per unit traded that the operator charges (split half per side); 0 here.

        Environments narrow their limit-price band by it so that trading still beats each
        side's outside option after fees.
        """
        return 0.0

    def fee_bound(self, agent: str) -> float:
        """The most per unit ``agent`` can be charged on one trade (flat fee plus its
        worst pair fee), for narrowing that agent's band; ``fee_per_unit`` by default."""
        return self.fee_per_unit
