"""Runtime shared by the processor, quality and analysis processes: sockets, handshake, ordering, acks.

Start-up without loss: a stage connects its SUB sockets first, waits until it has received a HEARTBEAT
from every publisher it listens to (proof that its subscriptions are in place), and only then sends
HELLO. The coordinator publishes nothing sequenced before every configured stage said HELLO.

Ordering: processor and quality answer some coordinator messages with one message each (P.ANSWERS,
tagged with the coordinator's seq as body["ref"]). A stage that listens to them handles coordinator
message n only when every answer to n is in hand, so it always sees a step with its derived bars and
quality. Every sequenced message is checked for loss by per-publisher seq.

A stage is a state machine (lifecycle.State) whose decisions are made by StageMachine (machine.py)
and its pieces, plain objects tested without sockets: subscriptions (what a received message means),
answer_joiner (ordering), snapshot_join (Clone-pattern join), acks (cumulative step acks),
coordinator_link (requests on the DEALER). This module owns the sockets and the poll loop.
"""
from __future__ import annotations

import logging
import signal
import time

import zmq

from common import progress
from common.config import SessionConfig
from common.security import SocketSecurity
from common.stage.coordinator_link import CoordinatorLink, new_request_id  # noqa: F401  (imported from here)
from common.stage.handler import StageHandler
from common.stage.lifecycle import State
from common.stage.machine import StageMachine
from common.stage.subscriptions import COORDINATOR, open_sub, read_messages
from common.wire import protocol as P

CONNECTING_BEAT_S = 0.05   # publishers beat fast until registered, so late subscribers hear them soon
_PUB_ENDPOINT = {COORDINATOR: "coordinator_pub", "processor": "processor_pub", "quality": "quality_pub"}


