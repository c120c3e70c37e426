"""Network-cost rules (powergrid.network_costs): properties of the allocations, the fee."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from heron.market import Order
from heron.protocols.p2p import P2PTradingProtocol
from powergrid.network_costs import (
    NetworkCosts,
    allocate_losses,
    allocate_violations,
    electrical_distance_ohm,
    network_use_fees,
    unallocated_penalty,
)
from powergrid.networks.multi_microgrid import (
    FeederDevice,
    SharedFeederSpec,
    create_multi_microgrid,
    create_shared_feeder,
)
from powergrid.pf import FastSolver

finite = st.floats(-1e3, 1e3, allow_nan=False)
users = st.integers(1, 6)


def matrix(rows, cols, elements=finite):
    return arrays(float, (rows, cols), elements=elements)


# ------------------------------------------------------------------ losses


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4).flatmap(lambda B: st.tuples(
    arrays(float, B, elements=st.floats(0, 1e3)), users.flatmap(lambda U: matrix(B, U)))))
def test_loss_shares_sum_to_the_actual_losses(case):
    losses, marginal = case
    shares = allocate_losses(losses, marginal)
    np.testing.assert_allclose(shares.sum(-1), losses, rtol=1e-9, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.01, 1e3), users.flatmap(lambda U: arrays(float, U, elements=finite)),
       st.data())
def test_loss_shares_treat_users_symmetrically(losses, marginal, data):
    perm = data.draw(st.permutations(range(len(marginal))))
    shares = allocate_losses(losses, marginal)
    np.testing.assert_allclose(allocate_losses(losses, marginal[perm]), shares[perm],
                               rtol=1e-12, atol=1e-12)
    twins = allocate_losses(losses, np.array([marginal[0], marginal[0]]))
    assert twins[0] == twins[1]


@settings(max_examples=300, deadline=None)
@given(st.floats(0.0, 1e3), users.flatmap(lambda U: arrays(float, U, elements=finite)))
def test_no_loss_share_exceeds_its_marginal_charge_or_the_losses(losses, marginal):
    # cancelling marginal charges (sum << L) must not be scaled up into huge charges/credits
    shares = allocate_losses(losses, marginal)
    bound = np.maximum(np.abs(marginal), losses)
    assert np.all(np.abs(shares) <= bound * (1 + 1e-9) + 1e-12)


def test_nearly_cancelling_marginal_charges_fall_back_to_magnitudes():
    np.testing.assert_allclose(allocate_losses(10.0, np.array([100.0, -95.0])),
                               [10.0 * 100 / 195, 10.0 * 95 / 195])


def test_loss_shares_keep_marginal_proportions_and_credit_loss_reducers():
    shares = allocate_losses(10.0, np.array([6.0, 18.0, -4.0]))  # marginal sum 20 = 2 L
    np.testing.assert_allclose(shares, [3.0, 9.0, -2.0])


def test_loss_shares_of_degenerate_marginals_fall_back_to_magnitudes_then_equal_split():
    np.testing.assert_allclose(allocate_losses(3.0, np.array([1.0, -1.0, 0.0])), [1.5, 1.5, 0])
    np.testing.assert_allclose(allocate_losses(3.0, np.zeros(3)), [1.0, 1.0, 1.0])


def test_loss_shapes_must_agree():
    with pytest.raises(ValueError, match="marginal must be"):
        allocate_losses(np.ones(2), np.ones((3, 2)))


# ------------------------------------------------------------------ violations

nonneg = st.floats(0, 1e3)
violation_cases = st.integers(1, 5).flatmap(lambda E: users.flatmap(lambda U: st.tuples(
    arrays(float, E, elements=nonneg), matrix(E, U))))


@settings(max_examples=300, deadline=None)
@given(violation_cases)
def test_violation_shares_are_nonnegative_and_sum_to_the_pushed_penalty(case):
    pen, contrib = case
    shares = allocate_violations(pen, contrib)
    assert np.all(shares >= 0)
    pushed = pen[(contrib > 0).any(-1)].sum()
    assert shares.sum() == pytest.approx(pushed, rel=1e-9, abs=1e-9)
    assert shares.sum() + unallocated_penalty(pen, contrib) == pytest.approx(pen.sum(), rel=1e-9,
                                                                             abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(violation_cases)
def test_a_user_that_helps_or_injects_nothing_pays_no_violation_share(case):
    pen, contrib = case
    contrib = np.concatenate([contrib, -np.abs(contrib[:, :1]), np.zeros((len(pen), 1))], axis=1)
    shares = allocate_violations(pen, contrib)
    assert shares[-2] == 0.0 and shares[-1] == 0.0


@settings(max_examples=200, deadline=None)
@given(violation_cases)
def test_identical_users_pay_identical_violation_shares(case):
    pen, contrib = case
    twin = np.concatenate([contrib, contrib[:, :1]], axis=1)
    shares = allocate_violations(pen, twin)
    assert shares[0] == shares[-1]


def test_violation_penalty_is_split_by_positive_contribution():
    shares = allocate_violations(np.array([10.0]), np.array([[3.0, 1.0, -5.0]]))
    np.testing.assert_allclose(shares, [7.5, 2.5, 0.0])


def test_negative_penalties_are_rejected():
    with pytest.raises(ValueError, match=">= 0"):
        allocate_violations(np.array([-1.0]), np.ones((1, 2)))


# ------------------------------------------------------------------ on the shared feeder

FEEDERS = [(f"MG{i}", 0.1, (FeederDevice("pv", "680", "sgen"), FeederDevice("ess", "671",
                                                                             "storage")))
           for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def feeder():
    mg = create_shared_feeder(FEEDERS, SharedFeederSpec(pcc_buses=("850", "858", "834")))
    return mg, FastSolver(mg.net), NetworkCosts(mg, FastSolver(mg.net).model)


def solve(mg, solver, pv_mw, load_scale=1.0):
    net = mg.net
    solver.reset()
    return solver.solve(net.load.p_mw.to_numpy() * load_scale,
                        net.load.q_mvar.to_numpy() * load_scale,
                        np.asarray(pv_mw, float), np.zeros(len(net.storage)))


def test_neighbouring_pccs_are_electrically_closer_than_pccs_across_the_feeder(feeder):
    _, _, costs = feeder
    d = costs.distance_ohm  # 850 (before regulator 2), 858 and 834 (after it, 2 km apart)
    assert d[1, 2] < d[0, 1] and d[1, 2] < d[0, 2]
    np.testing.assert_allclose(d, d.T, rtol=1e-9)
    assert np.all(np.diag(d) == 0)


def test_a_neighbour_trade_pays_a_smaller_network_fee_than_a_cross_feeder_one(feeder):
    _, _, costs = feeder
    proto = P2PTradingProtocol("uniform", pair_fee=costs.pair_fees(5e-4))
    near = proto.clear([Order("MG2", "buy", 10.0, 0.3), Order("MG3", "sell", 10.0, 0.1)])
    far = proto.clear([Order("MG2", "buy", 10.0, 0.3), Order("MG1", "sell", 10.0, 0.1)])
    assert near.clearing_price == far.clearing_price
    assert 0 < near.fees < far.fees


def test_distance_through_the_slack_is_each_buses_thevenin_impedance():
    mg = create_multi_microgrid(FEEDERS[:2])
    model = FastSolver(mg.net).model
    lv = mg.net.trafo.lv_bus.to_numpy()[[mg.pcc_trafo_rows["MG1"], mg.pcc_trafo_rows["MG2"]]]
    rows = mg.net.bus.index.get_indexer(lv)
    d = electrical_distance_ohm(model, rows, mg.net.bus.vn_kv.to_numpy()[rows])
    # two identical feeders on separate transformers: equal, non-zero distance
    assert d[0, 1] == pytest.approx(d[1, 0]) and d[0, 1] > 0


def test_network_use_fee_scales_the_distance_and_rejects_a_negative_rate():
    np.testing.assert_allclose(network_use_fees(np.array([[0, 2.0], [2.0, 0]]), 0.01),
                               [[0, 0.02], [0.02, 0]])
    with pytest.raises(ValueError, match="fee_per_kwh_per_ohm"):
        network_use_fees(np.zeros((2, 2)), -1.0)


def test_allocated_losses_and_dso_share_add_up_to_the_network_losses(feeder):
    mg, solver, costs = feeder
    r = solve(mg, solver, [0.3, 0.1, 0.5])
    res = costs.evaluate(r, (0.95, 1.05), 1000.0, 10.0)
    assert res.loss_share_kw.sum() + res.dso_loss_share_kw == pytest.approx(res.losses_kw,
                                                                            rel=1e-9)
    assert res.losses_kw == pytest.approx(float(r.losses_mw) * 1e3)


def test_midday_over_voltage_is_charged_to_the_exporters_not_to_the_importer(feeder):
    mg, solver, costs = feeder
    # light feeder load, MG1 and MG3 export hard, MG2 imports (no PV)
    r = solve(mg, solver, [1.2, 0.0, 1.2], load_scale=0.2)
    res = costs.evaluate(r, (0.95, 1.05), 1000.0, 10.0)
    assert res.violation_total > 0, "the case must violate the band"
    assert res.violation_penalty[1] == 0.0
    assert res.violation_penalty[0] > 0 and res.violation_penalty[2] > 0
    assert res.violation_penalty.sum() + res.violation_dso == pytest.approx(res.violation_total)


def test_no_violation_no_charge(feeder):
    mg, solver, costs = feeder
    r = solve(mg, solver, [0.0, 0.0, 0.0], load_scale=0.2)
    res = costs.evaluate(r, (0.5, 1.5), 1000.0, 10.0)
    assert res.violation_total == 0 and np.all(res.violation_penalty == 0)


def test_evaluating_from_the_voltage_state_equals_evaluating_the_solver_result(feeder):
    mg, solver, costs = feeder
    r = solve(mg, solver, [1.2, 0.0, 1.2], load_scale=0.2)
    a = costs.evaluate(r, (0.95, 1.05), 1000.0, 10.0)
    V = costs.sens.voltages(r.vm_pu, r.va_degree)
    b = costs.evaluate_voltages(V, (0.95, 1.05), 1000.0, 10.0)
    assert b.losses_kw == pytest.approx(a.losses_kw, rel=1e-8)
    np.testing.assert_allclose(b.loss_share_kw, a.loss_share_kw, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(b.violation_penalty, a.violation_penalty, rtol=1e-8, atol=1e-9)
    op = costs.sens.at(r.vm_pu, r.va_degree)
    np.testing.assert_allclose(op.branch_loading(), np.concatenate(
        [r.line_loading_percent, r.trafo_loading_percent]), rtol=1e-9, atol=1e-9)
