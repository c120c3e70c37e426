"""PV plant: available power from an irradiance profile, curtailable, optional inverter limit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powergrid.devices.base import DeviceParams, PowerDevice, StepContext
from powergrid.devices.inverter import Inverter, check_kva, default_kva
from powergrid.limits import POWER_KW


@dataclass(frozen=True)
class SolarParams(DeviceParams):
    """``capacity_kw`` is the DC/AC nameplate scaling the per-kW profile; ``inverter_kw``
    an optional AC limit; ``s_kva`` the inverter's apparent-power rating for reactive
    power (None = 1.1 x the rated active power, ``inverter_kw`` or ``capacity_kw``; see
    :mod:`powergrid.devices.inverter`)."""

    name: str = "pv"
    bus: str = "680"
    capacity_kw: float = 1500.0
    inverter_kw: float | None = None
    s_kva: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check("capacity_kw", POWER_KW)
        if self.inverter_kw is not None:
            self.check("inverter_kw", POWER_KW)
        check_kva(self, self.rated_kw)

    @property
    def rated_kw(self) -> float:
        """The most active power the plant delivers (its AC limit, else its nameplate)."""
        return self.capacity_kw if self.inverter_kw is None else self.inverter_kw

    @property
    def kva(self) -> float:
        """The inverter rating in kVA, ``s_kva`` or its default."""
        return default_kva(self.s_kva, self.rated_kw)

    def build(self) -> Solar:
        return Solar(self)


class Solar(Inverter, PowerDevice):
    """Action in [-1, 1]: values <= 0 mean no curtailment, +1 curtails everything.

    Mapping only the positive half to curtailment makes the neutral action (0) and the
    whole negative half "use all the sun", which is what an untrained policy should do.
    With reactive power on, a second component ``q`` sets the inverter's reactive power
    (:mod:`powergrid.devices.inverter`).
    """

    action_labels = ("curtail",)
    obs_labels = ("pv_available",)
    obs_bounds = ((0.0, 2.0),)  # per kW installed; clear-sky peaks stay near 1

    def __init__(self, params: SolarParams) -> None:
        super().__init__(params.name, params.bus)
        self.params = params
        self.available_kw = 0.0

    def reset(self, rng: np.random.Generator) -> None:
        self.p_kw, self.cost, self.available_kw, self.clipped = 0.0, 0.0, 0.0, False
        self.q_kvar = 0.0

    def available(self, pv_per_kw: float) -> float:
        avail = self.params.capacity_kw * max(pv_per_kw, 0.0)
        if self.params.inverter_kw is not None:
            avail = min(avail, self.params.inverter_kw)
        return avail

    def step(self, action: np.ndarray, ctx: StepContext) -> float:
        self.available_kw = self.available(ctx.pv_per_kw)
        curtail = min(max(float(action[0]), 0.0), 1.0)
        self.p_kw = self.available_kw * (1.0 - curtail)
        self.cost = 0.0
        self._reactive_step(action)
        return self.p_kw

    def observe(self) -> tuple[float, ...]:
        return (self.available_kw / self.params.capacity_kw,)

    def info(self) -> dict[str, float]:
        out = {"p_kw": self.p_kw, "cost": self.cost, "available_kw": self.available_kw}
        if self.reactive:
            out["q_kvar"] = self.q_kvar
        return out
