"""Message brokers: the seam between agents and whatever transports their messages.

Environments talk only to :class:`Broker`, so the in-memory simulation used for training can
be swapped for a real message queue (with real latency and loss) without touching agents.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np

from heron.messaging.message import Message


@dataclass(frozen=True)  # no slots: frozen+slots does not unpickle on 3.10
class BrokerStats:
    """Counters since the last reset; ``sent`` includes messages that were later dropped."""

    sent: int = 0
    delivered: int = 0
    dropped: int = 0


class Broker(ABC):
    """Interface every broker implements.

    Time is explicit: the environment calls :meth:`deliver` (alias :meth:`advance`) with the
    current step index, and only messages due by then are receivable. Keeping time outside
    the broker makes episodes reproducible regardless of wall-clock speed.
    """

    @abstractmethod
    def register(self, agent_id: str) -> None:
        """Give ``agent_id`` an inbox; registering twice is a no-op."""

    @abstractmethod
    def send(self, message: Message) -> None:
        """Queue ``message``; raise ValueError if its sender or recipient is not registered."""

    @abstractmethod
    def deliver(self, step: int) -> None:
        """Move time to ``step`` and make every message due by then receivable."""

    def advance(self, step: int) -> None:
        """Alias of :meth:`deliver`, for callers that think of it as a clock tick."""
        self.deliver(step)

    @abstractmethod
    def receive(self, agent_id: str, topic: str | None = None) -> list[Message]:
        """Drain and return ``agent_id``'s receivable messages (only ``topic`` if given).

        Order is deterministic: by due step, then by send order.
        """

    @abstractmethod
    def reset(self, seed: int | None = None) -> None:
        """Drop all in-flight and unread messages, zero the stats and set time to step 0."""

    @property
    @abstractmethod
    def stats(self) -> BrokerStats:
        """Sent / delivered / dropped counts since the last reset."""

    @property
    @abstractmethod
    def step(self) -> int:
        """The step index the broker was last advanced to."""

    def broadcast(
        self,
        sender: str,
        topic: str,
        payload: Any,
        recipients: Iterable[str],
        sent_at: int | None = None,
    ) -> list[Message]:
        """Send the same payload to each recipient (in the given order) and return the messages.

        ``sent_at`` defaults to the broker's current step.
        """
        when = self.step if sent_at is None else sent_at
        messages = [Message(sender, r, topic, payload, when) for r in recipients]
        for message in messages:
            self.send(message)
        return messages


class ScheduledBroker(Broker):
    """A broker whose network is simulated in step time: fixed latency, seeded independent loss.

    A message sent at step ``t`` becomes receivable at step ``t + latency_steps``; with
    ``latency_steps=0`` it is receivable in the same step. Each message is dropped with
    probability ``drop_prob`` from a generator re-seeded on :meth:`reset`, so a seeded
    episode loses exactly the same messages every time it is replayed. Subclasses only
    carry the surviving messages (:meth:`_transmit`, :meth:`_arrive`, :meth:`_take`), so
    every transport with the same knobs and seed delivers the same messages in the same order.
    """

    def __init__(
        self, latency_steps: int = 0, drop_prob: float = 0.0, seed: int | None = None
    ) -> None:
        if isinstance(latency_steps, bool) or not isinstance(latency_steps, Integral):
            raise ValueError(f"latency_steps must be an int >= 0, got {latency_steps!r}")
        if latency_steps < 0:
            raise ValueError(f"latency_steps must be an int >= 0, got {latency_steps}")
        if (
            isinstance(drop_prob, bool)
            or not isinstance(drop_prob, Real)
            or not 0.0 <= float(drop_prob) <= 1.0  # also rejects NaN
        ):
            raise ValueError(f"drop_prob must be a probability in [0, 1], got {drop_prob!r}")
        self.latency_steps = int(latency_steps)
        self.drop_prob = float(drop_prob)
        self._seed = seed
        # Registrations describe the topology, not the episode, so they survive reset().
        self._registered: dict[str, None] = {}
        self.reset(seed)

    # ------------------------------------------------------------------ transport hooks
    @abstractmethod
    def _transmit(self, message: Message, due: int) -> Any:
        """Carry a surviving ``message`` towards its recipient; return what :meth:`_arrive`
        gets once it is due."""

    @abstractmethod
    def _arrive(self, recipient: str, item: Any) -> None:
        """The message behind ``item`` became receivable (called in due, then send, order)."""

    @abstractmethod
    def _take(self, agent_id: str, topic: str | None) -> list[Message]:
        """Drain ``agent_id``'s receivable messages (only ``topic`` if given)."""

    def _reset_transport(self) -> None:
        """Forget every message in transit or unread."""

    # ------------------------------------------------------------------ Broker
    def reset(self, seed: int | None = None) -> None:
        # A new seed replaces the old one, so a later reset() without arguments replays it.
        if seed is not None:
            self._seed = seed
        self._rng = np.random.default_rng(self._seed)
        self._step = 0
        self._seq = 0  # tie-breaker keeping same-step messages in send order
        self._in_flight: list[tuple[int, int, str, Any]] = []
        self._sent = self._delivered = self._dropped = 0
        self._reset_transport()

    def register(self, agent_id: str) -> None:
        if not isinstance(agent_id, str) or not agent_id:
            raise ValueError(f"agent_id must be a non-empty str, got {agent_id!r}")
        self._registered.setdefault(agent_id, None)

    @property
    def agents(self) -> tuple[str, ...]:
        """Registered agent ids, in registration order."""
        return tuple(self._registered)

    def _check_registered(self, role: str, agent_id: str) -> None:
        if agent_id not in self._registered:
            raise ValueError(
                f"unknown {role} {agent_id!r}; register it first "
                f"(registered: {sorted(self._registered)})"
            )

    def send(self, message: Message) -> None:
        if not isinstance(message, Message):
            raise ValueError(f"send() expects a Message, got {type(message).__name__}")
        self._check_registered("sender", message.sender)
        self._check_registered("recipient", message.recipient)
        self._sent += 1
        # Only draw when the outcome is random, so drop_prob=0 never perturbs the stream.
        if self.drop_prob >= 1.0 or (self.drop_prob > 0.0 and self._rng.random() < self.drop_prob):
            self._dropped += 1
            return
        due = message.sent_at + self.latency_steps
        item = self._transmit(message, due)
        heapq.heappush(self._in_flight, (due, self._seq, message.recipient, item))
        self._seq += 1
        self._release()

    def deliver(self, step: int) -> None:
        if isinstance(step, bool) or not isinstance(step, Integral):
            raise ValueError(f"step must be an int, got {step!r}")
        if step < self._step:
            raise ValueError(f"time cannot go backwards: at step {self._step}, asked for {step}")
        self._step = int(step)
        self._release()

    def _release(self) -> None:
        while self._in_flight and self._in_flight[0][0] <= self._step:
            _, _, recipient, item = heapq.heappop(self._in_flight)
            self._arrive(recipient, item)
            self._delivered += 1

    def receive(self, agent_id: str, topic: str | None = None) -> list[Message]:
        self._check_registered("agent", agent_id)
        return self._take(agent_id, topic)

    @property
    def stats(self) -> BrokerStats:
        return BrokerStats(sent=self._sent, delivered=self._delivered, dropped=self._dropped)

    @property
    def step(self) -> int:
        return self._step

    @property
    def in_flight(self) -> int:
        """Messages sent but not yet due (useful to check nothing is stuck at episode end)."""
        return len(self._in_flight)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(latency_steps={self.latency_steps}, "
            f"drop_prob={self.drop_prob}, seed={self._seed})"
        )


