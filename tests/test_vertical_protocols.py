"""Behaviour of the set-point and price-signal vertical protocols."""

from __future__ import annotations

import math

import numpy as np
import pytest

from heron.protocols.base import VerticalProtocol
from heron.protocols.vertical import PriceSignalProtocol, SetpointProtocol

# --- SetpointProtocol -------------------------------------------------------------------


def test_protocol_names_and_direction() -> None:
    assert SetpointProtocol.name == "setpoint"
    assert PriceSignalProtocol.name == "price_signal"
    assert isinstance(SetpointProtocol(), VerticalProtocol)
    assert isinstance(PriceSignalProtocol(), VerticalProtocol)


def test_dispatch_returns_arrays_for_addressed_children_only() -> None:
    out = SetpointProtocol().dispatch({"b": 2.0, "a": [1.0, 3.0]}, ["a", "b", "c"])
    assert list(out) == ["a", "b"]
    np.testing.assert_array_equal(out["a"], [1.0, 3.0])
    np.testing.assert_array_equal(out["b"], [2.0])


def test_dispatch_copies_so_children_cannot_mutate_parent_setpoints() -> None:
    original = np.array([1.0, 2.0])
    out = SetpointProtocol().dispatch({"a": original}, ["a"])
    out["a"][0] = 99.0
    assert original[0] == 1.0


def test_dispatch_rejects_unknown_child() -> None:
    with pytest.raises(ValueError, match="unknown children \\['z'\\]"):
        SetpointProtocol().dispatch({"z": 1.0}, ["a"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), [1.0, -math.inf]])
def test_dispatch_rejects_non_finite(bad: object) -> None:
    with pytest.raises(ValueError, match="finite"):
        SetpointProtocol().dispatch({"a": bad}, ["a"])  # type: ignore[dict-item]


def test_tracking_error_is_absolute_difference_for_scalars() -> None:
    assert SetpointProtocol().tracking_error(2.0, 3.5) == pytest.approx(1.5)


def test_tracking_error_is_l1_for_arrays() -> None:
    err = SetpointProtocol().tracking_error(np.array([1.0, 2.0]), np.array([0.0, 4.0]))
    assert err == pytest.approx(3.0)


def test_tracking_error_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        SetpointProtocol().tracking_error([1.0, 2.0], [1.0, 2.0, 3.0])


def test_penalty_is_weighted_tracking_error() -> None:
    assert SetpointProtocol(tracking_weight=0.5).penalty(1.0, -1.0) == pytest.approx(1.0)
    assert SetpointProtocol().penalty(1.0, -1.0) == 0.0


def test_negative_tracking_weight_rejected() -> None:
    with pytest.raises(ValueError, match="tracking_weight"):
        SetpointProtocol(tracking_weight=-1.0)


def test_proportional_split_follows_capacities_and_sums_to_total() -> None:
    split = SetpointProtocol.proportional_split(6.0, {"a": 1.0, "b": 2.0, "c": 3.0})
    assert split == pytest.approx({"a": 1.0, "b": 2.0, "c": 3.0})
    assert math.fsum(split.values()) == pytest.approx(6.0)


def test_proportional_split_zero_capacity_gives_zeros() -> None:
    assert SetpointProtocol.proportional_split(5.0, {"a": 0.0, "b": 0.0}) == {"a": 0.0, "b": 0.0}


def test_proportional_split_rejects_negative_capacity() -> None:
    with pytest.raises(ValueError, match="capacities must be >= 0"):
        SetpointProtocol.proportional_split(1.0, {"a": -1.0, "b": 2.0})


# --- PriceSignalProtocol ----------------------------------------------------------------


def test_fixed_mode_returns_scalar_base_every_step() -> None:
    proto = PriceSignalProtocol(0.3, mode="fixed")
    assert [proto.price(t) for t in range(3)] == [0.3, 0.3, 0.3]


def test_fixed_mode_indexes_sequence_modulo_length() -> None:
    proto = PriceSignalProtocol([0.1, 0.2, 0.3], mode="fixed")
    assert [proto.price(t) for t in range(5)] == [0.1, 0.2, 0.3, 0.1, 0.2]


def test_rule_mode_returns_base_when_balanced() -> None:
    assert PriceSignalProtocol(0.4).price(0, aggregate_net=0.0) == pytest.approx(0.4)


