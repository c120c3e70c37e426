"""The compiled step (powergrid.core.kernel: fused, or compiled stages around Python
ones) equals the general numpy path."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heron.market.fees import PairFees
from heron.protocols.horizontal import ConsensusProtocol, P2PTradingProtocol
from heron.protocols.vertical import PriceSignalProtocol, SetpointProtocol
from powergrid.core.step import Simulation
from powergrid.envs.config import default_microgrids
from powergrid.envs.coordination import tariff_price_signal
from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids
from powergrid.envs.vector import VectorMicrogrids
from powergrid.scenarios import get

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


# configurations with Python stages between the compiled ones (FusedStep.fused is False)
STAGED = {
    "n2_row_uniform": ({}, True),
    "n3_row_pab_fee": ({"microgrids": _microgrids(3), "trading_fee": 0.01,
                        "clearing": "pay_as_bid", "storage_terminal_price": 0.1}, True),
    "n5_row_cda_share": ({"microgrids": _microgrids(5), "clearing": "cda",
                          "share_reward": True}, True),
    "n3_ieee34_row_mcafee": ({"microgrids": _microgrids(3), "network": "ieee34",
                              "clearing": "mcafee"}, True),
    "consensus": ({"horizontal_protocol": ConsensusProtocol()}, False),
    "pair_fees": ({"microgrids": _microgrids(3), "horizontal_protocol": P2PTradingProtocol(
        pair_fee=PairFees(("MG1", "MG2", "MG3"), [[0, 0.01, 0.02], [0.01, 0, 0.005],
                                                  [0.02, 0.005, 0]]))}, False),
    "price_signal_rule": ({"vertical_protocol": tariff_price_signal(
        [0.12] * 8 + [0.25] * 12 + [0.12] * 4, mode="rule")}, False),
    "price_signal_agent_dso": ({"vertical_protocol": PriceSignalProtocol(mode="agent")},
                               False),
    "setpoint": ({"vertical_protocol": SetpointProtocol(tracking_weight=0.05),
                  "setpoint_target_kw": 300.0}, False),
    "distributed": ({"centralized": False, "latency_steps": 1, "drop_prob": 0.2}, False),
    "distributed_lossless": ({"centralized": False}, False),
    "ahead_batch": ({"market_timing": "ahead", "gate_lead_steps": 2}, False),
    "ahead_rows_curve": ({"market_timing": "ahead", "bid_curve_points": 2,
                          "microgrids": _microgrids(3), "clearing": "pay_as_bid"}, True),
    "n3_ieee34_reactive_rows": ({"microgrids": _microgrids(3), "network": "ieee34",
                                 "reactive_power": True}, True),
    "network_costs": (get("p2p-3mg-v2").config(network_fee_per_kwh_per_ohm=5e-4), False),
}


def _widths(tpl: MultiAgentMicrogrids) -> list[int]:
    """Action width of every possible agent (the operator's too)."""
    return [tpl.action_spaces[a].shape[0] for a in tpl.possible_agents]


def _pair(config: dict, B: int, row_market: bool = False
          ) -> tuple[Simulation, Simulation, list[int]]:
    # one template each: the fallback solver's warm starts must not be shared
    cfg = {**config, "max_episode_steps": 12}
    tpl = MultiAgentMicrogrids(cfg)
    fused = Simulation(tpl, B, row_market=row_market)
    general = Simulation(MultiAgentMicrogrids(cfg), B, fused=False, row_market=row_market)
    assert fused.kernel is not None and general.kernel is None
    return fused, general, _widths(tpl)


def _reset(sims, mask, seed):
    B = len(mask)
    for sim in sims:
        sim.reset_rows(mask, [np.random.default_rng(seed + b) for b in range(B)], [None] * B,
                       None, [None] * B)


def _assert_same(a, b, what):
    a, b = np.asarray(a, float), np.asarray(b, float)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)


