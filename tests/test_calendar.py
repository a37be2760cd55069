"""Calendar facts, checked against exchange_calendars and against known dates."""
import datetime as dt

import exchange_calendars
import numpy as np
import pytest

from common.domain.calendar import CalendarError, TradingCalendar
from common.domain.timeconv import NS_PER_MIN, exchange_ns, fmt_exchange, fmt_utc, ns_from_datetime

D = dt.date


@pytest.fixture(scope="module")
def cal():
    return TradingCalendar()


def utc_ns(text: str) -> int:
    return ns_from_datetime(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc))


def test_sessions_and_hours_match_exchange_calendars(cal):
    xnys = exchange_calendars.get_calendar("XNYS")
    schedule = xnys.schedule.loc["2025-01-01":"2025-12-31"]
    ours = cal.sessions("2025-01-01", "2025-12-31")
    assert ours == [ts.date() for ts in schedule.index]
    for day, (_, row) in zip(ours, schedule.iterrows()):
        assert cal.open_close_ns(day) == (row["open"].value, row["close"].value)


def test_early_close_2025_07_03(cal):
    open_ns, close_ns = cal.open_close_ns("2025-07-03")
    assert fmt_exchange(open_ns) == "09:30"
    assert fmt_exchange(close_ns) == "13:00"
    assert close_ns == utc_ns("2025-07-03 17:00")
    assert cal.session_minutes("2025-07-03") == 210
    grid = cal.minute_grid("2025-07-03")
    assert len(grid) == 210
    assert grid[0] == open_ns and grid[-1] == close_ns - NS_PER_MIN
    assert np.all(np.diff(grid) == NS_PER_MIN)


def test_normal_day_has_390_minutes_half_open(cal):
    grid = cal.minute_grid("2025-07-02")
    assert len(grid) == 390 == cal.session_minutes("2025-07-02")
    assert fmt_exchange(grid[-1]) == "15:59"           # 16:00 is not a regular-hours bar


@pytest.mark.parametrize("day", ["2025-07-04", "2025-06-19", "2025-07-05", "2025-07-06"])
def test_closed_days(cal, day):
    assert not cal.is_session(day)
    with pytest.raises(CalendarError, match="trading session"):
        cal.open_close_ns(day)


@pytest.mark.parametrize("day, open_utc", [
    ("2025-03-07", "2025-03-07 14:30"),   # last Friday of EST
    ("2025-03-10", "2025-03-10 13:30"),   # first Monday of EDT (switch on Sunday 9 March)
    ("2025-10-31", "2025-10-31 13:30"),   # last Friday of EDT
    ("2025-11-03", "2025-11-03 14:30"),   # first Monday of EST (switch on Sunday 2 November)
])
def test_dst_open_is_0930_exchange_time(cal, day, open_utc):
    open_ns, close_ns = cal.open_close_ns(day)
    assert open_ns == utc_ns(open_utc)
    assert open_ns == exchange_ns(D.fromisoformat(day), "09:30")
    assert close_ns - open_ns == 390 * NS_PER_MIN


def test_fmt_utc_shows_the_utc_open(cal):
    assert fmt_utc(cal.open_close_ns("2025-01-02")[0]) == "2025-01-02 14:30 UTC"


def test_sessions_normalise_non_trading_start_and_end(cal):
    assert cal.sessions("2025-07-05", "2025-07-13") == [D(2025, 7, d) for d in (7, 8, 9, 10, 11)]
    assert cal.sessions("2025-07-04", "2025-07-06") == []
    assert cal.sessions("2025-06-19", "2025-06-19") == []
    assert cal.sessions("2025-06-30", "2025-07-08") == [
        D(2025, 6, 30), D(2025, 7, 1), D(2025, 7, 2), D(2025, 7, 3), D(2025, 7, 7), D(2025, 7, 8)]


def test_sessions_rejects_reversed_range(cal):
    with pytest.raises(CalendarError, match="before start"):
        cal.sessions("2025-07-08", "2025-07-01")


def test_sessions_before(cal):
    assert cal.sessions_before("2025-07-07", 3) == [D(2025, 7, 1), D(2025, 7, 2), D(2025, 7, 3)]
    assert cal.sessions_before("2025-07-04", 1) == [D(2025, 7, 3)]       # a holiday as reference
    assert cal.sessions_before("2025-06-20", 2) == [D(2025, 6, 17), D(2025, 6, 18)]   # skips Juneteenth
    assert cal.sessions_before("2025-07-07", 0) == []


def test_dates_outside_the_calendar_are_errors(cal):
    with pytest.raises(CalendarError, match="outside"):
        cal.sessions_before("1990-01-02", 5)
    with pytest.raises(ValueError, match="not a date"):
        cal.open_close_ns("2025-13-01")
