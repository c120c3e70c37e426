"""Bring your own data: hourly load, PV and price series turned into env ``Profiles``.

The env config key ``data`` takes a pandas ``DataFrame``, a dict of 1-D arrays, or the path
of a CSV file with a header row. Rows are consecutive hours, the first at 00:00 of the
series' day 0. Columns (all optional, any subset):

* one per microgrid, named by the agent (``"MG1"``): its load in kW;
* ``pv_per_kw``: available PV per kW installed (kW/kWp, in [0, 2]);
* ``retail_price``, ``feed_in_price``: $/kWh of grid imports / exports (feed-in <= retail);
* ``time``: ignored (a timestamp column is handy in a CSV; rows must still be hourly).

A column you leave out comes from the shipped profiles for the same days (day 0 =
1 January). Any length works as long as one episode fits: episodes start at 00:00 of a day
``d`` and need ``ceil((max_episode_steps + 1) x dt_hours)`` hours from there (the extra step
is the last observation's forecast), so ``reset()`` draws ``d`` among the days whose
episode lies inside the series; nothing wraps around. Validation names the column and the
row of the first bad value.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from powergrid.data.profiles import Profiles, load_profiles

SERIES_COLUMNS = ("pv_per_kw", "retail_price", "feed_in_price")
IGNORED_COLUMNS = ("time",)
MAX_PV_PER_KW = 2.0   # the observation bound of pv_now / pv_next
MAX_LOAD_PER_PEAK = 5.0  # the observation bound of load_now / load_next


@dataclass(frozen=True, eq=False)
class UserSeries:
    """Validated, read-only hourly columns (name -> 1-D float64 array of equal length)."""

    columns: Mapping[str, np.ndarray]
    source: str = "data"

    @property
    def hours(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    @classmethod
    def from_any(cls, data: Any) -> UserSeries:
        """Read a DataFrame, a dict of arrays or a CSV path; check shapes and finiteness."""
        source = "data"
        if isinstance(data, UserSeries):
            return data
        if isinstance(data, (str, os.PathLike)):
            source = f"data file {os.fspath(data)!r}"
            data = _read_csv(data, source)
        if hasattr(data, "columns") and hasattr(data, "to_numpy"):  # a pandas DataFrame
            raw = {str(c): data[c].to_numpy() for c in data.columns}
        elif isinstance(data, Mapping):
            raw = {str(k): v for k, v in data.items()}
        else:
            raise ValueError(f"config key 'data' = {type(data).__name__} is invalid: expected "
                             f"a pandas DataFrame, a dict of 1-D arrays or a CSV path")
        columns: dict[str, np.ndarray] = {}
        for name, values in raw.items():
            if name in IGNORED_COLUMNS:
                continue
            try:
                arr = np.array(values, dtype=np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{source}: column {name!r} must hold numbers") from None
            if arr.ndim != 1:
                raise ValueError(f"{source}: column {name!r} must be 1-D (one value per hour), "
                                 f"got shape {arr.shape}")
            bad = np.flatnonzero(~np.isfinite(arr))
            if bad.size:
                raise ValueError(f"{source}: column {name!r} has a non-finite value "
                                 f"{float(arr[bad[0]])} in row {bad[0]} (hour {bad[0]})")
            arr.setflags(write=False)
            columns[name] = arr
        if not columns:
            raise ValueError(f"{source}: no data columns; expected microgrid loads (kW, "
                             f"named by agent) and/or {list(SERIES_COLUMNS)}")
        lengths = {n: len(a) for n, a in columns.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"{source}: columns differ in length (hours): {lengths}")
        return cls(columns, source)


def _read_csv(path: str | os.PathLike, source: str) -> Any:
    import pandas as pd  # a pandapower dependency

    if not os.path.exists(path):
        raise ValueError(f"{source} does not exist")
    try:
        return pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{source} is not a readable CSV with a header row: {exc}") from None


def episode_hours(max_episode_steps: int, dt_hours: float) -> int:
    """Hours of data one episode reads, its last observation's forecast step included."""
    return math.ceil((max_episode_steps + 1) * dt_hours - 1e-9)


