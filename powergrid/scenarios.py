"""Versioned scenarios: a fixed env config plus a train/test split of days, by id.

``powergrid.make("p2p-2mg-v1")`` builds the env of a scenario; ``list(powergrid.scenarios)``
lists the ids (this module is itself the registry: iterate it, ``in`` it, index it by id).

Versioning rule: a scenario is a promise that a number measured on it today means the same
thing tomorrow. **Any change of physics, data or reward in a scenario (its config, the
devices, the profiles, the cost terms, the split) bumps its version**: register
``p2p-2mg-v2`` next to ``p2p-2mg-v1`` rather than editing v1, and keep v1 while anything
(the leaderboard, a paper) still reports on it.

Common to every scenario: 24 hourly steps, the shipped profiles and tariff, the split of
``powergrid.envs.days`` (52 held-out test days), ``split="train"`` unless overridden (so
training never sees a test day; evaluation resets with ``split="test"``), and
``storage_terminal_price = TERMINAL_PRICE``.
"""

from __future__ import annotations

import copy
import difflib
import sys
import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from heron.protocols.horizontal import P2PTradingProtocol
from powergrid.data import load_profiles
from powergrid.devices import ESSParams, GeneratorParams, SolarParams
from powergrid.envs.config import EnvConfig, MicrogridSpec, default_microgrids
from powergrid.envs.coordination import tariff_price_signal
from powergrid.envs.days import DaySplit, episode_days
from powergrid.networks import SharedFeederSpec

# $/kWh of stored energy at the episode's end (powergrid.envs.config storage_terminal_price).
# Justification: energy left in a battery at midnight is worth what it costs to put back
# before the next day's use, i.e. the overnight retail tariff (0.10 $/kWh, hours 22-06 of
# the shipped tariff). Draining at the 0.28 $/kWh evening peak still pays; draining into
# the 0.10 $/kWh night just to end empty no longer does (0.95 kWh delivered per kWh stored,
# plus degradation), and charging at night only to end fuller does not pay either.
TERMINAL_PRICE = float(load_profiles().retail_price.min())


@dataclass(frozen=True)
class Scenario:
    """One registered scenario: an id ``<name>-v<version>``, a config and its day split."""

    id: str
    version: int
    description: str
    overrides: Mapping[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        if not self.id.endswith(f"-v{self.version}"):
            raise ValueError(f"scenario id {self.id!r} must end with '-v{self.version}'")
        object.__setattr__(self, "overrides", types.MappingProxyType(dict(self.overrides)))
        EnvConfig.from_dict(self.config())  # a broken scenario fails at import, not in use

    def __reduce__(self):  # picklable for process pools (the mapping proxy is not)
        return (Scenario, (self.id, self.version, self.description, dict(self.overrides)))

    def config(self, **overrides: Any) -> dict[str, Any]:
        """A fresh env config dict (protocols copied, so envs never share state)."""
        return {**copy.deepcopy(dict(self.overrides)), **overrides}

    @property
    def split(self) -> DaySplit:
        cfg = EnvConfig.from_dict(self.config())
        return DaySplit(load_profiles().n_days, episode_days(cfg.max_episode_steps,
                                                             cfg.dt_hours))

    @property
    def train_days(self) -> tuple[int, ...]:
        return self.split.train_days

    @property
    def test_days(self) -> tuple[int, ...]:
        return self.split.test_days

    def days(self, split: str | None) -> tuple[int, ...]:
        return self.split.days(split)


_REGISTRY: dict[str, Scenario] = {}


def register(scenario: Scenario) -> Scenario:
    if scenario.id in _REGISTRY:
        raise ValueError(f"scenario {scenario.id!r} is already registered; bump its version")
    _REGISTRY[scenario.id] = scenario
    return scenario


def ids() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(scenario_id: str | Scenario) -> Scenario:
    """The scenario of ``scenario_id``; unknown ids raise ValueError listing the known ones."""
    if isinstance(scenario_id, Scenario):
        return scenario_id
    if scenario_id in _REGISTRY:
        return _REGISTRY[scenario_id]
    close = difflib.get_close_matches(str(scenario_id), list(_REGISTRY), n=1, cutoff=0.5)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown scenario id {scenario_id!r}{hint}; known scenarios: "
                     f"{list(_REGISTRY)}")


