"""What a stage hears on its SUB sockets: decoding, who was heard, loss and restarts, what to keep.

The sockets are read by `read_messages` (thin); every decision about a decoded message is made by
`Subscriptions.receive`, a plain object fed messages and times, so it is unit-tested without ZeroMQ.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import zmq

from common.security import SocketSecurity
from common.stage.lifecycle import Lifecycle
from common.wire import protocol as P

COORDINATOR = "coordinator"


@dataclass(frozen=True)
class Intake:
    """What to do with one received message: keep it (queue or answer) and/or resync (the reason)."""
    keep: bool
    resync: str | None = None


class Subscriptions:
    """Per-publisher sequence checking, heartbeats heard, loss accounting, silence of the coordinator."""

    def __init__(self, sources: list[str], lifecycle: Lifecycle, log: logging.Logger, now: float):
        self.sources = list(sources)
        self.lifecycle = lifecycle
        self.log = log
        self.sequence = P.SequenceChecker(join_anywhere=lifecycle.snapshot_join)
        self.heard: set[str] = set()
        self.heard_at: dict[str, float] = {}  # when each publisher was last heard (heartbeats included)
        self.coordinator_heard_at = now
        self.lost = 0
        self.malformed = 0

    def heard_all(self) -> bool:
        """Every publisher was heard from: the subscriptions are in place, HELLO may go."""
        return self.heard >= set(self.sources)

    def heard_within(self, source: str, now: float, seconds: float) -> bool:
        return now - self.heard_at.get(source, float("-inf")) <= seconds

    def silent_for(self, now: float) -> float:
        return now - self.coordinator_heard_at

    def reset_silence(self, now: float) -> None:
        self.coordinator_heard_at = now

    def bad_message(self, source: str, exc: Exception) -> None:
        self.malformed += 1
        self.log.error("malformed message from %s dropped: %s", source, exc)

    def receive(self, source: str, msg: P.Message, now: float) -> Intake:
        """Account for one decoded message; says whether to keep it and whether to resync."""
        self.heard.add(source)
        self.heard_at[source] = now
        if source == COORDINATOR:
            self.coordinator_heard_at = now
        resync = self._check_sequence(msg)
        keep = msg.type != P.HEARTBEAT and resync is None and not self.lifecycle.snapshot_covers_intake
        return Intake(keep, resync)

    def _check_sequence(self, msg: P.Message) -> str | None:
        """Logs a restart or a loss; returns a resync reason when the state calls for one."""
        try:
            lost = self.sequence.check(msg)
        except P.SequenceRestart as exc:
            if msg.pub != COORDINATOR:
                # a restarted processor/quality republishes its answers by ref: take the new stream
                self.log.warning("%s; taking its new stream (answers are matched by ref)", exc)
                return None
            self.log.error("%s", exc)
            return str(exc) if self.lifecycle.resync_on_restart else None
        if not lost:
            return None
        self.lost += lost
        self.log.error("LOSS: %d message(s) from %s missing before seq %d", lost, msg.pub, msg.seq)
        return f"lost messages from {msg.pub}" if self.lifecycle.resync_on_loss else None


def open_sub(security: SocketSecurity, endpoint: str, rcvhwm: int) -> zmq.Socket:
    """A SUB on `endpoint` taking everything (a CURVE client when it is tcp)."""
    sock = security.client(security.ctx.socket(zmq.SUB), endpoint)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, P.MAX_DATA_BYTES)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    return sock


def read_messages(sock: zmq.Socket) -> Iterator[P.Message | P.ProtocolError]:
    """Everything waiting on one SUB socket, without blocking; a frame set that does not decode comes
    out as its ProtocolError so the caller can count it and go on."""
    while True:
        try:
            frames = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return
        try:
            yield P.decode([f.buffer for f in frames])
        except P.ProtocolError as exc:
            yield exc