def user_profiles(series: UserSeries, microgrids: Sequence[Any], max_episode_steps: int,
                  dt_hours: float, base: Profiles | None = None) -> Profiles:
    """``Profiles`` over the user's days: their columns, the shipped ones elsewhere.

    ``microgrids`` are the env's ``MicrogridSpec``s: a load column is divided by that
    microgrid's ``peak_load_kw`` (profiles hold loads per unit of peak).
    """
    base = base or load_profiles()
    src = series.source
    names = [m.name for m in microgrids]
    unknown = sorted(set(series.columns) - set(names) - set(SERIES_COLUMNS))
    if unknown:
        raise ValueError(f"{src}: unknown column(s) {unknown}; expected microgrid names "
                         f"{names} (load, kW), {list(SERIES_COLUMNS)} or 'time'")
    need = episode_hours(max_episode_steps, dt_hours)
    if series.hours < need:
        raise ValueError(f"{src} covers {series.hours} h, but one episode of "
                         f"{max_episode_steps} steps of {dt_hours:g} h needs {need} h "
                         f"(the last observation's forecast included)")
    n_days = math.ceil(series.hours / 24)
    if n_days > base.n_days:
        raise ValueError(f"{src} covers {n_days} days; at most {base.n_days} are supported")
    start_days = (series.hours - need) // 24 + 1

    def daily(values: np.ndarray) -> np.ndarray:
        """(n_days, 24), the partial last day padded with its last hour (never read)."""
        padded = np.concatenate([values, np.full(n_days * 24 - len(values), values[-1])])
        return padded.reshape(n_days, 24)

    def column(name: str, low: float, high: float, what: str) -> np.ndarray | None:
        values = series.columns.get(name)
        if values is None:
            return None
        outside = np.flatnonzero((values < low) | (values > high))
        if outside.size:
            k = outside[0]
            raise ValueError(f"{src}: column {name!r} = {values[k]:g} in row {k} is outside "
                             f"[{low:g}, {high:g}] ({what})")
        return daily(values)

    pv = column("pv_per_kw", 0.0, MAX_PV_PER_KW, "kW per kW of PV installed")
    retail = column("retail_price", 0.0, math.inf, "$/kWh")
    feed_in = column("feed_in_price", 0.0, math.inf, "$/kWh")
    loads = {}
    for m in microgrids:
        kw = column(m.name, 0.0, MAX_LOAD_PER_PEAK * m.peak_load_kw,
                    f"kW; at most {MAX_LOAD_PER_PEAK:g} x its peak_load_kw "
                    f"{m.peak_load_kw:g}: raise peak_load_kw to the series' peak")
        if kw is not None:
            loads[m.name] = kw / m.peak_load_kw
    tariff_days = np.arange(n_days) % base.n_days

    def tariff(user: np.ndarray | None, shipped: np.ndarray) -> np.ndarray:
        return user if user is not None else np.tile(shipped, (n_days, 1))

    retail_t, feed_t = tariff(retail, base.retail_price), tariff(feed_in, base.feed_in_price)
    over = np.argwhere(feed_t > retail_t)
    if over.size:
        d, h = over[0]
        raise ValueError(f"{src}: feed_in_price {feed_t[d, h]:g} exceeds retail_price "
                         f"{retail_t[d, h]:g} in row {d * 24 + h}; exports must not earn more "
                         f"than imports cost")
    return Profiles(
        pv_per_kw=pv if pv is not None else base.pv_per_kw[tariff_days],
        load_residential=base.load_residential[tariff_days],
        load_commercial=base.load_commercial[tariff_days],
        retail_price=retail_t, feed_in_price=feed_t, year=base.year,
        meta={**base.meta, "user_data": src, "user_columns": sorted(series.columns)},
        microgrid_loads=loads, start_days=start_days)
