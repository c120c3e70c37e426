"""The unit of communication between agents."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from numbers import Integral
from typing import Any

# Payload types that cannot change after construction: shared, never copied.
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes)


@dataclass(frozen=True, slots=True)
class Message:
    """An immutable envelope so a broker can queue, drop or reorder it without aliasing bugs.

    ``sent_at`` is the environment step index at which the message was sent; brokers use it
    to decide when the message becomes receivable. The envelope owns a deep copy of
    ``payload`` taken at construction, so a sender that mutates its object after ``send``
    cannot change what the recipient receives (scalars, strings and types that declare
    themselves immutable through ``__deepcopy__``, such as heron's ``Order`` and ``Trade``,
    are shared instead of copied). A payload that cannot be deep-copied is a ``TypeError``.
    """

    sender: str
    recipient: str
    topic: str
    payload: Any
    sent_at: int = 0

    def __post_init__(self) -> None:
        for field in ("sender", "recipient", "topic"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"message {field} must be a non-empty str, got {value!r}")
        # bool is an int subclass; a True step index is almost certainly a bug.
        if isinstance(self.sent_at, bool) or not isinstance(self.sent_at, Integral):
            raise ValueError(f"sent_at must be an int step index, got {self.sent_at!r}")
        if self.sent_at < 0:
            raise ValueError(f"sent_at must be >= 0, got {self.sent_at}")
        # Normalise numpy integers so equality and hashing match plain-int messages.
        object.__setattr__(self, "sent_at", int(self.sent_at))
        payload = self.payload
        if type(payload) not in _IMMUTABLE:
            try:
                payload = copy.deepcopy(payload)
            except Exception as exc:  # locks, generators, open files, ...
                raise TypeError(f"message payload of type {type(payload).__name__} cannot be "
                                f"copied into the envelope ({exc}); send plain data") from exc
            object.__setattr__(self, "payload", payload)

    def __reduce__(self) -> tuple[type[Message], tuple[Any, ...]]:
        # Frozen slotted dataclasses do not unpickle on Python 3.10 without help;
        # rebuilding through __init__ works on every supported version.
        return (Message, (self.sender, self.recipient, self.topic, self.payload, self.sent_at))
