"""Bar store: round trip, idempotent and atomic writes, corrupt files, range reads, DST partitioning."""
import datetime as dt
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from common.domain.bars import Bars
from common.data.store import BarStore, SourceConflict, StoreError
from common.domain.timeconv import NS_PER_MIN, exchange_date, exchange_ns

D = dt.date


def minute_bars(day: dt.date, start: str, count: int, price: float = 100.0) -> Bars:
    """`count` consecutive, valid 1-minute bars from exchange time `start` on `day`."""
    ts = exchange_ns(day, start) + np.arange(count, dtype=np.int64) * NS_PER_MIN
    close = price + np.arange(count) * 0.01
    return Bars(ts, close - 0.01, close + 0.05, close - 0.05, close, np.full(count, 1000.0))


def files_under(root) -> dict[str, bytes]:
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = open(path, "rb").read()
    return out


def test_round_trip(tmp_path):
    store = BarStore(tmp_path)
    bars = minute_bars(D(2025, 7, 2), "09:30", 390)
    result = store.write_bars("AAPL", bars)
    assert (result.days, result.added, result.replaced) == (1, 390, 0)
    assert store.read_day("AAPL", "2025-07-02").equals(bars)
    assert store.symbols() == ["AAPL"]
    assert store.days("AAPL") == [D(2025, 7, 2)]
    assert store.row_count("AAPL", D(2025, 7, 2)) == 390


def test_read_day_missing_is_empty(tmp_path):
    assert len(BarStore(tmp_path).read_day("AAPL", "2025-07-02")) == 0


def test_write_is_idempotent(tmp_path):
    store = BarStore(tmp_path)
    bars = minute_bars(D(2025, 7, 2), "09:30", 60)
    store.write_bars("AAPL", bars)
    before = files_under(tmp_path)
    second = store.write_bars("AAPL", bars)
    assert (second.added, second.replaced) == (0, 60)
    assert files_under(tmp_path) == before


def test_write_merges_and_replaces_same_timestamp(tmp_path):
    store = BarStore(tmp_path)
    store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "09:30", 10))
    newer = minute_bars(D(2025, 7, 2), "09:35", 10, price=200.0)
    result = store.write_bars("AAPL", newer)
    assert (result.added, result.replaced) == (5, 5)
    day = store.read_day("AAPL", "2025-07-02")
    assert len(day) == 15
    assert np.all(np.diff(day.ts) > 0)
    assert np.array_equal(day.close[5:], newer.close)


def test_atomic_write_leaves_no_temp_file(tmp_path):
    store = BarStore(tmp_path)
    store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "09:30", 30))
    folder = store.path_for("AAPL", D(2025, 7, 2)).parent
    assert os.listdir(folder) == ["2025-07-02.parquet"]


def test_crash_during_write_keeps_the_old_file(tmp_path, monkeypatch):
    store = BarStore(tmp_path)
    store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "09:30", 30))
    before = files_under(tmp_path)

    def torn_write(table, where, **kwargs):
        where.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", torn_write)
    with pytest.raises(StoreError, match=f"{store.path_for('AAPL', D(2025, 7, 2))}: cannot write .*disk full"):
        store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "10:00", 30))
    assert files_under(tmp_path) == before


def test_corrupt_file_is_a_store_error_naming_the_path(tmp_path):
    store = BarStore(tmp_path)
    store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "09:30", 30))
    path = store.path_for("AAPL", D(2025, 7, 2))
    path.write_bytes(b"this is not parquet")
    with pytest.raises(StoreError, match=str(path)):
        store.read_day("AAPL", "2025-07-02")
    summary = store.summary("AAPL")  # listed as corrupt, the rest still counted
    assert summary["days"] == 0 and summary["corrupt"][0].startswith(f"{path}: unreadable Parquet file")


def test_read_range_touches_only_the_requested_dates(tmp_path, monkeypatch):
    store = BarStore(tmp_path)
    days = [D(2025, 6, 30), D(2025, 7, 1), D(2025, 7, 2), D(2025, 7, 3), D(2025, 7, 7)]
    for day in days:
        store.write_bars("AAPL", minute_bars(day, "09:30", 5))
    opened = []
    real_read = BarStore._read_path

    def spy(self, path):
        opened.append(os.path.basename(path))
        return real_read(self, path)

    monkeypatch.setattr(BarStore, "_read_path", spy)
    bars = store.read_range("AAPL", "2025-07-01", "2025-07-03")
    assert sorted(opened) == ["2025-07-01.parquet", "2025-07-02.parquet", "2025-07-03.parquet"]
    assert len(bars) == 15
    assert {exchange_date(t) for t in bars.ts.tolist()} == set(days[1:4])