class InMemoryBroker(ScheduledBroker):
    """The simulated network inside this process: inboxes are lists (the training default)."""

    def __init__(
        self, latency_steps: int = 0, drop_prob: float = 0.0, seed: int | None = None
    ) -> None:
        self._inboxes: dict[str, list[Message]] = {}
        super().__init__(latency_steps, drop_prob, seed)

    @classmethod
    def from_state(cls, knobs: tuple, clock: tuple, in_flight: list, inboxes: dict
                   ) -> InMemoryBroker:
        """An in-memory broker in exactly the given state: how other brokers are copied and
        pickled (``ZmqBroker.__reduce__``), so every transport can hand over its state.

        ``knobs``: ``(latency_steps, drop_prob, seed)``; ``clock``: ``(rng bit-generator
        state, step, next sequence number, sent, delivered, dropped)``; ``in_flight``:
        ``(due, seq, recipient, message)`` tuples not yet delivered; ``inboxes``: the
        delivered, unread messages per registered agent.
        """
        broker = cls(*knobs)
        for agent in inboxes:
            broker.register(agent)
        (broker._rng.bit_generator.state, broker._step, broker._seq, broker._sent,
         broker._delivered, broker._dropped) = clock
        broker._in_flight = sorted(in_flight)
        for agent, messages in inboxes.items():
            broker._inboxes[agent].extend(messages)
        return broker

    def _reset_transport(self) -> None:
        for inbox in self._inboxes.values():
            inbox.clear()

    def register(self, agent_id: str) -> None:
        super().register(agent_id)
        self._inboxes.setdefault(agent_id, [])

    def _transmit(self, message: Message, due: int) -> Message:
        return message

    def _arrive(self, recipient: str, item: Message) -> None:
        self._inboxes[recipient].append(item)

    def _take(self, agent_id: str, topic: str | None) -> list[Message]:
        inbox = self._inboxes[agent_id]
        if topic is None:
            taken = list(inbox)
            inbox.clear()
            return taken
        taken = [m for m in inbox if m.topic == topic]
        inbox[:] = [m for m in inbox if m.topic != topic]
        return taken
