"""A broker whose endpoints are separate OS processes exchanging messages through ZeroMQ.

Needs the optional ``pyzmq`` (``pip install "heron-grid[distributed]"``). Every registered
endpoint (each microgrid, the market, the operator) is a process
(:mod:`heron.messaging._zmq_endpoint`) with its own sockets and inbox; a message travels as
bytes from the sender's process to the recipient's process over a ZeroMQ PUSH/PULL link.
The caller drives the endpoints through a control socket each (REQ/REP, with a timeout).

Latency and loss stay simulated in step time by :class:`ScheduledBroker` (seeded, decided
where the message is sent), not taken from the wall clock, so an episode through this broker
equals an :class:`InMemoryBroker` episode with the same knobs and seed, lossless or not; the
transport underneath is real. Payloads are pickled: endpoints bind to 127.0.0.1 only, and
must never be exposed to an untrusted network.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any

import zmq

from heron.messaging.broker import InMemoryBroker, ScheduledBroker
from heron.messaging.message import Message

ENDPOINT_MODULE = "heron.messaging._zmq_endpoint"
POLL_MS = 100  # while waiting for an answer, how often to check the endpoint is alive


class _Endpoints:
    """The processes and sockets behind one broker; closing it leaves nothing running.

    Separate from the broker so a finalizer can close it without keeping the broker alive.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_ms = int(timeout_s * 1000)
        self.ctx = zmq.Context()
        self.hello = self.ctx.socket(zmq.PULL)
        self.hello.setsockopt(zmq.LINGER, 0)
        port = self.hello.bind_to_random_port("tcp://127.0.0.1")
        self.hello_addr = f"tcp://127.0.0.1:{port}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.ctl: dict[str, zmq.Socket] = {}
        self.peer_addr: dict[str, str] = {}
        self.closed = False

    def spawn(self, name: str) -> None:
        root = str(Path(__file__).resolve().parents[2])  # the heron this process imported
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", ENDPOINT_MODULE, name, self.hello_addr, str(os.getpid())],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, env=env)

    def ready(self, name: str) -> None:
        """Wait until ``name`` (and any endpoint announcing itself before it) is up."""
        deadline = time.monotonic() + self.timeout_ms / 1000
        while name not in self.ctl:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not self.hello.poll(left):
                code = self.procs[name].poll()
                state = "is running" if code is None else f"exited with code {code}"
                raise TimeoutError(f"ZmqBroker endpoint {name!r} did not start within "
                                   f"{self.timeout_ms} ms (its process {state})")
            who, ctl_addr, peer_addr = self.hello.recv_pyobj()
            sock = self.ctx.socket(zmq.REQ)
            for opt, value in ((zmq.LINGER, 0), (zmq.RCVTIMEO, self.timeout_ms),
                               (zmq.SNDTIMEO, self.timeout_ms)):
                sock.setsockopt(opt, value)
            sock.connect(ctl_addr)
            self.ctl[who], self.peer_addr[who] = sock, peer_addr

    def call(self, name: str, command: str, *args: Any) -> Any:
        if self.closed:
            raise RuntimeError("ZmqBroker is closed")
        self.ready(name)
        sock, proc = self.ctl[name], self.procs[name]
        deadline = time.monotonic() + self.timeout_ms / 1000
        try:
            sock.send_pyobj((command, *args))
            # wait in slices, so an endpoint that died is reported at once, not at the timeout
            while not sock.poll(POLL_MS):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise zmq.Again()
            status, value = sock.recv_pyobj()
        except zmq.Again:
            code = proc.poll()
            state = "is running" if code is None else f"exited with code {code}"
            self.close()  # a REQ socket without its answer cannot be used again
            raise TimeoutError(f"ZmqBroker endpoint {name!r} did not answer {command!r} "
                               f"within {self.timeout_ms} ms (its process {state}); "
                               f"the broker is closed") from None
        if status != "ok":
            raise RuntimeError(f"ZmqBroker endpoint {name!r} failed on {command!r}: {value}")
        return value

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sock in self.ctl.values():
            try:  # a polite stop; whatever does not answer is killed below
                sock.setsockopt(zmq.RCVTIMEO, 1000)
                sock.send_pyobj(("stop",))
                sock.recv_pyobj()
            except zmq.ZMQError:
                pass
            sock.close(0)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.hello.close(0)
        self.ctx.term()


