"""Score and KPI definitions (docs/evaluation.md) on hand-made episodes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from powergrid.evaluation import (
    Episode,
    EpisodeMetrics,
    episode_metrics,
    gains_from_trade,
    gini,
    relative_metrics,
    score,
)


def hand_made(**changes) -> Episode:
    """Two steps, two microgrids, dt = 0.5 h; A has a surplus, B a deficit."""
    fields = dict(
        agents=("A", "B"), dt_hours=0.5,
        cost=np.array([[1.0, 2.0], [3.0, 4.0]]),
        settlement=np.zeros((2, 2)),
        net_kwh=np.array([[10.0, -10.0], [0.0, -4.0]]),
        retail=np.full((2, 2), 0.3), feed_in=np.full((2, 2), 0.1),
        grid_import_kwh=np.array([[0.0, 0.0], [0.0, 4.0]]),
        load_kwh=np.array([[5.0, 15.0], [5.0, 15.0]]),
        bought_kwh=np.array([[0.0, 10.0], [0.0, 0.0]]),
        upstream_import_kw=np.array([-20.0, 9.0]),
        losses_kw=np.array([2.0, 4.0]),
        violation=np.array([False, True]),
    )
    fields.update(changes)
    return Episode(**fields)


def metrics(cost: float, per_agent: dict, gains: float = 0.0) -> EpisodeMetrics:
    return EpisodeMetrics(cost, per_agent, 0.0, gains, 0.0, 0.0, 0.0, 0.0)


def test_score_is_zero_at_reference_one_at_optimum_linear_between():
    assert score(100.0, 100.0, 60.0) == 0.0
    assert score(100.0, 60.0, 60.0) == 1.0
    assert score(100.0, 90.0, 60.0) == pytest.approx(0.25)
    assert score(100.0, 120.0, 60.0) == pytest.approx(-0.5)  # worse than no-trade


def test_score_is_nan_without_room_for_improvement_or_optimum():
    assert math.isnan(score(100.0, 90.0, 100.0))
    assert math.isnan(score(100.0, 90.0, math.nan))


def test_gini_of_equal_savings_is_zero_and_of_one_winner_is_one_minus_one_over_n():
    assert gini([5.0, 5.0, 5.0]) == 0.0
    assert gini([0.0, 0.0, 0.0, 8.0]) == pytest.approx(0.75)
    assert math.isnan(gini([0.0, 0.0]))


def test_gini_stays_within_one_minus_one_over_n_with_negative_savings():
    assert gini([-10.0, 10.0]) == pytest.approx(0.5)
    assert 0.0 <= gini([-3.0, 1.0, 7.0, -2.0]) <= 0.75


def test_cost_is_summed_over_steps_and_agents():
    m = episode_metrics(hand_made())
    assert m.cost == 10.0 and m.cost_per_agent == {"A": 4.0, "B": 6.0}


def test_traded_kwh_counts_each_trade_once():
    assert episode_metrics(hand_made()).traded_kwh == 10.0


def test_gains_from_trade_compare_settlement_with_grid_only_settlement():
    # grid only: step 0 A exports 10 at 0.1 (-1), B imports 10 at 0.3 (3); step 1 B 4 x 0.3
    grid_only = -1.0 + 3.0 + 1.2
    # actual: they traded 10 kWh at 0.2 (A +2, B -2), B imported 4 at 0.3, fee 0.1 in total
    settlement = np.array([[-2.0, 2.0 + 0.1], [0.0, 1.2]])
    assert gains_from_trade(hand_made(settlement=settlement)) == pytest.approx(
        grid_only - (0.1 + 1.2))


def test_peak_import_is_the_largest_upstream_import_never_negative():
    assert episode_metrics(hand_made()).peak_import_kw == 9.0
    assert episode_metrics(hand_made(upstream_import_kw=np.array([-3.0, -1.0]))
                           ).peak_import_kw == 0.0


def test_self_sufficiency_is_one_minus_grid_import_over_load():
    assert episode_metrics(hand_made()).self_sufficiency == pytest.approx(1 - 4.0 / 40.0)


def test_violation_share_is_the_share_of_steps_with_any_violation():
    assert episode_metrics(hand_made()).violation_share == 0.5


def test_losses_are_integrated_over_the_step_length():
    assert episode_metrics(hand_made()).losses_kwh == pytest.approx((2.0 + 4.0) * 0.5)


def test_savings_worse_off_share_and_score_against_references():
    ref = metrics(100.0, {"A": 60.0, "B": 40.0})
    opt = metrics(70.0, {"A": 40.0, "B": 30.0}, gains=20.0)
    pol = metrics(85.0, {"A": 40.0, "B": 45.0}, gains=5.0)
    rel = relative_metrics(pol, ref, opt)
    assert rel["saving_A"] == 20.0 and rel["saving_B"] == -5.0
    assert rel["share_worse_off"] == 0.5
    assert rel["score"] == pytest.approx(0.5)
    assert rel["gains_vs_opt"] == pytest.approx(0.25)
    assert rel["gini_savings"] == pytest.approx(gini([20.0, -5.0]))


def test_round_off_does_not_count_as_worse_off():
    ref = metrics(100.0, {"A": 50.0, "B": 50.0})
    pol = metrics(100.0, {"A": 50.0 + 1e-9, "B": 50.0 - 1e-9})
    assert relative_metrics(pol, ref, None)["share_worse_off"] == 0.0
