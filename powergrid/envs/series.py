"""Exogenous series of one episode (hours, days, PV, tariffs, loads), shared by all env flavours."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from powergrid.data import Profiles
from powergrid.envs.config import EnvConfig, MicrogridSpec
from powergrid.envs.days import step_fraction


@dataclass(frozen=True)
class EpisodeSeries:
    """Arrays indexed by step t in [0, max_episode_steps]; the extra step serves forecasts.

    ``episode_series_batch`` returns the same fields with a leading batch axis (B, ...).
    """

    hours: np.ndarray          # (T+1,) int hour of day in which the step starts
    days: np.ndarray           # (T+1,) int day of year in which the step starts
    pv_per_kw: np.ndarray      # (T+1,) mean over the step
    retail: np.ndarray         # (T+1,) $/kWh, time mean over the step
    feed_in: np.ndarray        # (T+1,) $/kWh, time mean over the step
    load_forecast_kw: np.ndarray  # (T+1, n_agents) noise-free profile mean x peak
    load_kw: np.ndarray        # (T+1, n_agents) realised load (forecast x noise)


def episode_series(cfg: EnvConfig, profiles: Profiles, retail_price: np.ndarray,
                   feed_in_price: np.ndarray, specs: Sequence[MicrogridSpec], start_day: int,
                   rng: np.random.Generator) -> EpisodeSeries:
    """Draw one episode's series; consumes exactly one normal draw per (step, agent) from rng."""
    noise = rng.standard_normal((cfg.max_episode_steps + 1, len(specs)))
    batch = episode_series_batch(cfg, profiles, retail_price, feed_in_price, specs,
                                 np.array([start_day]), noise[None])
    return EpisodeSeries(*(getattr(batch, f.name)[0] for f in fields(EpisodeSeries)))


def episode_series_batch(cfg: EnvConfig, profiles: Profiles, retail_price: np.ndarray,
                         feed_in_price: np.ndarray, specs: Sequence[MicrogridSpec],
                         start_days: np.ndarray, noise: np.ndarray) -> EpisodeSeries:
    """Series of B episodes at once from their start days (B,) and normal draws (B, T+1, n).

    Pure given the draws, so the vector env (one RNG per env) and the scalar env share
    every formula and get bit-identical series for the same draws. A caller that draws
    many batches keeps a :class:`SeriesPlanner` instead (its per-call constants once).
    """
    planner = SeriesPlanner(cfg, profiles, retail_price, feed_in_price, specs, tabulate=False)
    return planner.series(start_days, noise)


class SeriesPlanner:
    """The exogenous series of one configuration: what every batch of episodes shares.

    Profiles and tariffs are hourly step functions; step t covers hours
    [t dt, (t + 1) dt) after the start day's midnight and gets their *mean over the step*
    (the exact integral / dt, partial hours weighted by their overlap), so energy per
    step is right for any dt and dt = 1 reproduces the hourly values bit for bit. The
    tariff is the time mean: with the env's constant power over a step it is exactly the
    energy-weighted price. ``hours``/``days`` label the hour in which the step starts.

    Why a planner: the step means depend only on the start day, so with ``tabulate`` they
    are computed once for every day of the year (one (n_days, T+1, 3 + n) table, while
    n_days x (T+1) stays under ``TABLE_ENTRIES``) and a batch is one fancy index, the same
    numbers as computing them per batch (each row's sum is the same operation).
    """

    #: largest table (n_days x (T+1) entries per series) kept; longer episodes compute per call
    TABLE_ENTRIES = 2**18

    def __init__(self, cfg: EnvConfig, profiles: Profiles, retail_price: np.ndarray,
                 feed_in_price: np.ndarray, specs: Sequence[MicrogridSpec],
                 tabulate: bool = True) -> None:
        self.n_days, self.steps = profiles.n_days, cfg.max_episode_steps + 1
        self.load_noise_std = cfg.load_noise_std
        # (T+1, K) hour of day / day offset / weight of each cell, (T+1,) of each step start
        (self._cell_hours, self._cell_day, self._weights, self.hours,
         self._first_day) = _step_grid(float(cfg.dt_hours), self.steps)
        self._peaks = [m.peak_load_kw for m in specs]
        #: the hourly sources, by EpisodeSeries field: (n_days, 24) or (24,) arrays
        self._hourly = {"pv_per_kw": profiles.pv_per_kw,
                        "retail": np.asarray(retail_price, float),
                        "feed_in": np.asarray(feed_in_price, float),
                        "loads": [profiles.microgrid_load(m.name, m.load_profile) for m in specs]}
        self._table: np.ndarray | None = None
        if tabulate and self.n_days * self.steps <= self.TABLE_ENTRIES:
            *series, loads = self._means(np.arange(self.n_days))
            self._table = np.concatenate([np.stack(series, axis=-1), loads], axis=-1)

    @property
    def tabulated(self) -> bool:
        """Whether batches are gathered from the per-start-day tables (else computed)."""
        return self._table is not None

    def _step_mean(self, hourly: np.ndarray, start_days: np.ndarray) -> np.ndarray:
        """(B, T+1) mean over each step of an (n_days, 24) or (24,) hourly series."""
        if hourly.ndim == 1:
            return np.repeat(np.sum(hourly[self._cell_hours] * self._weights, axis=-1)[None],
                             len(start_days), axis=0)
        cell_days = (start_days[:, None, None] + self._cell_day[None]) % self.n_days
        return np.sum(hourly[cell_days, self._cell_hours] * self._weights, axis=-1)

    def _means(self, start_days: np.ndarray) -> list[np.ndarray]:
        """Step means of episodes starting on ``start_days``: (B, T+1) PV per kW, retail,
        feed-in, then (B, T+1, n) each microgrid's load forecast in kW."""
        h = self._hourly
        out = [self._step_mean(h[k], start_days) for k in ("pv_per_kw", "retail", "feed_in")]
        return out + [np.stack([peak * self._step_mean(load, start_days)
                                for peak, load in zip(self._peaks, h["loads"])], axis=-1)]

    def series(self, start_days: np.ndarray, noise: np.ndarray) -> EpisodeSeries:
        """Series of B episodes from their start days (B,) and normal draws (B, T+1, n)."""
        start_days = np.asarray(start_days)
        if self._table is None:
            pv, retail, feed_in, forecast = self._means(start_days)
        else:  # one gather, then views of its columns
            rows = self._table[start_days % self.n_days]
            pv, retail, feed_in, forecast = rows[..., 0], rows[..., 1], rows[..., 2], rows[..., 3:]
        days = (start_days[:, None] + self._first_day[None]) % self.n_days
        factor = np.clip(1.0 + self.load_noise_std * noise, 0.0, None)
        return EpisodeSeries(hours=np.repeat(self.hours[None], len(start_days), axis=0),
                             days=days, pv_per_kw=pv, retail=retail, feed_in=feed_in,
                             load_forecast_kw=forecast, load_kw=forecast * factor)


