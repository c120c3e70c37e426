"""Checks that the shipped hourly profiles are physically sensible and match their generator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from powergrid.data import Profiles, load_profiles
from powergrid.data.profiles import _load_default

SUMMER = slice(151, 243)  # Jun-Aug (0-based day of year, non-leap)
WINTER = np.r_[0:59, 334:365]  # Jan-Feb + Dec


@pytest.fixture(scope="module")
def prof() -> Profiles:
    return load_profiles()


def test_shapes_and_year(prof: Profiles) -> None:
    assert prof.n_days == 365
    assert prof.year == 2019
    for a in (prof.pv_per_kw, prof.load_residential, prof.load_commercial):
        assert a.shape == (365, 24)
        assert np.all(np.isfinite(a))
    assert prof.retail_price.shape == prof.feed_in_price.shape == (24,)


def test_pv_range_and_night(prof: Profiles) -> None:
    pv = prof.pv_per_kw
    assert pv.min() >= 0.0 and pv.max() <= 1.05
    # Greensboro (UTC-5, lon -80): the sun is always down 00-04 and 21-24 local standard time.
    assert np.all(pv[:, 0:4] == 0.0)
    assert np.all(pv[:, 21:] == 0.0)
    assert pv[:, 11:14].mean() > 0.3  # midday carries the bulk of production


def test_pv_capacity_factor_and_season(prof: Profiles) -> None:
    cf = prof.pv_per_kw.mean()
    assert 0.13 < cf < 0.21, cf
    assert prof.pv_per_kw[SUMMER].sum(axis=1).mean() > prof.pv_per_kw[WINTER].sum(axis=1).mean()


@pytest.mark.parametrize("kind", ["residential", "commercial"])
def test_loads_peak_normalised(prof: Profiles, kind: str) -> None:
    a = prof.load(kind)
    assert a.max() == pytest.approx(1.0, abs=1e-7)
    assert a.min() > 0.0


def test_unknown_load_kind(prof: Profiles) -> None:
    with pytest.raises(ValueError, match="residential"):
        prof.load("industrial")


def test_tariff(prof: Profiles) -> None:
    assert np.all(prof.feed_in_price < prof.retail_price)
    assert np.all(prof.feed_in_price > 0.0)
    assert prof.retail_price[17] > prof.retail_price[10] > prof.retail_price[3]
    assert "stylised US ToU tariff" in prof.meta["tariff_source"]


def test_read_only_and_cached(prof: Profiles) -> None:
    assert load_profiles() is prof
    assert _load_default.cache_info().hits >= 1
    for a in (
        prof.pv_per_kw,
        prof.load_residential,
        prof.load_commercial,
        prof.retail_price,
        prof.feed_in_price,
    ):
        assert not a.flags.writeable
        with pytest.raises(ValueError):
            a[0] = 123.0


def test_explicit_path_matches_default(prof: Profiles) -> None:
    from powergrid.data import profiles as mod

    other = load_profiles(Path(mod.__file__).with_name("profiles.npz"))
    assert other is not prof
    np.testing.assert_array_equal(other.pv_per_kw, prof.pv_per_kw)


def test_loader_imports_only_numpy() -> None:
    code = (
        "import sys; from powergrid.data import load_profiles; load_profiles(); "
        "print([m for m in ('pvlib', 'demandlib', 'pandas') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_shipped_file_matches_generator(prof: Profiles, tmp_path) -> None:
    pytest.importorskip("pvlib")
    pytest.importorskip("demandlib")
    from powergrid.data.generate_profiles import build_profiles, save_npz

    built = build_profiles()
    for name in (
        "pv_per_kw",
        "load_residential",
        "load_commercial",
        "retail_price",
        "feed_in_price",
    ):
        np.testing.assert_allclose(built[name], getattr(prof, name), atol=1e-5, err_msg=name)
    assert int(built["year"]) == prof.year
    meta = json.loads(str(built["meta"]))
    assert meta["lat"] == pytest.approx(36.1) and meta["lon"] == pytest.approx(-79.95)
    assert set(meta["versions"]) == {"pvlib", "demandlib"}

    # Deterministic: two writes of the same arrays are byte-identical.
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    save_npz(built, a)
    save_npz(build_profiles(), b)
    assert a.read_bytes() == b.read_bytes()
