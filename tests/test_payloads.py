"""Typed payloads: every array of every message body encodes and decodes through common/wire/payloads.py."""
from __future__ import annotations

import numpy as np
import pytest

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

OPEN = 1_751_463_000_000_000_000


def bars(n: int, first: int = 0) -> Bars:
    ts = OPEN + (np.arange(n, dtype=np.int64) + first) * 60_000_000_000
    price = 100.0 + np.arange(n, dtype=np.float64)
    return Bars(ts, price, price + 1, price - 1, price + 0.5, np.full(n, 10.0))


def wire(msg: P.Message) -> P.Message:
    """Through the real codec, as bytes."""
    return P.decode([bytes(f) for f in P.encode(msg)])


def test_step_round_trip_attaches_the_payload():
    batch = BarBatch(np.array([1, 0, 2]), bars(3))
    back = wire(P.Message.of(P.STEP, StepPayload(batch), step=3, clock=99))
    assert isinstance(back.payload, StepPayload)
    assert back.payload.batch.slots.tolist() == [1, 0, 2] and back.payload.batch.bars.equals(batch.bars)
    assert sorted(back.arrays) == sorted(["slot", "ts", "open", "high", "low", "close", "volume"])


def test_catchup_carries_history_and_session_batches_under_their_prefixes():
    payload = CatchupPayload(BarBatch.of_slot(2, bars(4)), BarBatch.of_slot(2, bars(2, 10)),
                             {"symbol": "AAPL", "slot": 2, "days": [], "caught_up": 2, "dropped": 0, "snapshot_id": 1})
    back = wire(P.Message.of(P.CATCHUP_SNAPSHOT, payload))
    assert {k[:2] for k in back.arrays} == {"h_", "s_"}
    assert back.payload.history.bars.equals(bars(4)) and back.payload.session.bars.equals(bars(2, 10))


def test_derived_round_trip_with_history_counts_and_indicators():
    block = IndicatorBlock(np.array([0, 1]), bars(2).ts)
    block.add("macd(12,26,9)", {"macd": [1.0, 2.0], "signal": [np.nan, 3.0], "hist": [0.5, 0.25]})
    payload = DerivedPayload(session={"5m": BarBatch(np.array([0, 1]), bars(2), np.array([5, 4]))},
                             indicators={"5m": block},
                             history={"1d": BarBatch(np.array([0]), bars(1), np.array([390]))}, scope="catchup")
    msg = wire(P.Message.of(P.DERIVED_SNAPSHOT, payload))
    assert msg.body["intervals"] == ["5m"] and msg.body["history_intervals"] == ["1d"]
    assert msg.body["indicators"] == [["5m", "macd(12,26,9)", ["macd", "signal", "hist"]]]
    assert "5m|macd(12,26,9)|hist" in msg.arrays and "h:1d_count" in msg.arrays and "5m_count" in msg.arrays
    back = msg.payload
    assert back.session["5m"].counts.tolist() == [5, 4] and back.history["1d"].counts.tolist() == [390]
    assert np.array_equal(back.indicators["5m"].values[("macd(12,26,9)", "signal")], [np.nan, 3.0], equal_nan=True)


def test_quality_round_trip():
    payload = QualityPayload({"1m": QualityColumns(np.array([3]), {"pct": [99.5], "present": [200], "gaps": [1]})},
                             {"1m": 201})
    back = wire(P.Message.of(P.QUALITY, payload)).payload
    assert back.expected == {"1m": 201} and back.columns["1m"].figures["present"].dtype == np.int64


def test_per_slot_keeps_time_order():
    batch = BarBatch(np.array([2, 0, 2, 0], np.int32), bars(4))
    parts = batch.per_slot()
    assert parts[0].bars.ts.tolist() == bars(4).ts[[1, 3]].tolist()
    assert parts[2].bars.ts.tolist() == bars(4).ts[[0, 2]].tolist()


@pytest.mark.parametrize("mutate, error", [
    (lambda a: a.pop("close"), "array 'close' is missing"),
    (lambda a: a.__setitem__("open", a["open"][:1]), "columns have different lengths"),
])
def test_bad_step_arrays_are_protocol_errors_naming_the_problem(mutate, error):
    msg = P.Message.of(P.STEP, StepPayload(BarBatch(np.array([0, 1]), bars(2))))
    mutate(msg.arrays)
    with pytest.raises(P.ProtocolError, match=error):
        wire(msg)


def test_a_message_refuses_a_payload_of_another_type():
    with pytest.raises(P.ProtocolError, match="STEP carries a StepPayload"):
        P.Message.of(P.STEP, DerivedPayload())


def test_derived_indicator_without_its_arrays_is_refused():
    msg = P.Message.of(P.DERIVED, DerivedPayload())
    msg.body["indicators"] = [["5m", "sma(20)", ["value"]]]
    with pytest.raises(P.ProtocolError, match=r"DERIVED: array '5m\|slot' is missing"):
        wire(msg)
