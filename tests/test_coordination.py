"""The coordinator's state machine in-process (real store, real calendar), frames captured as published."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from support.inline import Wire

from common.config import ConfigError, parse_config
from common.domain.timeconv import NS_PER_MIN
from common.wire import protocol as P
from services.analysis.handler import AnalysisHandler, Context
from services.coordinator.engine import SessionEngine, State
from services.processor.handler import ProcessorHandler
from services.quality.handler import QualityHandler


def engine_for(sample_store, calendar, **session) -> tuple[SessionEngine, Wire]:
    cfg = {"session": {"start_date": "2025-07-02", "end_date": "2025-07-02", "symbols": ["MSFT"],
                       "streams": ["1m", "5m"], **session.pop("session", {})},
           "historical": [{"trailing_days": 2, "intervals": ["1m"]}], "stages": ["processor"],
           "schedule": [{"at": "12:00", "command": "pause"}], **session}
    wire = Wire()
    engine = SessionEngine(parse_config(cfg), calendar, sample_store, wire.publisher.send)
    engine.on_hello("processor", "participant", pid=1)
    return engine, wire


def ack_all(engine: SessionEngine) -> None:
    engine.on_ack({"stage": "processor", "kind": "step", "ref": engine.global_step})
    engine.on_ack({"stage": "processor", "kind": "snapshot", "ref": engine.catchup.snapshot_id})


def run_until_quiet(engine: SessionEngine, now: float = 0.0) -> None:
    for _ in range(10_000):
        before = (engine.global_step, len(engine.journal), engine.state)
        engine.advance(now)
        ack_all(engine)
        if (engine.global_step, len(engine.journal), engine.state) == before:
            return


def test_retried_request_is_applied_once(sample_store, calendar):
    engine, wire = engine_for(sample_store, calendar)
    run_until_quiet(engine)
    assert engine.state is State.PAUSED and engine.clock_ns == calendar.open_close_ns("2025-07-02")[0] + 150 * NS_PER_MIN
    first = engine.command("add-symbol", {"symbols": ["AAPL"]}, "req-1")
    again = engine.command("add-symbol", {"symbols": ["AAPL"]}, "req-1")
    assert first == again and first["ok"]
    assert sum(op.command == "add-symbol" for op in engine.pending) == 1
    other = engine.command("add-symbol", {"symbols": ["AAPL"]}, "req-2")
    assert not other["ok"] and "already queued" in other["error"]


def test_clock_frozen_from_pause_to_resume(sample_store, calendar):
    engine, wire = engine_for(sample_store, calendar)
    run_until_quiet(engine)
    assert engine.command("add-symbol", {"symbols": ["AAPL", "RIVN"]}, "r")["ok"]
    engine.advance(0.0)
    types = wire.types()
    start = types.index(P.PAUSE)
    assert types[start:start + 3] == [P.PAUSE, P.CATCHUP_SNAPSHOT, P.CATCHUP_SNAPSHOT]
    assert P.RESUME not in types[start:]  # no RESUME before every snapshot is acked
    engine.on_ack({"stage": "processor", "kind": "snapshot", "ref": engine.catchup.snapshot_id - 1})
    engine.advance(0.0)
    assert P.RESUME not in wire.types()[start:]  # the first of two snapshots is not enough
    ack_all(engine)
    engine.advance(0.0)
    after = wire.messages[start:]
    resume = [m for m in after if m.type == P.RESUME][0]
    assert {m.clock for m in after[: after.index(resume) + 1]} == {after[0].clock}
    snaps = [m for m in after if m.type == P.CATCHUP_SNAPSHOT]
    assert [m.body["symbol"] for m in snaps] == ["AAPL", "RIVN"]
    assert all(np.all(m.arrays["s_ts"] < after[0].clock) for m in snaps)


def test_stop_is_honoured_while_a_snapshot_is_unacked(sample_store, calendar):
    engine, wire = engine_for(sample_store, calendar)
    run_until_quiet(engine)
    engine.command("add-symbol", {"symbols": ["AAPL"]}, "r")
    engine.advance(0.0)  # snapshot out, never acked
    engine.command("stop", {}, "s")
    engine.advance(0.0)
    assert wire.types()[-1] == P.BACKTEST_END and engine.state is State.ENDING


def test_name_held_by_another_process_is_refused(sample_store, calendar):
    engine, _ = engine_for(sample_store, calendar)
    with pytest.raises(ValueError, match="taken by pid 1"):
        engine.on_hello("processor", "participant", pid=2)
    assert engine.on_hello("processor", "participant", pid=1)["ok"]  # the same process may re-register


def test_schedule_date_outside_the_backtest_is_a_config_error(sample_store, calendar):
    with pytest.raises(ConfigError, match=r"schedule\[0\].date: 2025-07-04 is not a trading session"):
        engine_for(sample_store, calendar,
                   schedule=[{"date": "2025-07-04", "at": "10:00", "command": "add-symbol", "symbols": ["AAPL"]}])


def test_analysis_context_gaps_equal_the_store(sample_store, calendar):
    """The published stream replayed through the real stage handlers: ctx.gaps = missing store minutes (one
    step per message, so the test can look between steps)."""
    engine, wire = engine_for(sample_store, calendar, schedule=[], flow={"batch": 1})
    run_until_quiet(engine)
    config, log = engine.config, logging.getLogger("test")
    processor, quality, analysis = ProcessorHandler(config, log), QualityHandler(config, log), AnalysisHandler(config, log)
    checked = False
    for msg in wire.messages:
        answers = {}
        for name, stage in (("processor", processor), ("quality", quality)):
            out = stage.handle(msg, {})
            if msg.type in P.ANSWERS[name]:
                answers[name] = out[0]
        analysis.handle(msg, answers)
        if msg.type == P.STEP and msg.clock == engine.session.open_ns + 200 * NS_PER_MIN:
            ctx = Context(analysis, "test")
            bars, _ = sample_store.read_session("MSFT", "2025-07-02", engine.session.open_ns, engine.session.close_ns)
            minutes = set(((bars.ts - engine.session.open_ns) // NS_PER_MIN).tolist())
            missing = [m for m in range(200) if m not in minutes]
            listed = [m for first, last, n in ctx.gaps("MSFT") for m in range(_minute(first), _minute(last) + 1)]
            assert listed == missing and sum(n for *_, n in ctx.gaps("MSFT")) == len(missing)
            assert ctx.quality("MSFT")["1m"]["present"] == 200 - len(missing)
            checked = True
    assert checked


def _minute(hhmm: str) -> int:
    h, m = map(int, hhmm.split(":"))
    return (h * 60 + m) - (9 * 60 + 30)


def test_prepare_gives_the_same_catchup_as_without(sample_store, calendar):
    """PREPARE only moves work out of the pause: the processor's catch-up answer is identical without it."""
    indicators = [{"name": "ema", "interval": "1m", "params": {"period": 9}},
                  {"name": "rsi", "interval": "5m", "params": {}}, {"name": "vwap", "interval": "1m"}]
    engine, wire = engine_for(sample_store, calendar, indicators=indicators)
    run_until_quiet(engine)
    assert engine.command("add-symbol", {"symbols": ["AAPL"]}, "r")["ok"]
    engine.advance(0.0)
    assert P.PREPARE in wire.types() and P.CATCHUP_SNAPSHOT in wire.types()
    log = logging.getLogger("test")
    answers = []
    for skip_prepare in (False, True):
        processor = ProcessorHandler(engine.config, log)
        for msg in wire.messages:
            if msg.type == P.PREPARE and skip_prepare:
                continue
            out = processor.handle(msg, {})
            if msg.type == P.CATCHUP_SNAPSHOT:
                answers.append(out[0])
    with_prepare, without = answers
    assert with_prepare.body == without.body
    assert with_prepare.arrays.keys() == without.arrays.keys() and len(with_prepare.arrays) > 10
    for key in with_prepare.arrays:
        assert np.array_equal(with_prepare.arrays[key], without.arrays[key], equal_nan=True), key
