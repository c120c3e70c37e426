"""The unit of communication between agents."""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any


@dataclass(frozen=True, slots=True)
class Message:
    """An immutable envelope so a broker can queue, drop or reorder it without aliasing bugs.

    ``sent_at`` is the environment step index at which the message was sent; brokers use it
    to decide when the message becomes receivable.
    """

    sender: str
    recipient: str
    topic: str
    payload: Any
    sent_at: int = 0

    def __post_init__(self) -> None:
        # bool is an int subclass; a True step index is almost certainly a bug.
        if isinstance(self.sent_at, bool) or not isinstance(self.sent_at, Integral):
            raise ValueError(f"sent_at must be an int step index, got {self.sent_at!r}")
        if self.sent_at < 0:
            raise ValueError(f"sent_at must be >= 0, got {self.sent_at}")
        # Normalise numpy integers so equality and hashing match plain-int messages.
        object.__setattr__(self, "sent_at", int(self.sent_at))

    def __reduce__(self) -> tuple[type[Message], tuple[Any, ...]]:
        # Frozen slotted dataclasses do not unpickle on Python 3.10 without help;
        # rebuilding through __init__ works on every supported version.
        return (Message, (self.sender, self.recipient, self.topic, self.payload, self.sent_at))