def test_rule_mode_raises_price_under_deficit_and_lowers_under_surplus() -> None:
    proto = PriceSignalProtocol(0.4)
    assert proto.price(0, aggregate_net=1.0) > 0.4 > proto.price(0, aggregate_net=-1.0)


def test_rule_mode_is_monotone_in_aggregate_net() -> None:
    proto = PriceSignalProtocol(0.5, sensitivity=0.8, scale=2.0)
    prices = [proto.price(0, aggregate_net=x) for x in np.linspace(-10, 10, 201)]
    assert all(b >= a for a, b in zip(prices, prices[1:], strict=False))


def test_rule_mode_matches_formula() -> None:
    proto = PriceSignalProtocol(0.5, sensitivity=0.5, scale=4.0)
    assert proto.price(0, aggregate_net=2.0) == pytest.approx(0.5 * (1 + 0.5 * math.tanh(0.5)))


def test_rule_mode_per_call_scale_overrides_configured_scale() -> None:
    proto = PriceSignalProtocol(0.5, scale=100.0)
    assert proto.price(0, aggregate_net=2.0, scale=1.0) == pytest.approx(
        0.5 * (1 + 0.5 * math.tanh(2.0))
    )


def test_rule_mode_respects_bounds() -> None:
    proto = PriceSignalProtocol(0.9, sensitivity=5.0, price_bounds=(0.2, 1.0))
    for net in (-1e6, -1.0, 0.0, 1.0, 1e6):
        assert 0.2 <= proto.price(0, aggregate_net=net) <= 1.0
    assert proto.price(0, aggregate_net=1e6) == 1.0
    assert proto.price(0, aggregate_net=-1e6) == 0.2


def test_rule_mode_requires_aggregate_net() -> None:
    with pytest.raises(ValueError, match="aggregate_net"):
        PriceSignalProtocol().price(0)


def test_per_call_base_overrides_configured_base() -> None:
    assert PriceSignalProtocol(0.5, mode="fixed").price(0, base=0.7) == 0.7


def test_default_base_is_mid_bounds() -> None:
    assert PriceSignalProtocol(price_bounds=(2.0, 4.0)).price(0, aggregate_net=0.0) == 3.0


@pytest.mark.parametrize(("action", "expected"), [(-1.0, 10.0), (0.0, 15.0), (1.0, 20.0)])
def test_agent_mode_maps_action_linearly_onto_bounds(action: float, expected: float) -> None:
    proto = PriceSignalProtocol(mode="agent", price_bounds=(10.0, 20.0))
    assert proto.price(0, action=action) == pytest.approx(expected)


def test_agent_mode_clips_out_of_range_actions() -> None:
    proto = PriceSignalProtocol(mode="agent", price_bounds=(10.0, 20.0))
    assert proto.price(0, action=3.0) == 20.0
    assert proto.price(0, action=-3.0) == 10.0


def test_agent_mode_requires_action() -> None:
    with pytest.raises(ValueError, match="action"):
        PriceSignalProtocol(mode="agent").price(0)


def test_broadcast_gives_every_child_the_same_price() -> None:
    assert PriceSignalProtocol().broadcast(0.25, ["a", "b"]) == {"a": 0.25, "b": 0.25}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"price_bounds": (1.0, 0.0)}, "low < high"),
        ({"price_bounds": (0.0, math.inf)}, "finite"),
        ({"mode": "auction"}, "unknown mode"),
        ({"base_price": math.nan}, "finite"),
        ({"base_price": 2.0}, "outside price_bounds"),
        ({"base_price": []}, "empty"),
        ({"base_price": [0.1, math.inf]}, "finite"),
        ({"sensitivity": -0.1}, "sensitivity"),
        ({"scale": 0.0}, "scale"),
    ],
)
def test_price_signal_invalid_config_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PriceSignalProtocol(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        ({"step": 0, "aggregate_net": math.nan}, "finite"),
        ({"step": -1, "aggregate_net": 0.0}, "step"),
        ({"step": 0, "aggregate_net": 0.0, "base": math.inf}, "finite"),
    ],
)
def test_price_invalid_call_rejected(call: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PriceSignalProtocol().price(**call)  # type: ignore[arg-type]


def test_agent_mode_rejects_non_finite_action() -> None:
    with pytest.raises(ValueError, match="finite"):
        PriceSignalProtocol(mode="agent").price(0, action=math.nan)


def test_broadcast_rejects_non_finite_price() -> None:
    with pytest.raises(ValueError, match="finite"):
        PriceSignalProtocol().broadcast(math.inf, ["a"])
