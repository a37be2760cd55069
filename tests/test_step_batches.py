"""Step batches (clock max): several consecutive steps in one STEPS message, the same steps and callbacks."""
from __future__ import annotations

import json

import numpy as np
import pytest
from support import identity
from support.inline import STAGES, Wire, run_inline

from common.config import parse_config
from common.domain.bars import Bars
from common.wire import protocol as P
from common.wire.payloads import BarBatch, StepPayload
from services.coordinator.engine import SessionEngine, State

SCHEDULE = [{"date": "2025-07-02", "at": "10:00", "command": "pause"},
            {"date": "2025-07-02", "at": "12:06", "command": "add-symbol", "symbols": ["RIVN"]}]


def _config(batch: int, **extra) -> dict:
    return {"session": {"start_date": "2025-07-02", "end_date": "2025-07-03", "symbols": ["AAPL", "MSFT"],
                        "streams": ["1m", "5m", "15m"], **extra.pop("session", {})},
            "historical": [{"trailing_days": 2, "intervals": ["1m"]}], "stages": list(STAGES),
            "schedule": SCHEDULE, "flow": {"window": 16, "batch": batch}, **extra}


def _published(cfg: dict, store, calendar) -> list[P.Message]:
    """Every message the coordinator publishes over the run (stages ack at once, pauses are resumed)."""
    wire = Wire()
    engine = SessionEngine(parse_config(cfg), calendar, store, wire.publisher.send)
    for pid, stage in enumerate(STAGES):
        engine.on_hello(stage, "participant", pid=pid + 1)
    for _ in range(100_000):
        engine.advance(0.0)
        for stage in STAGES:
            engine.on_ack({"stage": stage, "kind": "step", "ref": engine.global_step})
            engine.on_ack({"stage": stage, "kind": "snapshot", "ref": engine.catchup.snapshot_id})
        if engine.state is State.PAUSED:
            engine.resume()
        if engine.state is State.ENDING:
            return wire.messages
    raise AssertionError("the engine did not end")


def _trace(messages: list[P.Message]) -> list[tuple]:
    """The run as one-step messages: (type, step, clock, slots, bar open times); a batch counts as its steps."""
    out = []
    for msg in messages:
        for m in (P.split_batch(msg) if msg.type in P.BATCH_PART else [msg]):
            batch = m.payload.batch if m.type == P.STEP else None
            out.append((m.type, m.step, m.clock, None if batch is None else batch.slots.tolist(),
                        None if batch is None else batch.bars.ts.tolist()))
    return out


def test_batches_carry_the_steps_of_single_step_messages(sample_store, calendar):
    """Same steps, bars, clocks; the scheduled pause, the 12:06 add and both session ends fall at the same
    step; no batch crosses them or goes past a session's last step."""
    batched = _published(_config(8), sample_store, calendar)
    single = _published(_config(1), sample_store, calendar)
    assert P.STEPS not in {m.type for m in single}
    sizes = [len(m.payload) for m in batched if m.type == P.STEPS]
    assert sizes and max(sizes) == 8
    assert _trace(batched) == _trace(single)
    for before, after in zip(batched, batched[1:]):
        if after.type in (P.PAUSE, P.SESSION_END):  # the op or the end falls on the batch's last step
            assert before.type in (P.STEP, P.STEPS) and before.clock == after.clock


def test_a_paced_clock_sends_one_step_per_message(sample_store, calendar):
    messages = _published(_config(8, session={"clock": {"speed": 1e9}}), sample_store, calendar)
    assert P.STEP in {m.type for m in messages} and P.STEPS not in {m.type for m in messages}


