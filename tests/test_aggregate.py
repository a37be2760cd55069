"""Derived N-minute bars: streaming == batch bit for bit, catch-up == streaming, pandas oracle."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from common.domain.aggregate import (WindowAggregator, aggregate_many, aggregate_session, aggregate_sessions,
                              daily_bar, window_end)
from common.domain.bars import FIELDS, Bars
from common.domain.timeconv import NS_PER_MIN, UTC, ns_from_datetime
from support.state import aggregator_state, aggregator_from_state
from support.asserts import assert_same_state

OPEN = ns_from_datetime(dt.datetime(2025, 7, 2, 13, 30, tzinfo=UTC))
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
WINDOWS = [2, 3, 5, 7, 15, 30, 60]


# ------------------------------------------------------------------------------------------ helpers


def random_bars(rng: np.random.Generator, open_ns: int, n_minutes: int, density: float) -> Bars:
    """Random 1m bars on a random subset of the session's minutes; volumes of wildly different
    magnitudes so that any change of summation order shows in the last bits."""
    minutes = np.flatnonzero(rng.random(n_minutes) < density)
    n = len(minutes)
    close = 100 + np.cumsum(rng.normal(0, 0.5, n))
    open_ = close + rng.normal(0, 0.2, n)
    return Bars(
        open_ns + minutes.astype(np.int64) * NS_PER_MIN, open_,
        np.maximum(open_, close) + rng.random(n), np.minimum(open_, close) - rng.random(n), close,
        rng.random(n) * 10.0 ** rng.integers(0, 13, n),
    )


class Feed:
    """Per-step columnar slices of several symbols' bars, as the coordinator publishes them."""

    def __init__(self, symbols: list[Bars], open_ns: int, close_ns: int):
        self.open_ns, self.n_minutes = open_ns, (close_ns - open_ns) // NS_PER_MIN
        shape = (len(symbols), self.n_minutes)
        self.has = np.zeros(shape, bool)
        self.values = {f: np.zeros(shape) for f in FIELDS[1:]}
        for slot, bars in enumerate(symbols):
            minute = (bars.ts - open_ns) // NS_PER_MIN
            self.has[slot, minute] = True
            for f in FIELDS[1:]:
                self.values[f][slot, minute] = getattr(bars, f)

    def clocks(self, start_ns: int, end_ns: int):
        return range(start_ns + NS_PER_MIN, end_ns + 1, NS_PER_MIN)

    def step(self, clock_ns: int, skip_slot: int | None = None):
        minute = (clock_ns - self.open_ns) // NS_PER_MIN - 1
        has = self.has[:, minute].copy()
        if skip_slot is not None:
            has[skip_slot] = False
        slots = np.flatnonzero(has)
        return slots, *(self.values[f][slots, minute] for f in FIELDS[1:])


def run(aggregator: WindowAggregator, feed: Feed, start_ns: int, end_ns: int, out: dict,
        skip_slot: int | None = None) -> None:
    """Step the aggregator over clocks (start, end]; append emitted rows per slot to `out`."""
    for clock in feed.clocks(start_ns, end_ns):
        emitted = aggregator.on_step(clock, *feed.step(clock, skip_slot))
        if emitted is None:
            continue
        assert np.all(window_end(int(emitted.ts[0]), aggregator.open_ns, aggregator.close_ns,
                                 aggregator.minutes) == clock)
        for i, slot in enumerate(emitted.slots.tolist()):
            row = Bars(*(getattr(emitted.bars, f)[i:i + 1] for f in FIELDS))
            out.setdefault(slot, []).append((row, emitted.count[i:i + 1]))


def collected(out: dict, slot: int) -> tuple[Bars, np.ndarray]:
    rows = out.get(slot, [])
    if not rows:
        return Bars.empty(), np.empty(0, np.int64)
    return Bars.concat([r for r, _ in rows]), np.concatenate([c for _, c in rows])


def assert_same(left: tuple[Bars, np.ndarray], right: tuple[Bars, np.ndarray]) -> None:
    for f in FIELDS:
        a, b = getattr(left[0], f), getattr(right[0], f)
        assert a.dtype == b.dtype and np.array_equal(a, b), f
    assert left[1].dtype == right[1].dtype == np.int64 and np.array_equal(left[1], right[1])


def restricted(result: tuple[Bars, np.ndarray], open_ns, close_ns, minutes, clock_ns):
    """Batch result limited to windows that ended at or before the clock."""
    bars, counts = result
    ends = np.array([window_end(t, open_ns, close_ns, minutes) for t in bars.ts.tolist()], np.int64)
    keep = ends <= clock_ns
    return bars.take(keep), counts[keep]


