"""Power devices: a heron Device placed on a feeder bus, with a signed active power output.

Adding your own device (the extension point; see ``examples/04_custom_device.py``):

1. Subclass :class:`PowerDevice`: declare ``action_labels`` (one per action component in
   [-1, 1]) and ``obs_labels``, choose ``element`` (``"sgen"`` for an injection, negative
   for consumption; ``"storage"`` for something that charges), and implement ``reset``,
   ``observe`` and ``step`` (set ``p_kw``, ``cost`` in $ for the step, ``clipped``).
2. Subclass :class:`DeviceParams` as a ``@dataclass(frozen=True)`` with defaults for
   ``name`` and ``bus`` (an IEEE-13 bus name), validate in ``__post_init__`` (call
   ``super().__post_init__()`` for the name/bus checks; ``self.check(field, Range)``
   with the ranges of :mod:`powergrid.limits` for numbers) and return the device from
   ``build()``.
3. Put the params into a microgrid: ``MicrogridSpec("MG2", (..., MyParams()))``.

The env then extends that agent's action (before the price) and observation, places the
device in the power flow, and books its cost under the class's ``cost_term``: generators
under ``generation``, storage (ESS) under ``degradation``, every other device under
``other_devices``. A storage device overrides ``stored_kwh()``; ``info()`` gives its entry
in the infos.

Batched (B envs at once) the device runs per row through
:class:`powergrid.devices.batched.PerRowDevices`; to compile it, give its params a
``build_batched(num_envs)`` returning a :class:`~powergrid.devices.batched.BatchedDevice`.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from heron.devices.base import Device
from heron.validation import Range

CostTerm = Literal["generation", "degradation", "other_devices"]


@dataclass(frozen=True)
class StepContext:
    """Exogenous inputs a device may need in one step (read-only, shared by all devices)."""

    hour: int  # hour of day in which the step starts
    dt_hours: float
    pv_per_kw: float  # available PV output per kW installed, mean over this step


class PowerDevice(Device):
    """Sign convention: ``p_kw`` > 0 injects power into the feeder (generation, discharge).

    ``element`` says how the device appears in the pandapower net: ``"sgen"`` (injection)
    or ``"storage"`` (pandapower's storage, positive = charging, so its p is ``-p_kw``).
    """

    element: ClassVar[Literal["sgen", "storage"]] = "sgen"
    cost_term: ClassVar[CostTerm] = "other_devices"  # the cost column ``cost`` is booked under
    # reactive power (powergrid.devices.inverter): inverters override these; q_kvar > 0
    # injects reactive power and is what the power flow reads
    supports_reactive: ClassVar[bool] = False
    reactive: bool = False
    q_kvar: float = 0.0

    def __init__(self, name: str, bus: str) -> None:
        super().__init__(name)
        self.bus = bus
        self.p_kw = 0.0
        self.clipped = False  # True when limits changed the requested set-point

    @abstractmethod
    def step(self, action: np.ndarray, ctx: StepContext) -> float:
        """Apply the action within the device's limits; set ``p_kw`` and ``cost``; return p_kw."""

    def enable_reactive_power(self) -> None:
        """Give the device a reactive-power action; only inverters (``supports_reactive``)
        have one (see :class:`powergrid.devices.inverter.Inverter`)."""
        raise ValueError(f"device {self.name!r} ({type(self).__name__}) has no inverter: "
                         f"reactive power applies to PV and ESS inverters")

    def stored_kwh(self) -> float:
        """Energy held for later use, kWh (what the storage terminal value prices); 0 here."""
        return 0.0

    def info(self) -> dict[str, float]:
        """The device's entry in ``infos[agent]["devices"]`` after a step."""
        return {"p_kw": self.p_kw, "cost": self.cost}


@dataclass(frozen=True)
class DeviceParams:
    """Base for device parameter dataclasses: validated, immutable, buildable into a device.

    Immutable so one spec can be shared by many envs (vectorised rollouts) without one
    env's device state leaking into another: each env calls ``build()`` for fresh state.
    """

    name: str
    bus: str

    def __post_init__(self) -> None:
        for f, expected in (("name", "a non-empty str"),
                            ("bus", "an IEEE-13 bus name as a str, e.g. '671'")):
            value = getattr(self, f)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{type(self).__name__}.{f} = {value!r}: expected {expected}")

    def build(self) -> PowerDevice:  # pragma: no cover - abstract
        raise NotImplementedError

    def require(self, condition: bool, field: str, expected: str) -> None:
        """ValueError naming the params class, the device, ``field`` and its value unless
        ``condition`` holds; ``expected`` says what a valid value is."""
        if not condition:
            value = getattr(self, field)
            raise ValueError(f"{type(self).__name__}({self.name!r}).{field} = {value!r}: expected {expected}")

    def check(self, field: str, valid: Range) -> None:
        """``field`` must lie in ``valid``; stored as a plain float/int (numpy scalars too)."""
        value = valid.coerce(getattr(self, field))
        self.require(value is not None, field, valid.describe())
        object.__setattr__(self, field, value)
