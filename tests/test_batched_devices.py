"""Batched devices: every row is the scalar device, bit for bit (powergrid.devices.batched)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powergrid.devices import (
    ESS,
    DeviceParams,
    ESSParams,
    Generator,
    GeneratorParams,
    PowerDevice,
    SolarParams,
    StepContext,
)
from powergrid.devices.batched import (
    BatchContext,
    BatchedDevice,
    BatchedESS,
    BatchedGenerator,
    BatchedSolar,
    PerRowDevices,
    batched,
)

PARAMS = [
    GeneratorParams(),
    GeneratorParams(p_min_kw=0.0, p_max_kw=300.0, ramp_kw_per_h=50.0, startup_cost=0.0),
    GeneratorParams(p_min_kw=250.0, ramp_kw_per_h=2000.0, cost_a_per_kw2h=3e-4),
    ESSParams(),
    ESSParams(capacity_kwh=120.0, p_max_kw=400.0, eta_charge=0.81, eta_discharge=0.9,
              soc_min=0.0, soc_max=1.0, soc_init=0.95),
    SolarParams(),
    SolarParams(capacity_kw=700.0, inverter_kw=350.0),
]

# Exact edges (-1, 0, +1) matter: they are where the scalar device's branches switch.
action_values = st.one_of(st.sampled_from([-1.0, -0.5, 0.0, 0.5, 1.0, -0.0]),
                          st.floats(-1.0, 1.0, allow_nan=False))
pv_values = st.one_of(st.sampled_from([0.0, 1.0, 1.4]), st.floats(0.0, 2.0))


@dataclass(frozen=True)
class HeatPumpParams(DeviceParams):
    """A custom device: random start temperature, cost depends on the hour."""

    name: str = "hp"
    bus: str = "671"
    p_max_kw: float = 80.0

    def build(self) -> HeatPump:
        return HeatPump(self)


class HeatPump(PowerDevice):
    action_labels, obs_labels = ("power",), ("temp", "on")
    obs_bounds = ((-5.0, 5.0), (0.0, 1.0))

    def __init__(self, params: HeatPumpParams) -> None:
        super().__init__(params.name, params.bus)
        self.params, self.temp = params, 0.0

    def reset(self, rng) -> None:
        self.temp, self.p_kw, self.cost, self.clipped = rng.uniform(-1, 1), 0.0, 0.0, False

    def step(self, action, ctx: StepContext) -> float:
        want = (float(action[0]) + 1.0) / 2.0 * self.params.p_max_kw
        power = min(want, 60.0)
        self.clipped, self.p_kw = power != want, -power
        self.temp += power * ctx.dt_hours / 100.0 - 0.1 * ctx.pv_per_kw
        self.cost = 0.01 * power * (2.0 if 17 <= ctx.hour < 21 else 1.0)
        return self.p_kw

    def observe(self) -> tuple[float, ...]:
        return (self.temp, float(self.p_kw < 0.0))


def _compare(bat: BatchedDevice, scalars: list[PowerDevice], returned=None, scalar_out=None):
    for b, d in enumerate(scalars):
        assert bat.p_kw[b] == d.p_kw and bat.cost[b] == d.cost and bat.clipped[b] == d.clipped
        assert bat.q_kvar[b] == d.q_kvar
        assert tuple(bat.observe()[b]) == tuple(d.observe())
        assert {k: v[b] for k, v in bat.info().items()} == d.info()
        assert bat.stored_kwh()[b] == d.stored_kwh()
        if returned is not None:
            assert returned[b] == scalar_out[b]


def _run(params: DeviceParams, actions: np.ndarray, pv: np.ndarray, hours: np.ndarray,
         dt: float, seed: int = 0, reactive: bool = False) -> None:
    """Step a batch and B scalar devices with the same inputs; equal after every step."""
    steps, num_envs = actions.shape[:2]
    template = params.build()
    if reactive:
        template.enable_reactive_power()
    bat = batched(template, num_envs)
    scalars = [copy.deepcopy(template) for _ in range(num_envs)]
    rngs = [np.random.default_rng(seed + b) for b in range(num_envs)]
    bat.reset(np.ones(num_envs, bool), rngs)
    for b, d in enumerate(scalars):
        d.reset(np.random.default_rng(seed + b))
    _compare(bat, scalars)
    for t in range(steps):
        ctx = BatchContext(hour=hours[t], dt_hours=dt, pv_per_kw=pv[t])
        returned = bat.step(actions[t], ctx).copy()
        out = [d.step(actions[t, b], ctx.row(b)) for b, d in enumerate(scalars)]
        _compare(bat, scalars, returned, out)


@st.composite
def episodes(draw, action_dim: int = 1):
    steps, num_envs = draw(st.integers(1, 30)), draw(st.integers(1, 4))
    acts = draw(st.lists(action_values, min_size=steps * num_envs * action_dim,
                         max_size=steps * num_envs * action_dim))
    pv = draw(st.lists(pv_values, min_size=steps * num_envs, max_size=steps * num_envs))
    hours = draw(st.lists(st.integers(0, 23), min_size=steps * num_envs,
                          max_size=steps * num_envs))
    return (np.array(acts).reshape(steps, num_envs, action_dim),
            np.array(pv).reshape(steps, num_envs), np.array(hours).reshape(steps, num_envs),
            draw(st.sampled_from([1.0, 0.25, 0.5, 1.0 / 3.0])))


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: f"{type(p).__name__}")
@settings(max_examples=60, deadline=None)
@given(episode=episodes())
def test_compiled_twin_equals_scalar_device_row_by_row(params, episode):
    _run(params, *episode)


INVERTERS = [ESSParams(), ESSParams(p_max_kw=400.0, s_kva=400.0, soc_init=0.9),
             SolarParams(), SolarParams(capacity_kw=700.0, inverter_kw=350.0, s_kva=500.0)]


@pytest.mark.parametrize("params", INVERTERS, ids=lambda p: f"{type(p).__name__}")
@settings(max_examples=60, deadline=None)
@given(episode=episodes(action_dim=2))
def test_compiled_inverter_twin_with_reactive_power_equals_scalar_row_by_row(params, episode):
    _run(params, *episode, reactive=True)


@pytest.mark.parametrize("params, twin", [(GeneratorParams(), BatchedGenerator),
                                          (ESSParams(), BatchedESS),
                                          (SolarParams(), BatchedSolar)])
def test_exact_built_in_types_get_their_compiled_twin(params, twin):
    assert type(batched(params, 3)) is twin
    assert type(batched(params.build(), 3)) is twin


@settings(max_examples=60, deadline=None)
@given(episode=episodes(), seed=st.integers(0, 1000))
def test_per_row_fallback_equals_the_python_device(episode, seed):
    _run(HeatPumpParams(), *episode, seed=seed)


def test_subclass_of_a_built_in_runs_per_row():
    class CheapStartGenerator(Generator):
        def step(self, action, ctx):
            out = super().step(action, ctx)
            self.cost *= 0.5
            return out

    dev = CheapStartGenerator(GeneratorParams())
    bat = batched(dev, 2)
    assert isinstance(bat, PerRowDevices)
    bat.step(np.ones((2, 1)), BatchContext(np.zeros(2, int), 1.0, np.zeros(2)))
    dev.step(np.ones(1), StepContext(0, 1.0, 0.0))
    assert bat.cost.tolist() == [dev.cost, dev.cost]


def test_params_of_a_subclass_run_per_row():
    @dataclass(frozen=True)
    class MyESSParams(ESSParams):
        def build(self) -> ESS:
            return ESS(self)

    assert isinstance(batched(MyESSParams(), 2), PerRowDevices)


def test_params_with_build_batched_use_their_own_batched_device():
    @dataclass(frozen=True)
    class OwnParams(HeatPumpParams):
        def build_batched(self, num_envs: int) -> BatchedDevice:
            return PerRowDevices(self.build(), num_envs)

    bat = batched(OwnParams(), 3)
    assert isinstance(bat, PerRowDevices) and bat.num_envs == 3


def test_build_batched_returning_the_wrong_batch_size_is_an_error():
    @dataclass(frozen=True)
    class WrongParams(HeatPumpParams):
        def build_batched(self, num_envs: int) -> BatchedDevice:
            return PerRowDevices(self.build(), num_envs + 1)

    with pytest.raises(ValueError, match="num_envs=2"):
        batched(WrongParams(), 2)


@pytest.mark.parametrize("params", [ESSParams(), GeneratorParams(), SolarParams(),
                                    HeatPumpParams()], ids=lambda p: type(p).__name__)
def test_reset_mask_resets_only_its_rows(params):
    bat = batched(params, 4)
    rngs = [np.random.default_rng(b) for b in range(4)]
    bat.reset(None, rngs)
    ctx = BatchContext(np.full(4, 12), 1.0, np.full(4, 0.8))
    for _ in range(3):
        bat.step(np.full((4, 1), 0.7), ctx)
    before = bat.observe().copy(), bat.p_kw.copy(), bat.cost.copy()
    bat.reset(np.array([False, True, False, True]), [np.random.default_rng(b) for b in range(4)])
    fresh = params.build()
    fresh.reset(np.random.default_rng(1))
    for b in (0, 2):
        assert bat.observe()[b].tolist() == before[0][b].tolist()
        assert bat.p_kw[b] == before[1][b] and bat.cost[b] == before[2][b]
    assert bat.observe()[1].tolist() == list(fresh.observe())
    assert bat.p_kw[1] == 0.0 and bat.cost[1] == 0.0 and not bat.clipped[1]


def test_rows_start_from_the_given_devices_state():
    ess = ESS(ESSParams())
    ess.step(np.array([1.0]), StepContext(0, 1.0, 0.0))
    bat = batched(ess, 2)
    assert bat.soc.tolist() == [ess.soc, ess.soc] and bat.p_kw.tolist() == [ess.p_kw] * 2


@pytest.mark.parametrize("params", [ESSParams(), SolarParams(), HeatPumpParams()],
                         ids=lambda p: type(p).__name__)
def test_metadata_matches_the_scalar_device(params):
    dev, bat = params.build(), batched(params, 2)
    assert (bat.name, bat.bus, bat.element, bat.cost_term) == (dev.name, dev.bus, dev.element,
                                                             dev.cost_term)
    assert (bat.action_labels, bat.obs_labels, bat.action_dim) == (dev.action_labels,
                                                                  dev.obs_labels, dev.action_dim)
    assert bat.observation_bounds() == dev.observation_bounds()


@pytest.mark.parametrize("params", [GeneratorParams(), HeatPumpParams()],
                         ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("shape", [(3,), (2, 1), (3, 2), (1, 3, 1)])
def test_actions_of_the_wrong_shape_are_an_error(params, shape):
    bat = batched(params, 3)
    with pytest.raises(ValueError, match=r"expected \(3, 1\)"):
        bat.step(np.zeros(shape), BatchContext(np.zeros(3, int), 1.0, np.zeros(3)))


def test_reset_mask_of_the_wrong_shape_is_an_error():
    with pytest.raises(ValueError, match=r"bool array of shape \(3,\)"):
        batched(ESSParams(), 3).reset(np.ones(2, bool))


def test_per_row_reset_needs_one_rng_per_row():
    with pytest.raises(ValueError, match="one np.random.Generator per row"):
        batched(HeatPumpParams(), 3).reset(None, [np.random.default_rng(0)])


@pytest.mark.parametrize("num_envs", [0, -1, 2.0, True])
def test_num_envs_must_be_a_positive_int(num_envs):
    with pytest.raises(ValueError, match="num_envs"):
        batched(ESSParams(), num_envs)


def test_per_row_devices_are_independent_copies():
    dev = HeatPump(HeatPumpParams())
    bat = batched(dev, 2)
    assert isinstance(bat, PerRowDevices)
    assert bat.devices[0] is not bat.devices[1] and bat.devices[0] is not dev
    before = copy.deepcopy(dev.__dict__)
    bat.reset(None, [np.random.default_rng(0), np.random.default_rng(1)])
    assert dev.__dict__ == before and bat.observe()[0, 0] != bat.observe()[1, 0]
