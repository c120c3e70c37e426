"""The batched device interface the core steps, and a per-row fallback for Python devices.

A batched device holds one device's state in B envs and implements::

    reset(mask)                        # (B,) bool: restart those rows
    step(actions, dt, pv_per_kw, hours, live) -> p_kw   # actions (B, action_dim)
    observe() -> (B, n_obs)
    p_kw, cost, clipped                # (B,) after step
    soc, params.capacity_kwh           # storage only (stored energy)
    info() -> {key: (B,) array}        # the keys of powergrid.core.infos.device_info_keys

Built-in Generator/ESS/Solar run as array code over the whole batch (bit-identical to
the scalar devices). Any other ``PowerDevice`` (e.g. example 04's EV charger) runs through
:class:`RowDevice`: B deep copies of the scalar device, stepped one row at a time, so a
custom device works in ``VectorMicrogrids`` unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np

from powergrid.core.infos import device_info_keys
from powergrid.devices import PowerDevice, StepContext
from powergrid.envs import _vector_devices as builtin


class ArrayDevice:
    """A built-in device as array code over the batch (the interface above)."""

    def __init__(self, device: PowerDevice, num_envs: int) -> None:
        self._impl = builtin.make_vector_device(device.params, num_envs)
        self.name, self.params = device.name, device.params
        self.action_dim = device.action_dim
        self._keys = device_info_keys(device)

    def reset(self, mask: np.ndarray, rngs: Sequence[np.random.Generator] = ()) -> None:
        self._impl.reset(mask)

    def step(self, actions: np.ndarray, dt: float, pv_per_kw: np.ndarray, hours: np.ndarray,
             live: np.ndarray | None = None) -> np.ndarray:
        return self._impl.step(actions[:, 0], dt, pv_per_kw)

    def observe(self) -> np.ndarray:
        return self._impl.observe()[:, None]

    def __getattr__(self, name: str):  # p_kw, cost, clipped, soc, available_kw
        return getattr(self.__dict__["_impl"], name)

    def info(self) -> dict[str, np.ndarray]:
        return {k: getattr(self._impl, k) for k in self._keys}


class RowDevice:
    """Any ``PowerDevice`` in B envs: one deep copy per row, stepped row by row."""

    def __init__(self, device: PowerDevice, num_envs: int) -> None:
        self.rows = [copy.deepcopy(device) for _ in range(num_envs)]
        self.name, self.params = device.name, getattr(device, "params", None)
        self.action_dim = device.action_dim
        self._keys = device_info_keys(device)
        self.p_kw = np.zeros(num_envs)
        self.cost = np.zeros(num_envs)
        self.clipped = np.zeros(num_envs, bool)

    def reset(self, mask: np.ndarray, rngs: Sequence[np.random.Generator] = ()) -> None:
        """Reset masked rows; a device that draws from the env's RNG gets that row's."""
        for i in np.flatnonzero(mask):
            d = self.rows[i]
            d.reset(rngs[i] if len(rngs) else np.random.default_rng())
            self.p_kw[i], self.cost[i], self.clipped[i] = d.p_kw, d.cost, d.clipped

    def step(self, actions: np.ndarray, dt: float, pv_per_kw: np.ndarray, hours: np.ndarray,
             live: np.ndarray | None = None) -> np.ndarray:
        out = self.p_kw.copy()
        for i, d in enumerate(self.rows):
            if live is not None and not live[i]:
                continue
            ctx = StepContext(hour=int(hours[i]), dt_hours=dt, pv_per_kw=float(pv_per_kw[i]))
            out[i] = d.step(actions[i], ctx)
            self.p_kw[i], self.cost[i], self.clipped[i] = d.p_kw, d.cost, d.clipped
        return out

    def observe(self) -> np.ndarray:
        return np.array([d.observe() for d in self.rows], float).reshape(len(self.rows), -1)

    @property
    def soc(self) -> np.ndarray:
        return np.array([d.soc for d in self.rows])

    def info(self) -> dict[str, np.ndarray]:
        return {k: np.array([getattr(d, k) for d in self.rows], float) for k in self._keys}


def batched(device: PowerDevice, num_envs: int) -> ArrayDevice | RowDevice:
    """The array implementation of a built-in device, else the per-row fallback."""
    if builtin.supports(getattr(device, "params", None), device):
        return ArrayDevice(device, num_envs)
    return RowDevice(device, num_envs)


def check_finite(agent: str, devices: Sequence[ArrayDevice | RowDevice]) -> None:
    """Stop before a device's NaN/inf power or cost reaches money (as the scalar env)."""
    for d in devices:
        for what in ("p_kw", "cost"):
            values = getattr(d, what)
            if not np.isfinite(values).all():
                bad = values[~np.isfinite(values)][0]
                raise ValueError(
                    f"device {d.name!r} of agent {agent!r} returned {what}={bad!r} from "
                    f"step(); a device must give finite power (kW) and cost ($)")

