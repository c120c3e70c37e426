"""N IEEE-13 microgrids on one network, in two topologies (``NETWORKS``, by name).

- ``"tied"``: each feeder hangs on its own 5 MVA transformer from one stiff 115 kV bus
  (the ext_grid slack), so the microgrids share nothing physical but the slack;
- ``"ieee34"``: each feeder is attached at a bus of the IEEE-34 distribution feeder
  through a PCC transformer with a kVA rating, so microgrids share the feeder's voltage
  and flows (a midday export raises its neighbours' voltages, an evening import sags them).

P2P trades are physical: a seller's net injection flows up through its PCC transformer
and down into the buyer's feeder, so losses and voltages in the power flow reflect them.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp

from heron.validation import Range
from powergrid.limits import MAX_POWER_KW
from powergrid.networks import ieee34
from powergrid.networks.ieee13 import LOADS, create_ieee13_feeder

# IEEE-34 buses used by default, in order, for microgrids 1..10: upstream HERON's three
# (850 after regulator 1, 858 and 834 after regulator 2), then spread over the feeder.
DEFAULT_PCC_BUSES: tuple[str, ...] = ("850", "858", "834", "860", "828", "844", "854", "836",
                                      "848", "824")


@dataclass(frozen=True)
class FeederDevice:
    """Where a device sits: its name, feeder bus and pandapower element type."""

    name: str
    bus: str
    element: str  # "sgen" | "storage"


Feeders = Sequence[tuple[str, float, Sequence[FeederDevice]]]


@dataclass
class MicrogridNetwork:
    """The pandapower net plus index arrays mapping microgrids/devices to element rows."""

    net: pp.pandapowerNet
    names: tuple[str, ...]
    bus_rows: dict[str, np.ndarray] = field(default_factory=dict)  # feeder -> bus positions
    load_rows: dict[str, np.ndarray] = field(default_factory=dict)  # feeder -> load rows
    load_share: np.ndarray = field(default_factory=lambda: np.zeros(0))  # share of feeder peak
    load_q_ratio: np.ndarray = field(default_factory=lambda: np.zeros(0))  # q/p per load row
    device_rows: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    line_rows: dict[str, np.ndarray] = field(default_factory=dict)  # feeder -> line rows
    # Buses outside every microgrid (the feeder's; "tied": the 115 kV bus), each
    # microgrid's PCC transformer row, and the feeder's background loads (none if "tied").
    feeder_bus_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    pcc_trafo_rows: dict[str, int] = field(default_factory=dict)
    feeder_load_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))


def create_multi_microgrid(
    feeders: Feeders,
    vm_upstream_pu: float = 1.02,
) -> MicrogridNetwork:
    """Build the tied network from ``(name, load_scale, devices)`` per microgrid.

    The loads' p/q are placeholders: environments overwrite them each step from profiles
    via ``load_share`` (each load's fraction of its feeder's total) and ``load_q_ratio``.
    Every call returns a private copy; identical requests reuse one build, because
    pandapower's ``create_*`` calls cost ~0.4 s while a copy costs ~20 ms (vector envs
    and test suites build many identical envs).
    """
    key = tuple((name, float(scale), tuple(devices)) for name, scale, devices in feeders)
    return copy.deepcopy(_build_cached(key, float(vm_upstream_pu)))


@functools.lru_cache(maxsize=16)
def _build_cached(feeders: tuple[tuple[str, float, tuple[FeederDevice, ...]], ...],
                  vm_upstream_pu: float) -> MicrogridNetwork:
    names = _check_names(feeders)
    net = pp.create_empty_network(name="multi-microgrid IEEE-13", sn_mva=1.0)
    hv = pp.create_bus(net, vn_kv=115.0, name="upstream")
    pp.create_ext_grid(net, hv, vm_pu=vm_upstream_pu, name="upstream grid")
    mg = MicrogridNetwork(net=net, names=names)
    shares, q_ratio = [], []
    mg.feeder_bus_rows = np.array([net.bus.index.get_loc(hv)])
    for name, load_scale, devices in feeders:
        add_microgrid(mg, hv, name, load_scale, devices, shares, q_ratio)
    mg.load_share = np.asarray(shares)
    mg.load_q_ratio = np.asarray(q_ratio)
    return mg


def add_microgrid(mg: MicrogridNetwork, hv_bus: int, name: str, load_scale: float,
                  devices: Sequence[FeederDevice], shares: list[float], q_ratio: list[float],
                  vn_hv_kv: float = 115.0, substation_kva: float = 5000.0) -> None:
    """Append one IEEE-13 microgrid below ``hv_bus`` and record its rows in ``mg``."""
    net = mg.net
    n_load0, n_line0, n_trafo0 = len(net.load), len(net.line), len(net.trafo)
    buses = create_ieee13_feeder(net, hv_bus, name=name, load_scale=load_scale,
                                 vn_hv_kv=vn_hv_kv, substation_kva=substation_kva)
    mg.bus_rows[name] = np.array([net.bus.index.get_loc(b) for b in buses.values()])
    mg.load_rows[name] = np.arange(n_load0, len(net.load))
    mg.line_rows[name] = np.arange(n_line0, len(net.line))
    mg.pcc_trafo_rows[name] = n_trafo0  # the substation transformer is created first
    total = sum(p for p, _ in LOADS.values())
    for p_kw, q_kvar in LOADS.values():
        shares.append(p_kw / total)
        q_ratio.append(q_kvar / p_kw)
    for dev in devices:
        if dev.bus not in buses:
            raise ValueError(f"device {dev.name!r} of {name!r}: unknown IEEE-13 bus "
                             f"{dev.bus!r}; expected one of {sorted(buses)}")
        create = {"sgen": pp.create_sgen, "storage": pp.create_storage}.get(dev.element)
        if create is None:
            raise ValueError(f"device {dev.name!r}: element must be 'sgen' or 'storage', "
                             f"got {dev.element!r}")
        kwargs = {"max_e_mwh": 1.0} if dev.element == "storage" else {}
        idx = create(net, buses[dev.bus], p_mw=0.0, name=f"{name}.{dev.name}", **kwargs)
        mg.device_rows[(name, dev.name)] = (dev.element, net[dev.element].index.get_loc(idx))


@dataclass(frozen=True)
class SharedFeederSpec:
    """Where and how the microgrids attach to the IEEE-34 feeder.

    ``pcc_buses[i]`` / ``pcc_kva[i]`` belong to microgrid i; ``None`` takes
    ``DEFAULT_PCC_BUSES`` and ``DEFAULT_PCC_KVA``. ``reg_taps`` are the fixed taps of the
    two regulators (0.625 % steps), ``vm_source_pu`` the substation voltage at bus 800.
    """

    pcc_buses: tuple[str, ...] | None = None
    pcc_kva: tuple[float, ...] | float | None = None  # one number: the same for every PCC
    vm_source_pu: float = 1.05
    reg_taps: tuple[int, int] = ieee34.DEFAULT_REG_TAPS
    feeder_load_scale: float = 1.0

    def __post_init__(self) -> None:
        # tuples, so that specs hash (network builds are cached by spec)
        for key in ("pcc_buses", "pcc_kva", "reg_taps"):
            value = getattr(self, key)
            if isinstance(value, str) or not isinstance(value, Sequence):
                if key == "pcc_buses" and value is not None:
                    raise ValueError(f"pcc_buses must be a sequence of IEEE-34 bus names, "
                                     f"got {value!r}")
                continue
            object.__setattr__(self, key, tuple(value))
        if len(self.reg_taps) != 2:
            raise ValueError(f"reg_taps must be two ints (regulators 1 and 2), got "
                             f"{self.reg_taps!r}")
        scale = FEEDER_LOAD_SCALE.coerce(self.feeder_load_scale)
        if scale is None:
            raise ValueError(f"feeder_load_scale must be {FEEDER_LOAD_SCALE.describe()}, got "
                             f"{self.feeder_load_scale!r}")
        object.__setattr__(self, "feeder_load_scale", scale)

    def resolved(self, n: int) -> tuple[tuple[str, ...], tuple[float, ...]]:
        """Validated (buses, kVA) for ``n`` microgrids; ValueError naming the bad entry."""
        buses = tuple(self.pcc_buses) if self.pcc_buses is not None else DEFAULT_PCC_BUSES[:n]
        if self.pcc_buses is None and n > len(DEFAULT_PCC_BUSES):
            raise ValueError(f"{n} microgrids but only {len(DEFAULT_PCC_BUSES)} default PCC "
                             f"buses; give pcc_buses explicitly")
        kva = self.pcc_kva if self.pcc_kva is not None else DEFAULT_PCC_KVA
        kva = kva if isinstance(kva, tuple) else (kva,) * n
        if len(buses) != n or len(kva) != n:
            raise ValueError(f"pcc_buses {buses} and pcc_kva {kva} must have one entry per "
                             f"microgrid ({n})")
        for b in buses:
            if b not in ieee34.PCC_CANDIDATES:
                raise ValueError(f"PCC bus {b!r} is not a 24.9 kV bus of the IEEE-34 feeder; "
                                 f"expected one of {list(ieee34.PCC_CANDIDATES)}")
        dup = sorted({b for b in buses if buses.count(b) > 1})
        if dup:
            raise ValueError(f"two microgrids on one PCC bus {dup}: pcc_buses must be distinct")
        for b, k in zip(buses, kva):
            if PCC_KVA.coerce(k) is None:
                raise ValueError(f"PCC transformer rating at bus {b!r} must be a finite kVA "
                                 f"> 0 and <= {PCC_KVA.high:g}, got {k!r}")
        if not (isinstance(self.vm_source_pu, (int, float)) and 0.8 <= self.vm_source_pu <= 1.2):
            raise ValueError(f"vm_source_pu must be in [0.8, 1.2], got {self.vm_source_pu}")
        for t in self.reg_taps:
            if isinstance(t, bool) or not isinstance(t, int) or not -16 <= t <= 16:
                raise ValueError(f"reg_taps must be two ints in [-16, 16], got {self.reg_taps}")
        return buses, tuple(float(k) for k in kva)


FEEDER_LOAD_SCALE = Range(0.0, 1e3, low_open=True)
PCC_KVA = Range(0.0, MAX_POWER_KW, low_open=True, unit="kVA")
# A PCC transformer sized like a residential/commercial service transformer bank for a
# ~1 MW microgrid (ratings are per microgrid through SharedFeederSpec.pcc_kva).
DEFAULT_PCC_KVA = 1000.0


def create_shared_feeder(feeders: Feeders,
                         spec: SharedFeederSpec | None = None) -> MicrogridNetwork:
    """IEEE-13 microgrids attached at IEEE-34 buses through rated PCC transformers.

    The IEEE-34 buses, lines and loads come first in every table, then the microgrids one
    after another (their rows stay contiguous, as for ``create_multi_microgrid``).
    ``feeder_load_rows`` are the IEEE-34 loads at their published values (x
    ``feeder_load_scale``); envs rescale them by a profile.
    """
    spec = spec or SharedFeederSpec()
    key = tuple((name, float(scale), tuple(devices)) for name, scale, devices in feeders)
    return copy.deepcopy(_build_shared_cached(key, spec))


@functools.lru_cache(maxsize=16)
def _build_shared_cached(feeders: tuple[tuple[str, float, tuple[FeederDevice, ...]], ...],
                         spec: SharedFeederSpec) -> MicrogridNetwork:
    names = _check_names(feeders)
    buses_pcc, kva = spec.resolved(len(feeders))
    net = pp.create_empty_network(name="IEEE-13 microgrids on IEEE-34", sn_mva=1.0)
    fb = ieee34.create_ieee34_feeder(net, load_scale=spec.feeder_load_scale,
                                     reg_taps=spec.reg_taps)
    pp.create_ext_grid(net, fb["800"], vm_pu=spec.vm_source_pu, name="substation 800")
    mg = MicrogridNetwork(net=net, names=names)
    mg.feeder_bus_rows = np.array([net.bus.index.get_loc(b) for b in fb.values()])
    mg.feeder_load_rows = np.arange(len(net.load))
    shares = [0.0] * len(net.load)
    q_ratio = (net.load["q_mvar"] / net.load["p_mw"]).tolist()
    for (name, load_scale, devices), bus, k in zip(feeders, buses_pcc, kva):
        add_microgrid(mg, fb[bus], name, load_scale, devices, shares, q_ratio,
                      vn_hv_kv=ieee34.VN_KV, substation_kva=k)
    mg.load_share = np.asarray(shares)
    mg.load_q_ratio = np.asarray(q_ratio)
    return mg


def _check_names(feeders: Sequence[tuple[str, float, Sequence[FeederDevice]]]) -> tuple[str, ...]:
    if not feeders:
        raise ValueError("at least one microgrid feeder is required")
    names = tuple(name for name, _, _ in feeders)
    if len(set(names)) != len(names):
        raise ValueError(f"microgrid names must be unique, got {names}")
    return names


NETWORKS = ("tied", "ieee34")


def make_network(kind: str, feeders: Feeders,
                 shared: SharedFeederSpec | None = None) -> MicrogridNetwork:
    """Build the microgrids' network by topology name (``NETWORKS``)."""
    if kind == "tied":
        return create_multi_microgrid(feeders)
    if kind == "ieee34":
        return create_shared_feeder(feeders, shared)
    raise ValueError(f"unknown network {kind!r}; expected one of {NETWORKS}")
