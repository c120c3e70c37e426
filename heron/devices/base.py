"""Device base: anything an agent controls with a normalised action and that has a cost."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np


class Device(ABC):
    """A controllable element with a fixed-size action in [-1, 1] and a per-step cost.

    Subclasses declare ``action_labels`` (one per action component) and ``obs_labels``
    (one per observation component) so that environments can build their spaces and
    document them without knowing the device type.
    """

    action_labels: ClassVar[tuple[str, ...]] = ()
    obs_labels: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str) -> None:
        if not name:
            raise ValueError("device name must be a non-empty string")
        self.name = name
        self.cost = 0.0

    @property
    def action_dim(self) -> int:
        return len(self.action_labels)

    @abstractmethod
    def reset(self, rng: np.random.Generator) -> None:
        """Return to the initial state; ``rng`` is the env's generator (for random starts)."""

    @abstractmethod
    def observe(self) -> tuple[float, ...]:
        """Observation components in ``obs_labels`` order, normalised to roughly [-1, 1]."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
