"""IEEE 13-node test feeder as a balanced positive-sequence pandapower model.

Line impedances are the positive-sequence values of the IEEE 13-bus line configurations
(601-607, from the phase impedance matrices: Z1 = Z_self - Z_mutual); spot and distributed
loads are the three-phase totals of the standard case (3,466 kW / 2,102 kvar). The
voltage regulator is omitted (the substation transformer has a fixed tap).
"""

from __future__ import annotations

import pandapower as pp

MILE_KM = 1.609344
FT_KM = 0.0003048

# config: (r1 ohm/mile, x1 ohm/mile, c nF/km, max_i_ka)
LINE_CONFIGS: dict[str, tuple[float, float, float, float]] = {
    "601": (0.1860, 0.5968, 10.4, 0.730),
    "602": (0.5921, 0.7603, 9.1, 0.530),
    "603": (1.1204, 0.8929, 7.0, 0.340),
    "604": (1.1204, 0.8929, 7.0, 0.340),
    "605": (1.3292, 1.3475, 7.0, 0.340),
    "606": (0.4874, 0.4151, 159.7, 0.400),
    "607": (1.3425, 0.5124, 146.7, 0.300),
}

# (from, to, length ft, config); the 671-692 switch is a 10 ft 601 stub (closed switch)
LINES: tuple[tuple[str, str, float, str], ...] = (
    ("650", "632", 2000.0, "601"),
    ("632", "645", 500.0, "603"),
    ("645", "646", 300.0, "603"),
    ("632", "633", 500.0, "602"),
    ("632", "671", 2000.0, "601"),
    ("671", "684", 300.0, "604"),
    ("684", "611", 300.0, "605"),
    ("684", "652", 800.0, "607"),
    ("671", "680", 1000.0, "601"),
    ("671", "692", 10.0, "601"),
    ("692", "675", 500.0, "606"),
)

# bus: (p kW, q kvar), three-phase totals; the 632-671 distributed load sits at 671's side
# as in the common lumped approximation (half at each end).
LOADS: dict[str, tuple[float, float]] = {
    "634": (400.0, 290.0),
    "645": (170.0, 125.0),
    "646": (230.0, 132.0),
    "652": (128.0, 86.0),
    "671": (1255.0, 718.0),
    "632": (100.0, 58.0),
    "675": (843.0, 462.0),
    "692": (170.0, 151.0),
    "611": (170.0, 80.0),
}
PEAK_LOAD_KW = sum(p for p, _ in LOADS.values())

# bus: capacitor kvar (three-phase total)
CAPACITORS: dict[str, float] = {"675": 600.0, "611": 100.0}

BUSES: tuple[str, ...] = ("650", "632", "633", "634", "645", "646", "671", "680", "684",
                          "611", "652", "692", "675")


def create_ieee13_feeder(net: pp.pandapowerNet, hv_bus: int, name: str = "MG",
                         load_scale: float = 1.0, vn_hv_kv: float = 115.0,
                         substation_kva: float = 5000.0) -> dict[str, int]:
    """Add one IEEE-13 feeder below ``hv_bus`` (its PCC) and return ``{bus name: bus index}``.

    ``load_scale`` multiplies the standard loads and capacitors, so a feeder can stand
    for a smaller microgrid while keeping the IEEE-13 topology and impedances.
    ``substation_kva`` rates the transformer at the PCC (the IEEE-13 substation's
    1 + j8 % impedance is kept on that rating).
    """
    if load_scale <= 0:
        raise ValueError(f"load_scale must be > 0, got {load_scale}")
    if not substation_kva > 0:
        raise ValueError(f"substation_kva of {name!r} must be > 0, got {substation_kva}")
    buses = {}
    for b in BUSES:
        vn = 0.48 if b == "634" else 4.16
        buses[b] = pp.create_bus(net, vn_kv=vn, name=f"{name}.{b}", zone=name)
    pp.create_transformer_from_parameters(
        net, hv_bus, buses["650"], sn_mva=substation_kva / 1e3, vn_hv_kv=vn_hv_kv, vn_lv_kv=4.16,
        vkr_percent=1.0, vk_percent=8.06, pfe_kw=0.0, i0_percent=0.0, shift_degree=0.0,
        name=f"{name}.substation")
    pp.create_transformer_from_parameters(
        net, buses["633"], buses["634"], sn_mva=0.5, vn_hv_kv=4.16, vn_lv_kv=0.48,
        vkr_percent=1.1, vk_percent=2.28, pfe_kw=0.0, i0_percent=0.0, shift_degree=0.0,
        name=f"{name}.XFM-1")
    for f, t, length_ft, cfg in LINES:
        r, x, c, imax = LINE_CONFIGS[cfg]
        pp.create_line_from_parameters(
            net, buses[f], buses[t], length_km=length_ft * FT_KM,
            r_ohm_per_km=r / MILE_KM, x_ohm_per_km=x / MILE_KM, c_nf_per_km=c,
            max_i_ka=imax, name=f"{name}.{f}-{t}")
    for b, (p_kw, q_kvar) in LOADS.items():
        pp.create_load(net, buses[b], p_mw=p_kw * load_scale / 1e3,
                       q_mvar=q_kvar * load_scale / 1e3, name=f"{name}.load{b}")
    for b, q_kvar in CAPACITORS.items():
        pp.create_shunt(net, buses[b], q_mvar=-q_kvar * load_scale / 1e3, p_mw=0.0,
                        name=f"{name}.cap{b}")
    return buses


def create_ieee13(load_scale: float = 1.0) -> pp.pandapowerNet:
    """A standalone IEEE-13 feeder fed from a 115 kV slack bus."""
    net = pp.create_empty_network(name="IEEE-13", sn_mva=1.0)
    hv = pp.create_bus(net, vn_kv=115.0, name="upstream")
    pp.create_ext_grid(net, hv, vm_pu=1.0, name="upstream grid")
    create_ieee13_feeder(net, hv, load_scale=load_scale)
    return net
