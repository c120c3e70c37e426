"""Inverter reactive power: the Q set-point of a PV or ESS inverter inside its kVA rating.

With ``reactive_power=True`` (an env config key, off by default) every inverter-coupled
device (``supports_reactive``: :class:`~powergrid.devices.Solar`, :class:`~powergrid.devices.ESS`)
gets one more action component ``q`` in [-1, 1], after its active-power component:

    Q = q x sqrt(s_kva^2 - P^2)     (kvar; + injects reactive power, - absorbs it)

``P`` is the active power the device actually delivers this step (after curtailment and
SOC/power limits), so the set-point lies inside the kVA circle by construction; at
``P = s_kva`` no reactive power is left. ``q_kvar`` is the device's reactive output; the
power flow reads it (pandapower's sign: sgen ``q_mvar = q_kvar / 1000``, storage
``q_mvar = -q_kvar / 1000``, see :class:`~powergrid.pf.base.PowerFlowSolver`).

Default rating ``s_kva = KVA_PER_KW x rated active power`` (1.1): IEEE 1547-2018 (clause
5.2, Table 7) asks Category B inverters to inject or absorb reactive power up to 44 % of
their nameplate kVA at rated active power, i.e. kVA >= kW / sqrt(1 - 0.44^2) = 1.11 kW;
10 % oversizing (kVA over kW) is the common choice that nearly meets it (at rated power a
1.1 x kVA inverter has sqrt(1.1^2 - 1) = 0.46 x kW = 42 % of its kVA of Q left).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from powergrid.devices.base import DeviceParams, PowerDevice

KVA_PER_KW = 1.1  # default inverter rating over rated active power (see the module docstring)


def headroom_kvar(s_kva: float, p_kw: float) -> float:
    """Reactive power left inside the kVA circle at active power ``p_kw``."""
    return math.sqrt(max(s_kva * s_kva - p_kw * p_kw, 0.0))


def headroom_kvar_batch(s_kva: float, p_kw: np.ndarray) -> np.ndarray:
    """:func:`headroom_kvar` over a batch, bit-identical per row (same IEEE operations)."""
    return np.sqrt(np.maximum(s_kva * s_kva - p_kw * p_kw, 0.0))


def check_setpoint(name: str, s_kva: float, p_kw: float, q_kvar: float) -> float:
    """``q_kvar`` as a float if (p_kw, q_kvar) lies inside the kVA circle, else ValueError."""
    q = float(q_kvar)
    if not math.isfinite(q):
        raise ValueError(f"reactive set-point of device {name!r} is {q_kvar!r}: expected a "
                         f"finite number of kvar")
    s = math.hypot(p_kw, q)
    if s > s_kva * (1.0 + 1e-12):
        raise ValueError(f"reactive set-point of device {name!r}: q_kvar = {q:g} at "
                         f"p_kw = {p_kw:g} gives |S| = {s:g} kVA, outside its rating "
                         f"s_kva = {s_kva:g} (|q_kvar| <= {headroom_kvar(s_kva, p_kw):g})")
    return q


def q_action(s_kva: float, p_kw: float, q_kvar: float) -> float:
    """The action component ``q`` that gives ``q_kvar`` at ``p_kw`` (0 without headroom);
    the inverse of ``Q = q x sqrt(s_kva^2 - P^2)``, for replaying a planned Q."""
    room = headroom_kvar(s_kva, p_kw)
    return 0.0 if room == 0.0 else min(max(q_kvar / room, -1.0), 1.0)


class Inverter:
    """Mixin of a :class:`~powergrid.devices.PowerDevice` behind an inverter of ``s_kva``.

    The device calls :meth:`_reactive_step` at the end of its ``step`` with its action;
    with reactive power enabled the last action component is ``q``.
    """

    supports_reactive = True
    reactive = False  # enabled per device instance by enable_reactive_power()
    q_kvar = 0.0

    @property
    def s_kva(self) -> float:
        """The inverter rating, kVA (``params.s_kva``, or its default)."""
        return self.params.kva  # type: ignore[attr-defined]

    def enable_reactive_power(self) -> None:
        """Add the ``q`` action component (the env calls it when ``reactive_power`` is on)."""
        self.reactive = True
        self.action_labels = (*type(self).action_labels, "q")

    def set_reactive(self, q_kvar: float) -> float:
        """Set ``q_kvar`` (kvar, + injects) at the present active power, checked against the
        kVA circle: ValueError naming the device outside it (or with reactive power off).
        Inside an env the next step's ``q`` action sets it again."""
        if not self.reactive:
            raise ValueError(f"device {self.name!r} has reactive power off: build the env "  # type: ignore[attr-defined]
                             f"with reactive_power=True (or call enable_reactive_power())")
        self.q_kvar = check_setpoint(self.name, self.s_kva, self.p_kw, q_kvar)  # type: ignore[attr-defined]
        return self.q_kvar

    def _reactive_step(self, action: np.ndarray) -> None:
        if self.reactive:
            self.q_kvar = float(action[-1]) * headroom_kvar(self.s_kva, self.p_kw)  # type: ignore[attr-defined]


def check_kva(params, rated_kw: float) -> None:
    """Validate ``params.s_kva`` (None = the default rating): a number of kVA, at least the
    rated active power ``rated_kw``; ValueError naming the device otherwise."""
    from powergrid.limits import POWER_KW

    if params.s_kva is None:
        return
    params.check("s_kva", POWER_KW)
    params.require(params.s_kva >= rated_kw, "s_kva",
                    f"an inverter rating >= the rated active power {rated_kw:g} kW "
                    f"(default {KVA_PER_KW:g} x that)")


def default_kva(s_kva: float | None, rated_kw: float) -> float:
    return KVA_PER_KW * rated_kw if s_kva is None else s_kva


def build_devices(params: Sequence[DeviceParams], reactive_power: bool) -> list[PowerDevice]:
    """Fresh devices from ``params``; with ``reactive_power`` every inverter gets its ``q``
    action (devices without one keep theirs)."""
    devices = [p.build() for p in params]
    if reactive_power:
        for d in devices:
            if d.supports_reactive:
                d.enable_reactive_power()
    return devices


def reactive_setpoints(rows: Iterable[tuple[PowerDevice, str, int]], n_sgen: int,
                       n_storage: int) -> tuple[np.ndarray, np.ndarray]:
    """(sgen q_mvar, storage q_mvar) of ``(device, element, row)`` triples, in
    pandapower's signs (storage q > 0 consumes)."""
    sgen_q, storage_q = np.zeros(n_sgen), np.zeros(n_storage)
    for d, element, row in rows:
        if element == "storage":
            storage_q[row] = -d.q_kvar * 1e-3
        else:
            sgen_q[row] = d.q_kvar * 1e-3
    return sgen_q, storage_q
