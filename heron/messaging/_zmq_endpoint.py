"""One broker endpoint as its own OS process: a ZeroMQ mailbox driven by a :class:`ZmqBroker`.

Run as ``python -m heron.messaging._zmq_endpoint NAME HELLO_ADDR PARENT_PID``. The process
binds a control socket (REP: commands from the broker) and a peer socket (PULL: envelopes
from other endpoints) on 127.0.0.1, announces both addresses to HELLO_ADDR and serves
commands until told to stop or until its parent process is gone (no orphans).

Envelopes are ``(epoch, due, seq, topic, blob)``; ``blob`` is the pickled Message, kept
opaque here, so this process needs neither numpy nor the payload's classes. The epoch
counts broker resets: a newer one empties the mailbox, an older envelope is discarded. The broker
decides latency and loss (in step time, seeded); this process only stores what reaches it
and hands out, in ``(due, seq)`` order, what is due.
"""

from __future__ import annotations

import heapq
import os
import sys
import time

import zmq

LOCALHOST = "tcp://127.0.0.1"
PARENT_POLL_MS = 500  # how often an idle endpoint checks that its broker still exists


class Mailbox:
    """The endpoint's state: envelopes received this epoch, and those already receivable."""

    def __init__(self) -> None:
        self.reset(0)

    def reset(self, epoch: int) -> None:
        self.epoch = epoch
        self.arrived = 0
        self.pending: list[tuple[int, int, str, bytes]] = []
        self.inbox: list[tuple[str, bytes]] = []

    def adopt(self, epoch: int) -> None:
        """Epochs only grow (one per broker reset): a newer one starts an empty mailbox."""
        if epoch > self.epoch:
            self.reset(epoch)

    def store(self, envelope: tuple) -> None:
        epoch, due, seq, topic, blob = envelope
        self.adopt(epoch)
        if epoch == self.epoch:  # envelopes of a previous episode are discarded
            heapq.heappush(self.pending, (due, seq, topic, blob))
            self.arrived += 1

    def take(self, step: int, topic: str | None) -> list[bytes]:
        while self.pending and self.pending[0][0] <= step:
            _, _, t, blob = heapq.heappop(self.pending)
            self.inbox.append((t, blob))
        taken = [blob for t, blob in self.inbox if topic is None or t == topic]
        self.inbox = [(t, b) for t, b in self.inbox if topic is not None and t != topic]
        return taken


def serve(name: str, hello_addr: str, parent_pid: int) -> None:
    ctx = zmq.Context()
    ctl = ctx.socket(zmq.REP)
    peer = ctx.socket(zmq.PULL)
    hello = ctx.socket(zmq.PUSH)
    for sock in (ctl, peer, hello):
        sock.setsockopt(zmq.LINGER, 0)
    ctl_port = ctl.bind_to_random_port(LOCALHOST)
    peer_port = peer.bind_to_random_port(LOCALHOST)
    hello.connect(hello_addr)
    hello.send_pyobj((name, f"{LOCALHOST}:{ctl_port}", f"{LOCALHOST}:{peer_port}"))
    outs: dict[str, zmq.Socket] = {}  # peer address -> PUSH socket, connected on first use
    box = Mailbox()
    try:
        while True:
            if not ctl.poll(PARENT_POLL_MS):
                if os.getppid() != parent_pid:
                    return  # the broker's process died without stopping us
                continue
            command, *args = ctl.recv_pyobj()
            try:
                if command == "stop":
                    ctl.send_pyobj(("ok", None))
                    return
                ctl.send_pyobj(("ok", _run(command, args, ctx, outs, peer, box)))
            except Exception as exc:  # report, keep serving: the broker raises it
                ctl.send_pyobj(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        for sock in (ctl, peer, hello, *outs.values()):
            sock.close(0)
        ctx.term()


def _run(command: str, args: list, ctx: zmq.Context, outs: dict[str, zmq.Socket],
         peer: zmq.Socket, box: Mailbox) -> object:
    if command == "send":
        address, envelope, timeout_ms = args
        if address not in outs:
            out = outs[address] = ctx.socket(zmq.PUSH)
            out.setsockopt(zmq.LINGER, 0)
            out.setsockopt(zmq.SNDTIMEO, timeout_ms)
            out.connect(address)
        outs[address].send_pyobj(envelope)
        return None
    if command in ("take", "peek"):
        epoch, step, expected, topic, timeout_ms = args
        deadline = time.monotonic() + timeout_ms / 1000
        box.adopt(epoch)
        while box.arrived < expected:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not peer.poll(left):
                raise TimeoutError(f"waited {timeout_ms} ms for {expected - box.arrived} of "
                                   f"{expected} message(s) sent to this endpoint")
            box.store(peer.recv_pyobj())
        if command == "take":
            return box.take(step, topic)
        box.take(step, "")  # release what is due without taking anything (no topic is "")
        return list(box.pending), [blob for _, blob in box.inbox]
    raise ValueError(f"unknown command {command!r}")


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]))