@lru_cache(maxsize=32)
def _step_grid(dt_hours: float, steps: int) -> tuple[np.ndarray, ...]:
    """:func:`step_cells` split into what a planner indexes with, read-only and cached:
    every env (and every ``Simulation``) of one (dt, steps) shares them, and
    dt -> fraction is the slow part of building a planner."""
    cells, weights = step_cells(dt_hours, steps)
    out = (cells % 24, cells // 24, weights, cells[:, 0] % 24, cells[:, 0] // 24)
    for a in out:
        a.setflags(write=False)
    return out


def step_cells(dt_hours: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Hour cells each step overlaps, and their weights (overlap / dt), for ``steps`` steps.

    Returns ``cells`` (steps, K) int hours since the start and ``weights`` (steps, K) that
    sum to 1 per row. dt is read as the nearest fraction with denominator <= 10**6
    (0.7 -> 7/10), so step boundaries are exact integers in units of 1/q hour: step 90 of
    dt = 0.7 starts at hour 63, not at 62.999....
    """
    p, q = step_fraction(dt_hours)                     # dt = p / q hours
    t = np.arange(steps, dtype=np.int64)
    start, stop = t * p, (t + 1) * p                   # in units of 1/q hour
    cells = (start // q)[:, None] + np.arange(p // q + 2, dtype=np.int64)[None]
    overlap = (np.minimum(stop[:, None], (cells + 1) * q)
               - np.maximum(start[:, None], cells * q))
    return cells, np.maximum(overlap, 0) / p


def price_band(feed_in: float | np.ndarray, retail: float | np.ndarray,
               fee_per_unit: float = 0.0) -> tuple[float | np.ndarray, float | np.ndarray]:
    """The limit prices at which P2P trading beats the grid for both sides, fees included.

    Each side pays half the per-kWh fee, so a seller's net is ``price - fee/2`` against the
    feed-in tariff and a buyer's cost ``price + fee/2`` against retail: the band is
    ``[feed_in + fee/2, retail - fee/2]``, empty (low > high) when the fee exceeds the
    tariff spread; then nobody posts an order. With no fee it is exactly [feed-in, retail].
    """
    half = 0.5 * fee_per_unit
    return feed_in + half, retail - half


def limit_price(action: float | np.ndarray, low: float | np.ndarray,
                high: float | np.ndarray) -> float | np.ndarray:
    """Map a price action in [-1, 1] into the band [low, high] of :func:`price_band`.

    Any limit inside the band makes trading at least as good as the grid for a willing
    agent, fees included: every clearing rule fills a sell order at or above its limit and
    a buy order at or below it.
    """
    return low + (action + 1.0) * 0.5 * (high - low)
