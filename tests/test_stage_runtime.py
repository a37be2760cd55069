"""A stage's whole life without sockets: StageMachine (what StageRuntime runs) fed messages, with fake
requests, acks, publisher, handler and clock; every test checks the state it leads to."""
from __future__ import annotations

import logging

import pytest

from common.stage import runtime
from common.stage.lifecycle import State
from common.stage.machine import StageMachine
from common.wire import protocol as P

LOG = logging.getLogger("test-stage")
ALL = ["coordinator", "processor", "quality"]


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Requests:
    def __init__(self):
        self.hellos: list[bool] = []
        self.commands: list[tuple[str, dict]] = []
        self.stops = 0

    def hello(self, snapshot: bool, indicators: list | None = None, trades: bool = False) -> None:
        self.hellos.append(snapshot)

    def command(self, name: str, args: dict) -> None:
        self.commands.append((name, args))

    def ask_stop(self) -> None:
        self.stops += 1


class Publisher:
    def __init__(self):
        self.sent: list[P.Message] = []
        self.heartbeats = 0

    def send(self, msg: P.Message) -> None:
        self.sent.append(msg)

    def heartbeat(self) -> None:
        self.heartbeats += 1


class Handler:
    """Records what the runtime calls; answers STEP with one DERIVED when `answers_steps`."""

    def __init__(self, answers_steps: bool = False):
        self.answers_steps = answers_steps
        self.handled: list[tuple[str, int, dict]] = []
        self.replayed: list[list[P.Message]] = []
        self.flushes = 0
        self.commands: list[tuple[str, dict]] = []
        self.wants_stop = False

    def handle(self, msg, answers):
        self.handled.append((msg.type, msg.seq, {s: a.seq for s, a in answers.items()}))
        return [P.Message(P.DERIVED, {"intervals": [], "indicators": []})] if (
            self.answers_steps and msg.type == P.STEP) else []

    def replay(self, journal):
        self.replayed.append(list(journal))

    def take_commands(self):
        out, self.commands = self.commands, []
        return out

    def wanted_indicators(self):
        return []

    def stop_wanted(self):
        return self.wants_stop

    def trades(self):
        return False

    def ack_fields(self):
        return {}

    def status(self):
        return None

    def flush(self):
        self.flushes += 1


class Stage:
    """A StageMachine with its fakes at hand."""

    def __init__(self, role="participant", snapshot_join=False, sources=("coordinator",), publishes=False,
                 handler=None):
        self.clock, self.requests, self.acks = Clock(), Requests(), []
        self.handler = handler or Handler()
        self.publisher = Publisher() if publishes else None
        self.machine = StageMachine("stage", role, self.handler, list(sources), self.requests, self.acks.append,
                                    self.publisher, snapshot_join=snapshot_join, log=LOG, clock=self.clock)

    @property
    def state(self) -> State:
        return self.machine.state

    def acked(self) -> list[tuple]:
        return [(m.body["kind"], m.body["ref"]) for m in self.acks]

    def hear_everyone(self, coordinator_seq: int = 0) -> None:
        """A heartbeat from every publisher (it repeats the publisher's last seq)."""
        for source in self.machine.subscriptions.sources:
            seq = coordinator_seq if source == "coordinator" else 0
            self.machine.receive(source, P.Message(P.HEARTBEAT, pub=source, seq=seq))

    def connect(self, coordinator_seq: int = 0) -> None:
        self.hear_everyone(coordinator_seq)
        self.machine.say_hello_if_due()

    def coord(self, mtype: str, seq: int, step: int = 0, **body) -> None:
        self.machine.receive("coordinator", P.Message(mtype, dict(body), pub="coordinator", seq=seq, step=step,
                                                      clock=step * 60))

    def answer(self, stage: str, seq: int, ref: int, mtype: str = "") -> None:
        mtype = mtype or {"processor": P.DERIVED, "quality": P.QUALITY}[stage]
        self.machine.receive(stage, P.Message(mtype, {"ref": ref}, pub=stage, seq=seq))

    def snapshot(self, journal: list[P.Message], seq: int) -> None:
        self.machine.on_dealer_message(P.Message(P.REPLY, {"ok": True, "hello": True, "parts": len(journal),
                                                           "seq": seq}))
        for msg in journal:
            self.machine.on_dealer_message(msg)


