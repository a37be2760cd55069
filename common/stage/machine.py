"""A stage's state machine wired to its pieces and its handler, with no socket in sight.

StageRuntime (runtime.py) owns the sockets and the poll loop and feeds this object what it reads;
what goes out goes through the objects given here (the DEALER requests, the ack sender, the
publisher), so the whole life of a stage - handshake, snapshot join, ordering, acks, resync, flush -
runs in unit tests with fakes and a fake clock.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Protocol

from common.runs import exit_code_for
from common.stage.acks import AckBatcher
from common.stage.answer_joiner import AnswerJoiner, Overdue
from common.stage.handler import StageHandler
from common.stage.lifecycle import Lifecycle, State
from common.stage.snapshot_join import SnapshotJoin
from common.stage.subscriptions import COORDINATOR, Subscriptions
from common.wire import protocol as P

PROCESS_SLICE_S = 0.05
REPUBLISH_WAIT_S = 5.0  # at most this long for the consumers to subscribe to a restarted answerer
ANSWERER_SILENT_S = 1.5  # no heartbeat from an answering stage this long: it is down, not busy


class Requests(Protocol):
    """What the machine asks of the coordinator (CoordinatorLink over the DEALER)."""
    def hello(self, snapshot: bool, indicators: list | None = None, trades: bool = False) -> None: ...
    def command(self, name: str, args: dict) -> None: ...
    def ask_stop(self) -> None: ...


class StageMachine:
    """Everything a stage decides: when to say HELLO, what to keep, when to handle, ack, resync, flush."""

    def __init__(self, name: str, role: str, handler: StageHandler, sources: list[str], requests: Requests,
                 send_ack: Callable[[P.Message], None], publisher: P.Publisher | None = None,
                 snapshot_join: bool = False, log: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.name = name
        self.role = role
        self.handler = handler
        self.requests = requests
        self.publisher = publisher
        self.log = log or logging.getLogger(name)
        self.clock = clock
        self.lifecycle = Lifecycle(snapshot_join, self.log)
        self.subscriptions = Subscriptions(sources, self.lifecycle, self.log, clock())
        self.joiner = AnswerJoiner(tuple(s for s in sources if s != COORDINATOR))
        self.snapshot = SnapshotJoin()
        self.acks = AckBatcher(name, send_ack, handler.ack_fields)
        self.stop_signalled = False
        self.republish: list | None = None  # a restarted answerer's replayed answers, not yet published
        self.republish_to = 0
        self.republish_by = 0.0
        self.overdue_said: tuple | None = None  # the overdue answer last reported (stage, seq, publisher alive)
        self.end_reason: str | None = None  # BACKTEST_END's reason: the process exits with the run's status

    @property
    def state(self) -> State:
        return self.lifecycle.state

    # ---- start-up and resync -------------------------------------------------------------------
    def say_hello_if_due(self) -> None:
        """HELLO once every publisher was heard (CONNECTING) or once a resync's back-off is over."""
        if self.lifecycle.hello_due(self.subscriptions.heard_all(), self.clock()):
            self.requests.hello(self.lifecycle.snapshot_join, self.handler.wanted_indicators(),
                                self.handler.trades())
            self.lifecycle.hello_sent(self.subscriptions.sources, self.role)

    def resync(self, reason: str) -> None:
        """Drop what is held and ask for a fresh snapshot after the back-off (see Lifecycle.resync)."""
        self.lifecycle.resync(reason, self.clock())
        self.joiner.clear()
        self.snapshot.abandon()

    # ---- receiving -----------------------------------------------------------------------------
    def receive(self, source: str, msg: P.Message) -> None:
        """One decoded message from a SUB socket: kept in order, kept as an answer, or dropped."""
        intake = self.subscriptions.receive(source, msg, self.clock())
        if intake.resync is not None:
            self.resync(intake.resync)
        if not intake.keep:
            return
        if source == COORDINATOR:
            if msg.type == P.BACKTEST_END and msg.body.get("lost"):  # their answers will never come
                self.joiner.give_up_on(set(msg.body["lost"]))
            self.joiner.add_coordinator(msg)
        else:
            self.joiner.add_answer(source, msg)

    def on_dealer_message(self, msg: P.Message) -> bool:
        """Registration reply, then (snapshot joiners) the journal messages of the snapshot; False when
        the registration was refused."""
        if msg.type == P.REPLY and not msg.body.get("hello"):  # e.g. the answer to a stop this stage asked for
            if not msg.body.get("ok"):
                self.log.error("coordinator refused a request: %s", msg.body.get("error"))
            return True
        if msg.type == P.REPLY:
            if not msg.body.get("ok"):
                self.log.error("registration refused: %s", msg.body.get("error"))
                self.lifecycle.finish("registration refused")
                return False
            if self.state is State.SYNCING:
                self.snapshot.on_reply(msg.body)
        else:
            self.snapshot.on_part(msg)
        if self.snapshot.complete():
            self._apply_snapshot()
        return True

    def _apply_snapshot(self) -> None:
        """Rebuild state from the journal, then go on with the live messages newer than it."""
        parts, seq, answers = self.snapshot.apply(self.handler, self.joiner)
        self.lifecycle.snapshot_applied(len(parts), seq)
        if self.publisher is not None and any(out for _, out in answers):
            # a restarted answering stage: what consumers may still wait for, published once they have
            # subscribed again (a PUB drops what goes out before), and before any live answer
            self.republish = answers
            self.republish_to = self.snapshot.listeners
            self.republish_by = self.clock() + REPUBLISH_WAIT_S
        ends = [m for m in parts if m.type == P.BACKTEST_END]
        if ends:  # joined after the end: flush what it has
            self.end_reason = str(ends[-1].body.get("reason", "error"))
            self.flush(final=self._done_after_end())

    # ---- handling ------------------------------------------------------------------------------
    def process(self, slice_s: float = PROCESS_SLICE_S) -> bool:
        """Handle queued coordinator messages in order, within a time slice so sockets keep being read;
        the step acks of the batch go out at the end of it. True: the slice ended with messages ready
        (a backlog: the runtime comes back at once instead of waiting for a socket)."""
        if self.republish is not None:
            return False
        try:
            return self._process_slice(self.clock() + slice_s)
        finally:
            self.acks.flush()

    def republish_if_ready(self, subscribers: int) -> None:
        """Publish a restarted stage's replayed answers once `subscribers` reached the listeners the
        coordinator counted, or at the deadline (then said: a consumer that missed them resyncs)."""
        if self.republish is None:
            return
        if subscribers < self.republish_to and self.clock() < self.republish_by:
            return
        if subscribers < self.republish_to:
            self.log.warning("republishing answers with %d of %d subscriber(s) connected", subscribers,
                             self.republish_to)
        answers, self.republish = self.republish, None
        for msg, outgoing in answers:
            self._publish_answers(msg, outgoing)
        self.log.info("republished the answers of %d journal message(s) to %d subscriber(s)",
                      sum(1 for _, out in answers if out), subscribers)

    def _process_slice(self, deadline: float) -> bool:
        while self.lifecycle.handling:
            if self.clock() >= deadline:
                return len(self.joiner) > 0
            ready = self.joiner.next_ready(self.clock())
            if ready is None:
                return False
            if isinstance(ready, Overdue):
                # Not a loss: a lost answer shows as a seq gap, at the latest in the publisher's next
                # heartbeat (it repeats the last seq), and that resyncs. An answer merely late is a busy
                # stage (a whole market's session end), or one that is down or restarting (a restarted
                # one republishes its answers): wait, and say so once.
                alive = self.subscriptions.heard_within(ready.stage, self.clock(), ANSWERER_SILENT_S)
                said = (ready.stage, ready.seq, alive)
                if said != self.overdue_said:  # once per answer and state, not every ANSWER_TIMEOUT_S
                    self.overdue_said = said
                    self.log.warning("%s: %s; waiting", ready.reason(),
                                     "its publisher is alive (busy)" if alive else "its publisher is silent (down?)")
                return False
            self._handle(ready.msg, ready.answers)
        return False

    def _handle(self, msg: P.Message, answers: dict[str, P.Message]) -> None:
        t0 = time.perf_counter_ns()
        outgoing = self.handler.handle(msg, answers) or []
        for name, args in self.handler.take_commands():
            self.requests.command(name, args)
        if self.handler.stop_wanted():
            self.requests.ask_stop()
        self._publish_answers(msg, outgoing)
        self._after_handling(msg, time.perf_counter_ns() - t0)

    def _publish_answers(self, msg: P.Message, outgoing: list[P.Message]) -> None:
        for out in outgoing:
            out.body.setdefault("ref", msg.seq)
            out.step, out.clock = msg.step, msg.clock
            self.publisher.send(out)

    def _after_handling(self, msg: P.Message, busy_ns: int) -> None:
        """SHUTDOWN ends the loop; a participant acks; BACKTEST_END writes the results."""
        if msg.type == P.SHUTDOWN:
            self.lifecycle.finish("SHUTDOWN")
            return
        if self.role == "participant":
            self.acks.handled(msg, busy_ns)
        if msg.type == P.BACKTEST_END:
            if self.joiner.dropped:
                self.log.warning("%s lost: %d message(s) missing its answers dropped at the end of the run",
                                 ", ".join(sorted(self.joiner.given_up)), self.joiner.dropped)
            self.end_reason = str(msg.body.get("reason", "error"))
            self.flush(final=self._done_after_end())

    # ---- the end -------------------------------------------------------------------------------
    def stop_on_signal(self) -> None:
        self.log.info("signal received: flushing and exiting")
        self.flush(final=True)

    def coordinator_silent(self, limit_s: float) -> bool:
        """A registered stage that hears nothing from the coordinator for `limit_s` writes what it has
        and gives up (True: exit)."""
        silent_s = self.subscriptions.silent_for(self.clock())
        if not self.lifecycle.registered or silent_s <= limit_s:
            return False
        head = self.joiner.head()
        self.log.error("coordinator silent for %.0f s: flushing and exiting (%d message(s) unprocessed, "
                       "first %s seq %s)", silent_s, len(self.joiner),
                       head.type if head else "-", head.seq if head else "-")
        self.flush(final=True)
        return True

    def exit_code(self) -> int:
        """The run's status as this process's exit code (every process of a run says the same): 0 only
        for a completed run; 3 when stopped early, here or by a signal; 1 when aborted."""
        if self.stop_signalled and self.end_reason is None:
            return exit_code_for("stopped")
        return exit_code_for(self.end_reason) if self.end_reason is not None else 0

    def _done_after_end(self) -> bool:
        """After BACKTEST_END a participant waits for SHUTDOWN; an observer (or a signalled stage) is done."""
        return self.stop_signalled or self.role != "participant"

    def flush(self, final: bool) -> None:
        """Write results once, confirm to the coordinator; exit comes with SHUTDOWN unless `final`."""
        if self.state is State.FINISHED:
            return
        if self.state is not State.FLUSHED:
            self._write_results()
        self.lifecycle.results_written(final)

    def _write_results(self) -> None:
        self.handler.flush()
        if self.subscriptions.lost:
            self.log.error("%d message(s) were lost during the run", self.subscriptions.lost)
        if self.publisher is not None:
            self.publisher.heartbeat()  # carries the last seq: subscribers can see a lost tail
        if self.role == "participant" and self.lifecycle.registered:
            self.acks.results_flushed()
