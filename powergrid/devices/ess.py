"""Energy storage system with SOC bounds, charge/discharge efficiencies and degradation cost."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powergrid.devices.base import DeviceParams, PowerDevice, StepContext
from powergrid.devices.inverter import Inverter, check_kva, default_kva
from powergrid.limits import EFFICIENCY, ENERGY_KWH, FRACTION, POWER_KW, PRICE_PER_KWH


@dataclass(frozen=True)
class ESSParams(DeviceParams):
    """Battery parameters; SOC is a fraction of ``capacity_kwh``; ``s_kva`` is the
    inverter's apparent-power rating for reactive power (None = 1.1 x ``p_max_kw``; see
    :mod:`powergrid.devices.inverter`)."""

    name: str = "ess"
    bus: str = "671"
    capacity_kwh: float = 1000.0
    p_max_kw: float = 250.0
    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    soc_min: float = 0.1
    soc_max: float = 0.9
    soc_init: float = 0.5
    degradation_cost_per_kwh: float = 0.01
    s_kva: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check("capacity_kwh", ENERGY_KWH)
        self.check("p_max_kw", POWER_KW)
        for f in ("eta_charge", "eta_discharge"):
            self.check(f, EFFICIENCY)
        for f in ("soc_min", "soc_max", "soc_init"):
            self.check(f, FRACTION)
        self.check("degradation_cost_per_kwh", PRICE_PER_KWH)
        self.require(self.soc_min < self.soc_max, "soc_min",
                      "0 <= soc_min < soc_max <= 1")
        self.require(self.soc_min <= self.soc_init <= self.soc_max, "soc_init",
                      "in [soc_min, soc_max]")
        check_kva(self, self.p_max_kw)

    @property
    def kva(self) -> float:
        """The inverter rating in kVA, ``s_kva`` or its default."""
        return default_kva(self.s_kva, self.p_max_kw)

    def build(self) -> ESS:
        return ESS(self)


class ESS(Inverter, PowerDevice):
    """Action in [-1, 1]: +1 = discharge at p_max, -1 = charge at p_max.

    The set-point is limited so SOC stays inside [soc_min, soc_max] after the step; the
    efficiencies make a charge/discharge round trip lose energy (eta_c * eta_d). With
    reactive power on, a second component ``q`` sets the inverter's reactive power
    (:mod:`powergrid.devices.inverter`).
    """

    element = "storage"
    cost_term = "degradation"
    action_labels = ("p",)
    obs_labels = ("soc",)
    obs_bounds = ((0.0, 1.0),)  # a fraction of capacity_kwh

    def __init__(self, params: ESSParams) -> None:
        super().__init__(params.name, params.bus)
        self.params = params
        self.soc = params.soc_init
        self.throughput_kwh = 0.0

    def reset(self, rng: np.random.Generator) -> None:
        self.soc, self.p_kw, self.cost, self.clipped = self.params.soc_init, 0.0, 0.0, False
        self.throughput_kwh, self.q_kvar = 0.0, 0.0

    def max_discharge_kw(self, dt_hours: float) -> float:
        p = self.params
        energy = max(self.soc - p.soc_min, 0.0) * p.capacity_kwh * p.eta_discharge
        return min(p.p_max_kw, energy / dt_hours)

    def max_charge_kw(self, dt_hours: float) -> float:
        p = self.params
        room = max(p.soc_max - self.soc, 0.0) * p.capacity_kwh / p.eta_charge
        return min(p.p_max_kw, room / dt_hours)

    def step(self, action: np.ndarray, ctx: StepContext) -> float:
        p, dt = self.params, ctx.dt_hours
        target = float(action[0]) * p.p_max_kw
        power = min(max(target, -self.max_charge_kw(dt)), self.max_discharge_kw(dt))
        self.clipped = power != target
        if power >= 0.0:
            self.soc -= power * dt / (p.eta_discharge * p.capacity_kwh)
        else:
            self.soc -= power * dt * p.eta_charge / p.capacity_kwh
        # Floating-point dust must never report a bound violation.
        self.soc = min(max(self.soc, p.soc_min), p.soc_max)
        self.p_kw = power
        self.throughput_kwh += abs(power) * dt
        self.cost = p.degradation_cost_per_kwh * abs(power) * dt
        self._reactive_step(action)
        return power

    def observe(self) -> tuple[float, ...]:
        return (self.soc,)

    def stored_kwh(self) -> float:
        return self.soc * self.params.capacity_kwh

    def info(self) -> dict[str, float]:
        out = {"p_kw": self.p_kw, "cost": self.cost, "soc": self.soc}
        if self.reactive:
            out["q_kvar"] = self.q_kvar
        return out
