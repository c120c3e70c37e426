"""Devices stepped over a batch of B envs at once: the interface the simulation core consumes.

A :class:`BatchedDevice` is one device (one name, one bus) in B independent envs. Its state
is arrays with a leading batch axis; row ``b`` behaves exactly like one scalar
:class:`~powergrid.devices.PowerDevice` stepped with row ``b`` of the actions.

The interface (stable; the core reads nothing else):

- ``name``, ``bus``: as the scalar device; ``num_envs``: B.
- ``element``: ``"sgen"`` or ``"storage"``, how the power flow reads ``p_kw`` (see
  :class:`~powergrid.devices.PowerDevice`).
- ``action_labels`` / ``action_dim``: one label per action component in [-1, 1];
  ``obs_labels``: one label per observation component.
- ``cost_term``: ``"generation"``, ``"degradation"`` or ``"other_devices"``, the cost
  column ``cost`` is booked under.
- ``reset(mask, rngs)``: rows where ``mask`` (B,) bool is True (all if None) return to the
  initial state; ``rngs[b]`` is row b's ``np.random.Generator`` (the built-ins ignore it).
- ``step(actions, ctx) -> (B,)``: ``actions`` (B, action_dim) float, ``ctx`` a
  :class:`BatchContext`; returns what each row's scalar ``step`` returned (its p_kw). Rows
  outside ``ctx.live`` may be skipped (they are reset before their next use).
- ``p_kw``, ``cost``, ``clipped``: (B,) float kW, float $ for the step, bool; after a step.
- ``q_kvar``: (B,) float kvar (+ injects); an inverter with ``reactive`` on sets it from
  its last action component ``q`` (:mod:`powergrid.devices.inverter`), every other
  device leaves it 0.
- ``observe() -> (B, len(obs_labels))``: float64, in ``obs_labels`` order.
- ``info() -> {key: (B,)}``: the per-device infos (``p_kw``, ``cost``; ``soc`` for the ESS,
  ``available_kw`` for PV; a custom device's ``info()`` keys).
- ``stored_kwh() -> (B,)``: energy held (0 for non-storage).
- ``observation_bounds()``: (low, high) per observation component, as the scalar device.

``p_kw``/``cost``/``clipped`` may be views that the next ``step`` or ``reset`` overwrites
in place: copy them to keep them.

Implementations: :class:`BatchedGenerator`, :class:`BatchedESS`, :class:`BatchedSolar`
(numba kernels, bit-identical to the scalar devices row by row: same formulas in the same
order, Python's ``min``/``max`` tie rules), and :class:`PerRowDevices`, the fallback that
loops over B deep copies of any Python ``PowerDevice``. :func:`batched` chooses: the compiled
twin for the exact built-in types only (a subclass may override anything, so it runs per
row), or the params' own ``build_batched(num_envs)`` when a custom device provides one.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from numba import njit

from heron.devices.base import DEFAULT_OBS_BOUND
from powergrid.devices.base import CostTerm, DeviceParams, PowerDevice, StepContext
from powergrid.devices.ess import ESS, ESSParams
from powergrid.devices.generator import Generator, GeneratorParams
from powergrid.devices.solar import Solar, SolarParams

__all__ = ["BatchContext", "BatchedDevice", "BatchedESS", "BatchedGenerator", "BatchedSolar",
           "CompiledTwin", "PerRowDevices", "batched", "has_compiled_twin", "observe_twin", "step_twin"]


@dataclass(frozen=True)
class CompiledTwin:
    """A built-in twin's compiled form: the arguments of :func:`step_twin`."""

    kind: int
    state: np.ndarray    # (fields, B): p_kw, cost, then the twin's ``fields``
    clipped: np.ndarray  # (B,) bool
    par: np.ndarray      # (PAR_LEN,) parameter vector


@dataclass(frozen=True)
class BatchContext:
    """Exogenous inputs of one step for B envs (the batched :class:`StepContext`)."""

    hour: np.ndarray  # (B,) int: hour of day in which the step starts, per row
    dt_hours: float
    pv_per_kw: np.ndarray  # (B,) float: available PV per kW installed, mean over the step
    # (B,) bool: the rows whose episode runs (None: all). A device may skip the others:
    # their next event is a reset (the vector env's autoreset), so they keep their state.
    live: np.ndarray | None = None

    def row(self, b: int) -> StepContext:
        return StepContext(hour=int(self.hour[b]), dt_hours=self.dt_hours,
                           pv_per_kw=float(self.pv_per_kw[b]))


