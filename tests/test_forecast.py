"""The forecast error model: unbiased, growing with lead time, seeded, reproducibly calibrated."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powergrid.data.forecast import KINDS, MAX_LEAD_HOURS, SIGMA_BY_LEAD, calibrate, forecast


def test_calibration_reproduces_the_shipped_table() -> None:
    fitted = calibrate()
    for kind in KINDS:
        assert np.allclose(fitted[kind], SIGMA_BY_LEAD[kind], atol=5e-4), kind


@pytest.mark.parametrize("kind", KINDS)
def test_error_std_grows_with_lead_and_is_zero_at_lead_zero(kind: str) -> None:
    table = np.array(SIGMA_BY_LEAD[kind])
    assert table[0] == 0.0 and np.all(np.diff(table) >= 0) and table[6] > table[1]


@pytest.mark.parametrize("kind", KINDS)
def test_measured_relative_error_std_matches_the_table_and_grows(kind: str) -> None:
    rng = np.random.default_rng(0)
    actual = np.full(200_000, 3.0)
    stds = [np.std(forecast(actual, lead, rng, kind=kind) / 3.0 - 1.0) for lead in (1, 3, 12)]
    assert np.allclose(stds, [SIGMA_BY_LEAD[kind][k] for k in (1, 3, 12)], rtol=0.03)
    assert stds[0] < stds[1]


@pytest.mark.parametrize("lead", [1, 6, 24])
def test_forecast_is_unbiased(lead: int) -> None:
    actual = np.linspace(0.5, 2.0, 100_000)
    f = forecast(actual, lead, np.random.default_rng(1), kind="pv")
    # mean of m is 1 with std <= 0.37: 5 standard errors
    assert abs(np.mean(f / actual) - 1.0) < 5 * 0.37 / np.sqrt(actual.size)


def test_lead_zero_is_the_actual_value() -> None:
    actual = np.array([[0.0, 1.5], [2.0, 7.0]])
    assert np.array_equal(forecast(actual, 0, np.random.default_rng(3), kind="load_commercial"),
                          actual)


def test_same_seed_same_forecast_and_different_seed_differs() -> None:
    actual, lead = np.ones((4, 24)), np.arange(24)
    first = forecast(actual, lead, np.random.default_rng(7), kind="pv")
    assert np.array_equal(first, forecast(actual, lead, np.random.default_rng(7), kind="pv"))
    assert not np.array_equal(first, forecast(actual, lead, np.random.default_rng(8), kind="pv"))


def test_batched_leads_broadcast_against_actual() -> None:
    actual = np.ones((3, 5))
    lead = np.array([0, 1, 2, 30, 1000])  # leads past the table saturate
    out = forecast(actual, lead, np.random.default_rng(0), kind="load_residential")
    assert out.shape == (3, 5) and np.array_equal(out[:, 0], actual[:, 0])
    assert MAX_LEAD_HOURS == len(SIGMA_BY_LEAD["pv"]) - 1


@given(st.lists(st.floats(0.0, 1e4), min_size=1, max_size=30), st.integers(0, 100),
       st.integers(0, 2**32 - 1))
def test_forecast_is_never_negative_and_zero_stays_zero(actual: list[float], lead: int,
                                                        seed: int) -> None:
    x = np.array(actual)
    f = forecast(x, lead, np.random.default_rng(seed), kind="pv")
    assert np.all(f >= 0) and np.all(f[x == 0] == 0) and np.all(np.isfinite(f))


@pytest.mark.parametrize(("args", "match"), [
    (([np.nan], 1), "NaN"),
    (([-1.0], 1), ">= 0"),
    (([1.0], -1), "lead_hours must be >= 0"),
    (([1.0], 1.5), "integers"),
])
def test_bad_input_rejected_naming_it(args: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        forecast(*args, np.random.default_rng(0), kind="pv")


def test_unknown_kind_and_bad_rng_rejected() -> None:
    with pytest.raises(ValueError, match="kind"):
        forecast([1.0], 1, np.random.default_rng(0), kind="wind")
    with pytest.raises(ValueError, match="Generator"):
        forecast([1.0], 1, 0, kind="pv")  # type: ignore[arg-type]
