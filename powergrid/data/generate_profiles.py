"""Regenerate ``profiles.npz``: real hourly PV and load shapes built offline from pvlib/demandlib.

Run ``python -m powergrid.data.generate_profiles``; needs the ``data`` extra (pvlib, demandlib).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np

YEAR = 2019  # non-leap, so every profile is exactly 365 x 24
N_DAYS = 365
TZ = "Etc/GMT+5"  # TMY3 file is in local standard time, UTC-5 (no DST)
TMY3_NAME = "723170TYA.CSV"  # Greensboro NC, shipped inside pvlib/data

# PV system: 1 kWp DC, south-facing, tilt ~= latitude, DC/AC ratio 1.2 (typical utility sizing).
SURFACE_AZIMUTH = 180.0
ALBEDO = 0.2  # the TMY3 albedo column is empty (all 0) for this station
GAMMA_PDC = -0.004  # 1/degC, PVWatts default for standard c-Si modules
DC_AC_RATIO = 1.2
ETA_INV_NOM = 0.96
TEMP_PARAMS = "open_rack_glass_polymer"  # SAPM cell temperature mounting

# Stylised US time-of-use tariff, $/kWh, indexed by hour-beginning local time.
OFFPEAK, MIDPEAK, ONPEAK = 0.10, 0.16, 0.28
FEED_IN_BASE, FEED_IN_PEAK = 0.04, 0.05
PEAK_HOURS = range(16, 22)
MID_HOURS = range(7, 16)

DEFAULT_PATH = Path(__file__).with_name("profiles.npz")


def _interval_starts():
    """Hour-beginning timestamps of the 8760 intervals (local standard time)."""
    import pandas as pd

    return pd.date_range(f"{YEAR}-01-01 00:00", periods=N_DAYS * 24, freq="h", tz=TZ)


def build_pv_per_kw() -> tuple[np.ndarray, dict]:
    """AC kW per kWp DC for each hour, from the shipped Greensboro TMY3 through PVWatts.

    TMY3 rows are hour-ending (row i covers [i, i+1) h after Jan 1 00:00), so we
    evaluate the sun at each interval's midpoint, the usual treatment for hourly data.
    """
    import pandas as pd
    import pvlib

    tmy_path = Path(pvlib.__file__).parent / "data" / TMY3_NAME
    weather, meta = pvlib.iotools.read_tmy3(tmy_path, map_variables=True, coerce_year=YEAR)
    if len(weather) != N_DAYS * 24:
        raise RuntimeError(f"expected 8760 TMY3 rows, got {len(weather)}")
    # Re-index positionally: avoids relying on the 24:00 -> next-year rollover of coerce_year.
    mid = _interval_starts() + pd.Timedelta(minutes=30)
    weather = weather.set_axis(mid)

    lat, lon, alt = float(meta["latitude"]), float(meta["longitude"]), float(meta["altitude"])
    tilt = round(lat)
    loc = pvlib.location.Location(lat, lon, tz=TZ, altitude=alt)
    solpos = loc.get_solarposition(
        mid, pressure=weather["pressure"] * 100.0, temperature=weather["temp_air"]
    )
    dni_extra = pvlib.irradiance.get_extra_radiation(mid)
    airmass = pvlib.atmosphere.get_relative_airmass(solpos["apparent_zenith"])
    poa = pvlib.irradiance.get_total_irradiance(
        tilt,
        SURFACE_AZIMUTH,
        solpos["apparent_zenith"],
        solpos["azimuth"],
        weather["dni"],
        weather["ghi"],
        weather["dhi"],
        dni_extra=dni_extra,
        airmass=airmass,
        albedo=ALBEDO,
        model="perez",
    )
    aoi = pvlib.irradiance.aoi(tilt, SURFACE_AZIMUTH, solpos["apparent_zenith"], solpos["azimuth"])
    # Glass reflection losses on the beam component only (as in PVWatts).
    iam = pvlib.iam.physical(aoi)
    effective = (poa["poa_direct"] * iam + poa["poa_diffuse"]).fillna(0.0).clip(lower=0.0)

    tparams = pvlib.temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"][TEMP_PARAMS]
    temp_cell = pvlib.temperature.sapm_cell(
        poa["poa_global"].fillna(0.0), weather["temp_air"], weather["wind_speed"], **tparams
    )
    pdc0 = 1.0  # kWp DC -> output is already per kW installed
    pdc = pvlib.pvsystem.pvwatts_dc(effective, temp_cell, pdc0=pdc0, gamma_pdc=GAMMA_PDC)
    losses_pct = float(pvlib.pvsystem.pvwatts_losses())  # PVWatts default ~14 % system losses
    pdc = pdc * (1.0 - losses_pct / 100.0)
    pac0 = pdc0 / DC_AC_RATIO
    pac = pvlib.inverter.pvwatts(pdc, pdc0=pac0 / ETA_INV_NOM, eta_inv_nom=ETA_INV_NOM)
    pac = np.clip(np.nan_to_num(np.asarray(pac, dtype=float)), 0.0, None)

    station = str(meta["Name"]).strip('"')
    info = {
        "source": f"pvlib shipped TMY3 {TMY3_NAME} ({station}, {meta['State']})",
        "lat": lat,
        "lon": lon,
        "altitude_m": alt,
        "tilt_deg": tilt,
        "azimuth_deg": SURFACE_AZIMUTH,
        "albedo": ALBEDO,
        "transposition": "perez",
        "iam": "physical (beam only)",
        "cell_temperature": f"sapm_cell {TEMP_PARAMS}",
        "dc_model": f"pvwatts_dc gamma_pdc={GAMMA_PDC}",
        "system_losses_pct": round(losses_pct, 3),
        "inverter": f"pvwatts eta_inv_nom={ETA_INV_NOM}",
        "dc_ac_ratio": DC_AC_RATIO,
    }
    return pac.reshape(N_DAYS, 24), info


def us_federal_holidays(year: int) -> list[dt.date]:
    """Observed US federal holidays, computed so demandlib treats them like Sundays."""

    def nth_weekday(month: int, weekday: int, n: int) -> dt.date:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))

    def last_weekday(month: int, weekday: int) -> dt.date:
        nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
        last = nxt - dt.timedelta(days=1)
        return last - dt.timedelta(days=(last.weekday() - weekday) % 7)

    def observed(d: dt.date) -> dt.date:
        if d.weekday() == 5:
            return d - dt.timedelta(days=1)
        if d.weekday() == 6:
            return d + dt.timedelta(days=1)
        return d

    mon, thu = 0, 3
    days = [
        observed(dt.date(year, 1, 1)),  # New Year's Day
        nth_weekday(1, mon, 3),  # Martin Luther King Jr. Day
        nth_weekday(2, mon, 3),  # Washington's Birthday
        last_weekday(5, mon),  # Memorial Day
        observed(dt.date(year, 7, 4)),  # Independence Day
        nth_weekday(9, mon, 1),  # Labor Day
        nth_weekday(10, mon, 2),  # Columbus Day
        observed(dt.date(year, 11, 11)),  # Veterans Day
        nth_weekday(11, thu, 4),  # Thanksgiving
        observed(dt.date(year, 12, 25)),  # Christmas
    ]
    if year >= 2021:
        days.append(observed(dt.date(year, 6, 19)))  # Juneteenth
    return sorted(d for d in days if d.year == year)


def build_loads() -> tuple[np.ndarray, np.ndarray, dict]:
    """BDEW H0 (household) and G0 (general commercial) shapes, hourly, peak-normalised to 1."""
    from demandlib import bdew

    holidays = us_federal_holidays(YEAR)
    # demandlib 0.2.2 calls warnings.simplefilter("error") inside ElecSlp; contain it.
    with warnings.catch_warnings():
        slp = bdew.ElecSlp(YEAR, holidays=holidays).get_scaled_profiles({"h0": 1.0, "g0": 1.0})
    if len(slp) != N_DAYS * 96:
        raise RuntimeError(f"expected {N_DAYS * 96} quarter-hours, got {len(slp)}")
    out = []
    for col in ("h0", "g0"):
        q = slp[col].to_numpy(dtype=float)
        # Index labels are quarter starts 00:00..23:45, so the mean of 4 = hour-beginning mean.
        hourly = q.reshape(N_DAYS, 24, 4).mean(axis=2)
        out.append(hourly / hourly.max())
    info = {
        "source": "demandlib BDEW standard load profiles (h0 residential, g0 commercial)",
        "holidays": [d.isoformat() for d in holidays],
        "normalisation": "annual max = 1.0",
    }
    return out[0], out[1], info


def build_tariffs() -> tuple[np.ndarray, np.ndarray]:
    """Stylised US ToU tariff: retail off/mid/peak, feed-in flat with an evening bump."""
    retail = np.full(24, OFFPEAK)
    retail[list(MID_HOURS)] = MIDPEAK
    retail[list(PEAK_HOURS)] = ONPEAK
    feed_in = np.full(24, FEED_IN_BASE)
    feed_in[list(PEAK_HOURS)] = FEED_IN_PEAK
    return retail, feed_in


def build_profiles() -> dict[str, np.ndarray]:
    """Build every array stored in ``profiles.npz`` (float32 data + JSON ``meta`` string)."""
    import demandlib
    import pvlib

    pv, pv_info = build_pv_per_kw()
    res, com, load_info = build_loads()
    retail, feed_in = build_tariffs()
    meta = {
        "year": YEAR,
        "n_days": N_DAYS,
        "time_convention": "hour-beginning, local standard time UTC-5 (no DST); [day, hour]",
        "lat": pv_info["lat"],
        "lon": pv_info["lon"],
        "pv": pv_info,
        "load": load_info,
        "tariff_source": "stylised US ToU tariff",
        "units": {
            "pv_per_kw": "kW AC per kWp DC",
            "load_residential": "p.u. of annual peak",
            "load_commercial": "p.u. of annual peak",
            "retail_price": "$/kWh",
            "feed_in_price": "$/kWh",
        },
        "versions": {"pvlib": pvlib.__version__, "demandlib": demandlib.__version__},
    }
    return {
        "pv_per_kw": pv.astype(np.float32),
        "load_residential": res.astype(np.float32),
        "load_commercial": com.astype(np.float32),
        "retail_price": retail.astype(np.float64),  # exact cents: tariffs are prices
        "feed_in_price": feed_in.astype(np.float64),
        "year": np.asarray(YEAR, dtype=np.int64),
        "meta": np.asarray(json.dumps(meta, sort_keys=True)),
    }


def save_npz(arrays: dict[str, np.ndarray], path: Path | str) -> None:
    """Write an ``np.load``-compatible compressed npz with fixed zip timestamps.

    ``np.savez_compressed`` stamps the current time into each zip entry; fixing it
    makes regeneration byte-identical, so git only shows a diff when data changes.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asanyarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def main(path: Path | str | None = None) -> Path:
    """Regenerate the shipped file and print a short sanity summary."""
    out = Path(path) if path is not None else DEFAULT_PATH
    arrays = build_profiles()
    save_npz(arrays, out)
    pv = arrays["pv_per_kw"].astype(float)
    print(f"wrote {out} ({out.stat().st_size / 1024:.1f} KiB)")
    print(f"PV capacity factor (AC/kWp DC): {pv.mean():.4f}, peak {pv.max():.3f}")
    for k in ("load_residential", "load_commercial"):
        a = arrays[k].astype(float)
        print(f"{k}: peak {a.max():.3f}, mean {a.mean():.3f}, min {a.min():.3f}")
    return out


if __name__ == "__main__":
    main()