class StageRuntime:
    """Sockets and poll loop of one stage; the stage's logic is a `handler` (StageHandler).

    handler.handle(msg, answers) is called once per coordinator message in order, with the answers
    of the upstream stages (dict stage -> Message). It returns a list of Messages to publish (stages
    with a PUB only). The runtime acks STEP/CATCHUP_SNAPSHOT/BACKTEST_END for participants.
    """

    def __init__(self, config: SessionConfig, name: str, role: str, handler: StageHandler,
                 listen_to: tuple[str, ...] = (), publishes: bool = False, log: logging.Logger | None = None,
                 snapshot_join: bool = False, rcvhwm: int = 0):
        self.config = config
        self.name = name
        self.log = log or logging.getLogger(name)
        self.ctx = zmq.Context.instance()
        self.security = SocketSecurity.for_endpoints(self.ctx, config.endpoints, config.keys_dir)  # CURVE on tcp
        sources = [COORDINATOR] + [s for s in listen_to if s in config.stages]
        self.subs = {source: open_sub(self.security, config.endpoints[_PUB_ENDPOINT[source]], rcvhwm)
                     for source in sources}
        self.dealer = self.security.client(self.ctx.socket(zmq.DEALER), config.endpoints["coordinator_router"])
        self.dealer.setsockopt(zmq.LINGER, 2000)  # the last ack (flushed) still goes out at exit
        self.dealer.setsockopt(zmq.MAXMSGSIZE, P.MAX_DATA_BYTES)
        self.dealer.connect(config.endpoints["coordinator_router"])
        self.publisher = self._open_publisher() if publishes else None
        link = CoordinatorLink(self.dealer, name, role, config.flow_window, self.log)
        self.machine = StageMachine(name, role, handler, sources, link, self._send_ack, self.publisher,
                                    snapshot_join=snapshot_join, log=self.log)
        link.on_other = self.machine.on_dealer_message
        self.silence_limit_s = max(10.0, 20 * config.heartbeat_s)
        self.last_beat = 0.0
        self.subscribers = 0  # subscriptions seen on the XPUB
        self.backlog = False  # the last processing slice ended with messages ready

    def _open_publisher(self) -> P.Publisher:
        """An XPUB: it publishes like a PUB and tells of each subscription (a restarted stage waits for
        its consumers before republishing its answers)."""
        pub = self.ctx.socket(zmq.XPUB)
        pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        pub.setsockopt(zmq.SNDHWM, self.config.pub_hwm)
        pub.setsockopt(zmq.LINGER, 2000)
        endpoint = self.config.endpoints[_PUB_ENDPOINT[self.name]]
        self.security.server(pub, endpoint).bind(endpoint)
        return P.Publisher(pub, self.name)

    def _send_ack(self, msg: P.Message) -> None:
        """Acks go on the DEALER that registered the stage: the coordinator counts them only from it."""
        self.dealer.send_multipart(P.encode(msg))

    def install_signal_handlers(self) -> None:
        def on_signal(signum, frame):
            self.machine.stop_signalled = True
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def run(self) -> int:
        poller = zmq.Poller()
        for sock in self.subs.values():
            poller.register(sock, zmq.POLLIN)
        poller.register(self.dealer, zmq.POLLIN)
        if self.publisher is not None:
            poller.register(self.publisher.socket, zmq.POLLIN)
        self.machine.subscriptions.reset_silence(time.monotonic())
        progress.install(lambda: self._beat(0.0, busy=True), self.config.heartbeat_s)
        while self.machine.state is not State.FINISHED:
            code = self._turn(poller)
            if code is not None:
                return code
        return self.machine.exit_code()

    def _turn(self, poller: zmq.Poller) -> int | None:
        """One pass of the loop; returns an exit code when the loop must end at once."""
        machine = self.machine
        if machine.stop_signalled:
            machine.stop_on_signal()
            return machine.exit_code()
        beat_every = self.config.heartbeat_s if machine.lifecycle.registered else CONNECTING_BEAT_S
        self._beat(beat_every)
        machine.say_hello_if_due()
        # a backlog is worked off at once (no wait for a socket); the coordinator's silence counts only when
        # nothing is waiting, on a socket or in the queue (a slow observer still has steps of a finished run)
        events = dict(poller.poll(timeout=0 if self.backlog else int(beat_every * 1000)))
        if not events and not self.backlog and machine.coordinator_silent(self.silence_limit_s):
            return 1
        for source, sock in self.subs.items():
            if sock in events:
                self._drain(source, sock)
        if self.dealer in events and not self._read_dealer():
            return 1
        if self.publisher is not None and self.publisher.socket in events:
            self._count_subscribers()
        machine.republish_if_ready(self.subscribers)
        self.backlog = machine.process()
        return None

    def _count_subscribers(self) -> None:
        while True:
            try:
                frame = self.publisher.socket.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame[:1] == b"\x01":
                self.subscribers += 1
            elif frame[:1] == b"\x00":
                self.subscribers = max(0, self.subscribers - 1)

    def _beat(self, beat_every: float, busy: bool = False) -> None:
        """Heartbeats on the stage's PUB, and an `alive` ACK to the coordinator once registered (an
        observer, or a participant with nothing to ack while the clock stands, is still seen). `busy`:
        a progress signal from inside a long computation (common/progress.py)."""
        now = time.monotonic()
        if now - self.last_beat < beat_every:
            return
        if self.publisher is not None:
            self.publisher.heartbeat()
        if self.machine.lifecycle.registered and self.machine.state is not State.FINISHED:
            alive = P.ack(self.name, "alive", 0)
            if busy:
                alive.body["busy"] = True
            status = self.machine.handler.status()
            if status:
                alive.body["status"] = status
            self._send_ack(alive)
        self.last_beat = now

    def _drain(self, source: str, sock: zmq.Socket) -> None:
        """Read everything waiting on one SUB socket; the machine decides what is kept."""
        for msg in read_messages(sock):
            if isinstance(msg, P.ProtocolError):
                self.machine.subscriptions.bad_message(source, msg)
            else:
                self.machine.receive(source, msg)

    def _read_dealer(self) -> bool:
        """Replies from the coordinator; False when the registration was refused."""
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
            if not self.machine.on_dealer_message(msg):
                return False

    def close(self) -> None:
        for sock in list(self.subs.values()) + [self.dealer]:
            sock.close(0)
        if self.publisher is not None:
            self.publisher.socket.close()
        self.security.close()
        self.ctx.term()


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