def test_read_session_drops_extended_hours(tmp_path):
    store = BarStore(tmp_path)
    day = D(2025, 7, 2)
    store.write_bars("AAPL", Bars.concat([minute_bars(day, "08:00", 10), minute_bars(day, "09:30", 390),
                                          minute_bars(day, "16:00", 5)]))
    open_ns, close_ns = exchange_ns(day, "09:30"), exchange_ns(day, "16:00")
    regular, dropped = store.read_session("AAPL", day, open_ns, close_ns)
    assert (len(regular), dropped) == (390, 15)
    assert regular.ts[0] == open_ns and regular.ts[-1] == close_ns - NS_PER_MIN


@pytest.mark.parametrize("first, last", [(D(2025, 3, 7), D(2025, 3, 11)), (D(2025, 10, 31), D(2025, 11, 4))])
def test_dst_days_are_partitioned_by_exchange_date(tmp_path, first, last):
    """Bars from 04:00 to 20:00 ET every 30 min land in their exchange-local date's file, across a DST switch."""
    store = BarStore(tmp_path)
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    bars = Bars.concat([minute_bars(day, "04:00", 16 * 60 + 1).take(slice(None, None, 30)) for day in days])
    store.write_bars("X", bars)
    assert store.days("X") == days
    for day in days:
        stored = store.read_day("X", day)
        assert {exchange_date(t) for t in stored.ts.tolist()} == {day}
        assert stored.ts[0] == exchange_ns(day, "04:00") and stored.ts[-1] == exchange_ns(day, "20:00")
    assert sum(store.row_count("X", d) for d in days) == len(bars)


# ---- sources: a day never mixes two of them; writes of several days are all-or-nothing -------------
def test_a_day_from_another_source_is_refused_naming_both(tmp_path):
    store = BarStore(tmp_path)
    store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "09:30", 30), source="generated (seed 7)")
    before = files_under(tmp_path)
    two_days = Bars.concat([minute_bars(D(2025, 7, 1), "09:30", 5), minute_bars(D(2025, 7, 2), "10:00", 5)])
    with pytest.raises(SourceConflict, match=r"2025-07-02 holds bars from generated \(seed 7\).*this write is a.csv"):
        store.write_bars("AAPL", two_days, source="a.csv")
    assert files_under(tmp_path) == before  # 07-01 was fine, but nothing is written


def test_replace_makes_the_day_the_new_source_only(tmp_path):
    store = BarStore(tmp_path)
    store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "09:30", 30), source="generated (seed 7)")
    result = store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "10:00", 5, price=50.0), source="a.csv",
                              replace=True)
    day = store.read_day("AAPL", "2025-07-02")
    assert len(day) == 5 and day.close[0] == 50.0 and store.source("AAPL", "2025-07-02") == "a.csv"
    assert result.days == 1


def test_same_source_merges(tmp_path):
    store = BarStore(tmp_path)
    store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "09:30", 30), source="a.csv")
    result = store.write_bars("AAPL", minute_bars(D(2025, 7, 2), "09:50", 20), source="a.csv")
    assert len(store.read_day("AAPL", "2025-07-02")) == 40 and (result.added, result.replaced) == (10, 10)


def test_a_failed_day_leaves_every_day_as_it_was(tmp_path, monkeypatch):
    store = BarStore(tmp_path)
    store.write_bars("AAPL", minute_bars(D(2025, 7, 1), "09:30", 10), source="a.csv")
    before = files_under(tmp_path)
    real_write, calls = pq.write_table, []

    def second_fails(table, where, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real_write(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", second_fails)
    three_days = Bars.concat([minute_bars(D(2025, 7, d), "09:30", 20) for d in (1, 2, 3)])
    with pytest.raises(StoreError, match="2025-07-02.parquet: cannot write .No space left on device"):
        store.write_bars("AAPL", three_days, source="a.csv")
    assert files_under(tmp_path) == before
