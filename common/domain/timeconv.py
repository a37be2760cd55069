"""Time conventions, in one place.

Inside the engine every timestamp is an int64 count of nanoseconds since the Unix epoch, UTC.
Exchange-local time (America/New_York for US equities) appears only at the edges: parsing input,
display, and calendar lookups. A bar is labelled by its *open* time and becomes known at its close
(open + interval): a clock value T means "every bar whose close is <= T is known".
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

NS_PER_SEC = 1_000_000_000
NS_PER_MIN = 60 * NS_PER_SEC
NS_PER_DAY = 86_400 * NS_PER_SEC
EXCHANGE_TZ = ZoneInfo("America/New_York")
UTC = dt.timezone.utc
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)



def ns_from_datetime(value: dt.datetime) -> int:
    """Aware datetime -> int64 UTC ns. Naive datetimes are refused: say which zone they are in."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError(f"naive datetime {value!r}: attach a time zone first")
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SEC + delta.microseconds * 1000


def datetime_from_ns(ns: int, tz: dt.tzinfo = EXCHANGE_TZ) -> dt.datetime:
    """int64 UTC ns -> aware datetime in `tz` (exchange time by default); for display only."""
    seconds, rem = divmod(int(ns), NS_PER_SEC)
    return (_EPOCH + dt.timedelta(seconds=seconds, microseconds=rem // 1000)).astimezone(tz)


def exchange_ns(day: dt.date, wall: dt.time | str, tz: dt.tzinfo = EXCHANGE_TZ) -> int:
    """Exchange wall-clock time on `day` (e.g. '12:06') -> UTC ns."""
    if isinstance(wall, str):
        wall = parse_wall_time(wall)
    return ns_from_datetime(dt.datetime.combine(day, wall, tzinfo=tz))


def parse_wall_time(text: str) -> dt.time:
    """'12:06' (or '12:06:00') -> time; the clock moves in whole minutes, so '12:06:30' is refused rather
    than silently moved to a boundary. Raises ValueError naming the text."""
    for fmt in ("%H:%M", "%H:%M:%S"):
        try:
            value = dt.datetime.strptime(text.strip(), fmt).time()
        except ValueError:
            continue
        if value.second:
            raise ValueError(f"{text!r}: the clock moves in whole minutes; give a time like {value:%H:%M}")
        return value
    raise ValueError(f"{text!r} is not a wall-clock time like 12:06")


def parse_date(text: str | dt.date) -> dt.date:
    """'2025-07-02' -> date; raises ValueError naming the text."""
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date like 2025-07-02") from None


def exchange_date(ns: int, tz: dt.tzinfo = EXCHANGE_TZ) -> dt.date:
    """The exchange-local calendar date a UTC ns timestamp falls on."""
    return datetime_from_ns(ns, tz).date()


def fmt_exchange(ns: int | None, with_date: bool = False, tz: dt.tzinfo = EXCHANGE_TZ) -> str:
    """Display helper: '12:06' (or '2025-07-02 12:06') in exchange time; '-' for None."""
    if ns is None:
        return "-"
    value = datetime_from_ns(ns, tz)
    return value.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def fmt_utc(ns: int) -> str:
    return datetime_from_ns(ns, UTC).strftime("%Y-%m-%d %H:%M UTC")
