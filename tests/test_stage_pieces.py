"""The stage runtime's pieces, each fed plain messages and fake times (no sockets)."""
from __future__ import annotations

import logging

import zmq

from common.stage.acks import AckBatcher
from common.stage.answer_joiner import ANSWER_TIMEOUT_S, AnswerJoiner, Overdue, Ready
from common.stage.coordinator_link import CoordinatorLink
from common.stage.lifecycle import Lifecycle, State
from common.stage.snapshot_join import SnapshotJoin
from common.stage.subscriptions import Subscriptions, read_messages
from common.wire import protocol as P

LOG = logging.getLogger("test-stage")
SOURCES = ["coordinator", "processor", "quality"]


def coord(mtype: str, seq: int, step: int = 0, clock: int = 0, **body) -> P.Message:
    return P.Message(mtype, dict(body), pub="coordinator", seq=seq, step=step, clock=clock)


def answer(stage: str, mtype: str, seq: int, ref) -> P.Message:
    return P.Message(mtype, {"ref": ref}, pub=stage, seq=seq)


def beat(pub: str, seq: int) -> P.Message:
    return P.Message(P.HEARTBEAT, pub=pub, seq=seq)


def lifecycle_in(state: State, snapshot_join: bool = True) -> Lifecycle:
    life = Lifecycle(snapshot_join, LOG)
    if state is not State.CONNECTING:
        life.hello_sent(SOURCES, "observer")
    if state in (State.LIVE, State.FLUSHED) and snapshot_join:
        life.snapshot_applied(0, 0)
    if state is State.FLUSHED:
        life.results_written(final=False)
    if state is State.RESYNC_WAIT:
        life.resync("test", 0.0)
    return life


# ---- subscriptions -----------------------------------------------------------------------------
def test_hello_waits_for_a_heartbeat_from_every_publisher():
    subs = Subscriptions(SOURCES, lifecycle_in(State.CONNECTING), LOG, now=0.0)
    subs.receive("coordinator", beat("coordinator", 0), now=1.0)
    subs.receive("processor", beat("processor", 5), now=1.0)
    assert not subs.heard_all()
    subs.receive("quality", beat("quality", 7), now=1.0)
    assert subs.heard_all()


def test_heartbeats_are_never_kept_and_show_the_coordinator_alive():
    subs = Subscriptions(SOURCES, lifecycle_in(State.LIVE), LOG, now=0.0)
    intake = subs.receive("coordinator", beat("coordinator", 0), now=30.0)
    assert not intake.keep and intake.resync is None
    assert subs.silent_for(now=31.0) == 1.0
    subs.receive("processor", beat("processor", 0), now=40.0)  # another publisher does not count
    assert subs.silent_for(now=41.0) == 11.0


def test_a_joiner_drops_what_it_receives_before_its_hello_and_while_backing_off():
    subs = Subscriptions(SOURCES, lifecycle_in(State.CONNECTING), LOG, now=0.0)
    assert not subs.receive("coordinator", coord(P.STEP, 7), now=0.0).keep
    subs = Subscriptions(SOURCES, lifecycle_in(State.RESYNC_WAIT), LOG, now=0.0)
    assert not subs.receive("coordinator", coord(P.STEP, 7), now=0.0).keep
    subs = Subscriptions(SOURCES, lifecycle_in(State.SYNCING), LOG, now=0.0)
    assert subs.receive("coordinator", coord(P.STEP, 7), now=0.0).keep  # held until the snapshot is in


def test_a_plain_stage_keeps_what_it_receives_before_its_hello():
    subs = Subscriptions(["coordinator"], lifecycle_in(State.CONNECTING, snapshot_join=False), LOG, now=0.0)
    assert subs.receive("coordinator", coord(P.SESSION_START, 1), now=0.0).keep