def make(scenario_id: str | Scenario, **overrides: Any):
    """``MultiAgentMicrogrids`` of a scenario; ``overrides`` replace config keys."""
    from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

    return MultiAgentMicrogrids(get(scenario_id).config(**overrides))


def make_vector(scenario_id: str | Scenario, num_envs: int, **overrides: Any):
    """``VectorMicrogrids`` (``num_envs`` copies) of a scenario, for batched training."""
    from powergrid.envs.vector import VectorMicrogrids

    return VectorMicrogrids(num_envs, get(scenario_id).config(**overrides))


# ---------------------------------------------------------------------- the microgrids
def _archetypes(k: int, scale: float = 1.0) -> tuple[MicrogridSpec, ...]:
    """Five distinct microgrid kinds; ``scale`` resizes loads and devices of a second copy."""
    def name(i: int) -> str:
        return f"MG{k + i}"

    return (
        # a commercial site with a genset and a battery (the seed's MG1)
        MicrogridSpec(name(1), (GeneratorParams(p_max_kw=800 * scale,
                                                ramp_kw_per_h=400 * scale),
                                ESSParams(capacity_kwh=1000 * scale, p_max_kw=250 * scale)),
                      peak_load_kw=1000 * scale, load_profile="commercial"),
        # a residential estate with a battery and rooftop PV (the seed's MG2)
        MicrogridSpec(name(2), (ESSParams(bus="692", capacity_kwh=1000 * scale,
                                          p_max_kw=250 * scale),
                                SolarParams(capacity_kw=1500 * scale)),
                      peak_load_kw=900 * scale, load_profile="residential"),
        # an office park with a large PV roof and no storage: sells at noon
        MicrogridSpec(name(3), (SolarParams(bus="675", capacity_kw=2000 * scale),),
                      peak_load_kw=700 * scale, load_profile="commercial"),
        # a village with a cheaper, smaller genset and nothing else
        MicrogridSpec(name(4), (GeneratorParams(bus="671", p_min_kw=50 * scale,
                                                p_max_kw=600 * scale, ramp_kw_per_h=300 * scale,
                                                cost_b_per_kwh=0.10, cost_c_per_h=3.0),),
                      peak_load_kw=800 * scale, load_profile="residential"),
        # a storage-heavy residential site: big battery, small PV
        MicrogridSpec(name(5), (ESSParams(bus="633", capacity_kwh=2000 * scale,
                                          p_max_kw=500 * scale),
                                SolarParams(bus="680", capacity_kw=800 * scale)),
                      peak_load_kw=600 * scale, load_profile="residential"),
    )


def p2p_microgrids(n: int) -> tuple[MicrogridSpec, ...]:
    """``n`` heterogeneous microgrids: the five archetypes, then resized copies (x0.8, x1.25)."""
    scales = (1.0, 0.8, 1.25)
    specs: list[MicrogridSpec] = []
    for copy_no, scale in enumerate(scales):
        specs.extend(_archetypes(5 * copy_no, scale))
    if not 1 <= n <= len(specs):
        raise ValueError(f"p2p_microgrids supports 1..{len(specs)} microgrids, got {n}")
    return tuple(specs[:n])


_COMMON = {"max_episode_steps": 24, "split": "train", "storage_terminal_price": TERMINAL_PRICE}

register(Scenario(
    "p2p-2mg-v1", 1,
    "The seed's MG1 (genset + battery, commercial) and MG2 (battery + PV, residential) "
    "trading in a uniform-price P2P order book.",
    {**_COMMON, "microgrids": default_microgrids(),
     "horizontal_protocol": P2PTradingProtocol()}))
