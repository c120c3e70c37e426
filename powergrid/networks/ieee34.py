"""IEEE 34-node test feeder as a balanced positive-sequence pandapower model.

A long, lightly loaded 24.9 kV rural feeder (buses 800-890, about 58 km of main line),
where voltage, not ampacity, is the binding limit. Built from the published data of the
IEEE PES Distribution Test Feeders (Kersting, "Radial distribution test feeders", 2001;
line codes as corrected 11/30/05 in OpenDSS' ``IEEELineCodes.dss``):

- line configurations 300-304: phase impedance and capacitance matrices, reduced to
  positive sequence ``Z1 = mean(Z_self) - mean(Z_mutual)`` (same for C) for the three-phase
  codes 300/301; the single-phase codes 302-304 keep their self impedance, as
  ``ieee13.py`` does for 605/607. Laterals that are single-phase in the real feeder thus
  carry their load as a balanced three-phase one (about a third of the real voltage drop);
- spot loads (three-phase totals) and distributed loads, the latter split half to each end
  of their segment (as OpenDSS' "Mod 1" model does); every load is constant-power here
  (the published loads mix constant P, I and Z models);
- shunt capacitors 300 kvar at 844 and 450 kvar at 848;
- the two step-voltage regulators (814-850 and 852-832) are replaced by fixed-tap
  transformers at the phase-average of the published tap positions (reg 1: A 12, B 5, C 5
  -> 7; reg 2: A 13, B 11, C 12 -> 12; 0.625 % per step), with the OpenDSS regulators'
  impedance set to 0.1 + j1 % on 2.5 MVA (see ``REG_KVA``); their output buses are named ``814r`` and ``852r``;
- the 500 kVA 24.9/4.16 kV transformer XFM-1 (1.9 + j4.08 %) to 888, line 888-890;
- the source is a slack at bus 800 held at 1.05 pu, as in the published solution.

Positive-sequence voltages at base load lie within about 0.01 pu of the phase average of
the published three-phase solution on the main line (tested in ``tests/test_ieee34.py``).
"""

from __future__ import annotations

import numpy as np
import pandapower as pp

from powergrid.networks.ieee13 import FT_KM

KFT_KM = 0.3048
MILE_KM = 1.609344
OMEGA = 2 * np.pi * 60.0
VN_KV = 24.9
VN_LV_KV = 4.16

# Published phase matrices per 1000 ft: (R, X ohm, C nF), lower triangles row by row
# (aa; ba bb; ca cb cc) for three-phase codes, one entry for single-phase ones.
_MATRICES_PER_KFT: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {
    "300": ((0.253181818, 0.039791667, 0.250719697, 0.040340909, 0.039128788, 0.251780303),
            (0.252708333, 0.109450758, 0.256988636, 0.094981061, 0.086950758, 0.255132576),
            (2.680150309, -0.769281006, 2.5610381, -0.499507676, -0.312072984, 2.455590387)),
    "301": ((0.365530303, 0.04407197, 0.36282197, 0.04467803, 0.043333333, 0.363996212),
            (0.267329545, 0.122007576, 0.270473485, 0.107784091, 0.099204545, 0.269109848),
            (2.572492163, -0.72160598, 2.464381882, -0.472329395, -0.298961096, 2.368881119)),
    "302": ((0.530208,), (0.281345,), (2.12257,)),
    "303": ((0.530208,), (0.281345,), (2.12257,)),
    "304": ((0.363958,), (0.269167,), (2.1922,)),
}
# Phase-conductor ampacity (A): 1/0 ACSR for 300, #2 6/1 ACSR for 301/304, #4 6/1 for 302/303.
AMPACITY_A: dict[str, float] = {"300": 230.0, "301": 180.0, "302": 140.0, "303": 140.0,
                                "304": 180.0}


def _positive_sequence(lower: tuple[float, ...]) -> float:
    """Z1 = mean(self) - mean(mutual) of a lower-triangle 3x3 matrix (or the 1x1 self term)."""
    if len(lower) == 1:
        return lower[0]
    self_terms = (lower[0], lower[2], lower[5])
    mutual = (lower[1], lower[3], lower[4])
    return float(np.mean(self_terms) - np.mean(mutual))


def line_config_per_km(config: str) -> tuple[float, float, float, float]:
    """(r1 ohm/km, x1 ohm/km, c1 nF/km, max_i_ka) of a published configuration."""
    r, x, c = (_positive_sequence(m) / KFT_KM for m in _MATRICES_PER_KFT[config])
    return r, x, c, AMPACITY_A[config] / 1e3