def test_a_gap_is_reported_and_resyncs_a_live_joiner(caplog):
    subs = Subscriptions(SOURCES, lifecycle_in(State.LIVE), LOG, now=0.0)
    assert subs.receive("coordinator", coord(P.STEP, 10), now=0.0).keep
    with caplog.at_level(logging.ERROR):
        intake = subs.receive("coordinator", coord(P.STEP, 13), now=0.0)
    assert not intake.keep and intake.resync == "lost messages from coordinator"
    assert subs.lost == 2
    assert "LOSS: 2 message(s) from coordinator missing before seq 13" in caplog.text


def test_a_gap_in_a_heartbeat_shows_a_lost_tail():
    subs = Subscriptions(SOURCES, lifecycle_in(State.LIVE), LOG, now=0.0)
    subs.receive("processor", answer("processor", P.DERIVED, 4, ref=4), now=0.0)
    intake = subs.receive("processor", beat("processor", 5), now=0.0)
    assert intake.resync == "lost messages from processor" and subs.lost == 1


def test_a_plain_stage_or_a_flushed_joiner_only_reports_the_loss(caplog):
    plain = Subscriptions(["coordinator"], lifecycle_in(State.LIVE, snapshot_join=False), LOG, now=0.0)
    plain.receive("coordinator", coord(P.SESSION_START, 1), now=0.0)
    intake = plain.receive("coordinator", coord(P.STEP, 3), now=0.0)
    assert intake.keep and intake.resync is None and plain.lost == 1
    flushed = Subscriptions(SOURCES, lifecycle_in(State.FLUSHED), LOG, now=0.0)
    flushed.receive("coordinator", coord(P.BACKTEST_END, 50), now=0.0)
    assert flushed.receive("coordinator", beat("coordinator", 52), now=0.0).resync is None
    assert flushed.lost == 2  # a heartbeat repeats the last seq: 51 and 52 are missing


def test_a_restarted_answering_publisher_is_taken_as_a_new_stream(caplog):
    """A restarted processor/quality republishes its answers by ref: its new stream is taken, no resync."""
    subs = Subscriptions(SOURCES, lifecycle_in(State.LIVE), LOG, now=0.0)
    subs.receive("quality", answer("quality", P.QUALITY, 40, ref=9), now=0.0)
    with caplog.at_level(logging.WARNING):
        intake = subs.receive("quality", answer("quality", P.QUALITY_SNAPSHOT, 1, ref=2), now=0.0)
    assert intake.keep and intake.resync is None
    assert "quality: seq 1 after 40: the publisher restarted; taking its new stream" in caplog.text
    assert subs.lost == 0


def test_a_coordinator_restart_resyncs_a_joiner(caplog):
    subs = Subscriptions(SOURCES, lifecycle_in(State.SYNCING), LOG, now=0.0)
    subs.receive("coordinator", P.Message(P.STEP, pub="coordinator", seq=40), now=0.0)
    with caplog.at_level(logging.ERROR):
        intake = subs.receive("coordinator", P.Message(P.SESSION_START, pub="coordinator", seq=1), now=0.0)
    assert not intake.keep and "the publisher restarted" in intake.resync


def test_malformed_messages_are_counted(caplog):
    subs = Subscriptions(SOURCES, lifecycle_in(State.LIVE), LOG, now=0.0)
    with caplog.at_level(logging.ERROR):
        subs.bad_message("processor", P.ProtocolError("bad header"))
    assert subs.malformed == 1 and "malformed message from processor dropped: bad header" in caplog.text


class FakeSub:
    def __init__(self, frame_sets):
        self.frame_sets = list(frame_sets)

    def recv_multipart(self, flags=0, copy=True):
        if not self.frame_sets:
            raise zmq.Again()
        return [zmq.Frame(f) for f in self.frame_sets.pop(0)]


