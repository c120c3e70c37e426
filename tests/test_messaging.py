"""Behaviour of messages and the in-memory broker."""

from __future__ import annotations

import copy
import pickle

import pytest

from heron.messaging import Broker, BrokerStats, InMemoryBroker, Message


def make_broker(*agents: str, **kwargs: object) -> InMemoryBroker:
    broker = InMemoryBroker(**kwargs)  # type: ignore[arg-type]
    for agent in agents:
        broker.register(agent)
    return broker


def test_in_memory_broker_implements_broker_interface() -> None:
    assert isinstance(InMemoryBroker(), Broker)


def test_message_is_immutable() -> None:
    message = Message("a", "b", "price", 1.0)
    with pytest.raises(AttributeError):
        message.topic = "other"  # type: ignore[misc]


def test_message_rejects_negative_sent_at() -> None:
    with pytest.raises(ValueError, match="sent_at"):
        Message("a", "b", "t", None, sent_at=-1)


def test_zero_latency_message_is_receivable_in_same_step() -> None:
    broker = make_broker("a", "b")
    broker.send(Message("a", "b", "t", 42))
    assert [m.payload for m in broker.receive("b")] == [42]


@pytest.mark.parametrize("latency", [1, 3, 7])
def test_latency_delays_delivery_exactly_n_steps(latency: int) -> None:
    broker = make_broker("a", "b", latency_steps=latency)
    broker.deliver(2)
    broker.send(Message("a", "b", "t", "hi", sent_at=2))
    for step in range(2, 2 + latency):
        broker.advance(step)
        assert broker.receive("b") == [], f"delivered early at step {step}"
    broker.advance(2 + latency)
    assert [m.payload for m in broker.receive("b")] == ["hi"]


def test_drop_prob_one_drops_all() -> None:
    broker = make_broker("a", "b", drop_prob=1.0, seed=0)
    for i in range(50):
        broker.send(Message("a", "b", "t", i))
    assert broker.receive("b") == []
    assert broker.stats == BrokerStats(sent=50, delivered=0, dropped=50)


def _delivered_payloads(seed: int, n: int = 2000) -> list[int]:
    broker = make_broker("a", "b", drop_prob=0.3, seed=seed)
    for i in range(n):
        broker.send(Message("a", "b", "t", i))
    return [m.payload for m in broker.receive("b")]


def test_seeded_drops_are_deterministic() -> None:
    assert _delivered_payloads(seed=7) == _delivered_payloads(seed=7)


def test_drop_prob_drops_roughly_that_fraction() -> None:
    dropped = 2000 - len(_delivered_payloads(seed=7))
    # Binomial(2000, 0.3) has sd ~20.5; +-5 sd keeps this test non-flaky for any seed.
    assert 500 <= dropped <= 700


def test_reset_replays_the_same_drops() -> None:
    broker = make_broker("a", "b", drop_prob=0.5, seed=3)
    for i in range(100):
        broker.send(Message("a", "b", "t", i))
    kept_first = [m.payload for m in broker.receive("b")]
    broker.reset()
    for i in range(100):
        broker.send(Message("a", "b", "t", i))
    assert [m.payload for m in broker.receive("b")] == kept_first


def test_unknown_recipient_rejected() -> None:
    broker = make_broker("a")
    with pytest.raises(ValueError, match="unknown recipient 'ghost'"):
        broker.send(Message("a", "ghost", "t", 1))


def test_unknown_sender_rejected() -> None:
    broker = make_broker("b")
    with pytest.raises(ValueError, match="unknown sender 'ghost'"):
        broker.send(Message("ghost", "b", "t", 1))


def test_receive_drains_inbox() -> None:
    broker = make_broker("a", "b")
    broker.send(Message("a", "b", "t", 1))
    assert len(broker.receive("b")) == 1
    assert broker.receive("b") == []


def test_receive_preserves_send_order() -> None:
    broker = make_broker("a", "b", "c")
    broker.send(Message("a", "c", "t", 1))
    broker.send(Message("b", "c", "t", 2))
    broker.send(Message("a", "c", "t", 3))
    assert [m.payload for m in broker.receive("c")] == [1, 2, 3]


def test_topic_filter_takes_only_that_topic_and_keeps_the_rest() -> None:
    broker = make_broker("a", "b")
    broker.send(Message("a", "b", "price", 1))
    broker.send(Message("a", "b", "bid", 2))
    broker.send(Message("a", "b", "price", 3))
    assert [m.payload for m in broker.receive("b", topic="price")] == [1, 3]
    assert [m.payload for m in broker.receive("b")] == [2]