class BatchedDevice(ABC):
    """One device in B envs; see the module docstring for the contract."""

    name: str
    bus: str
    element: Literal["sgen", "storage"] = "sgen"
    action_labels: tuple[str, ...] = ()
    obs_labels: tuple[str, ...] = ()
    cost_term: CostTerm = "other_devices"
    # True for the compiled built-ins: they ignore ``rngs`` (the core resets them in one
    # call) and give finite p_kw/cost for finite actions (the core skips its finite check)
    compiled: ClassVar[bool] = False
    num_envs: int
    p_kw: np.ndarray
    cost: np.ndarray
    clipped: np.ndarray

    @property
    def action_dim(self) -> int:
        return len(self.action_labels)

    @abstractmethod
    def reset(self, mask: np.ndarray | None = None,
              rngs: Sequence[np.random.Generator] | None = None) -> None:
        """Rows where ``mask`` is True (all rows if None) return to the initial state."""

    @abstractmethod
    def step(self, actions: np.ndarray, ctx: BatchContext) -> np.ndarray:
        """Apply (B, action_dim) actions; set ``p_kw``, ``cost``, ``clipped``; return (B,)."""

    @abstractmethod
    def observe(self) -> np.ndarray:
        """(B, len(obs_labels)) float64, in ``obs_labels`` order."""

    def info(self) -> dict[str, np.ndarray]:
        return {"p_kw": self.p_kw.copy(), "cost": self.cost.copy()}

    def stored_kwh(self) -> np.ndarray:
        return np.zeros(self.num_envs)

    def observation_bounds(self) -> tuple[tuple[float, float], ...]:
        return (DEFAULT_OBS_BOUND,) * len(self.obs_labels)

    def _mask(self, mask: np.ndarray | None) -> np.ndarray:
        if mask is None:
            return np.ones(self.num_envs, bool)
        m = np.asarray(mask)
        if m.shape != (self.num_envs,) or m.dtype != bool:
            raise ValueError(f"reset mask for device {self.name!r} has shape {m.shape} and dtype "
                             f"{m.dtype}, expected a bool array of shape ({self.num_envs},)")
        return m

    def _actions(self, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions)
        expected = (self.num_envs, self.action_dim)
        if a.shape != expected:
            raise ValueError(f"actions for device {self.name!r} have shape {a.shape}, "
                             f"expected {expected} (num_envs, action_dim)")
        return np.ascontiguousarray(a, dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, num_envs={self.num_envs})"


def _check_num_envs(num_envs: int) -> int:
    if isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1:
        raise ValueError(f"num_envs = {num_envs!r}: expected a positive int")
    return int(num_envs)


class PerRowDevices(BatchedDevice):
    """Fallback for any Python device: B deep copies of it, stepped one row at a time.

    Row b is ``devices[b]``, a copy of the device as given (its current state included), so
    the batch reproduces the device exactly, whatever its class does.
    """

    def __init__(self, device: PowerDevice, num_envs: int, share: bool = False) -> None:
        self.num_envs = _check_num_envs(num_envs)
        if share and self.num_envs != 1:
            raise ValueError(f"PerRowDevices(share=True) steps the given object itself: "
                             f"num_envs must be 1, got {self.num_envs}")
        # share: row 0 is the object itself (the scalar env's live device), not a copy
        self.devices = ([device] if share
                        else [copy.deepcopy(device) for _ in range(self.num_envs)])
        self.name, self.bus, self.element = device.name, device.bus, device.element
        self.action_labels, self.obs_labels = tuple(device.action_labels), tuple(device.obs_labels)
        self.cost_term = device.cost_term
        self._bounds = device.observation_bounds()
        self.p_kw = np.zeros(self.num_envs)
        self.cost = np.zeros(self.num_envs)
        self.clipped = np.zeros(self.num_envs, bool)
        self.q_kvar = np.zeros(self.num_envs)
        self._read_state(range(self.num_envs))

    def _read_state(self, rows) -> None:
        for b in rows:
            d = self.devices[b]
            self.p_kw[b], self.cost[b], self.clipped[b] = d.p_kw, d.cost, d.clipped
            self.q_kvar[b] = d.q_kvar

    def reset(self, mask=None, rngs=None) -> None:
        rows = np.flatnonzero(self._mask(mask))
        if rngs is None or len(rngs) != self.num_envs:
            raise ValueError(f"reset of device {self.name!r} needs rngs: one np.random.Generator "
                             f"per row ({self.num_envs}), got {rngs!r}")
        for b in rows:
            self.devices[b].reset(rngs[b])
        self._read_state(rows)

    def step(self, actions: np.ndarray, ctx: BatchContext) -> np.ndarray:
        a = self._actions(actions)
        out = self.p_kw.copy()
        rows = range(self.num_envs) if ctx.live is None else np.flatnonzero(ctx.live)
        for b in rows:
            out[b] = self.devices[b].step(a[b], ctx.row(b))
        self._read_state(rows)
        return out

    def observe(self) -> np.ndarray:
        obs = np.array([d.observe() for d in self.devices], np.float64)
        return obs.reshape(self.num_envs, len(self.obs_labels))

    def info(self) -> dict[str, np.ndarray]:
        rows = [d.info() for d in self.devices]
        return {k: np.array([r[k] for r in rows]) for k in rows[0]}

    def stored_kwh(self) -> np.ndarray:
        return np.array([d.stored_kwh() for d in self.devices], np.float64)

    def observation_bounds(self) -> tuple[tuple[float, float], ...]:
        return self._bounds