def journal(*types: str) -> list[P.Message]:
    return [P.Message(t, pub="coordinator", seq=i) for i, t in enumerate(types, 1)]


def live_joiner(role="observer") -> Stage:
    stage = Stage(role=role, snapshot_join=True, sources=ALL)
    stage.connect(coordinator_seq=1)
    stage.snapshot(journal(P.SESSION_START), seq=1)
    return stage


# ---- a stage there from the start ---------------------------------------------------------------
def test_a_stage_says_hello_only_once_it_heard_every_publisher(caplog):
    stage = Stage(sources=("coordinator", "processor"))
    stage.machine.say_hello_if_due()
    stage.machine.receive("coordinator", P.Message(P.HEARTBEAT, pub="coordinator"))
    stage.machine.say_hello_if_due()
    assert stage.requests.hellos == [] and stage.state is State.CONNECTING
    stage.machine.receive("processor", P.Message(P.HEARTBEAT, pub="processor"))
    with caplog.at_level(logging.INFO):
        stage.machine.say_hello_if_due()
        stage.machine.say_hello_if_due()
    assert stage.requests.hellos == [False] and stage.state is State.LIVE
    assert "subscriptions in place (coordinator, processor); registered as participant" in caplog.text


def test_nothing_is_handled_before_hello():
    stage = Stage()
    stage.coord(P.SESSION_START, 1)
    stage.machine.process()
    assert stage.handler.handled == []
    stage.machine.say_hello_if_due()
    stage.machine.process()
    assert stage.handler.handled == [(P.SESSION_START, 1, {})]


def test_a_participant_publishes_answers_acks_steps_cumulatively_then_flushes_and_finishes():
    stage = Stage(publishes=True, handler=Handler(answers_steps=True))
    stage.connect()
    for seq, step in ((1, 0), (2, 1), (3, 2)):
        stage.coord(P.STEP if step else P.SESSION_START, seq, step=step, symbols=[])
    stage.machine.process()
    assert [(m.type, m.body["ref"], m.step, m.clock) for m in stage.publisher.sent] == [
        (P.DERIVED, 2, 1, 60), (P.DERIVED, 3, 2, 120)]
    assert stage.acked() == [("step", 2)] and len(stage.acks[0].body["busy_list"]) == 2
    stage.coord(P.STEP, 4, step=3)
    stage.coord(P.BACKTEST_END, 5, sessions=1)
    stage.machine.process()
    assert stage.acked() == [("step", 2), ("step", 3), ("flushed", 0)]
    assert stage.state is State.FLUSHED and stage.handler.flushes == 1 and stage.publisher.heartbeats == 1
    stage.coord(P.SHUTDOWN, 6)
    stage.coord(P.HEARTBEAT, 6)
    stage.machine.process()
    assert stage.state is State.FINISHED and stage.handler.flushes == 1


def test_a_catchup_snapshot_is_acked_at_once_after_the_pending_step():
    stage = Stage()
    stage.connect()
    stage.coord(P.STEP, 1, step=1)
    stage.coord(P.PAUSE, 2, reason="add-symbol")
    stage.coord(P.CATCHUP_SNAPSHOT, 3, snapshot_id=7)
    stage.coord(P.RESUME, 4, reason="add-symbol")
    stage.machine.process()
    assert stage.acked() == [("step", 1), ("snapshot", 7)]


def test_an_observer_acks_nothing_and_finishes_at_the_end_of_the_backtest():
    stage = Stage(role="observer")
    stage.connect()
    stage.coord(P.STEP, 1, step=1)
    stage.coord(P.BACKTEST_END, 2, sessions=1)
    stage.coord(P.SHUTDOWN, 3)
    stage.machine.process()
    assert stage.acks == [] and stage.state is State.FINISHED
    assert [t for t, _, _ in stage.handler.handled] == [P.STEP, P.BACKTEST_END]  # nothing after the end


def test_strategy_commands_and_the_stop_request_go_to_the_coordinator():
    stage = Stage()
    stage.connect()
    stage.handler.commands = [("add-symbol", {"symbols": ["RIVN"]})]
    stage.handler.wants_stop = True
    stage.coord(P.STEP, 1, step=1)
    stage.coord(P.STEP, 2, step=2)
    stage.machine.process()
    assert stage.requests.commands == [("add-symbol", {"symbols": ["RIVN"]})]
    assert stage.requests.stops == 2  # asked each time; CoordinatorLink sends it once