def test_read_messages_decodes_what_is_waiting_and_hands_back_what_does_not_decode():
    good = P.encode(coord(P.RESUME, 3, reason="add-symbol"))
    sock = FakeSub([[bytes(f) for f in good], [b"STEP", b"\x93not a header"]])
    out = list(read_messages(sock))
    assert out[0].type == P.RESUME and out[0].seq == 3
    assert isinstance(out[1], P.ProtocolError) and len(out) == 2


# ---- answer joiner -----------------------------------------------------------------------------
def test_a_step_waits_for_both_answers_whatever_the_arrival_order():
    joiner = AnswerJoiner(("processor", "quality"))
    joiner.add_coordinator(coord(P.STEP, 5, step=3))
    joiner.add_coordinator(coord(P.PAUSE, 6, reason="add-symbol"))
    joiner.add_answer("quality", answer("quality", P.QUALITY, 20, ref=5))
    assert joiner.next_ready(now=0.0) is None
    joiner.add_answer("processor", answer("processor", P.DERIVED, 21, ref=5))
    ready = joiner.next_ready(now=0.0)
    assert isinstance(ready, Ready) and ready.msg.seq == 5
    assert {s: m.seq for s, m in ready.answers.items()} == {"processor": 21, "quality": 20}
    ready = joiner.next_ready(now=0.0)  # PAUSE is answered by nobody
    assert ready.msg.type == P.PAUSE and ready.answers == {}
    assert joiner.next_ready(now=0.0) is None and joiner.answers == {"processor": {}, "quality": {}}


def test_session_end_needs_only_the_quality_answer():
    joiner = AnswerJoiner(("processor", "quality"))
    joiner.add_coordinator(coord(P.SESSION_END, 9, date="2025-07-01", steps=390))
    joiner.add_answer("quality", answer("quality", P.QUALITY_SNAPSHOT, 2, ref=9))
    assert set(joiner.next_ready(now=0.0).answers) == {"quality"}


def test_a_stage_listening_to_nobody_takes_messages_as_they_come():
    joiner = AnswerJoiner(())
    joiner.add_coordinator(coord(P.STEP, 1))
    assert joiner.next_ready(now=0.0).answers == {}


def test_an_answer_without_an_integer_ref_is_dropped():
    joiner = AnswerJoiner(("processor",))
    joiner.add_answer("processor", answer("processor", P.DERIVED, 1, ref="5"))
    assert joiner.answers == {"processor": {}}


def test_a_missing_answer_is_overdue_only_while_later_messages_pile_up():
    joiner = AnswerJoiner(("processor",))
    joiner.add_coordinator(coord(P.STEP, 5))
    assert joiner.next_ready(now=100.0) is None
    assert joiner.next_ready(now=100.0 + 10 * ANSWER_TIMEOUT_S) is None  # alone at the head: on its way
    joiner.add_coordinator(coord(P.STEP, 6))
    assert joiner.next_ready(now=100.0 + ANSWER_TIMEOUT_S / 2 + 10 * ANSWER_TIMEOUT_S) == Overdue("processor", 5)
    assert Overdue("processor", 5).reason() == "answer of processor to seq 5 overdue"
    assert joiner.next_ready(now=200.0) is None  # the wait starts over after a verdict


def test_the_wait_counts_from_when_that_very_answer_went_missing():
    joiner = AnswerJoiner(("processor",))
    for seq in (5, 6, 7):
        joiner.add_coordinator(coord(P.STEP, seq))
    assert joiner.next_ready(now=0.0) is None
    joiner.add_answer("processor", answer("processor", P.DERIVED, 1, ref=5))
    assert joiner.next_ready(now=1.5).msg.seq == 5
    assert joiner.next_ready(now=1.9) is None                    # waiting on 6 since 1.9
    assert joiner.next_ready(now=1.9 + ANSWER_TIMEOUT_S) is None
    assert joiner.next_ready(now=2.0 + ANSWER_TIMEOUT_S) == Overdue("processor", 6)


