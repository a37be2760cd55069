"""ctl commands against an in-process engine (real store and calendar, no sockets): dispatch, argument
errors, the reply cache; and the small pieces around them (pacing, catch-up figures, states)."""
from __future__ import annotations

import pytest

from common.config import parse_config
from common.wire import protocol as P
from services.coordinator.catchup import CatchupTiming
from services.coordinator.commands import COMMANDS, QUERIES, Commands
from services.coordinator.engine import Pacer, SessionEngine, State


def _engine(sample_store, calendar, hello=True) -> SessionEngine:
    cfg = {"session": {"start_date": "2025-07-02", "end_date": "2025-07-03", "symbols": ["MSFT"],
                       "streams": ["1m", "5m"]},
           "historical": [{"trailing_days": 1, "intervals": ["1m"]}], "stages": ["processor"],
           "schedule": [{"date": "2025-07-02", "at": "10:00", "command": "pause"}]}
    engine = SessionEngine(parse_config(cfg), calendar, sample_store, lambda msg: None)
    if hello:
        engine.on_hello("processor", "participant", pid=1)
    return engine


def _run_to_pause(engine: SessionEngine) -> None:
    for _ in range(1000):
        engine.advance(0.0)
        engine.on_ack({"stage": "processor", "kind": "step", "ref": engine.global_step})
        if engine.state is State.PAUSED:
            return
    raise AssertionError("never paused")


def test_the_table_has_every_documented_command():
    assert set(COMMANDS) == {"status", "session", "list-dynamic", "pause", "resume", "speed", "stop",
                             "add-symbol", "remove-symbol"}
    assert set(QUERIES) <= set(COMMANDS)


def test_commands_before_the_first_session(sample_store, calendar):
    engine = _engine(sample_store, calendar, hello=False)
    assert engine.command("bogus", {}, "1") == {"ok": False, "error": "unknown command 'bogus'"}
    for name in ("pause", "resume", "add-symbol", "remove-symbol"):
        assert engine.command(name, {"symbols": ["AAPL"]}, name)["error"] == "no session running (state waiting)"
    status = engine.command("status", {}, "s")["status"]
    assert status["state"] == "waiting" and status["waiting_for"] == ["processor"]
    assert engine.command("session", {}, "q") == {"ok": True, "session": []}


@pytest.mark.parametrize("args, error", [
    ({"symbols": []}, "give at least one symbol"),
    ({"symbols": "AAPL"}, "give at least one symbol"),
    ({"symbols": ["aa pl"]}, "'aa pl' is not a ticker"),
    ({"symbols": ["AAPL"], "streams": "1m"}, "streams must be a list of intervals like ['1m', '5m']"),
    ({"symbols": ["AAPL"], "streams": ["15m"]}, "streams ['15m'] are not among the session's streams (1m, 5m)"),
    ({"symbols": ["AAPL"], "at": "09:45"}, "--at 09:45 is in the past (clock 10:00)"),
    ({"symbols": ["AAPL"], "at": "16:01"}, "--at 16:01 is after today's close 16:00"),
    ({"symbols": ["MSFT"]}, "MSFT is already in the session"),
    ({"symbols": ["ZZZZ"]}, "ZZZZ: no data in the store for session 2025-07-02"),
])
def test_add_symbol_argument_errors(sample_store, calendar, args, error):
    engine = _engine(sample_store, calendar)
    _run_to_pause(engine)
    reply = engine.command("add-symbol", args, "r")
    assert not reply["ok"] and reply["error"].startswith(error)
    assert len(engine.pending) == 0


def test_speed_errors_and_values(sample_store, calendar):
    engine = _engine(sample_store, calendar)
    assert engine.command("speed", {"speed": True}, "1")["error"] == "speed must be a number or 'max', got True"
    for bad in (0, -5, "inf", "nan", 1e9):
        error = engine.command("speed", {"speed": bad}, f"bad-{bad}")["error"]
        assert error == f"speed must be > 0 and at most 1,000,000 (x real time), or 'max'; got {bad}"
    assert not engine.command("speed", {"speed": "fast"}, "3")["ok"]
    assert engine.command("speed", {"speed": "60"}, "4") == {"ok": True, "speed": 60.0}
    assert engine.command("speed", {}, "5") == {"ok": True, "speed": "max"}