def test_broadcast_sends_to_every_recipient() -> None:
    broker = make_broker("op", "x", "y")
    sent = broker.broadcast("op", "price", 0.4, ["x", "y"])
    assert [m.recipient for m in sent] == ["x", "y"]
    assert [m.payload for m in broker.receive("x")] == [0.4]
    assert [m.payload for m in broker.receive("y")] == [0.4]


def test_stats_count_sent_delivered_dropped() -> None:
    broker = make_broker("a", "b", latency_steps=1)
    broker.send(Message("a", "b", "t", 1))
    broker.send(Message("a", "b", "t", 2))
    assert broker.stats == BrokerStats(sent=2, delivered=0, dropped=0)
    broker.deliver(1)
    assert broker.stats == BrokerStats(sent=2, delivered=2, dropped=0)


def test_reset_clears_messages_and_stats_but_keeps_registrations() -> None:
    broker = make_broker("a", "b", latency_steps=2)
    broker.send(Message("a", "b", "t", 1))
    broker.reset()
    assert broker.stats == BrokerStats()
    assert broker.step == 0
    broker.advance(5)
    assert broker.receive("b") == []


def test_time_cannot_go_backwards() -> None:
    broker = make_broker("a")
    broker.advance(3)
    with pytest.raises(ValueError, match="backwards"):
        broker.advance(2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"latency_steps": -1}, "latency_steps"),
        ({"latency_steps": 1.5}, "latency_steps"),
        ({"drop_prob": -0.1}, "drop_prob"),
        ({"drop_prob": 1.1}, "drop_prob"),
        ({"drop_prob": float("nan")}, "drop_prob"),
    ],
)
def test_invalid_knobs_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        InMemoryBroker(**kwargs)  # type: ignore[arg-type]


def test_pickle_roundtrip_preserves_in_flight_messages_and_rng() -> None:
    broker = make_broker("a", "b", latency_steps=1, drop_prob=0.5, seed=11)
    for i in range(20):
        broker.send(Message("a", "b", "t", i))
    clone = pickle.loads(pickle.dumps(broker))
    twin = copy.deepcopy(broker)
    for b in (broker, clone, twin):
        for i in range(20, 40):
            b.send(Message("a", "b", "t", i))
        b.advance(1)
    expected = [m.payload for m in broker.receive("b")]
    assert [m.payload for m in clone.receive("b")] == expected
    assert [m.payload for m in twin.receive("b")] == expected
    assert clone.stats == broker.stats


def test_message_pickle_roundtrip() -> None:
    message = Message("a", "b", "t", {"q": [1, 2]}, sent_at=4)
    assert pickle.loads(pickle.dumps(message)) == message


def test_payload_mutated_by_sender_after_send_does_not_reach_recipient() -> None:
    broker = make_broker("a", "b", latency_steps=1)
    payload = {"price": 0.1, "orders": [1, 2]}
    broker.send(Message("a", "b", "t", payload))
    payload["price"] = 99.0
    payload["orders"].append(3)
    broker.deliver(1)
    assert broker.receive("b")[0].payload == {"price": 0.1, "orders": [1, 2]}


def test_broadcast_recipients_get_independent_payloads() -> None:
    broker = make_broker("a", "b", "c")
    broker.broadcast("a", "t", [1.0], ["b", "c"])
    got_b, got_c = broker.receive("b")[0].payload, broker.receive("c")[0].payload
    got_b.append(2.0)
    assert got_c == [1.0]


def test_immutable_market_payloads_are_shared_not_copied() -> None:
    from heron.market import Order

    order = Order("a", "buy", 1.0, 0.1)
    assert Message("a", "b", "order", (0, order)).payload[1] is order


def test_message_with_uncopyable_payload_is_rejected() -> None:
    import threading

    with pytest.raises(TypeError, match="cannot be copied"):
        Message("a", "b", "t", threading.Lock())


@pytest.mark.parametrize("field", ["sender", "recipient", "topic"])
def test_message_endpoints_and_topic_must_be_non_empty_strings(field: str) -> None:
    kwargs = {"sender": "a", "recipient": "b", "topic": "t", "payload": None}
    kwargs[field] = 5
    with pytest.raises(ValueError, match=field):
        Message(**kwargs)


def test_message_with_copied_payload_still_pickles() -> None:
    message = Message("a", "b", "t", {"x": [1, 2]}, 3)
    assert pickle.loads(pickle.dumps(message)) == message
