"""Sensitivities (powergrid.pf.sensitivity) equal finite differences of the real solver."""

from __future__ import annotations

import numpy as np
import pytest

from powergrid.networks.multi_microgrid import FeederDevice, create_shared_feeder
from powergrid.pf import FastSolver
from powergrid.pf.sensitivity import Sensitivity, loss_factors_batch

FEEDERS = [
    ("MG1", 0.1, (FeederDevice("gen", "675", "sgen"), FeederDevice("ess", "671", "storage"))),
    ("MG2", 0.08, (FeederDevice("ess", "692", "storage"), FeederDevice("pv", "680", "sgen"))),
    ("MG3", 0.08, (FeederDevice("pv", "680", "sgen"),)),
]
H = 1e-5  # MW; central differences: truncation ~H^2, solver noise ~tol / H
RTOL = 1e-4


@pytest.fixture(scope="module")
def case():
    mg = create_shared_feeder(FEEDERS)
    return mg, FastSolver(mg.net, tol=1e-14, use_numba=False)


def operating_point(mg, seed):
    rng = np.random.default_rng(seed)
    net = mg.net
    return dict(load_p_mw=net.load.p_mw.to_numpy() * rng.uniform(0.3, 1.0),
                load_q_mvar=net.load.q_mvar.to_numpy() * rng.uniform(0.3, 1.0),
                sgen_p_mw=rng.uniform(0, 0.6, len(net.sgen)),
                storage_p_mw=rng.uniform(-0.3, 0.3, len(net.storage)),
                sgen_q_mvar=rng.uniform(-0.15, 0.15, len(net.sgen)),
                storage_q_mvar=rng.uniform(-0.1, 0.1, len(net.storage)))


def solve(solver, x):
    solver.reset()
    r = solver.solve(**x)
    assert r.converged
    return r


def central_difference(solver, x, key, k, read):
    up, down = dict(x), dict(x)
    up[key] = x[key].copy()
    down[key] = x[key].copy()
    up[key][k] += H
    down[key][k] -= H
    return (read(solve(solver, up)) - read(solve(solver, down))) / (2 * H)


def assert_close(analytic, numeric):
    scale = np.max(np.abs(numeric))
    assert np.max(np.abs(np.asarray(analytic) - numeric)) <= RTOL * scale


# sgen injects P and Q; storage p/q count as consumption (pandapower signs)
INPUTS = [("sgen_p_mw", "p", 1.0), ("sgen_q_mvar", "q", 1.0), ("storage_p_mw", "p", -1.0),
          ("storage_q_mvar", "q", -1.0)]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("key, part, sign", INPUTS)
def test_loss_voltage_and_loading_sensitivities_match_finite_differences(case, seed, key, part,
                                                                         sign):
    mg, solver = case
    net = mg.net
    x = operating_point(mg, seed)
    r = solve(solver, x)
    op = Sensitivity(solver.model).at(r.vm_pu, r.va_degree)
    table = "sgen" if key.startswith("sgen") else "storage"
    buses = net[table].bus.to_numpy()
    cols = net.bus.index.get_indexer(buses)
    watched = np.arange(len(net.bus))
    branches = np.arange(len(net.line) + len(net.trafo))
    lp, lq = op.loss_factors(cols)
    vp, vq = op.voltage(watched, cols)
    bp, bq = op.loading(branches, cols)
    pick = {"p": 0, "q": 1}[part]
    for k in range(len(buses)):
        d_loss = central_difference(solver, x, key, k, lambda s: s.losses_mw)
        d_v = central_difference(solver, x, key, k, lambda s: s.vm_pu)
        d_ld = central_difference(solver, x, key, k, lambda s: np.concatenate(
            [s.line_loading_percent, s.trafo_loading_percent]))
        assert_close(sign * (lp, lq)[pick][k], d_loss)
        assert_close(sign * (vp, vq)[pick][:, k], d_v)
        assert_close(sign * (bp, bq)[pick][:, k], d_ld)


def test_injections_read_from_the_state_balance_the_losses(case):
    mg, solver = case
    r = solve(solver, operating_point(mg, 3))
    op = Sensitivity(solver.model).at(r.vm_pu, r.va_degree)
    p, _ = op.injections()
    # losses = slack injection + every PQ injection
    assert p.sum() + r.p_slack_mw == pytest.approx(r.losses_mw, abs=1e-9)


def test_sensitivities_at_the_slack_bus_are_zero(case):
    mg, solver = case
    r = solve(solver, operating_point(mg, 4))
    op = Sensitivity(solver.model).at(r.vm_pu, r.va_degree)
    slack = mg.net.bus.index.get_loc(mg.net.ext_grid.bus.iloc[0])
    lp, lq = op.loss_factors([slack])
    vp, vq = op.voltage([slack, 10], [slack])
    assert lp[0] == lq[0] == 0.0
    assert np.all(vp[0] == 0.0) and np.all(vq[:, 0] == 0.0)


def test_batched_loss_factors_equal_row_by_row(case):
    mg, solver = case
    sens = Sensitivity(solver.model)
    rs = [solve(solver, operating_point(mg, s)) for s in (5, 6)]
    vm = np.stack([r.vm_pu for r in rs])
    va = np.stack([r.va_degree for r in rs])
    bp, bq = loss_factors_batch(sens, vm, va)
    for b, r in enumerate(rs):
        p, q = sens.at(r.vm_pu, r.va_degree).loss_factors()
        np.testing.assert_array_equal(bp[b], p)
        np.testing.assert_array_equal(bq[b], q)


def test_a_non_finite_state_is_rejected(case):
    _, solver = case
    sens = Sensitivity(solver.model)
    vm = np.full(solver.model.n_bus, np.nan)
    with pytest.raises(ValueError, match="not finite"):
        sens.at(vm, np.zeros_like(vm))
