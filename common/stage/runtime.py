"""Runtime shared by the processor, quality and analysis processes: sockets, handshake, ordering, acks.

Start-up without loss: a stage connects its SUB sockets first, waits until it has received a HEARTBEAT
from every publisher it listens to (proof that its subscriptions are in place), and only then sends
HELLO. The coordinator publishes nothing sequenced before every configured stage said HELLO.

Ordering: processor and quality answer some coordinator messages with one message each (P.ANSWERS,
tagged with the coordinator's seq as body["ref"]). A stage that listens to them handles coordinator
message n only when every answer to n is in hand, so it always sees a step with its derived bars and
quality. Every sequenced message is checked for loss by per-publisher seq.
"""
from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from collections import deque

import zmq

from common.wire import protocol as P
from common.config import SessionConfig

PROCESS_SLICE_S = 0.05
COMMAND_TIMEOUT_MS = 5000
RESYNC_BACKOFF_S = 0.5
RESYNC_BACKOFF_MAX_S = 8.0
ANSWER_TIMEOUT_S = 2.0
_PUB_ENDPOINT = {"processor": "processor_pub", "quality": "quality_pub"}


class StageRuntime:
    """Sockets and message plumbing of one stage; the stage's logic is a `handler` object.

    handler.handle(msg, answers) is called once per coordinator message in order, with the answers
    of the upstream stages (dict stage -> Message). It returns a list of Messages to publish (stages
    with a PUB only). The runtime acks STEP/CATCHUP_SNAPSHOT/BACKTEST_END for participants.
    """

    def __init__(self, config: SessionConfig, name: str, role: str, handler, listen_to: tuple[str, ...] = (),
                 publishes: bool = False, log: logging.Logger | None = None, snapshot_join: bool = False,
                 rcvhwm: int = 0):
        self.config = config
        self.name = name
        self.role = role
        self.handler = handler
        self.listen_to = tuple(s for s in listen_to if s in config.stages)
        self.log = log or logging.getLogger(name)
        self.ctx = zmq.Context.instance()
        ep = config.endpoints
        self.subs: dict[str, zmq.Socket] = {}
        for source, key in [("coordinator", "coordinator_pub")] + [(s, _PUB_ENDPOINT[s]) for s in self.listen_to]:
            sock = self.ctx.socket(zmq.SUB)
            sock.setsockopt(zmq.RCVHWM, rcvhwm)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SUBSCRIBE, b"")
            sock.connect(ep[key])
            self.subs[source] = sock
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(ep["coordinator_router"])
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.LINGER, 2000)
        self.push.connect(ep["coordinator_pull"])
        self.publisher = None
        if publishes:
            pub = self.ctx.socket(zmq.PUB)
            pub.setsockopt(zmq.SNDHWM, self.config.pub_hwm)
            pub.setsockopt(zmq.LINGER, 2000)
            pub.bind(ep[_PUB_ENDPOINT[name]])
            self.publisher = P.Publisher(pub, name)
        self.seq = P.SequenceChecker(join_anywhere=snapshot_join)
        self.queue: deque[P.Message] = deque()
        self.answers: dict[str, dict[int, P.Message]] = {s: {} for s in self.listen_to}
        self.heard: set[str] = set()
        self.registered = False
        self.stopping = False
        self.finished = False
        self.flushed = False
        self.snapshot_join = snapshot_join
        self.synced = not snapshot_join     # a snapshot joiner holds its queue until the snapshot is in
        self.snapshot_parts: list | None = None
        self.snapshot_expected = 0
        self.snapshot_seq = 0
        self.resyncs = 0
        self.stop_sent = False
        self.warned_window = False
        self.pending_ack: tuple[int, int] | None = None
        self.pending_busy: list[int] = []
        self.resync_at: float | None = None
        self.waiting_since: float | None = None
        self.waiting_for: tuple | None = None
        self.lost = 0
        self.malformed = 0

    # ---- lifecycle -----------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        def on_signal(signum, frame):
            self.stopping = True
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def run(self) -> int:
        poller = zmq.Poller()
        for sock in self.subs.values():
            poller.register(sock, zmq.POLLIN)
        poller.register(self.dealer, zmq.POLLIN)
        last_beat = 0.0
        self.last_heard = time.monotonic()
        silence_limit = max(10.0, 20 * self.config.heartbeat_s)
        while not self.finished:
            now = time.monotonic()
            if self.stopping:
                self.log.info("signal received: flushing and exiting")
                self._flush()
                return 0
            beat_every = self.config.heartbeat_s if self.registered else 0.05
            if self.publisher is not None and now - last_beat >= beat_every:
                self.publisher.heartbeat()
                last_beat = now
            if not self.registered and self.heard >= set(self.subs):
                self._send_hello()
            self._resync_if_due(now)
            events = dict(poller.poll(timeout=int(beat_every * 1000)))
            # silence counts only when nothing is waiting: a process resumed after a stop reads first
            if not events and self.registered and time.monotonic() - self.last_heard > silence_limit:
                head = self.queue[0] if self.queue else None
                self.log.error("coordinator silent for %.0f s: flushing and exiting (%d message(s) unprocessed, "
                               "first %s seq %s)", time.monotonic() - self.last_heard, len(self.queue),
                               head.type if head else "-", head.seq if head else "-")
                self._flush()
                return 1
            for source, sock in self.subs.items():
                if sock in events:
                    self._drain(source, sock)
            if self.dealer in events:
                if self._on_dealer() is False:
                    return 1
            self._process_queue()
        return 0

    def _on_dealer(self) -> bool:
        """Registration reply, then (snapshot joiners) the journal messages of the snapshot."""
        while True:
            try:
                frames = self.dealer.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return True
            try:
                msg = P.decode(frames)
            except P.ProtocolError as exc:
                self.log.error("bad reply from coordinator: %s", exc)
                continue
            if msg.type == P.REPLY:
                if not msg.body.get("hello"):  # e.g. the answer to a stop this stage asked for
                    if not msg.body.get("ok"):
                        self.log.error("coordinator refused a request: %s", msg.body.get("error"))
                    continue
                if not msg.body.get("ok"):
                    self.log.error("registration refused: %s", msg.body.get("error"))
                    return False
                if self.snapshot_join and not self.synced:
                    self.snapshot_parts = []
                    self.snapshot_expected = int(msg.body.get("parts", 0))
                    self.snapshot_seq = int(msg.body.get("seq", 0))
            elif self.snapshot_parts is not None:
                self.snapshot_parts.append(msg)
            if self.snapshot_parts is not None and len(self.snapshot_parts) == self.snapshot_expected:
                self._apply_snapshot()

    def _apply_snapshot(self) -> None:
        """Rebuild state from the journal, then go on with the live messages newer than it."""
        parts, seq = self.snapshot_parts, self.snapshot_seq
        self.snapshot_parts = None
        self.handler.replay(parts)
        while self.queue and self.queue[0].seq <= seq:
            self.queue.popleft()
        for answers in self.answers.values():
            for ref in [r for r in answers if r <= seq]:
                del answers[ref]
        self.synced = True
        self.log.info("snapshot applied: %d message(s) up to seq %d; live from seq %d", len(parts), seq, seq + 1)
        if any(m.type == P.BACKTEST_END for m in parts):  # joined after the end: flush what it has
            self._flush()

    def _resync(self, reason: str) -> None:
        """Drop what is queued and ask for a fresh snapshot; repeated resyncs back off (each replays the
        session), so an observer too slow to keep up does not eat the pipeline's CPU."""
        self.resyncs += 1
        delay = min(RESYNC_BACKOFF_MAX_S, RESYNC_BACKOFF_S * 2 ** (self.resyncs - 1)) if self.resyncs > 1 else 0.0
        self.log.error("%s: resyncing from a fresh snapshot in %.1f s (resync #%d)", reason, delay, self.resyncs)
        self.synced = False
        self.queue.clear()
        for answers in self.answers.values():
            answers.clear()
        self.resync_at = time.monotonic() + delay

    def _resync_if_due(self, now: float) -> None:
        if self.resync_at is not None and now >= self.resync_at:
            self.resync_at = None
            self._send_hello()

    def _send_hello(self) -> None:
        hello = P.Message(P.HELLO, {"stage": self.name, "role": self.role, "pid": os.getpid(),
                                    "snapshot": self.snapshot_join})
        self.dealer.send_multipart(P.encode(hello))
        self.registered = True
        self.log.info("subscriptions in place (%s); registered as %s", ", ".join(sorted(self.subs)), self.role)

    def _drain(self, source: str, sock) -> None:
        """Read everything waiting on one SUB socket without blocking."""
        while True:
            try:
                frames = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            try:
                msg = P.decode([f.buffer for f in frames])
            except P.ProtocolError as exc:
                self.malformed += 1
                self.log.error("malformed message from %s dropped: %s", source, exc)
                continue
            self.heard.add(source)
            if source == "coordinator":
                self.last_heard = time.monotonic()
            try:
                lost = self.seq.check(msg)
            except P.SequenceRestart as exc:
                self.log.error("%s", exc)
                if self.snapshot_join:
                    self._resync(str(exc))
                lost = 0
            if lost:
                self.lost += lost
                self.log.error("LOSS: %d message(s) from %s missing before seq %d", lost, msg.pub, msg.seq)
                if self.snapshot_join and self.synced:
                    self._resync(f"lost messages from {msg.pub}")
            if msg.type == P.HEARTBEAT:
                continue
            if self.resync_at is not None:
                continue  # waiting to resync: the snapshot will cover this
            if source == "coordinator":
                self.queue.append(msg)
            else:
                ref = msg.body.get("ref")
                if isinstance(ref, int):
                    self.answers[source][ref] = msg

    def _process_queue(self) -> None:
        """Handle queued coordinator messages in order, within a time slice so sockets keep being read."""
        try:
            self._process_slice()
        finally:
            self._flush_step_ack()

    def _process_slice(self) -> None:
        deadline = time.monotonic() + PROCESS_SLICE_S
        while self.queue and not self.finished and self.synced and time.monotonic() < deadline:
            msg = self.queue[0]
            needed = {}
            for stage in self.listen_to:
                if msg.type in P.ANSWERS[stage]:
                    answer = self.answers[stage].get(msg.seq)
                    if answer is None:
                        self._check_answer_overdue(msg, stage)
                        return
                    needed[stage] = answer
            self.queue.popleft()
            for stage in needed:
                del self.answers[stage][msg.seq]
            self._handle(msg, needed)

    def _command(self, name: str, args: dict) -> None:
        """A strategy's command, sent and answered before the step is acknowledged (lockstep with
        flow.window 1, hence reproducible); the reply is logged, refused commands change nothing."""
        if self.config.flow_window > 1 and not self.warned_window:
            self.warned_window = True
            self.log.warning("strategy commands with flow.window %d land at a boundary that depends on timing; "
                             "use window 1 for reproducible runs", self.config.flow_window)
        request = P.Message(P.COMMAND, {"name": name, "args": args, "request_id": new_request_id()})
        self.dealer.send_multipart(P.encode(request))
        if not self.dealer.poll(COMMAND_TIMEOUT_MS):
            self.log.error("strategy command %s %s: no reply from the coordinator", name, args)
            return
        reply = P.decode(self.dealer.recv_multipart())
        if reply.body.get("ok"):
            self.log.info("[DYNAMIC] strategy asked to %s %s: queued", name, " ".join(args.get("symbols", [])))
        else:
            self.log.error("strategy command %s refused: %s", name, reply.body.get("error"))

    def _check_answer_overdue(self, msg: P.Message, stage: str) -> None:
        """An answer that never comes while later coordinator messages pile up was lost at the tail
        of a publisher's stream (no later message shows the gap): a snapshot joiner resyncs."""
        now = time.monotonic()
        if self.waiting_since is None or self.waiting_for != (stage, msg.seq):
            self.waiting_since, self.waiting_for = now, (stage, msg.seq)
            return
        if self.snapshot_join and len(self.queue) > 1 and now - self.waiting_since > ANSWER_TIMEOUT_S:
            self.waiting_since = None
            self._resync(f"answer of {stage} to seq {msg.seq} overdue")

    def _handle(self, msg: P.Message, answers: dict) -> None:
        t0 = time.perf_counter_ns()
        outgoing = self.handler.handle(msg, answers) or []
        for name, args in self.handler.take_commands():
            self._command(name, args)
        if self.handler.stop_wanted() and not self.stop_sent:
            self.stop_sent = True
            self.log.error("asking the coordinator to stop the run")
            command = P.Message(P.COMMAND, {"name": "stop", "args": {}, "request_id": new_request_id()})
            self.dealer.send_multipart(P.encode(command))
        for out in outgoing:
            out.body.setdefault("ref", msg.seq)
            out.step, out.clock = msg.step, msg.clock
            self.publisher.send(out)
        busy = time.perf_counter_ns() - t0
        if msg.type == P.SHUTDOWN:
            self.finished = True
            return
        if self.role != "participant":
            if msg.type == P.BACKTEST_END:
                self._flush()
            return
        if msg.type == P.STEP:
            self.pending_ack = (msg.step, msg.clock)  # sent once the batch at hand is done (cumulative)
            self.pending_busy.append(busy)
        elif msg.type == P.CATCHUP_SNAPSHOT:
            self._ack("snapshot", msg.body["snapshot_id"], busy, msg.clock)
        elif msg.type == P.BACKTEST_END:
            self._flush()

    def _ack(self, kind: str, ref: int, busy_ns: int = 0, clock: int = 0) -> None:
        self._flush_step_ack()
        self.push.send_multipart(P.encode(P.ack(self.name, kind, ref, busy_ns, clock)))

    def _flush_step_ack(self) -> None:
        """Step acks are cumulative: one ACK for the last step handled covers the ones before it, with
        each step's busy time listed, so a burst of steps costs one message instead of one per step."""
        if self.pending_ack is None:
            return
        step, clock = self.pending_ack
        msg = P.ack(self.name, "step", step, sum(self.pending_busy), clock)
        msg.body["busy_list"] = self.pending_busy
        self.pending_ack, self.pending_busy = None, []
        self.push.send_multipart(P.encode(msg))

    def _flush(self) -> None:
        """Write results once, confirm to the coordinator; exit comes with SHUTDOWN (or a signal)."""
        if self.flushed:
            return
        self.flushed = True
        self.handler.flush()
        if self.lost:
            self.log.error("%d message(s) were lost during the run", self.lost)
        if self.publisher is not None:
            self.publisher.heartbeat()  # carries the last seq: subscribers can see a lost tail
        if self.role == "participant" and self.registered:
            self._ack("flushed", 0)
        if self.stopping or self.role != "participant":
            self.finished = True

    def close(self) -> None:
        for sock in list(self.subs.values()) + [self.dealer]:
            sock.close(0)
        self.push.close()
        if self.publisher is not None:
            self.publisher.socket.close()
        self.ctx.term()


def new_request_id() -> str:
    return uuid.uuid4().hex[:12]


def stage_main(name: str, make_handler, config_path: str, role: str = "participant",
               listen_to: tuple[str, ...] = (), publishes: bool = False, overrides=None,
               snapshot_join: bool = False, rcvhwm: int = 0) -> int:
    """Load the config, build the stage's handler and run its loop; returns the exit code."""
    from common.config import ConfigError, load_config
    from common.logsetup import setup_logging

    log = setup_logging(name)
    try:
        config = load_config(config_path)
        if overrides:
            config = overrides(config)
        handler = make_handler(config, log)
    except (ConfigError, ValueError, ImportError) as exc:
        log.error("config error: %s", exc)
        return 2
    runtime = StageRuntime(config, name, role, handler, listen_to=listen_to, publishes=publishes, log=log,
                           snapshot_join=snapshot_join, rcvhwm=rcvhwm)
    runtime.install_signal_handlers()
    try:
        return runtime.run()
    finally:
        ignore_termination()
        runtime.close()


def ignore_termination() -> None:
    """Once a process is shutting down on its own, a late SIGTERM/SIGINT (honcho stopping the others
    when the first one exits) must not turn a clean exit into a kill during interpreter teardown."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