def test_handling_runs_in_time_slices_and_acks_what_the_slice_handled():
    stage = Stage()
    stage.connect()

    class Slow(Handler):
        def handle(inner, msg, answers):
            stage.clock.now += 0.03
            return super().handle(msg, answers)

    stage.machine.handler = Slow()
    for seq in range(1, 6):
        stage.coord(P.STEP, seq, step=seq)
    stage.machine.process(slice_s=0.05)
    assert len(stage.machine.handler.handled) == 2 and stage.acked() == [("step", 2)]
    stage.machine.process(slice_s=1.0)
    assert stage.acked() == [("step", 2), ("step", 5)]


def test_a_signal_flushes_once_and_finishes_from_any_state(caplog):
    stage = Stage()
    stage.machine.stop_signalled = True
    with caplog.at_level(logging.INFO):
        stage.machine.stop_on_signal()
    assert "signal received: flushing and exiting" in caplog.text
    assert stage.state is State.FINISHED and stage.handler.flushes == 1 and stage.acks == []  # never registered
    flushed = Stage()
    flushed.connect()
    flushed.coord(P.BACKTEST_END, 1, sessions=1)
    flushed.machine.process()
    flushed.machine.stop_on_signal()
    assert flushed.state is State.FINISHED and flushed.handler.flushes == 1 and flushed.acked() == [("flushed", 0)]


def test_a_signal_while_handling_the_end_makes_a_participant_finish_without_waiting():
    stage = Stage()
    stage.connect()
    stage.machine.stop_signalled = True
    stage.coord(P.BACKTEST_END, 1, sessions=1)
    stage.machine.process()
    assert stage.state is State.FINISHED and stage.acked() == [("flushed", 0)]


def test_a_silent_coordinator_ends_a_registered_stage(caplog):
    stage = Stage()
    assert not stage.machine.coordinator_silent(10.0)
    stage.clock.now += 60
    assert not stage.machine.coordinator_silent(10.0)  # not registered yet: nobody to wait for
    stage.connect()
    stage.clock.now += 5
    assert not stage.machine.coordinator_silent(10.0)
    stage.coord(P.STEP, 1, step=1)  # held back: no answer needed, but nothing processed yet
    stage.clock.now += 11
    with caplog.at_level(logging.ERROR):
        assert stage.machine.coordinator_silent(10.0)
    assert "coordinator silent for 11 s: flushing and exiting (1 message(s) unprocessed, first STEP seq 1)" \
        in caplog.text
    assert stage.state is State.FINISHED and stage.handler.flushes == 1 and stage.acked() == [("flushed", 0)]


def test_a_refused_registration_ends_the_stage(caplog):
    stage = Stage()
    stage.connect()
    with caplog.at_level(logging.ERROR):
        ok = stage.machine.on_dealer_message(P.Message(P.REPLY, {"ok": False, "hello": True, "error": "taken"}))
    assert ok is False and stage.state is State.FINISHED and "registration refused: taken" in caplog.text


def test_a_refused_request_is_only_logged(caplog):
    stage = live_joiner()
    with caplog.at_level(logging.ERROR):
        assert stage.machine.on_dealer_message(P.Message(P.REPLY, {"ok": False, "error": "nope"}))
    assert stage.state is State.LIVE and "coordinator refused a request: nope" in caplog.text


# ---- a snapshot joiner --------------------------------------------------------------------------
def test_a_joiner_holds_live_messages_until_its_snapshot_is_in(caplog):
    stage = Stage(role="observer", snapshot_join=True, sources=ALL)
    stage.hear_everyone(coordinator_seq=2)
    stage.coord(P.STEP, 3, step=2)  # before HELLO: the snapshot will hold it
    stage.machine.say_hello_if_due()
    assert stage.requests.hellos == [True] and stage.state is State.SYNCING
    stage.coord(P.STEP, 4, step=3)
    stage.coord(P.STEP, 5, step=4)
    stage.answer("processor", 1, ref=4)
    stage.answer("quality", 1, ref=4)
    stage.answer("quality", 2, ref=5)
    stage.machine.process()
    assert stage.handler.handled == []
    with caplog.at_level(logging.INFO):
        stage.snapshot(journal(P.SESSION_START, P.HISTORY, P.STEP, P.STEP), seq=4)
    assert "snapshot applied: 4 message(s) up to seq 4; live from seq 5" in caplog.text
    assert stage.state is State.LIVE and [len(j) for j in stage.handler.replayed] == [4]
    stage.answer("processor", 2, ref=5)
    stage.machine.process()
    assert stage.handler.handled == [(P.STEP, 5, {"processor": 2, "quality": 2})]
    assert stage.acks == [] and stage.machine.subscriptions.lost == 0


