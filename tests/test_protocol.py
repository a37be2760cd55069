"""Wire protocol: round trips, strict decoding of malformed messages, sequence checking."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest

from common.wire import protocol as P
from common.domain.bars import Bars
from common.wire.payloads import BarBatch, StepPayload


def _bars(n: int) -> Bars:
    rng = np.random.default_rng(n)
    return Bars(np.arange(n, dtype=np.int64) * 60_000_000_000, *(rng.random(n) for _ in range(5)))


def _wire(frames) -> list[bytes]:
    return [bytes(f) for f in frames]


def test_step_round_trip_keeps_every_column_exactly():
    slots, bars = np.array([0, 2, 5], np.int32), _bars(3)
    msg = P.Message.of(P.STEP, StepPayload(BarBatch(slots, bars)), step=3, clock=99)
    msg.pub, msg.seq = "coordinator", 7
    back = P.decode(_wire(P.encode(msg)))
    assert (back.type, back.seq, back.step, back.clock, back.pub) == (P.STEP, 7, 3, 99, "coordinator")
    got = back.payload.batch
    assert np.array_equal(got.slots, slots) and got.bars.equals(bars)


def test_empty_batch_round_trip():
    msg = P.Message.of(P.STEP, StepPayload(BarBatch(np.empty(0, np.int32), Bars.empty())))
    batch = P.decode(_wire(P.encode(msg))).payload.batch
    assert len(batch.slots) == 0 and len(batch.bars) == 0


def test_small_messages_travel_packed_in_one_frame_large_ones_one_frame_per_array():
    for n, frames in ((3, 3), (P.PACK_UP_TO_BYTES // 8, 2 + 7)):  # 7 arrays: slot ts open high low close volume
        slots, bars = np.arange(n, dtype=np.int32), _bars(n)  # i4 slots of odd length: padded to 8 bytes
        wire = _wire(P.encode(P.Message.of(P.STEP, StepPayload(BarBatch(slots, bars)))))
        assert len(wire) == frames
        got = P.decode(wire).payload.batch
        assert np.array_equal(got.slots, slots) and got.bars.equals(bars)


@pytest.mark.parametrize("cut", [-1, 1, 8])
def test_packed_arrays_must_fill_their_frame_exactly(cut):
    wire = _wire(P.encode(P.Message.of(P.STEP, StepPayload(BarBatch(np.arange(3, dtype=np.int32), _bars(3))))))
    wire[2] = wire[2][:cut] if cut < 0 else wire[2] + b"\x00" * cut
    with pytest.raises(P.ProtocolError, match="packed arrays"):
        P.decode(wire)


def _header(**override) -> bytes:
    header = {"v": 1, "type": "PAUSE", "pub": "coordinator", "seq": 1, "step": 0, "clock": 0,
              "body": {"reason": "x"}, "arrays": []}
    header.update(override)
    return msgpack.packb(header)


@pytest.mark.parametrize("frames, message", [
    ([b"PAUSE"], "expected 2.."),
    ([b"PAUSE", b"\xc1garbage"], "not valid msgpack"),
    ([b"PAUSE", msgpack.packb([1, 2])], "header is not a map"),
    ([b"PAUSE", _header(v=2)], "protocol version 2"),
    ([b"PAUSE", _header(type="NOPE")], "unknown message type 'NOPE'"),
    ([b"STEP", _header()], "does not match type PAUSE"),
    ([b"PAUSE", _header(seq="1")], "'seq' must be an integer"),
    ([b"PAUSE", _header(body={})], "body field 'reason' is missing"),
    ([b"PAUSE", _header(body={"reason": 5})], "body field 'reason' has type int"),
    ([b"PAUSE", _header(arrays=[["x", "f8", 2]])], "array specs do not match"),
    ([b"PAUSE", _header(arrays=[["x", "f8", 2]]), b"\x00" * 15], "should be 16 bytes, got 15"),
    ([b"PAUSE", _header(arrays=[["x", "c16", 1]]), b"\x00" * 16], "bad array spec"),
])
def test_malformed_messages_raise_protocol_error(frames, message):
    with pytest.raises(P.ProtocolError, match=message):
        P.decode(frames)


def test_sequence_checker_counts_gaps_and_tail_loss():
    check = P.SequenceChecker()
    assert check.check(P.Message(P.HEARTBEAT, pub="c", seq=0)) == 0
    assert [check.check(P.Message(P.PAUSE, pub="c", seq=s)) for s in (1, 2, 5)] == [0, 0, 2]
    assert check.check(P.Message(P.HEARTBEAT, pub="c", seq=5)) == 0
    assert check.check(P.Message(P.HEARTBEAT, pub="c", seq=8)) == 3  # lost at the tail, seen by a heartbeat
    with pytest.raises(P.SequenceRestart):
        check.check(P.Message(P.PAUSE, pub="c", seq=1))


def test_late_joiner_takes_the_first_seq_as_baseline():
    check = P.SequenceChecker(join_anywhere=True)
    assert check.check(P.Message(P.STEP, pub="c", seq=500)) == 0
    assert check.check(P.Message(P.STEP, pub="c", seq=502)) == 1


def test_publisher_numbers_sequenced_messages_only():
    sent = []
    pub = P.Publisher(type("S", (), {"send_multipart": lambda self, f, copy=False: sent.append(f)})(), "proc")
    pub.send(P.Message(P.PAUSE, {"reason": "x"}))
    pub.heartbeat()
    pub.send(P.Message(P.RESUME, {"reason": "x"}))
    seqs = [(P.decode(_wire(f)).type, P.decode(_wire(f)).seq) for f in sent]
    assert seqs == [(P.PAUSE, 1), (P.HEARTBEAT, 1), (P.RESUME, 2)]
