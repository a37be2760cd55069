"""Fuzzing every decoder: whatever bytes arrive, decoding raises ProtocolError or returns a Message whose
payload is well formed; nothing else escapes (a hostile or broken peer cannot crash a process)."""
from __future__ import annotations

import msgpack
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.domain.bars import Bars
from common.wire import protocol as P
from common.wire.payloads import (
    BarBatch,
    CatchupPayload,
    DerivedPayload,
    IndicatorBlock,
    QualityColumns,
    QualityPayload,
    StepPayload,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _bars(n: int) -> Bars:
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    return Bars(ts, *(np.full(n, 1.0) for _ in range(5)))


def _valid_frames() -> list[list[bytes]]:
    block = IndicatorBlock(np.array([0]), _bars(1).ts)
    block.add("sma(20)", {"value": [1.0]})
    msgs = [
        P.Message.of(P.STEP, StepPayload(BarBatch(np.array([0, 1]), _bars(2)))),
        P.Message.of(P.CATCHUP_SNAPSHOT, CatchupPayload(BarBatch.of_slot(1, _bars(3)), BarBatch.of_slot(1, _bars(1)),
                                                        {"symbol": "A", "slot": 1, "days": [], "caught_up": 1,
                                                         "dropped": 0, "snapshot_id": 1})),
        P.Message.of(P.DERIVED, DerivedPayload(session={"5m": BarBatch(np.array([0]), _bars(1), np.array([5]))},
                                               indicators={"5m": block})),
        P.Message.of(P.QUALITY, QualityPayload({"1m": QualityColumns(np.array([0]), {"pct": [1.0]})}, {"1m": 3})),
        P.ack("processor", "step", 3),
        P.Message(P.HELLO, {"stage": "x", "role": "observer", "pid": 1}),
        P.Message(P.COMMAND, {"name": "status", "args": {}, "request_id": "r"}),
    ]
    return [[bytes(f) for f in P.encode(m)] for m in msgs]


VALID = _valid_frames()


def _decode_safely(frames) -> None:
    try:
        msg = P.decode(frames)
    except P.ProtocolError:
        return
    assert msg.type in P.ALL_TYPES
    if msg.type in P.PAYLOADS:
        assert isinstance(msg.payload, P.PAYLOADS[msg.type])


@SETTINGS
@given(st.lists(st.binary(max_size=64), min_size=0, max_size=6))
def test_random_frames(frames):
    _decode_safely(frames)


@SETTINGS
@given(st.sampled_from(range(len(VALID))), st.data())
def test_mutated_valid_messages(index, data):
    frames = list(VALID[index])
    i = data.draw(st.integers(0, len(frames) - 1), label="frame")
    frame = bytearray(frames[i])
    for _ in range(data.draw(st.integers(1, 4), label="flips")):
        if frame:
            pos = data.draw(st.integers(0, len(frame) - 1))
            frame[pos] = data.draw(st.integers(0, 255))
    frames[i] = bytes(frame)
    if data.draw(st.booleans(), label="truncate a frame"):
        j = data.draw(st.integers(0, len(frames) - 1))
        frames[j] = frames[j][: data.draw(st.integers(0, len(frames[j])))]
    _decode_safely(frames)


json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                        max_size=4), max_leaves=12)


@SETTINGS
@given(st.sampled_from(sorted(P.ALL_TYPES)), st.dictionaries(st.text(max_size=12), json_values, max_size=6),
       st.lists(st.tuples(st.text(max_size=12), st.sampled_from(["i8", "i4", "f8", "u1", "i2", "zz"]),
                          st.integers(-2, 8)), max_size=4))
def test_wellformed_headers_with_hostile_bodies_and_array_specs(mtype, body, specs):
    header = {"v": 1, "type": mtype, "pub": "x", "seq": 1, "step": 0, "clock": 0, "body": body,
              "arrays": [list(s) for s in specs]}
    buffers = [bytes(max(0, n) * 8) for _, _, n in specs]
    _decode_safely([mtype.encode(), msgpack.packb(header)] + buffers)
