"""Dispatchable generator (e.g. diesel/gas genset) with limits, ramping and a quadratic fuel cost."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from powergrid.devices.base import DeviceParams, PowerDevice, StepContext
from powergrid.limits import (
    COST_PER_KW2H,
    MONEY,
    MONEY_PER_HOUR,
    POWER_KW,
    POWER_KW_OR_ZERO,
    PRICE_PER_KWH,
    RAMP_KW_PER_H,
)


@dataclass(frozen=True)
class GeneratorParams(DeviceParams):
    """Cost per hour at output P (kW): ``cost_c + cost_b*P + cost_a*P**2`` while on."""

    name: str = "gen"
    bus: str = "675"
    p_min_kw: float = 100.0
    p_max_kw: float = 800.0
    ramp_kw_per_h: float = 400.0
    cost_a_per_kw2h: float = 5e-5
    cost_b_per_kwh: float = 0.12
    cost_c_per_h: float = 4.0
    startup_cost: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check("p_max_kw", POWER_KW)
        self.check("p_min_kw", POWER_KW_OR_ZERO)
        self.require(self.p_min_kw <= self.p_max_kw, "p_min_kw", "in [0, p_max_kw]")
        self.check("ramp_kw_per_h", RAMP_KW_PER_H)
        self.check("cost_a_per_kw2h", COST_PER_KW2H)
        self.check("cost_b_per_kwh", PRICE_PER_KWH)
        self.check("cost_c_per_h", MONEY_PER_HOUR)
        self.check("startup_cost", MONEY)

    def build(self) -> Generator:
        return Generator(self)


class Generator(PowerDevice):
    """Action in [-1, 1] maps linearly to a target in [0, p_max]; below p_min the unit is off.

    Ramping limits every change of an *online* unit; start-up goes straight to
    max(p_min, target within one ramp) and costs ``startup_cost``.
    """

    cost_term = "generation"
    action_labels = ("p",)
    obs_labels = ("gen_p",)
    obs_bounds = ((0.0, 1.0),)  # output / p_max_kw

    def __init__(self, params: GeneratorParams) -> None:
        super().__init__(params.name, params.bus)
        self.params = params
        self.on = False

    def reset(self, rng: np.random.Generator) -> None:
        self.p_kw, self.cost, self.on, self.clipped = 0.0, 0.0, False, False

    def step(self, action: np.ndarray, ctx: StepContext) -> float:
        p = self.params
        target = (float(action[0]) + 1.0) * 0.5 * p.p_max_kw
        ramp = p.ramp_kw_per_h * ctx.dt_hours
        if target < p.p_min_kw:
            new_p, starting = 0.0, False
            self.clipped = target > 0.0
        elif self.on:
            new_p, starting = min(max(target, self.p_kw - ramp, p.p_min_kw), self.p_kw + ramp), False
            self.clipped = new_p != target
        else:
            new_p, starting = max(p.p_min_kw, min(target, ramp)), True
            self.clipped = new_p != target
        self.on = new_p > 0.0
        self.p_kw = new_p
        self.cost = (self.fuel_cost_per_h(new_p) * ctx.dt_hours
                     + (p.startup_cost if starting else 0.0))
        return new_p

    def fuel_cost_per_h(self, p_kw: float) -> float:
        if p_kw <= 0.0:
            return 0.0
        p = self.params
        return p.cost_c_per_h + p.cost_b_per_kwh * p_kw + p.cost_a_per_kw2h * p_kw * p_kw

    def observe(self) -> tuple[float, ...]:
        return (self.p_kw / self.params.p_max_kw,)
