"""The fused compiled step (powergrid.core.kernel) equals the general numpy path."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heron.protocols.vertical import PriceSignalProtocol
from powergrid.core.step import Simulation
from powergrid.envs.config import default_microgrids
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids

pytest.importorskip("numba")


def _microgrids(n: int) -> list:
    base = default_microgrids()
    return [replace(base[k % len(base)], name=f"MG{k + 1}") for k in range(n)]


CONFIGS = {
    "n2_uniform": {},
    "n3_fee_terminal_share_pab": {"microgrids": _microgrids(3), "trading_fee": 0.01,
                                  "storage_terminal_price": 0.1, "share_reward": True,
                                  "clearing": "pay_as_bid"},
    "n5_halfhour_cda": {"microgrids": _microgrids(5), "dt_hours": 0.5, "clearing": "cda"},
    "n3_ieee34_mcafee": {"microgrids": _microgrids(3), "network": "ieee34",
                         "clearing": "mcafee"},
    "n2_no_market": {"horizontal_protocol": None},
    "n3_ieee34_reactive": {"microgrids": _microgrids(3), "network": "ieee34",
                           "reactive_power": True},
}


def _pair(config: dict, B: int) -> tuple[Simulation, Simulation]:
    # one template each: the fallback solver's warm starts must not be shared
    cfg = {"max_episode_steps": 12, **config}
    fused = Simulation(MultiAgentMicrogrids(cfg), B)
    general = Simulation(MultiAgentMicrogrids(cfg), B, fused=False)
    assert fused.kernel is not None and general.kernel is None
    return fused, general


def _reset(sims, mask, seed):
    B = len(mask)
    for sim in sims:
        sim.reset_rows(mask, [np.random.default_rng(seed + b) for b in range(B)], [None] * B,
                       None, [None] * B)


def _assert_same(a, b, what):
    a, b = np.asarray(a, float), np.asarray(b, float)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)


def _run_both(fused, general, seed, steps=30, out_of_phase=False):
    B = fused.B
    _reset((fused, general), np.ones(B, bool), seed)
    rng = np.random.default_rng(seed)
    widths = [sum(d.action_dim for d in devs) + 1 for devs in fused.devices]  # + price
    for k in range(steps):
        live = ~fused.state.needs_reset
        np.testing.assert_array_equal(live, ~general.state.needs_reset)
        acts = [rng.uniform(-1, 1, (B, w)) for w in widths]
        o1, o2 = fused.step(acts, live), general.step(acts, live)
        for key in o2.per_agent:
            _assert_same(o1.per_agent[key], o2.per_agent[key], f"step {k}: {key}")
        for key in o2.shared:
            _assert_same(o1.shared[key], o2.shared[key], f"step {k}: {key}")
        _assert_same(o1.rewards, o2.rewards, f"step {k}: rewards")
        done = ~live | (out_of_phase & (rng.random(B) < 0.1))
        if done.any():
            _reset((fused, general), done, seed + 100 + k)
        for x, y in zip(fused.observe(), general.observe()):
            _assert_same(x, y, f"step {k}: obs")
        _assert_same(fused.stored_kwh(), general.stored_kwh(), f"step {k}: stored energy")


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("seed", [0, 7])
def test_fused_step_equals_the_numpy_stages(name, seed):
    fused, general = _pair(CONFIGS[name], 3)
    _run_both(fused, general, seed)


def test_fused_step_equals_the_numpy_stages_at_b1_and_out_of_phase_resets():
    fused, general = _pair({}, 1)
    _run_both(fused, general, 3, steps=40)
    fused, general = _pair(CONFIGS["n3_fee_terminal_share_pab"], 6)
    _run_both(fused, general, 4, steps=40, out_of_phase=True)


def test_rows_the_batch_kernel_does_not_solve_are_repaired_as_in_the_numpy_stages():
    # a 2-iteration batch kernel fails every row; FastSolver (50 iterations) repairs them
    sims = []
    for fused in (True, False):
        tpl = MultiAgentMicrogrids({"max_episode_steps": 12})
        tpl.solver.max_iter = 2
        sims.append(Simulation(tpl, 2, fused=fused))
    fused, general = sims
    repaired = []
    patch = fused.pf.patch
    fused.pf.patch = lambda out, rows, *a: (repaired.append(len(rows)), patch(out, rows, *a))
    _run_both(fused, general, 5, steps=14)
    assert repaired and all(n == 2 for n in repaired)


@pytest.mark.parametrize("config", [
    {"vertical_protocol": PriceSignalProtocol()}, {"centralized": False},
    {"power_flow": "pandapower"}, {"market_timing": "ahead"}],
    ids=["vertical", "distributed", "pandapower", "ahead"])
def test_configurations_that_do_not_compile_take_the_numpy_stages(config):
    sim = Simulation(MultiAgentMicrogrids({"max_episode_steps": 4, **config}), 2)
    assert sim.kernel is None


def test_vector_env_through_the_fused_step_equals_the_numpy_stages():
    cfg = {"max_episode_steps": 6, "microgrids": _microgrids(3), "clearing": "cda"}
    fast, slow = VectorMicrogrids(4, cfg), VectorMicrogrids(4, cfg)
    slow.sim = Simulation(MultiAgentMicrogrids(slow.config), 4, fused=False)
    assert fast.sim.kernel is not None
    (o1, _), (o2, _) = fast.reset(seed=1), slow.reset(seed=1)
    for a in fast.possible_agents:
        np.testing.assert_array_equal(o1[a], o2[a])
    rng = np.random.default_rng(0)
    for _ in range(14):  # two autoresets
        acts = {a: rng.uniform(-1, 1, (4, *fast.single_action_space(a).shape))
                for a in fast.possible_agents}
        r1, r2 = fast.step(acts), slow.step(acts)
        for a in fast.possible_agents:
            np.testing.assert_array_equal(r1[0][a], r2[0][a])
            np.testing.assert_allclose(r1[1][a], r2[1][a], rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(r1[3][a], r2[3][a])
            for key, value in r2[4][a].items():
                if isinstance(value, dict):
                    for term, v in value.items():
                        _assert_same(r1[4][a][key][term], v, f"{a}: {key}/{term}")
                else:
                    _assert_same(r1[4][a][key], value, f"{a}: {key}")
