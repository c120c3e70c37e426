"""Runtime loader for the shipped hourly profiles (numpy only, so envs stay lightweight).

Arrays are indexed ``[day, hour]``, hour-beginning local standard time; see ``generate_profiles``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

_FILENAME = "profiles.npz"
_LOAD_KINDS = ("residential", "commercial")


def _readonly(a: Any, ndim: int) -> np.ndarray:
    """Copy to float64 and freeze: the cached arrays are shared by every env instance."""
    arr = np.array(a, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"expected a {ndim}-D array, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


# eq=False: identity semantics, since element-wise array equality has no single truth value.
@dataclass(frozen=True, eq=False)
class Profiles:
    """One year of hourly PV/load shapes plus a 24 h ToU tariff.

    pv_per_kw: (n_days, 24) kW AC per kWp DC. load_*: (n_days, 24) p.u. of annual peak.
    retail_price / feed_in_price: (24,) $/kWh by hour of day, or (n_days, 24) for a tariff
    that changes from day to day. User data (``powergrid.data.user``) adds
    ``microgrid_loads`` (agent -> (n_days, 24) p.u. of that microgrid's peak) and
    ``start_days``: how many leading days an episode may start on (None = all).
    """

    pv_per_kw: np.ndarray
    load_residential: np.ndarray
    load_commercial: np.ndarray
    retail_price: np.ndarray
    feed_in_price: np.ndarray
    year: int
    meta: dict[str, Any] = field(default_factory=dict, repr=False)
    microgrid_loads: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)
    start_days: int | None = None

    def __post_init__(self) -> None:
        for name in ("pv_per_kw", "load_residential", "load_commercial"):
            object.__setattr__(self, name, _readonly(getattr(self, name), 2))
        object.__setattr__(self, "microgrid_loads", {
            str(k): _readonly(v, 2) for k, v in self.microgrid_loads.items()})
        shapes = {self.pv_per_kw.shape, self.load_residential.shape, self.load_commercial.shape,
                  *(v.shape for v in self.microgrid_loads.values())}
        if len(shapes) != 1 or self.pv_per_kw.shape[1] != 24:
            raise ValueError(f"daily profiles must share shape (n_days, 24), got {shapes}")
        for name in ("retail_price", "feed_in_price"):
            arr = np.array(getattr(self, name), dtype=np.float64)
            if arr.shape not in ((24,), self.pv_per_kw.shape):
                raise ValueError(f"{name} must have shape (24,) or {self.pv_per_kw.shape}, "
                                 f"got {arr.shape}")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        if self.start_days is not None and not 1 <= self.start_days <= self.n_days:
            raise ValueError(f"start_days must be in [1, {self.n_days}], got {self.start_days}")
        object.__setattr__(self, "year", int(self.year))

    @property
    def n_days(self) -> int:
        """Number of days available, so callers can sample a start day without hardcoding 365."""
        return int(self.pv_per_kw.shape[0])

    @property
    def n_start_days(self) -> int:
        """Days an episode may start on: all, or the leading days user data covers."""
        return self.n_days if self.start_days is None else int(self.start_days)

    def microgrid_load(self, name: str, kind: str) -> np.ndarray:
        """The (n_days, 24) load shape of microgrid ``name``: its own series, else ``kind``'s."""
        own = self.microgrid_loads.get(name)
        return own if own is not None else self.load(kind)

    def load(self, kind: str) -> np.ndarray:
        """Return the (n_days, 24) load shape for a consumer class ("residential"/"commercial")."""
        if kind == "residential":
            return self.load_residential
        if kind == "commercial":
            return self.load_commercial
        raise ValueError(f"unknown load kind {kind!r}; valid kinds: {', '.join(_LOAD_KINDS)}")


def _read(fh: Any) -> Profiles:
    with np.load(fh, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"])) if "meta" in z.files else {}
        return Profiles(
            pv_per_kw=z["pv_per_kw"],
            load_residential=z["load_residential"],
            load_commercial=z["load_commercial"],
            retail_price=z["retail_price"],
            feed_in_price=z["feed_in_price"],
            year=int(z["year"]),
            meta=meta,
        )


@functools.lru_cache(maxsize=1)
def _load_default() -> Profiles:
    # importlib.resources keeps this working from wheels/zipped installs, not just a checkout.
    with resources.files(__package__).joinpath(_FILENAME).open("rb") as fh:
        return _read(fh)


def load_profiles(path: str | Path | None = None) -> Profiles:
    """Load profiles; the shipped default is cached so every env shares one read-only copy."""
    if path is None:
        return _load_default()
    return _read(Path(path))
