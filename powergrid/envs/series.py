"""Exogenous series of one episode (hours, days, PV, tariffs, loads), shared by all env flavours."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

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
    every formula and get bit-identical series for the same draws.

    Profiles and tariffs are hourly step functions; step t covers hours
    [t dt, (t + 1) dt) after the start day's midnight and gets their *mean over the step*
    (the exact integral / dt, partial hours weighted by their overlap), so energy per
    step is right for any dt and dt = 1 reproduces the hourly values bit for bit. The
    tariff is the time mean: with the env's constant power over a step it is exactly the
    energy-weighted price. ``hours``/``days`` label the hour in which the step starts.
    """
    start_days = np.asarray(start_days)
    cells, weights = step_cells(cfg.dt_hours, cfg.max_episode_steps + 1)
    cell_hours = cells % 24                                             # (T+1, K)
    cell_days = (start_days[:, None, None] + cells[None] // 24) % profiles.n_days  # (B, T+1, K)

    def step_mean(hourly: np.ndarray) -> np.ndarray:  # (n_days, 24) or (24,) -> (B, T+1)
        if hourly.ndim == 1:
            return np.repeat(np.sum(hourly[cell_hours] * weights, axis=-1)[None],
                             len(start_days), axis=0)
        return np.sum(hourly[cell_days, cell_hours] * weights, axis=-1)

    first = cells[:, 0]
    hours = np.repeat((first % 24)[None], len(start_days), axis=0)
    days = (start_days[:, None] + first[None] // 24) % profiles.n_days
    forecast = np.stack([m.peak_load_kw * step_mean(profiles.microgrid_load(m.name,
                                                                            m.load_profile))
                         for m in specs], axis=-1)
    factor = 1.0 + cfg.load_noise_std * noise
    return EpisodeSeries(hours=hours, days=days, pv_per_kw=step_mean(profiles.pv_per_kw),
                         retail=step_mean(np.asarray(retail_price, float)),
                         feed_in=step_mean(np.asarray(feed_in_price, float)),
                         load_forecast_kw=forecast,
                         load_kw=forecast * np.clip(factor, 0.0, None))


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