def _run_both(fused, general, widths, seed, steps=30, out_of_phase=False):
    B = fused.B
    _reset((fused, general), np.ones(B, bool), seed)
    rng = np.random.default_rng(seed)
    for k in range(steps):
        live = ~fused.state.needs_reset
        np.testing.assert_array_equal(live, ~general.state.needs_reset)
        acts = [rng.uniform(-1, 1, (B, w)) for w in widths]
        o1, o2 = fused.step(acts, live), general.step(acts, live)
        assert set(o1.per_agent) == set(o2.per_agent) and set(o1.costs) == set(o2.costs)
        assert set(o1.shared) == set(o2.shared)
        for key in o2.per_agent:
            _assert_same(o1.per_agent[key], o2.per_agent[key], f"step {k}: {key}")
        for key in o2.shared:
            _assert_same(o1.shared[key], o2.shared[key], f"step {k}: {key}")
        _assert_same(o1.rewards, o2.rewards, f"step {k}: rewards")
        assert (o1.dso_reward is None) == (o2.dso_reward is None)
        if o2.dso_reward is not None:
            _assert_same(o1.dso_reward, o2.dso_reward, f"step {k}: DSO reward")
            for key in o2.dso_info:
                _assert_same(o1.dso_info[key], o2.dso_info[key], f"step {k}: DSO {key}")
        assert (o1.market is None or o1.market.results is None) == (
            o2.market is None or o2.market.results is None)
        if o2.market is not None and o2.market.results is not None:  # per-row clearing
            assert o1.market.results == o2.market.results
            assert o1.market.orders == o2.market.orders
        done = ~live | (out_of_phase & (rng.random(B) < 0.1))
        if done.any():
            _reset((fused, general), done, seed + 100 + k)
        obs1, obs2 = fused.observe(), general.observe()
        assert len(obs1) == len(obs2)
        for x, y in zip(obs1, obs2):
            assert x.shape == y.shape
            _assert_same(x, y, f"step {k}: obs")
        _assert_same(fused.stored_kwh(), general.stored_kwh(), f"step {k}: stored energy")


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("seed", [0, 7])
def test_fused_step_equals_the_numpy_stages(name, seed):
    fused, general, widths = _pair(CONFIGS[name], 3)
    assert fused.kernel.fused
    _run_both(fused, general, widths, seed)


@pytest.mark.parametrize("name", list(STAGED))
def test_compiled_stages_around_python_ones_equal_the_numpy_stages(name):
    config, row_market = STAGED[name]
    fused, general, widths = _pair(config, 3, row_market)
    assert not fused.kernel.fused
    _run_both(fused, general, widths, 11, steps=26, out_of_phase=True)


def test_compiled_stages_at_b1_with_the_row_market():
    # the scalar env's configuration: one row, cleared through its Coordination
    fused, general, widths = _pair({}, 1, row_market=True)
    assert not fused.kernel.fused and not fused.kernel.clears
    _run_both(fused, general, widths, 2, steps=30)


def test_fused_step_equals_the_numpy_stages_at_b1_and_out_of_phase_resets():
    fused, general, widths = _pair({}, 1)
    _run_both(fused, general, widths, 3, steps=40)
    fused, general, widths = _pair(CONFIGS["n3_fee_terminal_share_pab"], 6)
    _run_both(fused, general, widths, 4, steps=40, out_of_phase=True)


@pytest.mark.parametrize("name", ["fused", "n2_row_uniform", "network_costs"])
def test_rows_the_batch_kernel_does_not_solve_are_repaired_as_in_the_numpy_stages(name):
    # a 2-iteration batch kernel fails every row; FastSolver (50 iterations) repairs them
    config, row_market = STAGED.get(name, ({}, False))
    sims = []
    for fused in (True, False):
        tpl = MultiAgentMicrogrids({**config, "max_episode_steps": 12})
        tpl.solver.max_iter = 2
        sims.append(Simulation(tpl, 2, fused=fused, row_market=row_market))
    widths = _widths(tpl)
    fused, general = sims
    assert fused.kernel.fused == (name == "fused")
    repaired = []
    patch = fused.pf.patch
    fused.pf.patch = lambda out, rows, *a: (repaired.append(len(rows)), patch(out, rows, *a))
    _run_both(fused, general, widths, 5, steps=14)
    assert repaired and all(n == 2 for n in repaired)


def test_pandapower_takes_the_numpy_stages():
    sim = Simulation(MultiAgentMicrogrids({"max_episode_steps": 4,
                                           "power_flow": "pandapower"}), 2)
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