for _n in (3, 5, 10):
    register(Scenario(
        f"p2p-{_n}mg-v1", 1,
        f"{_n} heterogeneous microgrids (gensets, batteries, PV; commercial and residential "
        f"loads; see powergrid.scenarios.p2p_microgrids) in a uniform-price P2P order book.",
        {**_COMMON, "microgrids": p2p_microgrids(_n),
         "horizontal_protocol": P2PTradingProtocol()}))
register(Scenario(
    "price-2mg-v1", 1,
    "The seed's MG1/MG2 with P2P trading under an operator's price signal "
    "(PriceSignalProtocol, mode 'rule', around the tariff: the import price rises after "
    "an hour of aggregate net demand and falls after a surplus).",
    {**_COMMON, "microgrids": default_microgrids(),
     "horizontal_protocol": P2PTradingProtocol(),
     "vertical_protocol": tariff_price_signal(load_profiles().retail_price, mode="rule")}))


# ---------------------------------------------------------------------- the shared feeder
# Microgrids on the IEEE-34 feeder (network="ieee34"), sized so that its limits bind on
# ordinary days without coordination; every size and its source: docs/physics.md
# ("Sizing"). MG1..MG3 are the archetypes of the seed (genset + battery, commercial;
# battery + PV, residential, twice) at upstream HERON's DSO buses 850, 858 and 834.
FEEDER_PCC_BUSES = ("850", "858", "834")
FEEDER_PCC_KVA = (400.0, 200.0, 200.0)


# Network costs on the shared feeder (docs/physics.md "Network costs"): losses and feeder
# violations allocated to the microgrids. The P2P network-use fee stays 0 here (the oracle,
# the score's 1, models pair fees since, for up to 3 microgrids; turning the fee on is a new
# scenario version); network_fee_per_kwh_per_ohm=5e-4
# gives 0.014-0.015 $/kWh between MG1 (850) and MG2/MG3 across regulator 2, 0.001 $/kWh
# between the neighbours MG2 (858) and MG3 (834).
NETWORK_COSTS: dict[str, Any] = {"network_costs": True}


def feeder_microgrids(n: int) -> tuple[MicrogridSpec, ...]:
    """The first ``n`` (1..3) microgrids of the shared-feeder scenarios."""
    specs = (
        MicrogridSpec("MG1", (GeneratorParams(p_min_kw=50.0, p_max_kw=300.0,
                                              ramp_kw_per_h=150.0),
                              ESSParams(capacity_kwh=500.0, p_max_kw=150.0)),
                      peak_load_kw=300.0, load_profile="commercial"),
        MicrogridSpec("MG2", (ESSParams(bus="692", capacity_kwh=500.0, p_max_kw=150.0),
                              SolarParams(capacity_kw=300.0)),
                      peak_load_kw=150.0, load_profile="residential"),
        MicrogridSpec("MG3", (ESSParams(bus="692", capacity_kwh=500.0, p_max_kw=150.0),
                              SolarParams(capacity_kw=250.0)),
                      peak_load_kw=150.0, load_profile="residential"),
    )
    if not 1 <= n <= len(specs):
        raise ValueError(f"feeder_microgrids supports 1..{len(specs)} microgrids, got {n}")
    return specs[:n]


def feeder_spec(n: int) -> SharedFeederSpec:
    """PCC buses and ratings of the first ``n`` feeder microgrids; the feeder's own
    published loads at 30 %, the regulators at a fixed neutral tap, 1.01 pu at bus 800."""
    return SharedFeederSpec(pcc_buses=FEEDER_PCC_BUSES[:n], pcc_kva=FEEDER_PCC_KVA[:n],
                            vm_source_pu=1.01, reg_taps=(0, 0), feeder_load_scale=0.3)


def shared_feeder_config(n: int) -> dict[str, Any]:
    """Env config keys of the ``p2p-{n}mg-v2`` microgrids on the IEEE-34 feeder."""
    return {"network": "ieee34", "feeder": feeder_spec(n), "microgrids": feeder_microgrids(n)}


