"""Trading calendar: a thin, cached wrapper over `exchange_calendars` (XNYS by default).

The schedule is read once per instance into numpy arrays (session dates, open ns, close ns), so every
lookup after construction is a binary search; no holiday or early-close rule is written by hand.
Sessions are half-open [open, close): 390 one-minute bars on a normal day, 210 on a 13:00 close.
"""
from __future__ import annotations

import datetime as dt

import numpy as np

from common.domain.timeconv import NS_PER_MIN, parse_date

_EPOCH_DATE = dt.date(1970, 1, 1)


def _day_number(day: dt.date) -> int:
    return (day - _EPOCH_DATE).days


def _utc_ns(column) -> np.ndarray:
    """tz-aware pandas column -> int64 UTC ns, whatever resolution pandas chose."""
    naive = column.dt.tz_convert("UTC").dt.tz_localize(None)
    return naive.to_numpy().astype("datetime64[ns]").view(np.int64)


class CalendarError(ValueError):
    """A date outside the calendar's range or not a trading session."""


class TradingCalendar:
    """Sessions, open/close and minute grids of one exchange, from `exchange_calendars`."""

    def __init__(self, name: str = "XNYS"):
        import exchange_calendars  # imported here: only the processes that need a calendar pay for it

        cal = exchange_calendars.get_calendar(name)
        schedule = cal.schedule
        self.name = name
        self._days = np.array(
            [_day_number(ts.date()) for ts in schedule.index], dtype=np.int64
        )
        self._open_ns = _utc_ns(schedule["open"])
        self._close_ns = _utc_ns(schedule["close"])
        self.first_session = _EPOCH_DATE + dt.timedelta(days=int(self._days[0]))
        self.last_session = _EPOCH_DATE + dt.timedelta(days=int(self._days[-1]))

    def _check_range(self, day: dt.date) -> None:
        if not (self.first_session <= day <= self.last_session):
            raise CalendarError(
                f"{day} is outside the {self.name} calendar ({self.first_session}..{self.last_session})"
            )

    def _index(self, day: dt.date) -> int:
        day = parse_date(day)
        self._check_range(day)
        num = _day_number(day)
        i = int(np.searchsorted(self._days, num))
        if i >= len(self._days) or self._days[i] != num:
            raise CalendarError(f"{day} is not a {self.name} trading session")
        return i

    def is_session(self, day: dt.date) -> bool:
        try:
            self._index(day)
        except CalendarError:
            return False
        return True

    def sessions(self, start: dt.date | str, end: dt.date | str) -> list[dt.date]:
        """Trading sessions in [start, end]; start/end on non-trading days are simply normalised."""
        start, end = parse_date(start), parse_date(end)
        if end < start:
            raise CalendarError(f"end date {end} is before start date {start}")
        lo = int(np.searchsorted(self._days, _day_number(max(start, self.first_session))))
        hi = int(np.searchsorted(self._days, _day_number(min(end, self.last_session)), side="right"))
        return [_EPOCH_DATE + dt.timedelta(days=int(d)) for d in self._days[lo:hi]]

    def open_close_ns(self, day: dt.date | str) -> tuple[int, int]:
        i = self._index(parse_date(day))
        return int(self._open_ns[i]), int(self._close_ns[i])

    def sessions_before(self, day: dt.date | str, count: int) -> list[dt.date]:
        """The `count` trading sessions strictly before `day` (fewer near the calendar's start)."""
        day = parse_date(day)
        self._check_range(day)
        hi = int(np.searchsorted(self._days, _day_number(day)))
        lo = max(0, hi - int(count))
        return [_EPOCH_DATE + dt.timedelta(days=int(d)) for d in self._days[lo:hi]]

    def minute_grid(self, day: dt.date | str) -> np.ndarray:
        """Open times (int64 UTC ns) of every 1-minute bar of the regular session, [open, close)."""
        open_ns, close_ns = self.open_close_ns(day)
        return np.arange(open_ns, close_ns, NS_PER_MIN, dtype=np.int64)

    def session_minutes(self, day: dt.date | str) -> int:
        open_ns, close_ns = self.open_close_ns(day)
        return (close_ns - open_ns) // NS_PER_MIN
