"""The core's inputs for a scalar front end: the nested info renderer, per-row clearing
through given Coordination objects, shared device objects, twins written back to objects."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heron.market import Order
from powergrid.core.infos import NestedRenderer, info_key, microgrid_schema, nested
from powergrid.core.step import Simulation
from powergrid.devices import ESS, Generator
from powergrid.devices.base import StepContext
from powergrid.devices.batched import BatchContext, PerRowDevices, batched
from powergrid.envs import MultiAgentMicrogrids


def _schema(env: MultiAgentMicrogrids):
    return microgrid_schema(env.devices("MG1"), network_costs=False)


def test_nested_renderer_without_values_is_the_reset_rendering():
    env = MultiAgentMicrogrids({"max_episode_steps": 2})
    schema = _schema(env)
    first, second = NestedRenderer(schema).render({}), NestedRenderer(schema).render({})
    assert repr(first) == repr(nested(schema))
    first["market"]["orders"].append("x")
    assert second["market"]["orders"] == []  # neutral lists are copied, never shared


def test_nested_renderer_places_leaves_by_flat_name_or_path_and_takes_whole_subtrees():
    env = MultiAgentMicrogrids({"max_episode_steps": 2})
    schema = _schema(env)
    ess = next(d.name for d in env.devices("MG1") if isinstance(d, ESS))
    out = NestedRenderer(schema).render({
        "clearing_price": None, "costs/total": 3.0, f"devices/{ess}/soc": 0.25,
        "comm": {"sent": 7}, "hour": 5})
    assert out["market"]["clearing_price"] is None
    assert out["costs"]["total"] == 3.0 and out["hour"] == 5
    assert out["devices"][ess]["soc"] == 0.25
    assert out["comm"] == {"sent": 7}
    assert list(out) == list(nested(schema))  # the schema's key order
    assert {info_key(f) for f in schema} >= {"clearing_price", "market/orders", "costs/total"}


def test_compiled_renderer_gives_the_rendering_of_the_same_values_by_position():
    env = MultiAgentMicrogrids({"max_episode_steps": 2})
    schema = _schema(env)
    ess = next(d.name for d in env.devices("MG1") if isinstance(d, ESS))
    renderer = NestedRenderer(schema)
    render = renderer.compile(("hour", "costs/total"), ("net_kw", "clearing_price"),
                              (f"devices/{ess}/soc", "market/orders"))
    out = render([5, 1.0], [[-2.0, -3.0], [0.1, 0.2]], 1, [0.25, ["o"]])
    expected = renderer.render({"hour": 5, "costs/total": 1.0, "net_kw": -3.0,
                                "clearing_price": 0.2, f"devices/{ess}/soc": 0.25,
                                "market/orders": ["o"]})
    assert repr(out) == repr(expected)  # same keys, order, values (NaN neutrals too)


def test_compiled_renderer_takes_a_name_from_its_last_group():
    renderer = NestedRenderer(_schema(MultiAgentMicrogrids({"max_episode_steps": 2})))
    render = renderer.compile(("hour",), ("hour",), ("hour",))
    assert render([1], [[2]], 0, [3])["hour"] == 3
    assert renderer.compile(("hour",), ("hour",))([1], [[2]], 0, [])["hour"] == 2


def test_renderer_function_evaluates_each_named_source_over_its_parameters():
    renderer = NestedRenderer(_schema(MultiAgentMicrogrids({"max_episode_steps": 2})))
    render = renderer.function("a, b", {"hour": "a[1]", "costs/total": "b.real",
                                        "market/orders": "[a[0]]"})
    out = render([7, 3], 2.5)
    expected = renderer.render({"hour": 3, "costs/total": 2.5, "market/orders": [7]})
    assert repr(out) == repr(expected)


def test_compiled_renderer_gives_fresh_neutral_lists_every_call():
    render = NestedRenderer(_schema(MultiAgentMicrogrids({"max_episode_steps": 2}))).compile(())
    first = render([], [], 0, [])
    first["market"]["trades"].append("x")
    assert render([], [], 0, [])["market"]["trades"] == []


def test_row_market_clears_every_row_through_the_given_coordination():
    env = MultiAgentMicrogrids({"max_episode_steps": 3})
    sim = Simulation(env, 1, row_market=True, coords=[env.coordination])
    assert not sim.batch_market and sim.coords[0] is env.coordination
    sim.reset_rows(np.ones(1, bool), [np.random.default_rng(0)], [None], None, [0])
    dims = [env.action_space(a).shape[0] for a in env.possible_agents]
    # MG1 sells (generator full, ESS discharging), MG2 buys (ESS charging)
    acts = [np.ones((1, dims[0])), np.concatenate([-np.ones((1, dims[1] - 1)),
                                                   np.ones((1, 1))], 1)]
    out = sim.step(acts, np.ones(1, bool))
    m = out.market
    assert m.orders is not None and all(isinstance(o, Order) for o in m.orders[0])
    assert {o.agent for o in m.orders[0]} == set(env.possible_agents)
    assert m.results[0] is not None
    assert out.per_agent["bought_kwh"][0].tolist() == [m.results[0].bought(a)
                                                       for a in env.possible_agents]


def test_simulation_refuses_coordinations_or_devices_of_the_wrong_batch_size():
    env = MultiAgentMicrogrids({"max_episode_steps": 2})
    with pytest.raises(ValueError, match="coords: 1 Coordination objects for 2 rows"):
        Simulation(env, 2, row_market=True, coords=[env.coordination])
    devices = [[batched(d, 1) for d in env.devices(a)] for a in env.possible_agents]
    with pytest.raises(ValueError, match="num_envs=2"):
        Simulation(env, 2, devices=devices)


def test_shared_per_row_device_steps_the_given_object_itself():
    gen = MultiAgentMicrogrids({"max_episode_steps": 2}).devices("MG1")[0]
    row = PerRowDevices(gen, 1, share=True)
    assert row.devices[0] is gen
    row.step(np.ones((1, gen.action_dim)), BatchContext(np.full(1, 12), 1.0, np.full(1, 0.5)))
    assert gen.p_kw > 0 and row.p_kw[0] == gen.p_kw
    with pytest.raises(ValueError, match="num_envs must be 1"):
        PerRowDevices(gen, 2, share=True)


def test_compiled_twin_writes_its_row_into_a_scalar_device():
    env = MultiAgentMicrogrids({"max_episode_steps": 2})
    ctx = StepContext(hour=12, dt_hours=1.0, pv_per_kw=0.5)
    batch_ctx = BatchContext(np.full(2, 12), 1.0, np.full(2, 0.5))
    devices = [d for a in env.possible_agents for d in env.devices(a)]
    assert {type(d) for d in devices} >= {Generator, ESS}
    for d in devices:
        scalar, mirror, twin = d.params.build(), d.params.build(), batched(d, 2)
        action = np.full(d.action_dim, 0.7)
        scalar.step(action, ctx)
        twin.step(np.tile(action, (2, 1)), batch_ctx)
        twin.write_row(mirror, 1)
        for k in ("p_kw", "cost", "clipped", *twin.fields):
            assert getattr(mirror, k) == getattr(scalar, k), (d.name, k)
            assert type(getattr(mirror, k)) is type(getattr(scalar, k)), (d.name, k)


def test_step_infos_do_not_depend_on_how_the_core_lays_out_its_output_tables():
    plain, tabled = (MultiAgentMicrogrids({"max_episode_steps": 4}) for _ in range(2))
    step = plain.sim.step

    def as_dicts(*args):  # every other step: plain dicts (a new layout each time)
        out = step(*args)
        if plain.sim.state.t[0] % 2:
            out = dataclasses.replace(out, per_agent=dict(out.per_agent),
                                      shared=dict(out.shared))
        return out

    plain.sim.step = as_dicts
    plain.reset(seed=1)
    tabled.reset(seed=1)
    rng = np.random.default_rng(0)
    while tabled.agents:
        actions = {a: rng.uniform(-1, 1, tabled.action_space(a).shape) for a in tabled.agents}
        assert repr(plain.step(actions)[1:]) == repr(tabled.step(actions)[1:])
