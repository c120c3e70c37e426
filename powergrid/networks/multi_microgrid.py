"""N IEEE-13 microgrid feeders tied to one upstream 115 kV bus (the ext_grid slack).

P2P trades are physical: a seller's net injection flows up through its substation
transformer to the shared bus and down into the buyer's feeder, so losses and voltages
in the power flow reflect the trading.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandapower as pp

from powergrid.networks.ieee13 import LOADS, create_ieee13_feeder


@dataclass(frozen=True)
class FeederDevice:
    """Where a device sits: its name, feeder bus and pandapower element type."""

    name: str
    bus: str
    element: str  # "sgen" | "storage"


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


def create_multi_microgrid(
    feeders: Sequence[tuple[str, float, Sequence[FeederDevice]]],
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
    if not feeders:
        raise ValueError("at least one microgrid feeder is required")
    names = tuple(name for name, _, _ in feeders)
    if len(set(names)) != len(names):
        raise ValueError(f"microgrid names must be unique, got {names}")
    net = pp.create_empty_network(name="multi-microgrid IEEE-13", sn_mva=1.0)
    hv = pp.create_bus(net, vn_kv=115.0, name="upstream")
    pp.create_ext_grid(net, hv, vm_pu=vm_upstream_pu, name="upstream grid")
    mg = MicrogridNetwork(net=net, names=names)
    total = sum(p for p, _ in LOADS.values())
    shares, q_ratio = [], []
    for name, load_scale, devices in feeders:
        n_load0, n_line0 = len(net.load), len(net.line)
        buses = create_ieee13_feeder(net, hv, name=name, load_scale=load_scale)
        mg.bus_rows[name] = np.array([net.bus.index.get_loc(b) for b in buses.values()])
        mg.load_rows[name] = np.arange(n_load0, len(net.load))
        mg.line_rows[name] = np.arange(n_line0, len(net.line))
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
    mg.load_share = np.asarray(shares)
    mg.load_q_ratio = np.asarray(q_ratio)
    return mg