def test_replies_are_cached_per_request_id_except_queries(sample_store, calendar):
    engine = _engine(sample_store, calendar)
    _run_to_pause(engine)
    first = engine.command("add-symbol", {"symbols": ["AAPL"]}, "req")
    assert engine.command("add-symbol", {"symbols": ["RIVN"]}, "req") is first  # a retry: not applied again
    assert len(engine.pending) == 1
    refused = engine.command("remove-symbol", {"symbols": ["RIVN"]}, "rm")
    assert engine.command("remove-symbol", {"symbols": ["MSFT"]}, "rm") is refused
    assert engine.command("status", {}, "q")["status"]["operator_paused"]
    engine.command("resume", {}, "res")
    assert not engine.command("status", {}, "q")["status"]["operator_paused"]  # a query is answered afresh


def test_an_unexpected_failure_is_a_reply_not_a_crash(sample_store, calendar):
    commands = Commands(_engine(sample_store, calendar))
    reply = commands.handle("speed", None, "x")  # args not a map
    assert not reply["ok"] and reply["error"].startswith("speed failed: AttributeError")


def test_stop_before_the_first_session_ends_at_once(sample_store, calendar):
    sent = []
    engine = SessionEngine(_engine(sample_store, calendar).config, calendar, sample_store, sent.append)
    assert engine.command("stop", {}, "s") == {"ok": True, "stopping": True}
    assert engine.state is State.ENDING and [m.type for m in sent] == [P.BACKTEST_END]
    assert sent[0].body["reason"] == "stopped"


def test_abort_ends_with_reason_error(sample_store, calendar):
    sent = []
    engine = SessionEngine(_engine(sample_store, calendar).config, calendar, sample_store, sent.append)
    engine.on_hello("processor", "participant", pid=1)
    engine.advance(0.0)
    engine.abort("disk on fire")
    assert engine.state is State.ENDING and engine.stop_requested
    assert sent[-1].type == P.BACKTEST_END and sent[-1].body["reason"] == "error"


def test_pacer_restarts_without_drift():
    now = [10.0]
    pacer = Pacer(60.0, lambda: now[0])  # one step per second
    assert pacer.wait(10.0, 0) == 1.0 and pacer.wait(10.5, 0) == 0.5 and pacer.wait(12.0, 0) == 0.0
    assert pacer.wait(10.0, 4) == 5.0
    now[0] = 20.0
    pacer.restart(4)
    assert pacer.wait(20.0, 4) == 1.0
    pacer.speed = None
    assert pacer.wait(0.0, 100) == 0.0


def test_catchup_figures_add_up():
    timing = CatchupTiming(drain_ms=3.0, load_ms=2.0, started=1.0, published=1.25)
    ms = timing.figures(2.0)
    assert list(ms) == ["total", "load", "drain", "load_publish", "stages"]  # RESUME's body, in this order
    assert ms == {"total": 1000.0, "load": 2.0, "drain": 3.0, "load_publish": 250.0, "stages": 750.0}


def test_states_read_as_the_status_strings():
    assert [s.value for s in State] == ["waiting", "running", "paused", "ending"]
    assert f"{State.PAUSED}" == "paused"


def test_pause_when_paused_and_resume_when_running_say_so(sample_store, calendar):
    engine = _engine(sample_store, calendar)
    _run_to_pause(engine)
    assert engine.command("pause", {}, "p")["error"].startswith("already paused (clock 10:00)")
    assert engine.command("resume", {}, "r1")["ok"]
    assert engine.command("resume", {}, "r2")["error"] == "not paused (clock 10:00 is running)"


def test_at_with_seconds_is_refused_not_truncated(sample_store, calendar):
    engine = _engine(sample_store, calendar)
    _run_to_pause(engine)
    reply = engine.command("add-symbol", {"symbols": ["AAPL"], "at": "12:06:30"}, "a")
    assert reply == {"ok": False, "error": "--at '12:06:30': the clock moves in whole minutes; give a time like 12:06"}
    assert engine.command("add-symbol", {"symbols": ["AAPL"], "at": "12:06:00"}, "b")["ok"]



def test_the_reply_cache_is_bounded(sample_store, calendar):
    from services.coordinator.commands import MAX_REPLIES

    engine = _engine(sample_store, calendar)
    for i in range(MAX_REPLIES + 500):
        engine.command("bogus", {}, f"flood-{i}")
    assert len(engine.commands.replies) == MAX_REPLIES and "flood-0" not in engine.commands.replies