# (from, to, length ft, config); 814r/852r are the regulator output buses.
LINES: tuple[tuple[str, str, float, str], ...] = (
    ("800", "802", 2580.0, "300"), ("802", "806", 1730.0, "300"),
    ("806", "808", 32230.0, "300"), ("808", "810", 5804.0, "303"),
    ("808", "812", 37500.0, "300"), ("812", "814", 29730.0, "300"),
    ("814r", "850", 10.0, "301"), ("816", "818", 1710.0, "302"),
    ("816", "824", 10210.0, "301"), ("818", "820", 48150.0, "302"),
    ("820", "822", 13740.0, "302"), ("824", "826", 3030.0, "303"),
    ("824", "828", 840.0, "301"), ("828", "830", 20440.0, "301"),
    ("830", "854", 520.0, "301"), ("832", "858", 4900.0, "301"),
    ("834", "860", 2020.0, "301"), ("834", "842", 280.0, "301"),
    ("836", "840", 860.0, "301"), ("836", "862", 280.0, "301"),
    ("842", "844", 1350.0, "301"), ("844", "846", 3640.0, "301"),
    ("846", "848", 530.0, "301"), ("850", "816", 310.0, "301"),
    ("852r", "832", 10.0, "301"), ("854", "856", 23330.0, "303"),
    ("854", "852", 36830.0, "301"), ("858", "864", 1620.0, "302"),
    ("858", "834", 5830.0, "301"), ("860", "836", 2680.0, "301"),
    ("862", "838", 4860.0, "304"), ("888", "890", 10560.0, "300"),
)

# Spot loads, three-phase totals (kW, kvar).
SPOT_LOADS: dict[str, tuple[float, float]] = {
    "860": (60.0, 48.0), "840": (27.0, 21.0), "844": (405.0, 315.0),
    "848": (60.0, 48.0), "890": (450.0, 225.0), "830": (45.0, 20.0),
}
# Distributed loads per segment, sum over phases (kW, kvar).
DISTRIBUTED_LOADS: dict[tuple[str, str], tuple[float, float]] = {
    ("802", "806"): (55.0, 29.0), ("808", "810"): (16.0, 8.0),
    ("818", "820"): (34.0, 17.0), ("820", "822"): (135.0, 70.0),
    ("816", "824"): (5.0, 2.0), ("824", "826"): (40.0, 20.0),
    ("824", "828"): (4.0, 2.0), ("828", "830"): (7.0, 3.0),
    ("854", "856"): (4.0, 2.0), ("832", "858"): (15.0, 7.0),
    ("858", "864"): (2.0, 1.0), ("858", "834"): (32.0, 17.0),
    ("834", "860"): (146.0, 73.0), ("860", "836"): (82.0, 43.0),
    ("836", "840"): (40.0, 20.0), ("862", "838"): (28.0, 14.0),
    ("842", "844"): (9.0, 5.0), ("844", "846"): (45.0, 23.0),
    ("846", "848"): (23.0, 11.0),
}
CAPACITORS: dict[str, float] = {"844": 300.0, "848": 450.0}  # kvar, three-phase


def _lumped_loads() -> dict[str, tuple[float, float]]:
    """Spot loads plus half of each distributed load at either end of its segment."""
    out: dict[str, list[float]] = {}
    for (a, b), (p, q) in DISTRIBUTED_LOADS.items():
        for bus in (a, b):
            acc = out.setdefault(bus, [0.0, 0.0])
            acc[0] += p / 2
            acc[1] += q / 2
    for bus, (p, q) in SPOT_LOADS.items():
        acc = out.setdefault(bus, [0.0, 0.0])
        acc[0] += p
        acc[1] += q
    return {bus: (p, q) for bus, (p, q) in out.items()}


LOADS: dict[str, tuple[float, float]] = _lumped_loads()
PEAK_LOAD_KW = sum(p for p, _ in LOADS.values())  # 1,769 kW
# (from bus, to bus, published taps per phase); 0.625 % per step, boost on the output side.
REGULATORS: dict[str, tuple[str, str, tuple[int, int, int]]] = {
    "reg1": ("814", "814r", (12, 5, 5)),
    "reg2": ("852", "852r", (13, 11, 12)),
}
REG_STEP_PERCENT = 0.625
DEFAULT_REG_TAPS: tuple[int, int] = tuple(int(round(np.mean(t))) for _, _, t in
                                          REGULATORS.values())  # (7, 12)