class ZmqBroker(ScheduledBroker):
    """Endpoints as processes, messages over ZeroMQ; same semantics as :class:`InMemoryBroker`.

    ``register`` starts the endpoint's process (processes start in parallel; the first use
    waits for them). ``timeout_s`` bounds every wait: a process that does not start, answer,
    or receive a message it was sent raises ``TimeoutError`` naming the endpoint. Call
    :meth:`close` (or use ``with``) to stop the processes; they also stop when this broker is
    garbage-collected, at interpreter exit, or when the calling process dies. A copy or
    pickle of it is an :class:`InMemoryBroker` in the same state (processes cannot be
    copied; the messages delivered from then on are the same).
    """

    def __init__(self, latency_steps: int = 0, drop_prob: float = 0.0,
                 seed: int | None = None, timeout_s: float = 10.0) -> None:
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or not (
                0 < timeout_s < float("inf")):
            raise ValueError(f"timeout_s must be a finite number of seconds > 0, "
                             f"got {timeout_s!r}")
        self._net = _Endpoints(float(timeout_s))
        self._finalizer = weakref.finalize(self, self._net.close)
        self._epoch = 0
        self._expected: dict[str, int] = {}
        super().__init__(latency_steps, drop_prob, seed)

    def register(self, agent_id: str) -> None:
        known = agent_id in self._registered
        super().register(agent_id)
        if not known:
            if self._net.closed:
                raise RuntimeError("ZmqBroker is closed")
            self._net.spawn(agent_id)

    def _reset_transport(self) -> None:
        self._epoch += 1  # envelopes still in transit from the last episode are discarded
        self._expected = {}  # endpoints empty their mailbox when they first see the new epoch

    def _transmit(self, message: Message, due: int) -> None:
        recipient = message.recipient
        self._net.ready(recipient)
        envelope = (self._epoch, due, self._seq, message.topic, pickle.dumps(message))
        self._net.call(message.sender, "send", self._net.peer_addr[recipient], envelope,
                       self._net.timeout_ms)
        self._expected[recipient] = self._expected.get(recipient, 0) + 1

    def _arrive(self, recipient: str, item: None) -> None:
        pass  # the recipient's process applies the same due rule itself

    def _take(self, agent_id: str, topic: str | None) -> list[Message]:
        # The endpoint waits for every message sent to it so far, then hands out those due:
        # what arrives does not depend on how fast the transport happened to be.
        blobs = self._net.call(agent_id, "take", self._epoch, self._step,
                               self._expected.get(agent_id, 0), topic,
                               self._net.timeout_ms // 2)
        return [pickle.loads(b) for b in blobs]

    @property
    def pids(self) -> dict[str, int]:
        """Process id of each endpoint."""
        return {name: proc.pid for name, proc in self._net.procs.items()}

    @property
    def closed(self) -> bool:
        return self._net.closed

    def close(self) -> None:
        """Stop every endpoint process and release the sockets (idempotent)."""
        self._finalizer()

    def __enter__(self) -> ZmqBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce__(self) -> Any:
        """Copies and pickles are :class:`InMemoryBroker` s in the same state: processes
        cannot be copied, and both brokers deliver the same messages from any state."""
        in_flight, inboxes = [], {}
        for name in self._registered:
            pending, inbox = self._net.call(name, "peek", self._epoch, self._step,
                                            self._expected.get(name, 0), None,
                                            self._net.timeout_ms // 2)
            in_flight += [(due, seq, name, pickle.loads(b)) for due, seq, _, b in pending]
            inboxes[name] = [pickle.loads(b) for b in inbox]
        clock = (self._rng.bit_generator.state, self._step, self._seq, self._sent,
                 self._delivered, self._dropped)
        return (InMemoryBroker.from_state,
                ((self.latency_steps, self.drop_prob, self._seed), clock, in_flight, inboxes))