def test_strategies_see_the_same_callbacks_and_context(sample_store, calendar, tmp_path):
    """Every callback, in order, with what ctx says at that moment, and the result files: equal."""
    strategies = [{"class": "support.recording:ContextRecorder", "name": "rec"},
                  {"class": "strategies.examples:SmaCross", "name": "sma", "params": {"fast": 3, "slow": 8}}]
    seen, files = [], []
    for batch in (8, 1):
        cfg = _config(batch, strategies=strategies, dump_replica=True, schedule=SCHEDULE[1:])  # no pause inline
        analysis = run_inline(cfg, sample_store, calendar, tmp_path / str(batch))
        seen.append(next(st for n, st, _ in analysis.strategies if n == "rec").calls)
        files.append({p.name: p.read_bytes() for p in sorted(analysis.results_dir.glob("*.parquet"))})
    assert seen[0] == seen[1] and len(seen[0]) > 1000
    assert files[0] == files[1] and "replica_2025-07-02.parquet" in files[0]


def _batch_message(n: int) -> P.Message:
    bars = Bars(np.arange(n, dtype=np.int64), *(np.full(n, 1.0) for _ in range(5)))
    parts = [P.Message(P.STEP, step=i + 1, clock=60 * (i + 1), payload=StepPayload(BarBatch(np.arange(n), bars)))
             for i in range(3)]
    msg = P.step_batch(parts)
    msg.pub, msg.seq = "coordinator", 9
    return msg


def test_a_batch_round_trips_and_stamps_its_last_step():
    back = P.decode(P.encode(_batch_message(4)))
    assert (back.type, back.seq, back.step, back.clock) == (P.STEPS, 9, 3, 180)
    parts = P.split_batch(back)
    assert [(m.type, m.seq, m.step, m.clock, len(m.payload.batch)) for m in parts] == [
        (P.STEP, 9, 1, 60, 4), (P.STEP, 9, 2, 120, 4), (P.STEP, 9, 3, 180, 4)]


@pytest.mark.parametrize("field, value", [("lengths", [[1] * 7] * 3), ("lengths", [[4] * 6] * 3),
                                          ("lengths", [[-2] * 7] * 3), ("steps", [1, 2]),
                                          ("part", "DERIVED"), ("names", ["slot"])])
def test_a_batch_whose_parts_do_not_add_up_is_refused(field, value):
    frames = P.encode(_batch_message(4))
    import msgpack
    header = msgpack.unpackb(frames[1])
    header["body"][field] = value
    frames[1] = msgpack.packb(header)
    with pytest.raises(P.ProtocolError):
        P.decode(frames)


def test_the_answers_of_a_batch_are_batches_of_the_parts_answers(sample_store, calendar):
    """Processor and quality answer STEPS with one DERIVED_STEPS / QUALITY_STEPS, part for part."""
    import logging

    from services.processor.handler import ProcessorHandler
    from services.quality.handler import QualityHandler

    cfg = parse_config(_config(8))
    answers = {}
    for batch in (8, 1):
        handlers = (ProcessorHandler(cfg, logging.getLogger("p")), QualityHandler(cfg, logging.getLogger("q")))
        out = {0: [], 1: []}
        for msg in _published(_config(batch), sample_store, calendar):
            for i, handler in enumerate(handlers):
                for answer in handler.handle(msg, {}):
                    back = P.decode(P.encode(answer))
                    out[i] += [(m.type, json.dumps(m.payload.encode()[0]),
                             repr({k: v.tolist() for k, v in m.payload.encode()[1].items()}))
                            for m in (P.split_batch(back) if back.type in P.BATCH_PART else [back])]
        answers[batch] = out
    assert answers[8] == answers[1] and len(answers[8][0]) > 500


@pytest.mark.skipif(not identity.REAL.exists(), reason="../shared/data/real not present")
def test_the_demo_with_batches_off_gives_the_golden_results(tmp_path):
    """Real processes, configs/default.json (RIVN added at 12:06): one step per message gives the result files
    the golden fingerprint holds, as the default (batches on) does in test_identity."""
    golden = json.loads(identity.GOLDEN.read_text())["demo"]
    assert identity.demo_run(tmp_path, flow={"batch": 1}) == golden
