"""The market-design scenario: heterogeneous microgrids where the clearing rule matters."""

from __future__ import annotations

import pytest

import powergrid
from benchmarks.bench_market_design import measure
from heron.market import CLEARING_RULES

SCENARIO = "market-4mg-v1"


def test_market_scenario_has_four_heterogeneous_microgrids() -> None:
    specs = powergrid.make(SCENARIO).config.microgrids
    devices = {tuple(sorted(type(d).__name__ for d in m.devices)) for m in specs}
    assert len(specs) >= 4 and len(devices) == len(specs)
    assert {m.load_profile for m in specs} == {"commercial", "residential"}
    assert len({m.peak_load_kw for m in specs}) == len(specs)


@pytest.fixture(scope="module")
def one_day() -> dict[str, dict[str, float]]:
    day = powergrid.scenarios[SCENARIO].test_days[0]
    return {r: measure(SCENARIO, "reservation", r, [day]) for r in CLEARING_RULES}


def test_each_clearing_rule_sets_a_different_price(one_day: dict) -> None:
    prices = [m["price"] for m in one_day.values()]
    assert len({round(p, 4) for p in prices}) == len(prices), prices


def test_pay_as_bid_gives_sellers_more_than_uniform(one_day: dict) -> None:
    assert one_day["pay_as_bid"]["price"] > one_day["uniform"]["price"]


def test_mcafee_trades_less_and_keeps_a_surplus(one_day: dict) -> None:
    assert 0 < one_day["mcafee"]["kwh/day"] < one_day["uniform"]["kwh/day"]
    assert one_day["mcafee"]["surplus $/day"] > 0
    assert all(one_day[r]["surplus $/day"] == 0 for r in ("uniform", "pay_as_bid", "cda"))


def test_rules_with_the_same_volume_split_the_same_gains_differently(one_day: dict) -> None:
    same = [one_day[r] for r in ("uniform", "pay_as_bid", "cda")]
    assert all(m["gains $/day"] == pytest.approx(same[0]["gains $/day"]) for m in same)
    assert len({round(m["gini"], 3) for m in same}) == 3