def test_a_snapshot_drops_the_messages_and_answers_it_covers():
    joiner = AnswerJoiner(("processor",))
    for seq in (8, 9, 10, 11):
        joiner.add_coordinator(coord(P.STEP, seq))
    for ref in (9, 10, 11):
        joiner.add_answer("processor", answer("processor", P.DERIVED, ref, ref=ref))
    joiner.drop_covered(10)
    assert [m.seq for m in joiner.queue] == [11] and list(joiner.answers["processor"]) == [11]
    joiner.clear()
    assert len(joiner) == 0 and joiner.answers == {"processor": {}} and joiner.waiting_for is None


# ---- acks --------------------------------------------------------------------------------------
def collecting_batcher() -> tuple[AckBatcher, list[P.Message]]:
    sent: list[P.Message] = []
    return AckBatcher("analysis", sent.append), sent


def test_step_acks_are_cumulative_with_each_step_busy_time():
    acks, sent = collecting_batcher()
    acks.flush()
    assert sent == []
    acks.handled(coord(P.STEP, 5, step=3, clock=300), busy_ns=10)
    acks.handled(coord(P.STEP, 6, step=4, clock=400), busy_ns=20)
    acks.handled(coord(P.PAUSE, 7), busy_ns=99)  # not acknowledged
    assert sent == []
    acks.flush()
    (msg,) = sent
    assert msg.type == P.ACK and msg.clock == 400
    assert msg.body == {"stage": "analysis", "kind": "step", "ref": 4, "busy_ns": 30, "busy_list": [10, 20]}
    acks.flush()
    assert len(sent) == 1


def test_a_snapshot_ack_first_sends_the_pending_step_ack():
    acks, sent = collecting_batcher()
    acks.handled(coord(P.STEP, 5, step=3, clock=300), busy_ns=10)
    acks.handled(coord(P.CATCHUP_SNAPSHOT, 6, clock=300, snapshot_id=2), busy_ns=7)
    assert [(m.body["kind"], m.body["ref"]) for m in sent] == [("step", 3), ("snapshot", 2)]
    assert sent[1].body["busy_ns"] == 7 and sent[1].clock == 300 and "busy_list" not in sent[1].body


def test_the_flushed_ack_follows_the_last_step_ack():
    acks, sent = collecting_batcher()
    acks.handled(coord(P.STEP, 5, step=3), busy_ns=1)
    acks.results_flushed()
    assert [(m.body["kind"], m.body["ref"]) for m in sent] == [("step", 3), ("flushed", 0)]


# ---- snapshot join -----------------------------------------------------------------------------
class ReplayingHandler:
    def __init__(self):
        self.replayed: list[P.Message] = []

    def replay(self, journal):
        self.replayed = list(journal)


def test_a_snapshot_is_complete_with_its_parts_then_replayed_and_live_messages_trimmed():
    join, joiner, handler = SnapshotJoin(), AnswerJoiner(("processor",)), ReplayingHandler()
    for seq in (3, 4, 5):
        joiner.add_coordinator(coord(P.STEP, seq))
    assert not join.collecting
    join.on_reply({"ok": True, "hello": True, "parts": 2, "seq": 4})
    join.on_part(coord(P.SESSION_START, 1))
    assert join.collecting and not join.complete()
    join.on_part(coord(P.HISTORY, 2))
    assert join.complete()
    parts, seq, _ = join.apply(handler, joiner)
    assert seq == 4 and [m.type for m in handler.replayed] == [P.SESSION_START, P.HISTORY] == [m.type for m in parts]
    assert [m.seq for m in joiner.queue] == [5] and not join.collecting


def test_an_empty_snapshot_is_complete_at_once():
    join = SnapshotJoin()
    join.on_reply({"ok": True, "hello": True, "parts": 0, "seq": 0})
    assert join.complete() and join.take() == ([], 0)