# ---- compiled twins ---------------------------------------------------------------------
# Python's min(a, b) returns a unless b < a, max(a, b) a unless b > a; the helpers keep
# those tie rules (signed zeros included) so a row equals the scalar device bit for bit.

@njit(cache=True, inline="always")
def _pmin(a, b):
    return b if b < a else a


@njit(cache=True, inline="always")
def _pmax(a, b):
    return b if b > a else a


@njit(cache=True)
def _generator_step(state, clipped, par, actions, dt):  # pragma: no cover - compiled
    p_min, p_max, ramp_per_h, cost_a, cost_b, cost_c, startup = (
        par[0], par[1], par[2], par[3], par[4], par[5], par[6])
    ramp = ramp_per_h * dt
    for i in range(actions.shape[0]):
        target = (actions[i, 0] + 1.0) * 0.5 * p_max
        p_kw = state[0, i]
        starting = False
        if target < p_min:
            new_p = 0.0
            clipped[i] = target > 0.0
        elif state[2, i] != 0.0:
            new_p = _pmin(_pmax(_pmax(target, p_kw - ramp), p_min), p_kw + ramp)
            clipped[i] = new_p != target
        else:
            new_p, starting = _pmax(p_min, _pmin(target, ramp)), True
            clipped[i] = new_p != target
        state[2, i] = 1.0 if new_p > 0.0 else 0.0
        state[0, i] = new_p
        fuel = 0.0 if new_p <= 0.0 else cost_c + cost_b * new_p + cost_a * new_p * new_p
        state[1, i] = fuel * dt + (startup if starting else 0.0)


@njit(cache=True, inline="always")
def _reactive(q, kva, p_kw):
    """Inverter._reactive_step: q x sqrt(max(s^2 - P^2, 0)), Python's max tie rule."""
    return q * np.sqrt(_pmax(kva * kva - p_kw * p_kw, 0.0))


@njit(cache=True)
def _ess_step(state, clipped, par, actions, dt):  # pragma: no cover - compiled
    capacity, p_max, eta_c, eta_d, soc_min, soc_max, degradation = (
        par[0], par[1], par[2], par[3], par[4], par[5], par[6])
    kva, reactive = par[7], par[8] != 0.0
    for i in range(actions.shape[0]):
        soc = state[2, i]
        max_dis = _pmin(p_max, _pmax(soc - soc_min, 0.0) * capacity * eta_d / dt)
        max_chg = _pmin(p_max, _pmax(soc_max - soc, 0.0) * capacity / eta_c / dt)
        target = actions[i, 0] * p_max
        power = _pmin(_pmax(target, -max_chg), max_dis)
        clipped[i] = power != target
        if power >= 0.0:
            soc -= power * dt / (eta_d * capacity)
        else:
            soc -= power * dt * eta_c / capacity
        state[2, i] = _pmin(_pmax(soc, soc_min), soc_max)
        state[0, i] = power
        state[3, i] += abs(power) * dt
        state[1, i] = degradation * abs(power) * dt
        if reactive:
            state[4, i] = _reactive(actions[i, actions.shape[1] - 1], kva, power)