def test_a_joiner_after_the_end_flushes_what_the_snapshot_has():
    observer = Stage(role="observer", snapshot_join=True)
    observer.connect()
    observer.snapshot(journal(P.SESSION_START, P.SESSION_END, P.BACKTEST_END), seq=3)
    assert observer.state is State.FINISHED and observer.handler.flushes == 1 and observer.acks == []
    participant = Stage(role="participant", snapshot_join=True)
    participant.connect()
    participant.snapshot(journal(P.SESSION_START, P.BACKTEST_END), seq=2)
    assert participant.state is State.FLUSHED and participant.acked() == [("flushed", 0)]


def test_loss_resyncs_a_live_joiner_with_back_off(caplog):
    stage = live_joiner()
    stage.coord(P.STEP, 2, step=1)
    stage.answer("processor", 1, ref=2)
    with caplog.at_level(logging.ERROR):
        stage.coord(P.STEP, 4, step=3)
    assert "LOSS: 1 message(s) from coordinator missing before seq 4" in caplog.text
    assert "lost messages from coordinator: resyncing from a fresh snapshot in 0.0 s (resync #1)" in caplog.text
    assert stage.state is State.RESYNC_WAIT and len(stage.machine.joiner) == 0
    assert stage.machine.joiner.answers == {"processor": {}, "quality": {}}
    stage.coord(P.STEP, 5, step=4)  # the next snapshot covers it
    assert len(stage.machine.joiner) == 0
    stage.machine.say_hello_if_due()
    assert stage.requests.hellos == [True, True] and stage.state is State.SYNCING
    stage.coord(P.STEP, 7, step=6)  # a loss while syncing is only reported (as before)
    assert stage.state is State.SYNCING and stage.machine.subscriptions.lost == 2
    stage.coord(P.SESSION_START, 1)  # the coordinator restarted: a snapshot on its way is worth nothing
    assert stage.state is State.RESYNC_WAIT and "resync #2" in caplog.text
    stage.clock.now += 0.9
    stage.machine.say_hello_if_due()
    assert stage.requests.hellos == [True, True]
    stage.clock.now += 0.1
    stage.machine.say_hello_if_due()
    assert stage.requests.hellos == [True, True, True] and stage.state is State.SYNCING
    stage.snapshot(journal(*[P.STEP] * 7), seq=7)
    assert stage.state is State.LIVE and stage.machine.lifecycle.resyncs == 2


def test_an_overdue_answer_is_waited_for_and_a_tail_loss_shows_in_the_heartbeat(caplog):
    stage = live_joiner()
    stage.coord(P.STEP, 2, step=1)
    stage.answer("quality", 1, ref=2)
    stage.coord(P.STEP, 3, step=2)
    stage.machine.process()
    stage.clock.now += 2.5
    stage.machine.receive("processor", P.Message(P.HEARTBEAT, pub="processor", seq=0))  # alive, nothing lost
    with caplog.at_level(logging.WARNING):
        stage.machine.process()
    assert "answer of processor to seq 2 overdue: its publisher is alive (busy); waiting" in caplog.text
    assert stage.state is State.LIVE and stage.handler.handled == []
    stage.machine.receive("processor", P.Message(P.HEARTBEAT, pub="processor", seq=1))  # it published seq 1
    assert stage.state is State.RESYNC_WAIT  # the heartbeat shows the lost answer: resync


def test_an_answer_from_a_silent_publisher_is_waited_for_it_is_down_or_restarting():
    stage = live_joiner()
    stage.coord(P.STEP, 2, step=1)
    stage.answer("quality", 1, ref=2)
    stage.coord(P.STEP, 3, step=2)
    for _ in range(4):
        stage.clock.now += 2.5
        stage.machine.process()
    assert stage.state is State.LIVE  # no resync: a restarted processor republishes its answers
    stage.answer("processor", 1, ref=2)  # its new stream
    stage.machine.process()
    assert [h[:2] for h in stage.handler.handled] == [(P.STEP, 2)]


