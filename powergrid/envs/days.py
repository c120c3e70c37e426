"""Train/test split of the days of the year: which start days ``reset()`` may use.

Why: a policy scored on days it trained on is scored on memory, not skill. The held-out
test days are one day per week with a rotating weekday: week ``w`` (days ``7w .. 7w+6``)
holds out day ``7w + (w mod 7)``, so over seven weeks every weekday is held out once and
the 52 test days cover every season (days 0, 8, 16, ..., 363 of the shipped year).

``split=None`` keeps the whole year (the original behaviour, same RNG draws); ``"train"``
draws only start days whose episode touches no test day; ``"test"`` draws only test days.
An explicit ``start_day`` outside the active split raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

SPLITS = ("train", "test")


def held_out_days(n_days: int = 365) -> tuple[int, ...]:
    """The test days of an ``n_days`` year: ``7w + (w mod 7)`` for every week ``w``."""
    return tuple(d for w in range(n_days // 7 + 1) if (d := 7 * w + w % 7) < n_days)


def check_split(split: object, where: str = "split") -> str | None:
    """``split`` itself if valid (None, "train" or "test"), else a ValueError naming it."""
    if split is not None and split not in SPLITS:
        raise ValueError(f"{where} = {split!r} is invalid: expected None (all days), "
                         f"'train' or 'test'")
    return split  # type: ignore[return-value]


@dataclass(frozen=True)
class DaySplit:
    """Start-day pools of one year for episodes of ``episode_days`` calendar days."""

    n_days: int = 365
    episode_days: int = 1

    @cached_property
    def test_days(self) -> tuple[int, ...]:
        return held_out_days(self.n_days)

    @cached_property
    def train_days(self) -> tuple[int, ...]:
        """Start days whose whole episode (``episode_days`` days, wrapping) avoids test days."""
        test = set(self.test_days)
        return tuple(d for d in range(self.n_days)
                     if not any((d + k) % self.n_days in test for k in range(self.episode_days)))

    def days(self, split: str | None) -> tuple[int, ...]:
        if split is None:
            return tuple(range(self.n_days))
        return self.test_days if check_split(split) == "test" else self.train_days

    def draw(self, rng: np.random.Generator, split: str | None) -> int:
        """One start day from ``split``; one ``rng.integers`` draw whatever the split."""
        if split is None:  # exactly the draw of the original env: seeds keep their days
            return int(rng.integers(0, self.n_days))
        pool = self.days(split)
        return pool[int(rng.integers(0, len(pool)))]

    def check(self, start_day: object, split: str | None, where: str = "start_day") -> int:
        """``start_day`` as an int if it is a day of the year inside ``split``, else ValueError."""
        if isinstance(start_day, (bool, np.bool_)) or not isinstance(start_day,
                                                                     (int, np.integer)):
            raise ValueError(f"{where} = {start_day!r} is invalid: expected an int day of the "
                             f"year in [0, {self.n_days - 1}]")
        day = int(start_day)
        if not 0 <= day < self.n_days:
            raise ValueError(f"{where} = {day} is outside the year: expected a day in "
                             f"[0, {self.n_days - 1}]")
        if split is not None and day not in self._pools[split]:
            pool = self.days(split)
            raise ValueError(f"{where} = {day} is not a {split!r} day of this split "
                             f"({len(pool)} {split} days, e.g. {list(pool[:6])}; test days "
                             f"are 7w + (w mod 7), see powergrid.envs.days)")
        return day

    def check_many(self, start_days: Sequence[object], split: str | None,
                   where: str = "start_day") -> np.ndarray:
        return np.array([self.check(d, split, where) for d in start_days], dtype=int)

    @cached_property
    def _pools(self) -> dict[str, frozenset[int]]:
        return {s: frozenset(self.days(s)) for s in SPLITS}


def step_fraction(dt_hours: float) -> tuple[int, int]:
    """dt as the exact fraction p / q hours every series uses (nearest with q <= 10**6)."""
    frac = Fraction(float(dt_hours)).limit_denominator(10**6)
    return frac.numerator, frac.denominator


def episode_days(max_episode_steps: int, dt_hours: float) -> int:
    """Calendar days an episode starting at hour 0 touches (its steps 0 .. T-1)."""
    p, q = step_fraction(dt_hours)  # exact: float floor drops a day at e.g. dt 0.7, T 721
    return (max_episode_steps - 1) * p // q // 24 + 1