sessions = st.sampled_from([390, 210])
scenario = dict(seed=st.integers(0, 2**32 - 1), n_symbols=st.integers(1, 4),
                minutes=st.sampled_from(WINDOWS + [1, 390]), session=sessions,
                density=st.sampled_from([0.0, 0.05, 0.3, 0.8, 0.97, 1.0]))


def make_symbols(seed, n_symbols, session, density):
    rng = np.random.default_rng(seed)
    return [random_bars(rng, OPEN, session, density) for _ in range(n_symbols)]


# ----------------------------------------------------------------------------------- the property


@settings(max_examples=60, deadline=None)
@given(**scenario)
def test_streaming_equals_batch_bit_for_bit(seed, n_symbols, minutes, session, density):
    close = OPEN + session * NS_PER_MIN
    symbols = make_symbols(seed, n_symbols, session, density)
    aggregator = WindowAggregator(minutes, n_symbols)
    aggregator.start_session(OPEN, close)
    out: dict = {}
    run(aggregator, Feed(symbols, OPEN, close), OPEN, close, out)
    for slot, bars in enumerate(symbols):
        assert_same(collected(out, slot), aggregate_session(bars, OPEN, close, minutes))


@settings(max_examples=60, deadline=None)
@given(**scenario, data=st.data())
def test_seed_slot_equals_streaming(seed, n_symbols, minutes, session, density, data):
    close = OPEN + session * NS_PER_MIN
    symbols = make_symbols(seed, n_symbols, session, density)
    feed = Feed(symbols, OPEN, close)
    clock = OPEN + data.draw(st.integers(0, session), label="T minutes") * NS_PER_MIN
    late = data.draw(st.integers(0, n_symbols - 1), label="late slot")

    reference, ref_out = WindowAggregator(minutes, n_symbols), {}
    reference.start_session(OPEN, close)
    run(reference, feed, OPEN, clock, ref_out)

    seeded, seeded_out = WindowAggregator(minutes, n_symbols), {}
    seeded.start_session(OPEN, close)
    run(seeded, feed, OPEN, clock, seeded_out, skip_slot=late)
    catch_up = seeded.seed_slot(late, symbols[late], clock)

    assert_same_state(aggregator_state(seeded), aggregator_state(reference))
    assert_same(catch_up, collected(ref_out, late))
    full = aggregate_session(symbols[late], OPEN, close, minutes)
    assert_same(catch_up, restricted(full, OPEN, close, minutes, clock))

    # both go on identically to the close, and so does a process taking over from the state
    taken_over, taken_out = aggregator_from_state(aggregator_state(reference)), {}
    run(reference, feed, clock, close, ref_out)
    run(seeded, feed, clock, close, seeded_out)
    run(taken_over, feed, clock, close, taken_out)
    for slot in range(n_symbols):
        assert_same(collected(seeded_out, slot) if slot != late else
                    (Bars.concat([catch_up[0], collected(seeded_out, slot)[0]]),
                     np.concatenate([catch_up[1], collected(seeded_out, slot)[1]])),
                    collected(ref_out, slot))
    assert_same_state(aggregator_state(taken_over), aggregator_state(reference))


# ------------------------------------------------------------------------------------ unit checks