for _n in (2, 3):
    register(Scenario(
        f"p2p-{_n}mg-v2", 2,
        f"{_n} microgrids (genset + battery, commercial; battery + PV, residential) at IEEE-34 "
        f"buses {', '.join(FEEDER_PCC_BUSES[:_n])} of one shared distribution feeder, "
        f"through rated PCC transformers, trading in a uniform-price P2P order book; sized "
        f"so that voltage and PCC limits bind without coordination (docs/physics.md).",
        {**_COMMON, **shared_feeder_config(_n), **NETWORK_COSTS,
         "horizontal_protocol": P2PTradingProtocol()}))

# p2p-3mg-v2 with inverter reactive power (docs/physics.md "Reactive power"): every PV/ESS
# inverter gets a q action, so agents can hold voltage without curtailing.
register(Scenario(
    "p2p-3mg-v3", 3,
    "p2p-3mg-v2 with reactive power: each PV and ESS inverter (1.1 x rated kW of kVA) also "
    "sets its reactive power inside its kVA rating (docs/physics.md).",
    {**_COMMON, **shared_feeder_config(3), **NETWORK_COSTS, "reactive_power": True,
     "horizontal_protocol": P2PTradingProtocol()}))


# ---------------------------------------------------------------------- market design
def market_microgrids() -> tuple[MicrogridSpec, ...]:
    """Four microgrids built so that several sellers meet several buyers most hours.

    Different device sets, sizes and load types: two PV-long sites that sell by day (an
    office roof; a residential estate with a battery), and a commercial site with genset
    and battery and a residential village with a genset, which sell in the evening peak
    and buy otherwise.
    """
    return (
        MicrogridSpec("MG1", (GeneratorParams(p_max_kw=800, ramp_kw_per_h=400),
                              ESSParams(capacity_kwh=1000, p_max_kw=250)),
                      peak_load_kw=1000, load_profile="commercial"),
        MicrogridSpec("MG2", (ESSParams(bus="692", capacity_kwh=1000, p_max_kw=250),
                              SolarParams(capacity_kw=1500)),
                      peak_load_kw=900, load_profile="residential"),
        MicrogridSpec("MG3", (SolarParams(bus="675", capacity_kw=2000),),
                      peak_load_kw=700, load_profile="commercial"),
        MicrogridSpec("MG4", (GeneratorParams(bus="671", p_min_kw=50, p_max_kw=600,
                                              ramp_kw_per_h=300, cost_b_per_kwh=0.10,
                                              cost_c_per_h=3.0),),
                      peak_load_kw=800, load_profile="residential"),
    )


register(Scenario(
    "market-4mg-v1", 1,
    "Four heterogeneous microgrids where the clearing rule matters: several sellers and "
    "buyers meet most hours, so uniform, pay-as-bid, CDA and McAfee clear different "
    "prices, volumes and splits of the gains (docs/market.md; set the rule with 'clearing').",
    {**_COMMON, "microgrids": market_microgrids(),
     "horizontal_protocol": P2PTradingProtocol()}))

register(Scenario(
    "market-4mg-ahead-v1", 1,
    "market-4mg-v1 traded ahead of delivery: orders for step t+1 are placed at t on "
    "forecasts (quantity and price), committed at the gate, and deviations at delivery are "
    "settled at imbalance prices (docs/market.md, 'Ahead market').",
    {**_COMMON, "microgrids": market_microgrids(),
     "horizontal_protocol": P2PTradingProtocol(), "market_timing": "ahead",
     "gate_lead_steps": 1}))


class _Registry(types.ModuleType):
    """Lets the module act as the registry: ``list(powergrid.scenarios)``, ``id in ...``."""

    def __iter__(self) -> Iterator[str]:
        return iter(ids())

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __contains__(self, scenario_id: object) -> bool:
        return scenario_id in _REGISTRY

    def __getitem__(self, scenario_id: str) -> Scenario:
        return get(scenario_id)


sys.modules[__name__].__class__ = _Registry
