"""Typed, validated environment configuration built from the user's plain dict."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from heron.market import CLEARING_RULES, ImbalancePrices
from heron.protocols.base import HorizontalProtocol, VerticalProtocol
from heron.validation import Range
from powergrid.data.user import UserSeries
from powergrid.devices import DeviceParams, ESSParams, GeneratorParams, SolarParams
from powergrid.envs.days import check_split
from powergrid.limits import (
    FRACTION,
    MAX_EPISODE_STEPS,
    MAX_MONEY,
    MONEY,
    POWER_KW,
    PRICE_PER_KWH,
    SIGNED_POWER_KW,
)
from powergrid.networks.ieee13 import PEAK_LOAD_KW
from powergrid.networks.multi_microgrid import NETWORKS, SharedFeederSpec

DEVICE_TYPES: dict[str, type[DeviceParams]] = {
    "generator": GeneratorParams,
    "ess": ESSParams,
    "solar": SolarParams,
}
LOAD_PROFILES = ("commercial", "residential")
POWER_FLOWS = ("fast", "pandapower")
MARKET_TIMINGS = ("real_time", "ahead")  # when orders are placed (powergrid.core.ahead)
MAX_BID_CURVE_POINTS = 8
BROKERS = ("memory", "zmq")  # distributed mode's transport: in-process, or ZeroMQ processes
DAY_OF_YEAR = Range(0, 364, integer=True)  # the shipped profiles cover 365 days
VOLTAGE_PU = Range(0.0, 2.0, low_open=True, unit="pu")
# Numeric EnvConfig keys: (valid range, whether None is allowed). Ranges: powergrid.limits.
NUMERIC_KEYS: dict[str, tuple[Range, bool]] = {
    "max_episode_steps": (Range(1, MAX_EPISODE_STEPS, integer=True), False),
    "dt_hours": (Range(0.0, 24.0, low_open=True, unit="h"), False),
    "start_day": (DAY_OF_YEAR, True),
    "trading_fee": (PRICE_PER_KWH, True),
    "load_noise_std": (FRACTION, False),
    "voltage_penalty_per_pu": (Range(0.0, MAX_MONEY, unit="$/pu"), False),
    "line_overload_penalty_per_pct": (Range(0.0, MAX_MONEY, unit="$/%"), False),
    "pf_failure_penalty": (MONEY, False),
    "latency_steps": (Range(0, MAX_EPISODE_STEPS, integer=True), False),
    "drop_prob": (FRACTION, False),
    "setpoint_target_kw": (SIGNED_POWER_KW, True),
    "storage_terminal_price": (PRICE_PER_KWH, False),
    "loss_price": (PRICE_PER_KWH, True),
    "network_fee_per_kwh_per_ohm": (Range(0.0, 1.0, unit="$/kWh/ohm"), False),
}


def no_trade_overrides() -> dict[str, Any]:
    """Config overrides that turn any env into its no-trade twin (no market, so nothing is
    traded ahead either): the grid-only baseline of every comparison."""
    return {"horizontal_protocol": None, "clearing": None, "trading_fee": None,
            "market_timing": "real_time", "gate_lead_steps": 1, "bid_curve_points": 1,
            "imbalance_prices": ImbalancePrices()}


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
        if not _is_sequence(self.devices):
            raise ValueError(f"{where}: devices must be a list of DeviceParams or dicts, got "
                             f"{reprlib.repr(self.devices)}")
        devices = tuple(_device_from(d, where) for d in self.devices)
        object.__setattr__(self, "devices", devices)
        names = [d.name for d in devices]
        if len(set(names)) != len(names):
            raise ValueError(f"{where}: device names must be unique, got {names}")
        peak = POWER_KW.coerce(self.peak_load_kw)
        if peak is None:
            raise ValueError(f"{where}: peak_load_kw must be {POWER_KW.describe()}, "
                             f"got {self.peak_load_kw!r}")
        object.__setattr__(self, "peak_load_kw", peak)
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
    keys and impossible values raise ``ValueError`` naming the key. Numeric keys must lie
    in ``NUMERIC_KEYS`` ranges (bounds in :mod:`powergrid.limits`).
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
    network: str = "tied"  # "tied" (own 115 kV transformers) | "ieee34" (shared feeder)
    feeder: SharedFeederSpec | None = None  # PCC buses/kVA etc. for network="ieee34"
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
    broker: str = "memory"  # BROKERS; "zmq" needs pyzmq (the [distributed] extra)
    setpoint_target_kw: float | None = None  # aggregate export - import (SetpointProtocol)
    storage_terminal_price: float = 0.0  # $/kWh of stored energy drawn down over the episode
    render_mode: str | None = None
    share_reward: bool = False  # every microgrid gets the sum of all microgrids' rewards
    # user load/PV/price series (DataFrame, dict of arrays or CSV path); powergrid.data.user
    data: UserSeries | None = None
    # network costs (powergrid.network_costs): allocated losses and shared-feeder violations
    # in every reward; loss_price None = the step's retail price; the P2P network-use fee
    network_costs: bool = False
    loss_price: float | None = None
    network_fee_per_kwh_per_ohm: float = 0.0
    # the market's timing (powergrid.core.ahead): "real_time" trades each step's net position
    # in that step (the seed's behaviour); "ahead" trades delivery step t + gate_lead_steps at
    # step t on forecasts, commits the trades and settles deviations at imbalance_prices
    market_timing: str = "real_time"
    gate_lead_steps: int = 1
    imbalance_prices: ImbalancePrices = field(default_factory=ImbalancePrices)
    bid_curve_points: int = 1  # price levels of an ahead order (one quantity split over them)
    # inverter reactive power (powergrid.devices.inverter): each PV/ESS gets a q action
    # component, Q = q x sqrt(s_kva^2 - P^2) (+ injects); off = unity power factor
    reactive_power: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.centralized, bool | np.bool_):
            _bad("centralized", self.centralized, "True or False")
        object.__setattr__(self, "centralized", bool(self.centralized))
        if not isinstance(self.share_reward, bool | np.bool_):
            _bad("share_reward", self.share_reward, "True or False")
        object.__setattr__(self, "share_reward", bool(self.share_reward))
        if not isinstance(self.network_costs, bool | np.bool_):
            _bad("network_costs", self.network_costs, "True or False")
        object.__setattr__(self, "network_costs", bool(self.network_costs))
        if not isinstance(self.reactive_power, bool | np.bool_):
            _bad("reactive_power", self.reactive_power, "True or False")
        object.__setattr__(self, "reactive_power", bool(self.reactive_power))
        if self.data is not None:
            object.__setattr__(self, "data", UserSeries.from_any(self.data))
            both = [k for k in ("retail_price", "feed_in_price")
                    if k in self.data.columns and getattr(self, k) is not None]
            if both:
                raise ValueError(f"{both} given twice: as config key(s) and as column(s) of "
                                 f"'data'; keep one")
        for key, (valid, nullable) in NUMERIC_KEYS.items():
            value = getattr(self, key)
            if value is None and nullable:
                continue
            v = valid.coerce(value)
            if v is None:
                _bad(key, value, ("None or " if nullable else "") + valid.describe())
            object.__setattr__(self, key, v)
        if self.horizontal_protocol is not None and not isinstance(
                self.horizontal_protocol, HorizontalProtocol):
            _bad("horizontal_protocol", self.horizontal_protocol,
                 "a HorizontalProtocol instance (e.g. P2PTradingProtocol()) or None")
        if self.vertical_protocol is not None and not isinstance(
                self.vertical_protocol, VerticalProtocol):
            _bad("vertical_protocol", self.vertical_protocol,
                 "a VerticalProtocol instance (e.g. PriceSignalProtocol()) or None")
        mgs = self.microgrids
        if not _is_sequence(mgs) or not len(mgs):
            _bad("microgrids", mgs, "a non-empty list of MicrogridSpec or dicts")
        specs = tuple(m if isinstance(m, MicrogridSpec) else MicrogridSpec.from_dict(m)
                      for m in mgs)
        names = [m.name for m in specs]
        if len(set(names)) != len(names):
            _bad("microgrids", names, "unique microgrid names")
        object.__setattr__(self, "microgrids", specs)
        check_split(self.split, "config key 'split'")
        if self.power_flow not in POWER_FLOWS:
            _bad("power_flow", self.power_flow, f"one of {POWER_FLOWS}")
        if self.broker not in BROKERS:
            _bad("broker", self.broker, f"one of {BROKERS}")
        self._check_network()
        self._check_market_timing()
        for key in ("retail_price", "feed_in_price"):
            self._check_tariff(key)
        band = self.voltage_band
        lo_hi = tuple(VOLTAGE_PU.coerce(v) for v in band) if _is_sequence(band) else ()
        if len(lo_hi) != 2 or None in lo_hi or not lo_hi[0] < lo_hi[1]:
            _bad("voltage_band", band, f"(low, high), each {VOLTAGE_PU.describe()}, low < high")
        object.__setattr__(self, "voltage_band", lo_hi)
        if self.clearing is not None and self.clearing not in CLEARING_RULES:
            _bad("clearing", self.clearing, f"None or one of {tuple(CLEARING_RULES)}"
                 + _did_you_mean(self.clearing, CLEARING_RULES))
        if self.render_mode not in (None, "ansi", "human"):
            _bad("render_mode", self.render_mode, "None, 'ansi' or 'human'")
        proto = self.horizontal_protocol  # without a market there is no trade to charge
        if self.network_fee_per_kwh_per_ohm > 0 and proto is not None and not hasattr(
                proto, "pair_fee"):
            _bad("network_fee_per_kwh_per_ohm", self.network_fee_per_kwh_per_ohm,
                 "0 unless horizontal_protocol is None or a P2PTradingProtocol (which charges "
                 "the fee)")

    def _check_market_timing(self) -> None:
        if self.market_timing not in MARKET_TIMINGS:
            _bad("market_timing", self.market_timing, f"one of {MARKET_TIMINGS}"
                 + _did_you_mean(self.market_timing, MARKET_TIMINGS))
        prices = self.imbalance_prices
        if isinstance(prices, Mapping):
            try:
                prices = ImbalancePrices(**_checked_kwargs(ImbalancePrices, prices,
                                                           "imbalance_prices"))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"config key 'imbalance_prices' is invalid: {exc}") from None
        if not isinstance(prices, ImbalancePrices):
            _bad("imbalance_prices", prices, "an ImbalancePrices or a dict of its fields "
                 "(buy_markup, sell_markdown)")
        object.__setattr__(self, "imbalance_prices", prices)
        for key, hi in (("gate_lead_steps", MAX_EPISODE_STEPS),
                        ("bid_curve_points", MAX_BID_CURVE_POINTS)):
            v = Range(1, hi, integer=True).coerce(getattr(self, key))
            if v is None:
                _bad(key, getattr(self, key), f"an integer in [1, {hi}]")
            object.__setattr__(self, key, int(v))
        if self.market_timing == "real_time":
            changed = [k for k, default in (("gate_lead_steps", 1), ("bid_curve_points", 1),
                                            ("imbalance_prices", ImbalancePrices()))
                       if getattr(self, k) != default]
            if changed:
                raise ValueError(f"config key(s) {changed} describe the ahead market; set "
                                 f"'market_timing': 'ahead'")
            return
        if self.gate_lead_steps >= self.max_episode_steps:
            _bad("gate_lead_steps", self.gate_lead_steps,
                 f"below max_episode_steps = {self.max_episode_steps} (else no delivery step "
                 f"of the episode can be traded)")
        proto = self.horizontal_protocol
        if proto is None:
            _bad("market_timing", "ahead", "'real_time' when horizontal_protocol is None (an "
                 "ahead market needs a trading protocol)")
        if not callable(getattr(proto, "clear", None)):
            _bad("market_timing", "ahead", f"'real_time' with {type(proto).__name__} (the "
                 "ahead market clears order books: use a P2PTradingProtocol)")

    def _check_network(self) -> None:
        if self.network not in NETWORKS:
            _bad("network", self.network, f"one of {NETWORKS}")
        feeder = self.feeder
        if feeder is None:
            return
        if self.network != "ieee34":
            _bad("feeder", feeder, "None unless network='ieee34'")
        if isinstance(feeder, Mapping):
            feeder = SharedFeederSpec(**_checked_kwargs(SharedFeederSpec, feeder, "feeder"))
        if not isinstance(feeder, SharedFeederSpec):
            _bad("feeder", feeder, "None, a SharedFeederSpec or a dict of its fields")
        try:
            feeder.resolved(len(self.microgrids))
        except ValueError as exc:
            raise ValueError(f"config key 'feeder' is invalid: {exc}") from None
        object.__setattr__(self, "feeder", feeder)

    def _check_tariff(self, key: str) -> None:
        value = getattr(self, key)
        if value is None:
            return
        expected = (f"None, one price or a list of 24 hourly prices (hour 0 first), each "
                    f"{PRICE_PER_KWH.describe()}")
        one = PRICE_PER_KWH.coerce(value)
        if one is not None:
            object.__setattr__(self, key, (one,) * 24)
            return
        # A mapping {hour: price} would iterate its keys, a set has no order: refuse both.
        if isinstance(value, Mapping):
            _bad(key, value, expected + " (for a dict use [d[h] for h in range(24)])")
        prices = tuple(PRICE_PER_KWH.coerce(v) for v in value) if _is_sequence(value) else ()
        if len(prices) != 24 or None in prices:
            _bad(key, value, expected)
        object.__setattr__(self, key, prices)

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


def _is_sequence(x: Any) -> bool:
    """An ordered collection of values: list, tuple or 1-D array (not str, dict or set)."""
    if isinstance(x, np.ndarray):
        return x.ndim == 1
    return isinstance(x, Sequence) and not isinstance(x, str | bytes)


def _bad(key: str, value: Any, expected: str) -> None:
    raise ValueError(f"config key {key!r} = {reprlib.repr(value)} is invalid: expected {expected}")


def _did_you_mean(key: object, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(key), list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _checked_kwargs(cls: type, given: Mapping[str, Any], where: str) -> dict[str, Any]:
    valid = [f.name for f in fields(cls)]
    for key in given:
        if key not in valid:
            raise ValueError(f"unknown {where} key {key!r}{_did_you_mean(key, valid)}; "
                             f"valid keys: {valid}")
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
