"""Exogenous series of one episode (hours, days, PV, tariffs, loads), shared by all env flavours."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from powergrid.data import Profiles
from powergrid.envs.config import EnvConfig, MicrogridSpec


@dataclass(frozen=True)
class EpisodeSeries:
    """Arrays indexed by step t in [0, max_episode_steps]; the extra step serves forecasts.

    ``episode_series_batch`` returns the same fields with a leading batch axis (B, ...).
    """

    hours: np.ndarray          # (T+1,) int hour of day
    days: np.ndarray           # (T+1,) int day of year
    pv_per_kw: np.ndarray      # (T+1,)
    retail: np.ndarray         # (T+1,) $/kWh
    feed_in: np.ndarray        # (T+1,) $/kWh
    load_forecast_kw: np.ndarray  # (T+1, n_agents) noise-free profile x peak
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
    """
    steps = cfg.max_episode_steps + 1
    time_h = np.arange(steps) * cfg.dt_hours
    hours = np.repeat((np.floor(time_h).astype(int) % 24)[None], len(start_days), axis=0)
    days = (np.asarray(start_days)[:, None] + np.floor(time_h / 24).astype(int)) % profiles.n_days
    forecast = np.stack([m.peak_load_kw * profiles.load(m.load_profile)[days, hours]
                         for m in specs], axis=-1)
    factor = 1.0 + cfg.load_noise_std * noise
    return EpisodeSeries(hours=hours, days=days, pv_per_kw=profiles.pv_per_kw[days, hours],
                         retail=retail_price[hours], feed_in=feed_in_price[hours],
                         load_forecast_kw=forecast,
                         load_kw=forecast * np.clip(factor, 0.0, None))


def limit_price(action: float | np.ndarray, feed_in: float | np.ndarray,
                retail: float | np.ndarray) -> float | np.ndarray:
    """Map a price action in [-1, 1] into the hour's band [feed-in, retail].

    Any limit inside the band makes trading at least as good as the grid for a willing
    agent: a seller never accepts less than feed-in, a buyer never pays more than retail.
    """
    return feed_in + (action + 1.0) * 0.5 * (retail - feed_in)
