"""NetworkModel: the compiled network that FastSolver and the batch power flow share."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import powergrid.core.powerflow as vector_pf
from benchmarks.bench_pf import build_net, random_inputs
from powergrid.core.powerflow import BatchPowerFlow
from powergrid.pf import FastSolver, NetworkModel


@pytest.fixture(scope="module")
def solver() -> FastSolver:
    return FastSolver(build_net())


def test_z_is_the_inverse_of_y_pp_in_solve_order(solver):
    md = solver.model
    Ypp = md.Y[np.ix_(md.pq, md.pq)]
    np.testing.assert_allclose(md.Z @ Ypp, np.eye(len(md.pq)), atol=1e-9)


def test_feeders_meeting_only_at_the_slack_give_one_z_block_each(solver):
    md = solver.model
    blocks = sorted({(int(lo), int(hi)) for lo, hi in zip(md.block_lo, md.block_hi)})
    assert len(blocks) == 2  # the two IEEE-13 feeders of the default network
    inside = np.zeros(md.Z.shape, bool)
    for i, (lo, hi) in enumerate(zip(md.block_lo, md.block_hi)):
        inside[i, lo:hi] = True
    assert np.all(md.Z[~inside] == 0)


def test_no_load_voltages_solve_the_no_load_case(solver):
    md = solver.model
    V = md.full_voltages(md.w)
    mismatch = (V * np.conj(md.Y @ V))[md.pq] - md.S0
    assert np.max(np.abs(mismatch)) < 1e-9


def test_input_slices_cover_every_set_point_once(solver):
    md = solver.model
    covered = np.zeros(md.n_inputs, int)
    for sl in md.input_slices.values():
        covered[sl] += 1
    assert np.all(covered == 1)


def test_model_rejects_a_net_with_two_ext_grids():
    import pandapower as pp

    net = build_net()
    pp.create_ext_grid(net, int(net.bus.index[1]))
    with pytest.raises(ValueError, match="ext_grid"):
        NetworkModel.from_net(net)


def test_sparse_lu_applies_z(solver):
    md = solver.model
    rng = np.random.default_rng(0)
    rhs = rng.normal(size=len(md.pq)) + 1j * rng.normal(size=len(md.pq))
    np.testing.assert_allclose(md.lu.solve(rhs), md.Z @ rhs, rtol=1e-12, atol=1e-12)


def test_radial_feeders_factor_without_fill_in(solver):
    md = solver.model
    Ypp = md.Y[np.ix_(md.pq, md.pq)]
    off_diagonal = (np.count_nonzero(Ypp) - len(md.pq)) // 2
    assert len(md.lu.L_idx) == len(md.lu.U_idx) == off_diagonal


@pytest.mark.skipif(not vector_pf.HAVE_NUMBA, reason="the batch kernel needs numba")
def test_batch_power_flow_equals_fast_solver_bit_for_bit(solver):
    # same sweeps in the same order: converged rows and warm starts are identical
    net = build_net()
    rng = np.random.default_rng(3)
    batch = BatchPowerFlow(solver, 5)
    singles = [FastSolver(net) for _ in range(5)]
    for _ in range(3):  # warm starts carry over identically
        lp, lq, sp, stp = random_inputs(net, rng, 5)
        out = batch.solve(lp, lq, sp, stp)
        for b, one_solver in enumerate(singles):
            one = one_solver.solve(lp[b], lq[b], sp[b], stp[b])
            assert out.converged[b] and one.converged
            np.testing.assert_array_equal(out.vm_pu[b], one.vm_pu)
            np.testing.assert_array_equal(out.line_loading[b], one.line_loading_percent)
            np.testing.assert_array_equal(out.trafo_loading[b], one.trafo_loading_percent)
            assert out.p_slack_mw[b] == one.p_slack_mw and out.losses_mw[b] == one.losses_mw


def test_batch_power_flow_reads_no_private_solver_attributes():
    source = inspect.getsource(vector_pf)
    assert "solver._" not in source and "sv._" not in source