def test_a_plain_stage_waits_for_an_answer_however_long():
    stage = Stage(sources=("coordinator", "processor"))
    stage.connect()
    stage.coord(P.STEP, 1, step=1)
    stage.coord(P.STEP, 2, step=2)
    for _ in range(3):
        stage.clock.now += 5
        stage.machine.process()
    assert stage.state is State.LIVE and stage.handler.handled == []


def test_the_end_of_a_run_whose_upstream_was_lost_drops_what_waits_for_it_and_flushes(caplog):
    stage = Stage(sources=("coordinator", "processor"))
    stage.connect()
    stage.coord(P.STEP, 1, step=1)
    stage.answer("processor", 1, ref=1)
    stage.coord(P.STEP, 2, step=2)  # its answer never comes: the processor died
    stage.coord(P.STEP, 3, step=3)
    stage.coord(P.BACKTEST_END, 4, step=3, reason="error", lost=["processor"])
    stage.machine.process()
    assert [seq for _, seq, _ in stage.handler.handled] == [1, 4]  # step 1 had its answer
    assert stage.state is State.FLUSHED and stage.acked() == [("step", 1), ("flushed", 0)]
    assert "processor lost: 2 message(s) missing its answers dropped at the end of the run" in caplog.text


def test_a_lost_stage_this_one_does_not_listen_to_changes_nothing():
    stage = Stage(sources=("coordinator", "processor"))
    stage.connect()
    stage.coord(P.STEP, 1, step=1)
    stage.coord(P.BACKTEST_END, 2, step=1, reason="error", lost=["quality"])
    stage.answer("processor", 1, ref=1)
    stage.machine.process()
    assert [seq for _, seq, _ in stage.handler.handled] == [1, 2]


def test_a_resync_abandons_the_snapshot_being_collected():
    stage = Stage(role="observer", snapshot_join=True, sources=ALL)
    stage.connect()
    stage.machine.on_dealer_message(P.Message(P.REPLY, {"ok": True, "hello": True, "parts": 2, "seq": 2}))
    stage.machine.on_dealer_message(journal(P.SESSION_START)[0])
    stage.machine.receive("coordinator", P.Message(P.STEP, pub="coordinator", seq=5))
    stage.machine.receive("coordinator", P.Message(P.STEP, pub="coordinator", seq=1))  # restarted
    assert stage.state is State.RESYNC_WAIT
    stage.machine.on_dealer_message(journal(P.SESSION_START, P.HISTORY)[1])  # the rest of the old one
    assert stage.handler.replayed == [] and stage.state is State.RESYNC_WAIT
    stage.machine.say_hello_if_due()
    stage.snapshot(journal(P.SESSION_START, P.HISTORY, P.STEP), seq=3)
    assert stage.state is State.LIVE and [len(j) for j in stage.handler.replayed] == [3]


def test_a_flushed_joiner_does_not_resync_on_loss():
    stage = live_joiner(role="participant")
    stage.coord(P.BACKTEST_END, 2, sessions=1)
    stage.machine.process()
    assert stage.state is State.FLUSHED
    stage.coord(P.HEARTBEAT, 4)
    assert stage.state is State.FLUSHED and stage.machine.subscriptions.lost == 2


@pytest.mark.parametrize("name", ["stage_main", "ignore_termination", "new_request_id", "StageRuntime"])
def test_callers_still_import_from_the_runtime_module(name):
    assert callable(getattr(runtime, name))


def test_request_ids_are_short_and_distinct():
    ids = {runtime.new_request_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 12 for i in ids)


def test_the_exit_code_is_the_runs_status():
    for reason, code in (("completed", 0), ("stopped", 3), ("error", 1)):
        stage = Stage()
        stage.connect()
        stage.coord(P.BACKTEST_END, 1, sessions=1, reason=reason)
        stage.machine.process()
        assert stage.machine.exit_code() == code, reason
    signalled = Stage()
    signalled.connect()
    signalled.machine.stop_signalled = True
    signalled.machine.stop_on_signal()
    assert signalled.machine.exit_code() == 3
