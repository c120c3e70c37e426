"""Behaviour of distributed-averaging consensus."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from heron.protocols.base import HorizontalProtocol
from heron.protocols.consensus import ConsensusProtocol, ConsensusResult

peer_values = st.lists(
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=2,
    max_size=10,
)


def as_peers(xs: list[float]) -> dict[str, float]:
    return {f"p{i}": x for i, x in enumerate(xs)}


def assert_agrees_on(result: ConsensusResult, target: float, scale: float) -> None:
    tol = 1e-5 * max(1.0, scale)
    assert result.converged
    assert result.value == pytest.approx(target, abs=tol)
    for v in result.values.values():
        assert v == pytest.approx(target, abs=tol)


def test_is_a_horizontal_protocol_named_consensus() -> None:
    assert ConsensusProtocol.name == "consensus"
    assert isinstance(ConsensusProtocol(), HorizontalProtocol)


@settings(deadline=None, max_examples=50)
@given(peer_values)
def test_complete_graph_converges_to_exact_average(xs: list[float]) -> None:
    result = ConsensusProtocol(topology="complete").agree(as_peers(xs))
    assert_agrees_on(result, math.fsum(xs) / len(xs), max(map(abs, xs)))


@settings(deadline=None, max_examples=50)
@given(peer_values)
def test_ring_graph_converges_to_exact_average(xs: list[float]) -> None:
    # A 10-ring mixes slowly (second eigenvalue ~0.87), so give it room.
    result = ConsensusProtocol(topology="ring", max_iterations=1000).agree(as_peers(xs))
    assert_agrees_on(result, math.fsum(xs) / len(xs), max(map(abs, xs)))


@settings(deadline=None, max_examples=30)
@given(peer_values)
def test_laplacian_step_size_converges_to_exact_average(xs: list[float]) -> None:
    proto = ConsensusProtocol(topology="ring", step_size=0.3, max_iterations=5000)
    result = proto.agree(as_peers(xs))
    assert_agrees_on(result, math.fsum(xs) / len(xs), max(map(abs, xs)))


@settings(deadline=None, max_examples=50)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
            st.floats(min_value=0.1, max_value=10.0),
        ),
        min_size=2,
        max_size=10,
    )
)
def test_weighted_consensus_converges_to_weighted_average(pairs: list[tuple[float, float]]) -> None:
    values = {f"p{i}": x for i, (x, _) in enumerate(pairs)}
    weights = {f"p{i}": w for i, (_, w) in enumerate(pairs)}
    target = math.fsum(x * w for x, w in pairs) / math.fsum(w for _, w in pairs)
    result = ConsensusProtocol(topology="ring", max_iterations=2000).agree(values, weights)
    assert_agrees_on(result, target, max(abs(x) for x, _ in pairs))


def test_custom_topology_mapping_is_treated_as_undirected() -> None:
    # Only one direction of each edge listed: a path a - b - c.
    proto = ConsensusProtocol(topology={"a": ["b"], "b": ["c"]}, max_iterations=500)
    result = proto.agree({"a": 0.0, "b": 3.0, "c": 9.0})
    assert_agrees_on(result, 4.0, 9.0)


def test_disconnected_graph_reports_not_converged() -> None:
    proto = ConsensusProtocol(topology={"a": ["b"], "c": ["d"]})
    result = proto.agree({"a": 0.0, "b": 2.0, "c": 10.0, "d": 12.0})
    assert not result.converged
    assert result.residual == pytest.approx(10.0)
    assert result.iterations <= proto.max_iterations


def test_max_iterations_one_reports_not_converged_with_finite_residual() -> None:
    proto = ConsensusProtocol(topology="ring", max_iterations=1)
    result = proto.agree(as_peers([0.0, 1.0, 5.0, 9.0, -3.0, 2.0]))
    assert not result.converged
    assert result.iterations == 1
    assert math.isfinite(result.residual) and result.residual > 0


def test_single_peer_converges_in_zero_iterations() -> None:
    result = ConsensusProtocol().agree({"solo": 3.5})
    assert result == ConsensusResult(3.5, {"solo": 3.5}, 0, True, 0.0)


def test_already_agreeing_peers_converge_in_zero_iterations() -> None:
    result = ConsensusProtocol(topology="ring").agree(as_peers([2.0, 2.0, 2.0]))
    assert result.converged and result.iterations == 0


def test_empty_values_rejected() -> None:
    with pytest.raises(ValueError, match="at least one peer"):
        ConsensusProtocol().agree({})


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        ConsensusProtocol().agree({"a": 1.0, "b": bad})


def test_topology_with_unknown_peer_rejected() -> None:
    proto = ConsensusProtocol(topology={"a": ["ghost"]})
    with pytest.raises(ValueError, match="unknown peers \\['ghost'\\]"):
        proto.agree({"a": 1.0, "b": 2.0})


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"a": 1.0}, "missing \\['b'\\]"),
        ({"a": 1.0, "b": 1.0, "c": 1.0}, "extra \\['c'\\]"),
        ({"a": 1.0, "b": 0.0}, "> 0"),
        ({"a": 1.0, "b": math.nan}, "finite"),
    ],
)
def test_invalid_weights_rejected(weights: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ConsensusProtocol().agree({"a": 1.0, "b": 2.0}, weights)


def test_unstable_step_size_rejected() -> None:
    with pytest.raises(ValueError, match="step_size"):
        ConsensusProtocol(topology="ring", step_size=0.5).agree(as_peers([1.0, 2.0, 3.0]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tolerance": 0.0}, "tolerance"),
        ({"tolerance": math.nan}, "tolerance"),
        ({"max_iterations": 0}, "max_iterations"),
        ({"step_size": -0.1}, "step_size"),
        ({"topology": "star"}, "unknown topology"),
        ({"topology": {"a": "b"}}, "neighbours of 'a'"),
    ],
)
def test_invalid_config_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ConsensusProtocol(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("weight", [1e308, 5e-324, 1.7976931348623157e308])
def test_extreme_but_equal_weights_give_the_plain_average(weight):
    res = ConsensusProtocol().agree({"a": 1.0, "b": 2.0, "c": 6.0},
                                    {"a": weight, "b": weight, "c": weight})
    assert res.converged and res.value == pytest.approx(3.0)
    assert all(v == pytest.approx(3.0) for v in res.values.values())


@pytest.mark.parametrize("topology", ["complete", "ring"])
def test_values_near_the_float_limit_average_without_overflow(topology):
    big = 1.7e308
    res = ConsensusProtocol(topology=topology, max_iterations=500).agree(
        {"a": big, "b": big, "c": -big, "d": big})
    assert math.isfinite(res.value) and math.isfinite(res.residual)
    assert res.value == pytest.approx(big / 2)
    assert all(math.isfinite(v) for v in res.values.values())


def test_weights_spanning_beyond_float_precision_are_rejected_clearly():
    with pytest.raises(ValueError, match="weights span more than 280 orders of magnitude"):
        ConsensusProtocol().agree({"a": 1.0, "b": 2.0}, {"a": 5e-324, "b": 1.0})


@settings(max_examples=200, deadline=None)
@given(xs=st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=6),
       ws=st.lists(st.floats(min_value=1e-130, max_value=1e130), min_size=6, max_size=6),
       common=st.sampled_from([1.0, 1e170, 1e-170, 1.7e178]))
def test_finite_inputs_always_give_finite_results_within_the_input_range(xs, ws, common):
    res = ConsensusProtocol(max_iterations=20).agree(
        as_peers(xs), {f"p{i}": w * common for i, w in zip(range(len(xs)), ws)})
    assert math.isfinite(res.value) and math.isfinite(res.residual)
    assert min(xs) <= res.value <= max(xs)
    assert all(min(xs) <= v <= max(xs) for v in res.values.values())