@njit(cache=True)
def _solar_step(state, par, actions, pv_per_kw):  # pragma: no cover - compiled
    capacity, inverter, limited = par[0], par[1], par[2] != 0.0
    kva, reactive = par[3], par[4] != 0.0
    for i in range(actions.shape[0]):
        avail = capacity * _pmax(pv_per_kw[i], 0.0)
        if limited:
            avail = _pmin(avail, inverter)
        state[2, i] = avail
        curtail = _pmin(_pmax(actions[i, 0], 0.0), 1.0)
        state[0, i] = avail * (1.0 - curtail)
        state[1, i] = 0.0
        if reactive:
            state[3, i] = _reactive(actions[i, actions.shape[1] - 1], kva, state[0, i])


# The compiled interface: a twin is (kind, state (5, B), clipped (B,), par (9,)); a fused
# simulation step (powergrid.core.kernel) steps and observes every twin through these two.
KIND_GENERATOR, KIND_ESS, KIND_SOLAR = 0, 1, 2
STATE_ROWS, PAR_LEN = 5, 9  # the widest twin's state rows and parameter vector


@njit(cache=True)
def step_twin(kind, state, clipped, par, actions, dt, pv_per_kw):  # pragma: no cover
    """One step of the twin ``kind`` over the batch (the same kernels the classes call)."""
    if kind == KIND_GENERATOR:
        _generator_step(state, clipped, par, actions, dt)
    elif kind == KIND_ESS:
        _ess_step(state, clipped, par, actions, dt)
    else:
        _solar_step(state, par, actions, pv_per_kw)


@njit(cache=True, inline="always")
def observe_twin(kind, state, par, out):  # pragma: no cover - compiled
    """The twin's one observation per row into ``out`` (B,): gen p / p_max, ESS soc, PV
    available / capacity."""
    for i in range(out.shape[0]):
        if kind == KIND_GENERATOR:
            out[i] = state[0, i] / par[1]
        elif kind == KIND_ESS:
            out[i] = state[2, i]
        else:
            out[i] = state[2, i] / par[0]


def _row_writer(fields: tuple[str, ...], bool_fields: frozenset[str]
                ) -> Callable[[PowerDevice, list[float], bool], None]:
    """``write(device, values, clipped)``: ``values`` = [p_kw, cost, *fields] of one row
    stored as the device's attributes (bool fields as ``value != 0.0``), as one generated
    function: it runs for every twin after every scalar step."""
    lines = [f"    d.{name} = v[{k}]" + (" != 0.0" if name in bool_fields else "")
             for k, name in enumerate(("p_kw", "cost", *fields))]
    code = "def write(d, v, clipped):\n" + "\n".join(lines) + "\n    d.clipped = clipped\n"
    namespace: dict[str, object] = {}
    exec(compile(code, "<_row_writer>", "exec"), namespace)  # noqa: S102
    return namespace["write"]  # type: ignore[return-value]


