"""Generator / ESS / Solar dispatch vectorised over a batch of envs.

Each class mirrors its scalar twin in ``powergrid.devices`` operation by operation (same
formulas in the same order), so a batch row reproduces the scalar device bit for bit;
``tests/test_vector_env.py`` holds the two to equality. Change both together.
"""

from __future__ import annotations

import numpy as np

from powergrid.devices import (
    ESS,
    ESSParams,
    Generator,
    GeneratorParams,
    PowerDevice,
    Solar,
    SolarParams,
)


class VecDevice:
    """State of one device in B envs; ``step`` sets ``p_kw``, ``cost`` and ``clipped`` (B,)."""

    element = "sgen"

    def __init__(self, params, num_envs: int) -> None:
        self.params = params
        self.name = params.name
        self.p_kw = np.zeros(num_envs)
        self.cost = np.zeros(num_envs)
        self.clipped = np.zeros(num_envs, bool)

    def reset(self, mask: np.ndarray) -> None:
        self.p_kw[mask] = 0.0
        self.cost[mask] = 0.0
        self.clipped[mask] = False

    def step(self, action: np.ndarray, dt: float, pv_per_kw: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def observe(self) -> np.ndarray:
        raise NotImplementedError


class VecGenerator(VecDevice):
    def __init__(self, params: GeneratorParams, num_envs: int) -> None:
        super().__init__(params, num_envs)
        self.on = np.zeros(num_envs, bool)

    def reset(self, mask: np.ndarray) -> None:
        super().reset(mask)
        self.on[mask] = False

    def step(self, action: np.ndarray, dt: float, pv_per_kw: np.ndarray) -> np.ndarray:
        p = self.params
        target = (action + 1.0) * 0.5 * p.p_max_kw
        ramp = p.ramp_kw_per_h * dt
        off = target < p.p_min_kw
        online = np.minimum(np.maximum(np.maximum(target, self.p_kw - ramp), p.p_min_kw),
                            self.p_kw + ramp)
        starting = ~off & ~self.on
        new_p = np.where(off, 0.0, np.where(self.on, online,
                                            np.maximum(p.p_min_kw, np.minimum(target, ramp))))
        self.clipped = np.where(off, target > 0.0, new_p != target)
        self.on = new_p > 0.0
        self.p_kw = new_p
        fuel = np.where(new_p > 0.0,
                        p.cost_c_per_h + p.cost_b_per_kwh * new_p + p.cost_a_per_kw2h * new_p * new_p,
                        0.0)
        self.cost = fuel * dt + np.where(starting, p.startup_cost, 0.0)
        return new_p

    def observe(self) -> np.ndarray:
        return self.p_kw / self.params.p_max_kw


class VecESS(VecDevice):
    element = "storage"

    def __init__(self, params: ESSParams, num_envs: int) -> None:
        super().__init__(params, num_envs)
        self.soc = np.full(num_envs, params.soc_init)

    def reset(self, mask: np.ndarray) -> None:
        super().reset(mask)
        self.soc[mask] = self.params.soc_init

    def step(self, action: np.ndarray, dt: float, pv_per_kw: np.ndarray) -> np.ndarray:
        p = self.params
        max_dis = np.minimum(p.p_max_kw, np.maximum(self.soc - p.soc_min, 0.0) * p.capacity_kwh
                             * p.eta_discharge / dt)
        max_chg = np.minimum(p.p_max_kw, np.maximum(p.soc_max - self.soc, 0.0) * p.capacity_kwh
                             / p.eta_charge / dt)
        target = action * p.p_max_kw
        power = np.minimum(np.maximum(target, -max_chg), max_dis)
        self.clipped = power != target
        soc = np.where(power >= 0.0,
                       self.soc - power * dt / (p.eta_discharge * p.capacity_kwh),
                       self.soc - power * dt * p.eta_charge / p.capacity_kwh)
        self.soc = np.minimum(np.maximum(soc, p.soc_min), p.soc_max)
        self.p_kw = power
        self.cost = p.degradation_cost_per_kwh * np.abs(power) * dt
        return power

    def observe(self) -> np.ndarray:
        return self.soc


class VecSolar(VecDevice):
    def __init__(self, params: SolarParams, num_envs: int) -> None:
        super().__init__(params, num_envs)
        self.available_kw = np.zeros(num_envs)

    def reset(self, mask: np.ndarray) -> None:
        super().reset(mask)
        self.available_kw[mask] = 0.0

    def step(self, action: np.ndarray, dt: float, pv_per_kw: np.ndarray) -> np.ndarray:
        p = self.params
        avail = p.capacity_kw * np.maximum(pv_per_kw, 0.0)
        if p.inverter_kw is not None:
            avail = np.minimum(avail, p.inverter_kw)
        self.available_kw = avail
        self.p_kw = avail * (1.0 - np.minimum(np.maximum(action, 0.0), 1.0))
        self.cost = np.zeros_like(avail)
        self.clipped = np.zeros(avail.shape, bool)
        return self.p_kw

    def observe(self) -> np.ndarray:
        return self.available_kw / self.params.capacity_kw


# Exact types only: a subclass may override step/build, which the vector twin cannot know.
VECTOR_DEVICES: dict[type, tuple[type[PowerDevice], type[VecDevice]]] = {
    GeneratorParams: (Generator, VecGenerator),
    ESSParams: (ESS, VecESS),
    SolarParams: (Solar, VecSolar),
}


def supports(params: object, device: object) -> bool:
    """True when ``params`` (and the device the scalar env built from it) has a vector twin."""
    entry = VECTOR_DEVICES.get(type(params))
    return entry is not None and type(device) is entry[0]


def make_vector_device(params: object, num_envs: int) -> VecDevice:
    return VECTOR_DEVICES[type(params)][1](params, num_envs)
