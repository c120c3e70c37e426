"""Forecast errors for load and PV that grow with lead time, calibrated on the shipped profiles.

Why: in an ahead market a microgrid commits energy before delivery, on forecasts; committing
is a decision only if the forecast can be wrong, and more wrong the further ahead it is.

Model
    ``forecast = actual x m``, with ``m`` log-normal of mean 1 and standard deviation
    ``sigma(kind, lead)`` (the relative error, nRMSE): unbiased, never negative, zero at
    night for PV, exact at lead 0. Errors are independent across entries (a limitation:
    real errors are correlated across hours). ``forecast(actual, lead_hours, rng, kind=...)``
    is pure and batched (any shapes that broadcast).

Calibration (:func:`calibrate`, reproduced by ``tests/test_forecast.py``)
    For each series of :func:`powergrid.data.load_profiles` (shape (365, 24)): a seasonal
    climatology ``s`` (15-day centred mean of the same hour), anomalies ``a = x - s`` as one
    hourly time series, and for each lead ``h`` the least-squares anomaly-persistence
    forecast ``rho_h a(t)`` of ``a(t + h)``. ``sigma(h)`` is the RMS of its residual divided
    by the RMS of ``x`` (both over the hours where ``s`` exceeds 2 % of its maximum:
    daylight for PV), made non-decreasing in ``h`` (a forecaster issued earlier knows less).
    Leads past :data:`MAX_LEAD_HOURS` use the last value (saturated by ~12 h).
    Recompute with ``python -m powergrid.data.forecast``.

    ===========  ======  ======  ======  ======  ======  ======
    lead (h)     1       2       3       6       12      24
    ===========  ======  ======  ======  ======  ======  ======
    residential  0.061   0.096   0.106   0.106   0.107   0.107
    commercial   0.075   0.132   0.168   0.211   0.243   0.243
    pv           0.210   0.273   0.313   0.362   0.366   0.366
    ===========  ======  ======  ======  ======  ======  ======

    The load profiles are BDEW standard load profiles, driven by the calendar (work day,
    Saturday, Sunday/holiday) and the season; their only variability is that, so these
    numbers are the errors of a calendar-blind forecaster (for commercial load mostly the
    weekend). PV comes from a TMY3 weather year: its errors are weather.

Use
    With ``market_timing="ahead"`` the env observes ``forecast(...)`` of load and PV for the
    delivery step (``powergrid.core.ahead``: drawn at reset from the env's RNG, lead
    ``gate_lead_steps`` steps) and the actual load at delivery. The real-time market's
    observed load "forecast" is the noise-free profile (the realised load adds
    ``load_noise_std``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from powergrid.data.profiles import Profiles, load_profiles

KINDS = ("load_residential", "load_commercial", "pv")
MAX_LEAD_HOURS = 24
CLIMATOLOGY_DAYS = 15
DAYLIGHT_FRACTION = 0.02  # hours whose climatology is below 2 % of its max are not scored

# sigma(kind)[lead] for lead 0..24 h, from calibrate(load_profiles()) rounded to 3 decimals
SIGMA_BY_LEAD: dict[str, tuple[float, ...]] = {
    "load_residential": (
        0.0, 0.061, 0.096, 0.106, 0.106, 0.106, 0.106, 0.106, 0.106, 0.107, 0.107, 0.107,
        0.107, 0.107, 0.107, 0.107, 0.107, 0.107, 0.107, 0.107, 0.107, 0.107, 0.107, 0.107,
        0.107),
    "load_commercial": (
        0.0, 0.075, 0.132, 0.168, 0.189, 0.202, 0.211, 0.22, 0.23, 0.236, 0.24, 0.242,
        0.243, 0.243, 0.243, 0.243, 0.243, 0.243, 0.243, 0.243, 0.243, 0.243, 0.243, 0.243,
        0.243),
    "pv": (
        0.0, 0.21, 0.273, 0.313, 0.338, 0.353, 0.362, 0.365, 0.366, 0.366, 0.366, 0.366,
        0.366, 0.366, 0.366, 0.366, 0.366, 0.366, 0.366, 0.366, 0.366, 0.366, 0.366, 0.366,
        0.366),
}


def _series(profiles: Profiles, kind: str) -> np.ndarray:
    return profiles.pv_per_kw if kind == "pv" else profiles.load(kind.removeprefix("load_"))


def calibrate(profiles: Profiles | None = None,
              max_lead_hours: int = MAX_LEAD_HOURS) -> dict[str, np.ndarray]:
    """``sigma`` per kind for leads ``0..max_lead_hours`` (see the module docstring)."""
    from scipy.ndimage import uniform_filter1d

    profiles = load_profiles() if profiles is None else profiles
    out = {}
    for kind in KINDS:
        x = _series(profiles, kind)
        clim = uniform_filter1d(x, size=CLIMATOLOGY_DAYS, axis=0, mode="nearest")
        a, xs, cs = (x - clim).ravel(), x.ravel(), clim.ravel()
        sigma = [0.0]
        for h in range(1, max_lead_hours + 1):
            now, later = a[:-h], a[h:]
            rho = float(now @ later) / float(now @ now)
            scored = cs[h:] > DAYLIGHT_FRACTION * cs.max()
            resid = (later - rho * now)[scored]
            sigma.append(float(np.sqrt(np.mean(resid ** 2) / np.mean(xs[h:][scored] ** 2))))
        out[kind] = np.maximum.accumulate(np.array(sigma))
    return out


def sigma(kind: str, lead_hours: Any,
          table: Mapping[str, tuple[float, ...]] = SIGMA_BY_LEAD) -> np.ndarray:
    """Relative forecast error std of ``kind`` at ``lead_hours`` (batched, saturating)."""
    if kind not in table:
        raise ValueError(f"forecast kind must be one of {tuple(table)}, got {kind!r}")
    lead = np.asarray(lead_hours)
    if lead.dtype == bool or not np.issubdtype(lead.dtype, np.integer):
        raise ValueError(f"lead_hours must be integers >= 0, got dtype {lead.dtype}")
    if np.any(lead < 0):
        raise ValueError(f"lead_hours must be >= 0, got {lead.min()}")
    values = np.asarray(table[kind], float)
    return values[np.minimum(lead, len(values) - 1)]


def forecast(actual: Any, lead_hours: Any, rng: np.random.Generator, *, kind: str,
             table: Mapping[str, tuple[float, ...]] = SIGMA_BY_LEAD) -> np.ndarray:
    """A forecast of ``actual`` (>= 0, e.g. kW) issued ``lead_hours`` ahead; pure given ``rng``.

    ``actual`` and ``lead_hours`` broadcast; ``kind`` is one of :data:`KINDS`. Each entry is
    ``actual x m`` with ``m`` log-normal, mean 1, std :func:`sigma` (so the forecast is
    unbiased and non-negative).
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    x = np.asarray(actual, dtype=float)
    if not np.all(np.isfinite(x)):
        raise ValueError("actual contains NaN or infinite values")
    if np.any(x < 0):
        raise ValueError(f"actual must be >= 0 (load or PV power), got {x.min()}")
    s = sigma(kind, lead_hours, table)
    x, s = np.broadcast_arrays(x, s)
    return with_error(x, s, rng.standard_normal(x.shape))


def with_error(actual: np.ndarray, rel_std: Any, normals: np.ndarray) -> np.ndarray:
    """``actual x m`` with ``m = exp(a z - a^2 / 2)``, ``a = sqrt(log(1 + rel_std^2))``: the
    log-normal error of :func:`forecast` for given standard normals ``z`` (broadcasting),
    so a batch can draw its normals row by row and transform them at once."""
    shape = np.sqrt(np.log1p(np.asarray(rel_std, float) ** 2))  # mean 1, std rel_std
    return actual * np.exp(shape * normals - shape ** 2 / 2)


if __name__ == "__main__":  # print the calibration table (python -m powergrid.data.forecast)
    for kind, values in calibrate().items():
        print(f"{kind:17s}", " ".join(f"{v:.3f}" for v in values))