class _CompiledTwin(BatchedDevice):
    """State as one (fields, B) float array (row 0 p_kw, row 1 cost, then ``fields``).

    One array and one parameter vector keep the numba call to a handful of arguments,
    which is what a step costs at B = 1. The initial rows copy the given device's state.
    """

    compiled: ClassVar[bool] = True
    device_type: ClassVar[type[PowerDevice]]
    params_type: ClassVar[type[DeviceParams]]
    kind: ClassVar[int]
    fields: ClassVar[tuple[str, ...]] = ()  # scalar attribute per state row after p_kw, cost
    bool_fields: ClassVar[frozenset[str]] = frozenset()  # of those, the scalar device's bools
    _write: ClassVar[Callable[[PowerDevice, list[float], bool], None]]  # write_row's setter

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        # per class, not per instance: a generated function does not pickle
        cls._write = staticmethod(_row_writer(cls.fields, cls.bool_fields))

    def __init__(self, device: PowerDevice, num_envs: int) -> None:
        self.num_envs = _check_num_envs(num_envs)
        self.params = device.params
        self.name, self.bus = device.name, device.bus
        self.element, self.cost_term = device.element, device.cost_term
        self.action_labels, self.obs_labels = device.action_labels, device.obs_labels
        self._bounds = device.observation_bounds()
        self._par = np.array(self._param_vector(device.params), np.float64)
        fresh = device.params.build()
        fresh.reset(np.random.default_rng(0))
        self._initial = self._column(fresh)
        self._state = np.repeat(self._column(device)[:, None], self.num_envs, axis=1)
        self.clipped = np.full(self.num_envs, bool(device.clipped))
        self.p_kw, self.cost = self._state[0], self._state[1]
        self._rows: dict[int, np.ndarray] = {}  # write_row's views of _state, per row
        if "q_kvar" not in self.fields:  # no inverter: no reactive power
            self.q_kvar = np.zeros(self.num_envs)

    def _column(self, device: PowerDevice) -> np.ndarray:
        return np.array([device.p_kw, device.cost, *(getattr(device, f) for f in self.fields)],
                        np.float64)

    @staticmethod
    @abstractmethod
    def _param_vector(params) -> list[float]: ...

    def compiled_form(self) -> CompiledTwin:
        """The arrays :func:`step_twin` / :func:`observe_twin` take (live views)."""
        par = np.zeros(PAR_LEN)
        par[:len(self._par)] = self._par
        return CompiledTwin(self.kind, self._state, self.clipped, par)

    def bind(self, state: np.ndarray, clipped: np.ndarray) -> None:
        """Move the state into ``state`` ((STATE_ROWS, B) view) and ``clipped`` ((B,)), so
        a fused kernel can hold every device of a simulation in one array."""
        n = len(self._state)
        state[:n] = self._state
        clipped[:] = self.clipped
        self._state, self.clipped = state[:n], clipped
        self.p_kw, self.cost = self._state[0], self._state[1]
        self._rows = {}

    def write_row(self, device: PowerDevice, b: int = 0) -> None:
        """Set ``device``'s state attributes (``p_kw``, ``cost``, ``clipped`` and the twin's
        ``fields``) to row ``b``: a scalar front end keeps its live objects current (after
        every step, so the row's view is made once and the setter generated per class of
        fields: one ``tolist()`` and plain attribute stores, about a third of a loop of
        ``setattr``)."""
        row = self._rows.get(b)
        if row is None:
            row = self._rows[b] = self._state[:, b]
        self._write(device, row.tolist(), self.clipped.item(b))

    def observe(self) -> np.ndarray:
        out = np.empty(self.num_envs)
        observe_twin(self.kind, self._state, self._par, out)
        return out[:, None]

    def reset(self, mask=None, rngs=None) -> None:
        m = self._mask(mask)
        self._state[:, m] = self._initial[:, None]
        self.clipped[m] = False

    def observation_bounds(self) -> tuple[tuple[float, float], ...]:
        return self._bounds


class BatchedGenerator(_CompiledTwin):
    """:class:`~powergrid.devices.Generator` over B envs (state: p_kw, cost, on)."""

    device_type, params_type, fields = Generator, GeneratorParams, ("on",)
    bool_fields = frozenset({"on"})
    kind = KIND_GENERATOR

    @staticmethod
    def _param_vector(p: GeneratorParams) -> list[float]:
        return [p.p_min_kw, p.p_max_kw, p.ramp_kw_per_h, p.cost_a_per_kw2h, p.cost_b_per_kwh,
                p.cost_c_per_h, p.startup_cost]

    @property
    def on(self) -> np.ndarray:
        return self._state[2] != 0.0

    def step(self, actions: np.ndarray, ctx: BatchContext) -> np.ndarray:
        _generator_step(self._state, self.clipped, self._par, self._actions(actions),
                        float(ctx.dt_hours))
        return self.p_kw


class _InverterTwin(_CompiledTwin):
    """A twin of an :class:`~powergrid.devices.inverter.Inverter`: the parameter vector
    ends with (s_kva, reactive on), the state has a ``q_kvar`` row."""

    def __init__(self, device: PowerDevice, num_envs: int) -> None:
        super().__init__(device, num_envs)
        self.reactive = bool(device.reactive)
        self._par = np.append(self._par, [device.s_kva, float(self.reactive)])

    @property
    def q_kvar(self) -> np.ndarray:
        return self._state[self.fields.index("q_kvar") + 2]

    def _reactive_info(self) -> dict[str, np.ndarray]:
        return {"q_kvar": self.q_kvar.copy()} if self.reactive else {}