def test_parts_of_an_abandoned_snapshot_are_dropped():
    join = SnapshotJoin()
    join.on_reply({"parts": 3, "seq": 9})
    join.on_part(coord(P.SESSION_START, 1))
    join.abandon()
    join.on_part(coord(P.HISTORY, 2))
    assert not join.collecting and not join.complete()


# ---- coordinator link --------------------------------------------------------------------------
class FakeDealer:
    """Replies in order; a REPLY without a request id answers the last command sent (as the coordinator does)."""

    def __init__(self, replies=()):
        self.sent: list[P.Message] = []
        self.replies = list(replies)

    def send_multipart(self, frames):
        self.sent.append(P.decode([bytes(f) for f in frames]))

    def poll(self, timeout_ms):
        return bool(self.replies)

    def recv_multipart(self):
        reply = self.replies.pop(0)
        if reply.type == P.REPLY and "request_id" not in reply.body and self.sent:
            reply = P.Message(P.REPLY, {**reply.body, "request_id": self.sent[-1].body.get("request_id")})
        return [bytes(f) for f in P.encode(reply)]


def test_hello_names_the_stage_its_role_and_whether_it_wants_a_snapshot():
    dealer = FakeDealer()
    CoordinatorLink(dealer, "late", "observer", 1, LOG).hello(snapshot=True)
    (hello,) = dealer.sent
    assert hello.type == P.HELLO and hello.body["stage"] == "late" and hello.body["role"] == "observer"
    assert hello.body["snapshot"] is True and isinstance(hello.body["pid"], int)


def test_a_strategy_command_waits_for_its_reply_and_logs_it(caplog):
    dealer = FakeDealer([P.Message(P.REPLY, {"ok": True}), P.Message(P.REPLY, {"ok": False, "error": "no"})])
    link = CoordinatorLink(dealer, "analysis", "participant", 1, LOG)
    with caplog.at_level(logging.INFO):
        link.command("add-symbol", {"symbols": ["RIVN"]})
        link.command("add-symbol", {"symbols": ["ZZZZ"]})
        link.command("remove-symbol", {"symbols": ["RIVN"]})
    assert [m.body["name"] for m in dealer.sent] == ["add-symbol", "add-symbol", "remove-symbol"]
    assert len({m.body["request_id"] for m in dealer.sent}) == 3
    assert "[DYNAMIC] strategy asked to add-symbol RIVN: queued" in caplog.text
    assert "strategy command add-symbol refused: no" in caplog.text
    assert "strategy command remove-symbol {'symbols': ['RIVN']}: no reply from the coordinator" in caplog.text
    assert "flow.window" not in caplog.text


def test_a_command_never_takes_another_requests_reply():
    stale = P.Message(P.REPLY, {"ok": True, "request_id": "an-earlier-stop"})
    dealer = FakeDealer([stale, P.Message(P.REPLY, {"ok": False, "error": "no"})])
    link = CoordinatorLink(dealer, "analysis", "participant", 1, LOG)
    others = []
    link.on_other = others.append
    link.command("add-symbol", {"symbols": ["ZZZZ"]})
    assert [m.body["request_id"] for m in others] == ["an-earlier-stop"]


def test_commands_with_a_wide_window_warn_once(caplog):
    dealer = FakeDealer([P.Message(P.REPLY, {"ok": True})] * 2)
    link = CoordinatorLink(dealer, "analysis", "participant", 4, LOG)
    with caplog.at_level(logging.WARNING):
        link.command("pause", {})
        link.command("resume", {})
    assert caplog.text.count("strategy commands with flow.window 4") == 1


def test_the_stop_request_goes_out_once(caplog):
    dealer = FakeDealer()
    link = CoordinatorLink(dealer, "analysis", "participant", 1, LOG)
    with caplog.at_level(logging.ERROR):
        link.ask_stop()
        link.ask_stop()
    assert [(m.type, m.body["name"]) for m in dealer.sent] == [(P.COMMAND, "stop")]
    assert caplog.text.count("asking the coordinator to stop the run") == 1
