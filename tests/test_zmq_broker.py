"""The ZeroMQ broker: endpoints as processes, same messages as the in-memory broker."""

from __future__ import annotations

import copy
import os
import pickle
import time
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("zmq", reason="the [distributed] extra (pyzmq) is not installed")

from heron.messaging import Broker, InMemoryBroker, Message, ZmqBroker  # noqa: E402


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie has exited; only its parent's wait() would remove it
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def _wait_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


@pytest.fixture(scope="module")
def broker() -> Iterator[ZmqBroker]:
    with ZmqBroker(latency_steps=1, drop_prob=0.3, seed=5) as b:
        for name in ("a", "b", "c"):
            b.register(name)
        yield b


def _script(b: Broker) -> list[tuple[int, str, list[Message]]]:
    """A lossy, delayed exchange among three endpoints; what each receives, step by step."""
    b.reset(5)
    seen = []
    for step in range(6):
        b.deliver(step)
        for i, (src, dst) in enumerate([("a", "b"), ("c", "b"), ("b", "a"), ("a", "c")]):
            b.send(Message(src, dst, "order" if i % 2 else "price", {"i": i, "t": step}, step))
        for name in ("a", "b", "c"):
            seen.append((step, name, b.receive(name, "price") + b.receive(name)))
    return seen


def test_zmq_broker_implements_broker_interface(broker: ZmqBroker) -> None:
    assert isinstance(broker, Broker)


def test_every_endpoint_is_its_own_process(broker: ZmqBroker) -> None:
    pids = broker.pids
    assert sorted(pids) == ["a", "b", "c"]
    assert len(set(pids.values())) == 3 and os.getpid() not in pids.values()
    assert all(_alive(p) for p in pids.values())


def test_same_messages_in_same_order_as_in_memory_broker_with_latency_and_loss(
        broker: ZmqBroker) -> None:
    memory = InMemoryBroker(latency_steps=1, drop_prob=0.3, seed=5)
    for name in ("a", "b", "c"):
        memory.register(name)
    assert _script(broker) == _script(memory)
    assert broker.stats == memory.stats and broker.stats.dropped > 0


_OPS = st.lists(st.one_of(
    st.tuples(st.just("send"), st.sampled_from("abc"), st.sampled_from("abc"),
              st.sampled_from(["x", "y"])),
    st.tuples(st.just("tick")),
    st.tuples(st.just("receive"), st.sampled_from("abc"), st.sampled_from([None, "x", "y"]))),
    max_size=30)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_OPS, seed=st.integers(0, 2**16))
def test_any_script_receives_exactly_what_the_in_memory_broker_would(
        broker: ZmqBroker, ops: list[tuple], seed: int) -> None:
    memory = InMemoryBroker(latency_steps=1, drop_prob=0.3)
    for name in "abc":
        memory.register(name)
    for b in (broker, memory):
        b.reset(seed)
    for n, op in enumerate(ops):
        if op[0] == "send":
            for b in (broker, memory):
                b.send(Message(op[1], op[2], op[3], n, b.step))
        elif op[0] == "tick":
            for b in (broker, memory):
                b.deliver(b.step + 1)
        else:
            assert broker.receive(op[1], op[2]) == memory.receive(op[1], op[2])
    assert broker.stats == memory.stats


def test_reset_discards_unread_and_in_flight_messages(broker: ZmqBroker) -> None:
    broker.reset(1)
    broker.send(Message("a", "b", "t", 1))
    broker.reset(1)
    broker.deliver(3)
    assert broker.receive("b") == []


def test_unknown_recipient_rejected_before_anything_is_sent(broker: ZmqBroker) -> None:
    with pytest.raises(ValueError, match="unknown recipient 'ghost'"):
        broker.send(Message("a", "ghost", "t", 1))


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda b: pickle.loads(pickle.dumps(b))],
                         ids=["deepcopy", "pickle"])