def test_early_close_truncates_last_window_and_emits_at_close():
    close = OPEN + 210 * NS_PER_MIN
    bars = random_bars(np.random.default_rng(1), OPEN, 210, 1.0)
    out, counts = aggregate_session(bars, OPEN, close, 60)
    assert (out.ts - OPEN).tolist() == [0, 60 * NS_PER_MIN, 120 * NS_PER_MIN, 180 * NS_PER_MIN]
    assert counts.tolist() == [60, 60, 60, 30]
    aggregator = WindowAggregator(60, 1)
    aggregator.start_session(OPEN, close)
    emitted_at = []
    feed = Feed([bars], OPEN, close)
    for clock in feed.clocks(OPEN, close):
        if aggregator.on_step(clock, *feed.step(clock)) is not None:
            emitted_at.append((clock - OPEN) // NS_PER_MIN)
    assert emitted_at == [60, 120, 180, 210]


def test_window_emitted_without_bar_in_its_last_minute_and_empty_window_silent():
    close = OPEN + 390 * NS_PER_MIN
    minutes = np.array([0, 1, 2, 11])  # window 0 misses minutes 3-4; window 1 empty; window 2 has 11
    bars = Bars(OPEN + minutes * NS_PER_MIN, *(np.arange(4.0) + k for k in range(5)))
    aggregator = WindowAggregator(5, 1)
    aggregator.start_session(OPEN, close)
    feed = Feed([bars], OPEN, close)
    emitted = {}
    for clock in feed.clocks(OPEN, OPEN + 15 * NS_PER_MIN):
        result = aggregator.on_step(clock, *feed.step(clock))
        if result is not None:
            emitted[(clock - OPEN) // NS_PER_MIN] = result
    assert sorted(emitted) == [5, 15]
    first = emitted[5]
    assert first.count.tolist() == [3] and first.open.tolist() == [0.0] and first.close.tolist() == [5.0]
    assert first.high.tolist() == [3.0] and first.low.tolist() == [2.0] and first.volume.tolist() == [15.0]


def test_volume_is_summed_left_to_right():
    """1e16 + 1 + 1 is 1e16 left to right; pairwise (numpy.sum) ordering could give 1e16 + 2."""
    volume = np.array([1e16] + [1.0] * 20)
    n = len(volume)
    bars = Bars(OPEN + np.arange(n, dtype=np.int64) * NS_PER_MIN, *(np.ones(n) for _ in range(4)), volume)
    out, _ = aggregate_session(bars, OPEN, OPEN + 390 * NS_PER_MIN, 30)
    expected = 0.0
    for v in volume:
        expected += v
    assert out.volume.tolist() == [expected]


def test_daily_bar_and_history():
    close = OPEN + 390 * NS_PER_MIN
    bars = random_bars(np.random.default_rng(2), OPEN - 60 * NS_PER_MIN, 600, 0.9)  # with pre/post
    day, count = daily_bar(bars, OPEN, close)
    regular = bars.between(OPEN, close)
    assert day.ts.tolist() == [OPEN] and count.tolist() == [len(regular)]
    assert day.open[0] == regular.open[0] and day.close[0] == regular.close[-1]
    assert day.high[0] == regular.high.max() and day.low[0] == regular.low.min()
    assert daily_bar(Bars.empty(), OPEN, close)[1].tolist() == []
    next_open = OPEN + 86_400 * 10**9
    both = Bars.concat([bars, Bars(bars.ts + 86_400 * 10**9, bars.open, bars.high, bars.low,
                                   bars.close, bars.volume)])
    history, counts = aggregate_sessions(both, [OPEN, next_open], [close, next_open + 390 * NS_PER_MIN], None)
    assert history.ts.tolist() == [OPEN, next_open] and counts.tolist() == [len(regular)] * 2
    fives, _ = aggregate_sessions(both, [OPEN, next_open], [close, next_open + 390 * NS_PER_MIN], 5)
    assert len(fives) == 2 * len(aggregate_session(bars, OPEN, close, 5)[0])


def test_clock_must_advance_one_minute_within_the_session():
    aggregator = WindowAggregator(5, 2)
    with pytest.raises(RuntimeError):
        aggregator.on_step(OPEN + NS_PER_MIN, np.empty(0, np.int64), *(np.empty(0),) * 5)
    aggregator.start_session(OPEN, OPEN + 2 * NS_PER_MIN)
    nothing = (np.empty(0, np.int64), *(np.empty(0),) * 5)
    with pytest.raises(ValueError):
        aggregator.on_step(OPEN + 2 * NS_PER_MIN, *nothing)
    aggregator.on_step(OPEN + NS_PER_MIN, *nothing)
    with pytest.raises(ValueError):
        aggregator.on_step(OPEN + NS_PER_MIN, *nothing)
    aggregator.on_step(OPEN + 2 * NS_PER_MIN, *nothing)
    with pytest.raises(ValueError):
        aggregator.on_step(OPEN + 3 * NS_PER_MIN, *nothing)
    with pytest.raises(ValueError):
        WindowAggregator(0)


def test_resize_and_clear_slot():
    aggregator = WindowAggregator(5, 1)
    aggregator.start_session(OPEN, OPEN + 390 * NS_PER_MIN)
    one = np.array([1.0])
    aggregator.on_step(OPEN + NS_PER_MIN, np.array([0]), one, one, one, one, one)
    aggregator.resize(3)
    assert aggregator.n_slots == 3 and aggregator_state(aggregator)["count"].tolist() == [1, 0, 0]
    for k in range(2, 5):
        aggregator.on_step(OPEN + k * NS_PER_MIN, np.array([0, 2]), *(np.array([k, k], float),) * 5)
    aggregator.clear_slot(0)
    emitted = aggregator.on_step(OPEN + 5 * NS_PER_MIN, np.empty(0, np.int64), *(np.empty(0),) * 5)
    assert emitted.slots.tolist() == [2] and emitted.count.tolist() == [3]
    aggregator.resize(1)
    assert aggregator.n_slots == 1


# ----------------------------------------------------------------------------- pandas oracle (real)


def _utc_ns(column) -> np.ndarray:
    naive = column.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.to_numpy().astype("datetime64[ns]").view(np.int64)


def _frame_bars(frame, ts: np.ndarray) -> Bars:
    return Bars.from_columns({"ts": ts, **{f: frame[f].to_numpy() for f in FIELDS[1:]}})


def load_extended(name: str):
    pd = pytest.importorskip("pandas")
    path = REAL / name
    if not path.exists():
        pytest.skip(f"{path} not present")
    frame = pd.read_csv(path)
    ts = _utc_ns(pd.to_datetime(frame["timestamp"], utc=True))
    open_ns = ns_from_datetime(dt.datetime(2025, 7, 2, 13, 30, tzinfo=UTC))
    return [(_frame_bars(frame, ts), open_ns, open_ns + 390 * NS_PER_MIN)]


def load_spx():
    pd = pytest.importorskip("pandas")
    path = REAL / "SPX_2019-11-05_to_08_1m.csv"
    if not path.exists():
        pytest.skip(f"{path} not present")
    frame = pd.read_csv(path).rename(columns=str.lower)
    local = pd.to_datetime(frame["date"], format="%m/%d/%Y %H:%M").dt.tz_localize("America/New_York")
    bars = _frame_bars(frame, _utc_ns(local))
    days = []
    for day in sorted(set(local.dt.date)):
        open_ns = ns_from_datetime(dt.datetime.combine(day, dt.time(9, 30), tzinfo=local.dt.tz))
        days.append((bars, open_ns, open_ns + 390 * NS_PER_MIN))
    return days


def pandas_resample(bars: Bars, open_ns: int, close_ns: int, minutes: int):
    pd = pytest.importorskip("pandas")
    regular = bars.between(open_ns, close_ns)
    frame = pd.DataFrame({f: getattr(regular, f) for f in FIELDS[1:]},
                         index=pd.to_datetime(regular.ts, utc=True))
    grouped = frame.resample(f"{minutes}min", label="left", closed="left",
                             origin=pd.Timestamp(open_ns, tz="UTC"))
    table = grouped.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    table["count"] = grouped["close"].count()
    table = table[table["count"] > 0]
    ts = _utc_ns(table.index.to_series())
    return _frame_bars(table, ts), table["count"].to_numpy().astype(np.int64)


@pytest.mark.parametrize("loader", [lambda: load_extended("AAPL_2025-07-02_1m_extended.csv"),
                                    lambda: load_extended("RIVN_2025-07-02_1m_extended.csv"),
                                    load_spx], ids=["AAPL", "RIVN", "SPX"])
@pytest.mark.parametrize("minutes", [5, 15])
def test_real_files_equal_pandas_resample_and_streaming(loader, minutes):
    for bars, open_ns, close_ns in loader():
        batch = aggregate_session(bars, open_ns, close_ns, minutes)
        assert len(batch[0]) > 0
        assert_same(batch, pandas_resample(bars, open_ns, close_ns, minutes))
        aggregator, out = WindowAggregator(minutes, 1), {}
        aggregator.start_session(open_ns, close_ns)
        run(aggregator, Feed([bars.between(open_ns, close_ns)], open_ns, close_ns), open_ns, close_ns, out)
        assert_same(collected(out, 0), batch)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_symbols=st.integers(0, 5), minutes=st.sampled_from(WINDOWS + [1, 390, None]),
       density=st.sampled_from([0.0, 0.05, 0.3, 0.97, 1.0]), n_sessions=st.integers(0, 3))
def test_aggregate_many_equals_each_symbol_alone(seed, n_symbols, minutes, density, n_sessions):
    """Many symbols' history at once == each symbol's aggregate_sessions, concatenated in slot order: sessions
    of 390 and 210 minutes a day apart, bars outside them (extended hours) ignored, slots given shuffled."""
    rng = np.random.default_rng(seed)
    day = 24 * 60 * NS_PER_MIN
    opens = np.array([OPEN + k * day for k in range(n_sessions)], np.int64)
    closes = opens + np.array([390, 210, 390][:n_sessions], np.int64) * NS_PER_MIN
    per_slot = {slot: Bars.concat([random_bars(rng, o - 60 * NS_PER_MIN, 500, density) for o in opens] or [Bars.empty()])
                for slot in range(n_symbols)}
    slots = np.concatenate([np.full(len(b), s, np.int64) for s, b in per_slot.items()] or [np.empty(0, np.int64)])
    bars = Bars.concat(list(per_slot.values()) or [Bars.empty()])
    shuffle = rng.permutation(len(slots))
    got_slots, got, got_counts = aggregate_many(slots[shuffle], bars.take(shuffle), opens, closes, minutes)
    want = [aggregate_sessions(b, opens, closes, minutes) for b in per_slot.values()]
    want_slots = np.concatenate([np.full(len(w[0]), s, np.int64) for s, w in zip(per_slot, want)] or [np.empty(0, np.int64)])
    assert np.array_equal(got_slots, want_slots)
    want_bars = Bars.concat([w[0] for w in want] or [Bars.empty()])
    assert_same((got, got_counts), (want_bars, np.concatenate([w[1] for w in want] or [np.empty(0, np.int64)])))
    assert all(getattr(got, f).tobytes() == getattr(want_bars, f).tobytes() for f in FIELDS)
