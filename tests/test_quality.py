"""Data quality: batch functions, streaming tracker == batch at every step, catch-up, AAPL oracle."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from common.domain.quality import (QualityTracker, historical_quality, missing_runs, session_gaps,
                            session_quality, window_quality)
from common.domain.timeconv import NS_PER_MIN, UTC, ns_from_datetime
from support.state import tracker_state, tracker_from_state
from support.asserts import assert_same_state

OPEN = ns_from_datetime(dt.datetime(2025, 7, 2, 13, 30, tzinfo=UTC))
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def random_ts(rng: np.random.Generator, n_minutes: int, density: float) -> np.ndarray:
    return OPEN + np.flatnonzero(rng.random(n_minutes) < density).astype(np.int64) * NS_PER_MIN


def step_slots(symbols: list[np.ndarray], clock_ns: int, skip: int | None = None) -> np.ndarray:
    """Slots with a 1m bar closing at the clock (open time clock - 1m)."""
    bar_open = clock_ns - NS_PER_MIN
    return np.array([s for s, ts in enumerate(symbols)
                     if s != skip and np.searchsorted(ts, bar_open) < len(ts)
                     and ts[np.searchsorted(ts, bar_open)] == bar_open], np.int64)


def clocks(start_ns: int, end_ns: int):
    return range(start_ns + NS_PER_MIN, end_ns + 1, NS_PER_MIN)


def snapshot(tracker: QualityTracker, slot: int):
    return (int(tracker.present([slot])[0]), tracker.expected, float(tracker.pct([slot])[0]),
            float(tracker.completeness([slot])[0]), tracker.gaps(slot), int(tracker.gap_count([slot])[0]))


def batch_snapshot(ts: np.ndarray, close_ns: int, clock_ns: int, minutes: int):
    q = window_quality(ts, OPEN, close_ns, clock_ns, minutes)
    return q.present, q.expected, q.pct, q.completeness, q.gaps, len(q.gaps)


scenario = dict(seed=st.integers(0, 2**32 - 1), n_symbols=st.integers(1, 4),
                minutes=st.sampled_from([1, 2, 3, 5, 7, 15, 30, 60]), session=st.sampled_from([390, 210]),
                density=st.sampled_from([0.0, 0.1, 0.5, 0.9, 0.99, 1.0]))


# ----------------------------------------------------------------------------------- batch functions


def test_missing_runs():
    assert missing_runs(np.array([], np.int64), 0) == []
    assert missing_runs(np.array([], np.int64), 4) == [(0, 3, 4)]
    assert missing_runs(np.arange(5), 5) == []
    assert missing_runs(np.array([1, 2, 5, 9]), 12) == [(0, 0, 1), (3, 4, 2), (6, 8, 3), (10, 11, 2)]


def test_session_quality_and_gaps():
    ts = OPEN + np.array([0, 1, 4, 5], np.int64) * NS_PER_MIN
    assert session_quality(ts, OPEN, OPEN) == (0, 0, 100.0)
    assert session_quality(ts, OPEN, OPEN + 2 * NS_PER_MIN) == (2, 2, 100.0)
    present, expected, pct = session_quality(ts, OPEN, OPEN + 8 * NS_PER_MIN)
    assert (present, expected, pct) == (4, 8, 50.0)
    assert session_gaps(ts, OPEN, OPEN + 8 * NS_PER_MIN) == [
        (OPEN + 2 * NS_PER_MIN, OPEN + 3 * NS_PER_MIN, 2), (OPEN + 6 * NS_PER_MIN, OPEN + 7 * NS_PER_MIN, 2)]


def test_window_quality_truncated_last_window():
    close = OPEN + 210 * NS_PER_MIN  # 60-minute windows: 60, 60, 60, 30
    ts = OPEN + np.r_[np.arange(0, 30), np.arange(180, 195)].astype(np.int64) * NS_PER_MIN
    q = window_quality(ts, OPEN, close, close, 60)
    assert (q.present, q.expected, q.pct) == (2, 4, 50.0)
    assert q.completeness == (0.5 + 0 + 0 + 0.5) / 4
    assert q.gaps == [(OPEN + 60 * NS_PER_MIN, OPEN + 120 * NS_PER_MIN, 2)]
    assert window_quality(ts, OPEN, close, OPEN + 59 * NS_PER_MIN, 60).expected == 0


def test_historical_quality_per_day():
    day = 86_400 * 10**9
    opens = np.array([OPEN, OPEN + day, OPEN + 2 * day])
    closes = opens + np.array([390, 210, 390]) * NS_PER_MIN
    ts = np.concatenate([OPEN - 30 * NS_PER_MIN + np.arange(420) * NS_PER_MIN,  # pre-market too
                         OPEN + day + np.arange(0, 210, 2) * NS_PER_MIN]).astype(np.int64)
    present, expected, pct = historical_quality(ts, opens, closes)
    assert present.tolist() == [390, 105, 0] and expected.tolist() == [390, 210, 390]
    assert pct.tolist() == [100.0, 50.0, 0.0]
    assert historical_quality(ts, OPEN + day, OPEN + day + 210 * NS_PER_MIN) == (105, 210, 50.0)


# ------------------------------------------------------------------------------ streaming == batch


@settings(max_examples=40, deadline=None)
@given(**scenario)
def test_tracker_equals_batch_at_every_step(seed, n_symbols, minutes, session, density):
    rng = np.random.default_rng(seed)
    close = OPEN + session * NS_PER_MIN
    symbols = [random_ts(rng, session, density) for _ in range(n_symbols)]
    tracker = QualityTracker(n_symbols, minutes)
    tracker.start_session(OPEN, close)
    published = {}
    for clock in clocks(OPEN, close):
        changed = tracker.on_step(clock, step_slots(symbols, clock))
        for slot in changed.tolist():
            published[slot] = snapshot(tracker, slot)
        for slot, ts in enumerate(symbols):
            current = snapshot(tracker, slot)
            assert current == batch_snapshot(ts, close, clock, minutes)
            if tracker.expected:
                assert published[slot][2:] == current[2:]  # no change of pct/gaps unreported
            if minutes == 1:
                assert current[:3] == session_quality(ts, OPEN, clock)
                assert current[4] == session_gaps(ts, OPEN, clock)


@settings(max_examples=40, deadline=None)
@given(**scenario, data=st.data())
def test_seed_slot_equals_streaming(seed, n_symbols, minutes, session, density, data):
    rng = np.random.default_rng(seed)
    close = OPEN + session * NS_PER_MIN
    symbols = [random_ts(rng, session, density) for _ in range(n_symbols)]
    clock = OPEN + data.draw(st.integers(0, session), label="T minutes") * NS_PER_MIN
    late = data.draw(st.integers(0, n_symbols - 1), label="late slot")
    reference, seeded = QualityTracker(n_symbols, minutes), QualityTracker(n_symbols, minutes)
    for tracker in (reference, seeded):
        tracker.start_session(OPEN, close)
    seeded.clear_slot(late)
    for t in clocks(OPEN, clock):
        reference.on_step(t, step_slots(symbols, t))
        seeded.on_step(t, step_slots(symbols, t, skip=late))
    seeded.seed_slot(late, symbols[late], clock)
    assert_same_state(tracker_state(seeded), tracker_state(reference))
    taken_over = tracker_from_state(tracker_state(reference))
    for t in clocks(clock, close):
        slots = step_slots(symbols, t)
        changed = [tr.on_step(t, slots) for tr in (reference, seeded, taken_over)]
        assert np.array_equal(changed[0], changed[1]) and np.array_equal(changed[0], changed[2])
    assert_same_state(tracker_state(seeded), tracker_state(reference))
    assert_same_state(tracker_state(taken_over), tracker_state(reference))


def test_changed_only_when_a_value_moves():
    tracker = QualityTracker(3)
    tracker.start_session(OPEN, OPEN + 390 * NS_PER_MIN)
    assert tracker.on_step(OPEN + NS_PER_MIN, np.array([0, 1])).tolist() == [0, 1, 2]  # first report
    assert tracker.on_step(OPEN + 2 * NS_PER_MIN, np.array([0, 1])).tolist() == [2]  # gap grows
    assert tracker.on_step(OPEN + 3 * NS_PER_MIN, np.array([0])).tolist() == [1, 2]
    tracker.clear_slot(2)
    assert tracker.on_step(OPEN + 4 * NS_PER_MIN, np.array([0, 1])).tolist() == [1]
    assert tracker.gaps(1) == [(OPEN + 2 * NS_PER_MIN, OPEN + 2 * NS_PER_MIN, 1)]
    assert tracker.gap_count().tolist() == [0, 1, 0]
    tracker.resize(4)  # a new slot has, so far, no bars
    assert tracker.gaps(3) == [(OPEN, OPEN + 3 * NS_PER_MIN, 4)] and tracker.pct([3]).tolist() == [0.0]
    with pytest.raises(ValueError):
        tracker.on_step(OPEN + 6 * NS_PER_MIN, np.array([0]))


# ------------------------------------------------------------------------------------ AAPL oracle


def test_aapl_quality_at_close_matches_csv():
    pd = pytest.importorskip("pandas")
    path = REAL / "AAPL_2025-07-02_1m_extended.csv"
    if not path.exists():
        pytest.skip(f"{path} not present")
    stamps = pd.to_datetime(pd.read_csv(path)["timestamp"], utc=True)
    session = pd.date_range("2025-07-02 13:30", "2025-07-02 19:59", freq="min", tz="UTC")
    regular = stamps[(stamps >= session[0]) & (stamps <= session[-1])]
    missing = sorted(set(session) - set(regular))
    expected_runs = []  # independent run grouping over the missing timestamps
    for minute in missing:
        if expected_runs and minute - expected_runs[-1][1] == pd.Timedelta(minutes=1):
            expected_runs[-1] = (expected_runs[-1][0], minute, expected_runs[-1][2] + 1)
        else:
            expected_runs.append((minute, minute, 1))
    expected_gaps = [(ns_from_datetime(a.to_pydatetime()), ns_from_datetime(b.to_pydatetime()), n)
                     for a, b, n in expected_runs]

    ts = np.array(sorted(ns_from_datetime(t.to_pydatetime()) for t in regular), np.int64)
    close = OPEN + 390 * NS_PER_MIN
    present, expected, pct = session_quality(ts, OPEN, close)
    assert (present, expected, round(pct, 2)) == (349, 390, 89.49)
    assert session_gaps(ts, OPEN, close) == expected_gaps
    assert sum(n for _, _, n in expected_gaps) == 41

    tracker = QualityTracker(1)
    tracker.start_session(OPEN, close)
    for clock in clocks(OPEN, close):
        tracker.on_step(clock, step_slots([ts], clock))
    assert snapshot(tracker, 0)[:3] == (349, 390, pct)
    assert tracker.gaps(0) == expected_gaps
    assert historical_quality(ts, OPEN, close) == (349, 390, pct)