# Regulator rating: pandapower's Newton-Raphson fails on this feeder when the regulator
# impedance is as small as OpenDSS' (1 % on 20 MVA); 1 % on 2.5 MVA (the feeder's
# peak flow) still drops < 0.1 % at base load.
REG_KVA = 2500.0

BUSES: tuple[str, ...] = (
    "800", "802", "806", "808", "810", "812", "814", "814r", "850", "816", "818", "820",
    "822", "824", "826", "828", "830", "854", "856", "852", "852r", "832", "858", "864",
    "834", "842", "844", "846", "848", "860", "836", "840", "862", "838", "888", "890",
)
# Where a microgrid may attach: the 24.9 kV buses except the regulators' output buses.
PCC_CANDIDATES: tuple[str, ...] = tuple(b for b in BUSES if b not in ("814r", "852r", "888",
                                                                       "890"))
# Published three-phase solution at base load (phase average, pu), for validation.
PUBLISHED_VM_PU: dict[str, float] = {
    "800": 1.0500, "814": 0.9768, "850": 1.0211, "852": 0.9633, "832": 1.0355,
    "848": 1.0308, "840": 1.0299, "890": 0.9193,
}


def create_ieee34_feeder(net: pp.pandapowerNet, name: str = "IEEE34",
                         load_scale: float = 1.0,
                         reg_taps: tuple[int, int] = DEFAULT_REG_TAPS) -> dict[str, int]:
    """Add the IEEE-34 feeder (no source) to ``net``; returns ``{bus name: bus index}``.

    ``load_scale`` multiplies the standard loads (capacitors stay as published);
    ``reg_taps`` are the fixed taps of regulators 1 and 2 (default: published average).
    """
    if not load_scale > 0:
        raise ValueError(f"load_scale must be > 0, got {load_scale}")
    buses = {b: pp.create_bus(net, vn_kv=VN_LV_KV if b in ("888", "890") else VN_KV,
                              name=f"{name}.{b}", zone=name) for b in BUSES}
    for (reg, (hv, lv, _)), tap in zip(REGULATORS.items(), reg_taps):
        pp.create_transformer_from_parameters(
            net, buses[hv], buses[lv], sn_mva=REG_KVA / 1e3, vn_hv_kv=VN_KV, vn_lv_kv=VN_KV,
            vkr_percent=0.1, vk_percent=1.0, pfe_kw=0.0, i0_percent=0.0, shift_degree=0.0,
            tap_side="lv", tap_neutral=0, tap_min=-16, tap_max=16,
            tap_step_percent=REG_STEP_PERCENT, tap_pos=int(tap),
            tap_changer_type="Ratio",
            name=f"{name}.{reg}")
    pp.create_transformer_from_parameters(
        net, buses["832"], buses["888"], sn_mva=0.5, vn_hv_kv=VN_KV, vn_lv_kv=VN_LV_KV,
        vkr_percent=1.9, vk_percent=float(np.hypot(1.9, 4.08)), pfe_kw=0.0, i0_percent=0.0,
        shift_degree=0.0, name=f"{name}.XFM-1")
    for f, t, length_ft, cfg in LINES:
        r, x, c, imax = line_config_per_km(cfg)
        pp.create_line_from_parameters(
            net, buses[f], buses[t], length_km=length_ft * FT_KM, r_ohm_per_km=r,
            x_ohm_per_km=x, c_nf_per_km=c, max_i_ka=imax, name=f"{name}.{f}-{t}")
    for b, (p_kw, q_kvar) in LOADS.items():
        pp.create_load(net, buses[b], p_mw=p_kw * load_scale / 1e3,
                       q_mvar=q_kvar * load_scale / 1e3, name=f"{name}.load{b}")
    for b, q_kvar in CAPACITORS.items():
        pp.create_shunt(net, buses[b], q_mvar=-q_kvar / 1e3, p_mw=0.0, name=f"{name}.cap{b}")
    return buses


def create_ieee34(load_scale: float = 1.0, vm_source_pu: float = 1.05,
                  reg_taps: tuple[int, int] = DEFAULT_REG_TAPS) -> pp.pandapowerNet:
    """The standalone IEEE-34 feeder with its slack at bus 800."""
    net = pp.create_empty_network(name="IEEE-34", sn_mva=1.0)
    buses = create_ieee34_feeder(net, load_scale=load_scale, reg_taps=reg_taps)
    pp.create_ext_grid(net, buses["800"], vm_pu=vm_source_pu, name="substation 800")
    return net
