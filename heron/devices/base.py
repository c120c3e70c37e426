"""Device base: anything an agent controls with a normalised action and that has a cost."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

DEFAULT_OBS_BOUND: tuple[float, float] = (-10.0, 10.0)


class Device(ABC):
    """A controllable element with a fixed-size action in [-1, 1] and a per-step cost.

    Subclasses declare ``action_labels`` (one per action component) and ``obs_labels``
    (one per observation component) so that environments can build their spaces and
    document them without knowing the device type. ``obs_bounds`` gives each observation
    component its (low, high); it defaults to ``DEFAULT_OBS_BOUND`` per component, a wide
    margin around the "roughly [-1, 1]" that ``observe`` promises, so the spaces stay
    finite for a device that declares nothing (environments clip and flag values outside).
    """

    action_labels: ClassVar[tuple[str, ...]] = ()
    obs_labels: ClassVar[tuple[str, ...]] = ()
    obs_bounds: ClassVar[tuple[tuple[float, float], ...] | None] = None

    def __init__(self, name: str) -> None:
        if not name:
            raise ValueError("device name must be a non-empty string")
        self.name = name
        self.cost = 0.0

    @property
    def action_dim(self) -> int:
        return len(self.action_labels)

    def observation_bounds(self) -> tuple[tuple[float, float], ...]:
        """(low, high) per ``obs_labels`` component, checked against the labels."""
        bounds = self.obs_bounds
        if bounds is None:
            return (DEFAULT_OBS_BOUND,) * len(self.obs_labels)
        if len(bounds) != len(self.obs_labels) or not all(
                len(b) == 2 and math.isfinite(b[0]) and math.isfinite(b[1]) and b[0] < b[1]
                for b in bounds):
            raise ValueError(f"{type(self).__name__}.obs_bounds = {bounds!r}: expected one "
                             f"finite (low, high) pair with low < high per obs_labels "
                             f"component {self.obs_labels}")
        return tuple((float(lo), float(hi)) for lo, hi in bounds)

    @abstractmethod
    def reset(self, rng: np.random.Generator) -> None:
        """Return to the initial state; ``rng`` is the env's generator (for random starts)."""

    @abstractmethod
    def observe(self) -> tuple[float, ...]:
        """Observation components in ``obs_labels`` order, normalised to roughly [-1, 1]."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
