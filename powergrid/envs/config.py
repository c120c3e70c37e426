"""Typed, validated environment configuration built from the user's plain dict."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from heron.protocols.base import HorizontalProtocol, VerticalProtocol
from powergrid.devices import DeviceParams, ESSParams, GeneratorParams, SolarParams
from powergrid.envs.days import check_split
from powergrid.networks.ieee13 import PEAK_LOAD_KW

DEVICE_TYPES: dict[str, type[DeviceParams]] = {
    "generator": GeneratorParams,
    "ess": ESSParams,
    "solar": SolarParams,
}
LOAD_PROFILES = ("commercial", "residential")
POWER_FLOWS = ("fast", "pandapower")


@dataclass(frozen=True)
class MicrogridSpec:
    """One microgrid: an IEEE-13 feeder whose standard loads are scaled to ``peak_load_kw``."""

    name: str
    devices: tuple[DeviceParams, ...]
    peak_load_kw: float = 1000.0
    load_profile: str = "commercial"

    def __post_init__(self) -> None:
        where = f"microgrid {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"microgrid name must be a non-empty string, got {self.name!r}")
        devices = tuple(_device_from(d, where) for d in self.devices)
        object.__setattr__(self, "devices", devices)
        names = [d.name for d in devices]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: device names must be unique, got {names}")
        if not (_is_number(self.peak_load_kw) and self.peak_load_kw > 0):
            raise ValueError(f"{where}: peak_load_kw must be a finite number > 0, "
                             f"got {self.peak_load_kw!r}")
        if self.load_profile not in LOAD_PROFILES:
            raise ValueError(f"{where}: load_profile must be one of {LOAD_PROFILES}, "
                             f"got {self.load_profile!r}")

    @property
    def load_scale(self) -> float:
        """Scale of the IEEE-13 standard loads that gives this microgrid's peak."""
        return self.peak_load_kw / PEAK_LOAD_KW

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> MicrogridSpec:
        return cls(**_checked_kwargs(cls, spec, f"microgrid {spec.get('name', '?')!r}"))


def default_microgrids() -> tuple[MicrogridSpec, ...]:
    """The seed's two microgrids: MG1 = Generator + ESS (commercial), MG2 = ESS + Solar."""
    return (
        MicrogridSpec("MG1", (GeneratorParams(), ESSParams()), peak_load_kw=1000.0,
                      load_profile="commercial"),
        MicrogridSpec("MG2", (ESSParams(bus="692"), SolarParams()), peak_load_kw=900.0,
                      load_profile="residential"),
    )


def _default_horizontal() -> HorizontalProtocol:
    from heron.protocols.horizontal import P2PTradingProtocol

    return P2PTradingProtocol()