class BatchedESS(_InverterTwin):
    """:class:`~powergrid.devices.ESS` over B envs (state: p_kw, cost, soc, throughput_kwh,
    q_kvar)."""

    device_type, params_type, fields = ESS, ESSParams, ("soc", "throughput_kwh", "q_kvar")
    kind = KIND_ESS

    @staticmethod
    def _param_vector(p: ESSParams) -> list[float]:
        return [p.capacity_kwh, p.p_max_kw, p.eta_charge, p.eta_discharge, p.soc_min, p.soc_max,
                p.degradation_cost_per_kwh]

    @property
    def soc(self) -> np.ndarray:
        return self._state[2]

    @property
    def throughput_kwh(self) -> np.ndarray:
        return self._state[3]

    def step(self, actions: np.ndarray, ctx: BatchContext) -> np.ndarray:
        _ess_step(self._state, self.clipped, self._par, self._actions(actions),
                  float(ctx.dt_hours))
        return self.p_kw

    def info(self) -> dict[str, np.ndarray]:
        return {"p_kw": self.p_kw.copy(), "cost": self.cost.copy(), "soc": self.soc.copy(),
                **self._reactive_info()}

    def stored_kwh(self) -> np.ndarray:
        return self.soc * self.params.capacity_kwh


class BatchedSolar(_InverterTwin):
    """:class:`~powergrid.devices.Solar` over B envs (state: p_kw, cost, available_kw,
    q_kvar)."""

    device_type, params_type, fields = Solar, SolarParams, ("available_kw", "q_kvar")
    kind = KIND_SOLAR

    @staticmethod
    def _param_vector(p: SolarParams) -> list[float]:
        limited = p.inverter_kw is not None
        return [p.capacity_kw, p.inverter_kw if limited else 0.0, float(limited)]

    @property
    def available_kw(self) -> np.ndarray:
        return self._state[2]

    def step(self, actions: np.ndarray, ctx: BatchContext) -> np.ndarray:
        pv = np.asarray(ctx.pv_per_kw, np.float64)
        if pv.shape != (self.num_envs,):
            raise ValueError(f"ctx.pv_per_kw has shape {pv.shape}, expected ({self.num_envs},)")
        _solar_step(self._state, self._par, self._actions(actions), pv)
        return self.p_kw  # like Solar.step, clipped keeps its value (curtailing is not a limit)

    def info(self) -> dict[str, np.ndarray]:
        return {"p_kw": self.p_kw.copy(), "cost": self.cost.copy(),
                "available_kw": self.available_kw.copy(), **self._reactive_info()}


_TWINS: dict[type[PowerDevice], type[_CompiledTwin]] = {
    t.device_type: t for t in (BatchedGenerator, BatchedESS, BatchedSolar)}


def has_compiled_twin(device: PowerDevice) -> bool:
    """Whether :func:`batched` gives ``device`` a compiled twin (exact built-in types)."""
    twin = _TWINS.get(type(device))
    return twin is not None and type(getattr(device, "params", None)) is twin.params_type


def batched(device: PowerDevice | DeviceParams, num_envs: int) -> BatchedDevice:
    """``num_envs`` copies of ``device`` (or of ``params.build()``) as one batched device.

    Exact built-in types get their compiled twin. Params that define
    ``build_batched(num_envs) -> BatchedDevice`` (a custom device's own batched version) get
    that, given either the params or a device built from them (a batch starts from the
    params: its rows are reset with the episode). Everything else, subclasses of the
    built-ins included, runs per row.
    """
    num_envs = _check_num_envs(num_envs)
    params = device if isinstance(device, DeviceParams) else getattr(device, "params", None)
    own = getattr(params, "build_batched", None) if isinstance(params, DeviceParams) else None
    if own is not None:
        out = own(num_envs)
        if not isinstance(out, BatchedDevice) or out.num_envs != num_envs:
            raise ValueError(f"{type(params).__name__}.build_batched({num_envs}) returned "
                             f"{out!r}, expected a BatchedDevice with num_envs={num_envs}")
        return out
    if isinstance(device, DeviceParams):
        device = device.build()
    if not isinstance(device, PowerDevice):
        raise ValueError(f"batched() needs a PowerDevice or DeviceParams, got "
                         f"{type(device).__name__}")
    if has_compiled_twin(device):
        return _TWINS[type(device)](device, num_envs)
    return PerRowDevices(device, num_envs)
