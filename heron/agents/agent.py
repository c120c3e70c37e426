"""Agents own devices; coordinators are agents with children (the parent side of a vertical protocol)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from heron.devices.base import Device


class Agent:
    """A decision maker: an id, the devices it controls, and the slice of the action it owns.

    The agent's action is the concatenation of its devices' actions followed by
    ``extra_action_labels`` (e.g. a market price), so policies see one flat vector.
    """

    def __init__(
        self,
        agent_id: str,
        devices: Sequence[Device] = (),
        extra_action_labels: Sequence[str] = (),
    ) -> None:
        if not agent_id:
            raise ValueError("agent_id must be a non-empty string")
        names = [d.name for d in devices]
        if len(set(names)) != len(names):
            raise ValueError(f"agent {agent_id!r} has duplicate device names: {names}")
        self.agent_id = agent_id
        self.devices = list(devices)
        self.extra_action_labels = tuple(extra_action_labels)

    @property
    def action_labels(self) -> tuple[str, ...]:
        labels = [f"{d.name}.{label}" for d in self.devices for label in d.action_labels]
        return tuple(labels) + self.extra_action_labels

    @property
    def action_dim(self) -> int:
        return len(self.action_labels)

    def device(self, name: str) -> Device:
        for d in self.devices:
            if d.name == name:
                return d
        raise KeyError(f"agent {self.agent_id!r} has no device {name!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.agent_id!r}, devices={self.devices})"


class Coordinator(Agent):
    """An agent above other agents: the sender of vertical-protocol signals."""

    def __init__(self, agent_id: str, children: Iterable[str], **kwargs) -> None:
        super().__init__(agent_id, **kwargs)
        self.children = tuple(children)
        if not self.children:
            raise ValueError(f"coordinator {agent_id!r} needs at least one child")