@dataclass(frozen=True)
class EnvConfig:
    """All knobs of ``MultiAgentMicrogrids``. Units: kW, kWh, $/kWh, $, hours.

    Build it from a plain dict with ``EnvConfig.from_dict`` (what the env does); unknown
    keys and impossible values raise ``ValueError`` naming the key.
    """

    centralized: bool = True
    max_episode_steps: int = 24
    horizontal_protocol: HorizontalProtocol | None = field(default_factory=_default_horizontal)
    vertical_protocol: VerticalProtocol | None = None
    microgrids: tuple[MicrogridSpec, ...] = field(default_factory=default_microgrids)
    dt_hours: float = 1.0
    start_day: int | None = None
    split: str | None = None  # None = all days, "train" | "test" (powergrid.envs.days)
    power_flow: str = "fast"
    retail_price: tuple[float, ...] | None = None
    feed_in_price: tuple[float, ...] | None = None
    trading_fee: float | None = None
    clearing: str | None = None
    load_noise_std: float = 0.02
    voltage_band: tuple[float, float] = (0.95, 1.05)
    voltage_penalty_per_pu: float = 100.0
    line_overload_penalty_per_pct: float = 0.1
    pf_failure_penalty: float = 100.0
    latency_steps: int = 0
    drop_prob: float = 0.0
    setpoint_target_kw: float | None = None  # aggregate export - import (SetpointProtocol)
    storage_terminal_price: float = 0.0  # $/kWh of stored energy drawn down over the episode
    render_mode: str | None = None

    def __post_init__(self) -> None:
        _check_type(self, "centralized", bool)
        _check_type(self, "max_episode_steps", int)
        if self.max_episode_steps < 1:
            _bad("max_episode_steps", self.max_episode_steps, "an int >= 1")
        if self.horizontal_protocol is not None and not isinstance(
                self.horizontal_protocol, HorizontalProtocol):
            _bad("horizontal_protocol", self.horizontal_protocol,
                 "a HorizontalProtocol instance (e.g. P2PTradingProtocol()) or None")
        if self.vertical_protocol is not None and not isinstance(
                self.vertical_protocol, VerticalProtocol):
            _bad("vertical_protocol", self.vertical_protocol,
                 "a VerticalProtocol instance (e.g. PriceSignalProtocol()) or None")
        mgs = self.microgrids
        if isinstance(mgs, (str, bytes)) or not isinstance(mgs, Sequence) or not mgs:
            _bad("microgrids", mgs, "a non-empty list of MicrogridSpec or dicts")
        specs = tuple(m if isinstance(m, MicrogridSpec) else MicrogridSpec.from_dict(m)
                      for m in mgs)
        names = [m.name for m in specs]
        if len(set(names)) != len(names):
            _bad("microgrids", names, "unique microgrid names")
        object.__setattr__(self, "microgrids", specs)
        if not (_is_number(self.dt_hours) and 0 < self.dt_hours <= 24):
            _bad("dt_hours", self.dt_hours, "a number in (0, 24]")
        if self.start_day is not None and (isinstance(self.start_day, bool) or not isinstance(
                self.start_day, int) or not 0 <= self.start_day < 365):
            _bad("start_day", self.start_day, "None or an int day-of-year in [0, 364]")
        check_split(self.split, "config key 'split'")
        if self.power_flow not in POWER_FLOWS:
            _bad("power_flow", self.power_flow, f"one of {POWER_FLOWS}")
        for key in ("retail_price", "feed_in_price"):
            self._check_tariff(key)
        for key in ("trading_fee", "load_noise_std", "voltage_penalty_per_pu",
                    "line_overload_penalty_per_pct", "pf_failure_penalty", "drop_prob",
                    "storage_terminal_price"):
            value = getattr(self, key)
            if value is not None and not (_is_number(value) and value >= 0):
                _bad(key, value, "a finite number >= 0")
        if self.setpoint_target_kw is not None and not _is_number(self.setpoint_target_kw):
            _bad("setpoint_target_kw", self.setpoint_target_kw, "None or a finite number (kW)")
        if self.drop_prob > 1:
            _bad("drop_prob", self.drop_prob, "a probability in [0, 1]")
        if isinstance(self.latency_steps, bool) or not isinstance(self.latency_steps, int) \
                or self.latency_steps < 0:
            _bad("latency_steps", self.latency_steps, "an int >= 0")
        lo, hi = self.voltage_band
        if not (_is_number(lo) and _is_number(hi) and 0 < lo < hi):
            _bad("voltage_band", self.voltage_band, "(low, high) with 0 < low < high")
        if self.clearing is not None and not isinstance(self.clearing, str):
            _bad("clearing", self.clearing, "None or a clearing rule name")
        if self.render_mode not in (None, "ansi", "human"):
            _bad("render_mode", self.render_mode, "None, 'ansi' or 'human'")

    def _check_tariff(self, key: str) -> None:
        value = getattr(self, key)
        if value is None:
            return
        if _is_number(value):
            value = (float(value),) * 24
        value = tuple(value)
        if len(value) != 24 or not all(_is_number(v) and v >= 0 for v in value):
            _bad(key, value, "None, a number, or 24 finite prices >= 0 ($/kWh per hour)")
        object.__setattr__(self, key, value)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any] | EnvConfig | None = None) -> EnvConfig:
        if config is None:
            return cls()
        if isinstance(config, EnvConfig):
            return config
        if not isinstance(config, Mapping):
            raise TypeError(f"env config must be a dict or EnvConfig, got {type(config).__name__}")
        return cls(**_checked_kwargs(cls, config, "env config"))

    def replace(self, **changes: Any) -> EnvConfig:
        return replace(self, **changes)

    def __str__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "microgrids":
                lines.append("  microgrids=(")
                for m in value:
                    devs = ", ".join(f"{type(d).__name__[:-6]}({d.name}@{d.bus})" for d in m.devices)
                    lines.append(f"    {m.name}: peak {m.peak_load_kw:g} kW {m.load_profile}, {devs}")
                lines.append("  ),")
            else:
                lines.append(f"  {f.name}={value!r},")
        return "\n".join(lines + [")"])


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _bad(key: str, value: Any, expected: str) -> None:
    raise ValueError(f"config key {key!r} = {value!r} is invalid: expected {expected}")


def _check_type(cfg: Any, key: str, typ: type) -> None:
    value = getattr(cfg, key)
    if typ is int and isinstance(value, bool) or not isinstance(value, typ):
        _bad(key, value, f"a {typ.__name__}")


def _checked_kwargs(cls: type, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    valid = [f.name for f in fields(cls)]
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown {where} key {key!r}{hint}; valid keys: {valid}")
    return dict(given)


def _device_from(dev: DeviceParams | Mapping[str, Any], where: str) -> DeviceParams:
    if isinstance(dev, DeviceParams):
        return dev
    if not isinstance(dev, Mapping) or "type" not in dev:
        raise ValueError(f"{where}: a device must be a DeviceParams or a dict with a 'type' "
                         f"key in {sorted(DEVICE_TYPES)}, got {dev!r}")
    kwargs = dict(dev)
    kind = kwargs.pop("type")
    if kind not in DEVICE_TYPES:
        raise ValueError(f"{where}: unknown device type {kind!r}; expected one of "
                         f"{sorted(DEVICE_TYPES)}")
    cls = DEVICE_TYPES[kind]
    return cls(**_checked_kwargs(cls, kwargs, f"{where} device {kwargs.get('name', kind)!r}"))