def test_copy_is_an_in_memory_broker_that_delivers_the_same_messages(broker: ZmqBroker,
                                                                     clone) -> None:
    broker.reset(9)
    for step in range(3):  # leave messages unread, due and in flight (latency 1)
        broker.deliver(step)
        for i in range(4):
            broker.send(Message("a", "bc"[i % 2], "t", (step, i), step))
    broker.receive("c")
    twin = clone(broker)
    assert type(twin) is InMemoryBroker and twin.stats == broker.stats
    for b in (broker, twin):
        b.send(Message("b", "a", "t", "late", 2))
        b.deliver(3)
    assert [twin.receive(n) for n in "abc"] == [broker.receive(n) for n in "abc"]


def test_close_stops_every_process_and_is_idempotent() -> None:
    b = ZmqBroker()
    for name in ("x", "y"):
        b.register(name)
    b.send(Message("x", "y", "t", 1))
    pids = list(b.pids.values())
    b.close()
    b.close()
    assert _wait_gone(pids) == []
    with pytest.raises(RuntimeError, match="closed"):
        b.receive("y")


def test_endpoints_exit_when_their_broker_process_dies_without_closing() -> None:
    import subprocess
    import sys

    script = ("import os; from heron.messaging import ZmqBroker, Message\n"
              "b = ZmqBroker()\n"
              "for n in 'xy': b.register(n)\n"
              "b.send(Message('x', 'y', 't', 1))\n"
              "print(' '.join(str(p) for p in b.pids.values()), flush=True)\n"
              "os._exit(0)  # no close(), no atexit: a crash\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    pids = [int(p) for p in out.split()]
    assert len(pids) == 2 and _wait_gone(pids) == []


def test_endpoint_that_dies_gives_a_timeout_naming_it() -> None:
    b = ZmqBroker(timeout_s=60.0)  # a dead process is reported at once, not at the timeout
    for name in ("x", "y"):
        b.register(name)
    b.send(Message("x", "y", "t", 1))
    os.kill(b.pids["y"], 9)
    with pytest.raises(TimeoutError, match="endpoint 'y'.*exited"):
        b.receive("y")
    assert b.closed and _wait_gone(list(b.pids.values())) == []


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), "5"])
def test_invalid_timeout_rejected(timeout: object) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        ZmqBroker(timeout_s=timeout)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the env over ZeroMQ
def _episode(cfg: dict, seed: int = 3) -> tuple[list, list, list[int]]:
    from powergrid.baselines import RuleBasedPolicy
    from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

    env = MultiAgentMicrogrids({"start_day": 172, "centralized": False, **cfg})
    policy = RuleBasedPolicy(env)
    obs, _ = env.reset(seed=seed)
    rewards, infos = [], []
    while env.agents:
        obs, rew, _, _, info = env.step(policy(obs))
        rewards.append(rew)
        infos.append(info)
    pids = list(env._coord.broker.pids.values()) if cfg.get("broker") == "zmq" else []
    env.close()
    return rewards, infos, pids


def _same(x: object, y: object) -> bool:
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, list | tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))  # type: ignore[arg-type]
    if isinstance(x, np.ndarray):
        return np.array_equal(x, y, equal_nan=True)
    if isinstance(x, float) and np.isnan(x):
        return isinstance(y, float) and np.isnan(y)
    return x == y


@pytest.mark.slow
@pytest.mark.parametrize("knobs", [{}, {"latency_steps": 1, "drop_prob": 0.2}],
                         ids=["lossless", "latency+loss"])
def test_env_episode_over_zmq_equals_in_memory_broker(knobs: dict) -> None:
    """A full 24-hour episode, rule-based policy: every reward and info equal, processes gone."""
    rew_mem, info_mem, _ = _episode({**knobs, "broker": "memory"})
    rew_zmq, info_zmq, pids = _episode({**knobs, "broker": "zmq"})
    assert len(rew_zmq) == 24 and len(pids) == 4  # MG1, MG2, market, DSO
    assert _same(rew_zmq, rew_mem)
    assert _same(info_zmq, info_mem)
    assert _wait_gone(pids) == []


def test_broker_zmq_needs_distributed_mode() -> None:
    from powergrid.envs.multi_agent_microgrids import MultiAgentMicrogrids

    with pytest.raises(ValueError, match="'broker'.*centralized"):
        MultiAgentMicrogrids({"broker": "zmq"})
