"""Offline data shipped with powergrid: real hourly PV/load profiles and a ToU tariff."""

from __future__ import annotations

from powergrid.data.profiles import Profiles, load_profiles

__all__ = ["Profiles", "load_profiles"]
