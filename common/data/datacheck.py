"""Data-quality checks on stored 1-minute bars, shared by `ctl data check`, the importer and the
quality monitor.

Everything here is pure: it takes bars and a calendar and returns numbers, so the same gap logic runs
in the CLI (per stored day) and in the quality process (per session so far).
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from common.domain.bars import Bars
from common.domain.quality import missing_runs as quality_missing_runs
from common.domain.timeconv import NS_PER_MIN, fmt_exchange

_TICKER_RE = re.compile(r"^[A-Z][A-Z0-9.\-]{0,14}$")


def normalise_symbol(text: str) -> str:
    """Upper-case ticker, validated so it is safe as a store folder name ('BRK.B', 'RDS-A')."""
    symbol = str(text).strip().upper()
    if not _TICKER_RE.match(symbol):
        raise ValueError(f"{text!r} is not a ticker (letters, digits, '.' or '-', starting with a letter)")
    return symbol


def missing_runs(present_minute_index: np.ndarray, n_minutes: int) -> list[tuple[int, int, int]]:
    """Runs of missing minutes in a grid of `n_minutes`, as (start_idx, end_idx_inclusive, count).

    Accepts any order, repeats and out-of-grid positions (store data is not trusted to be clean), then
    defers to the quality monitor's definition so `ctl data check` and quality agree.
    """
    index = np.unique(np.asarray(present_minute_index, dtype=np.int64))
    return quality_missing_runs(index[(index >= 0) & (index < n_minutes)], int(n_minutes))


@dataclass(frozen=True)
class SessionParts:
    """Bar counts by part of the trading day; `closed` = bars on days that are not sessions."""

    pre: int = 0
    regular: int = 0
    post: int = 0
    closed: int = 0

    @property
    def extended(self) -> int:
        return self.pre + self.post + self.closed

    def __add__(self, other: "SessionParts") -> "SessionParts":
        return SessionParts(self.pre + other.pre, self.regular + other.regular,
                            self.post + other.post, self.closed + other.closed)


def day_parts(ts: np.ndarray, open_ns: int | None, close_ns: int | None) -> SessionParts:
    """Split one exchange day's timestamps into pre / regular [open, close) / post."""
    if open_ns is None or close_ns is None:
        return SessionParts(closed=int(len(ts)))
    pre = int(np.count_nonzero(ts < open_ns))
    post = int(np.count_nonzero(ts >= close_ns))
    return SessionParts(pre=pre, regular=int(len(ts)) - pre - post, post=post)


def session_parts(ts: np.ndarray, calendar) -> tuple[SessionParts, int]:
    """Bar counts by session part over any range of timestamps, and the number of exchange days."""
    from common.data.store import (
        exchange_day_numbers,  # the store owns the day-partitioning rule
    )

    ts = np.asarray(ts, dtype=np.int64)
    if not len(ts):
        return SessionParts(), 0
    days = exchange_day_numbers(ts)
    total = SessionParts()
    unique_days = np.unique(days)
    for num in unique_days.tolist():
        day = dt.date(1970, 1, 1) + dt.timedelta(days=num)
        bounds = calendar.open_close_ns(day) if calendar.is_session(day) else (None, None)
        total = total + day_parts(ts[days == num], *bounds)
    return total, int(len(unique_days))


@dataclass(frozen=True)
class Gap:
    """A run of missing regular-hours minutes, by bar open time (both ends inclusive)."""

    start_ns: int
    end_ns: int
    count: int

    def label(self) -> str:
        return f"{fmt_exchange(self.start_ns)}-{fmt_exchange(self.end_ns)} ({self.count})"


JUMP_PCT = 10.0  # a move this large between consecutive regular-hours minutes is worth a look


@dataclass(frozen=True)
class Jump:
    """A suspicious move between consecutive minutes: previous close -> this bar's open (or close)."""

    ts: int
    before: float
    after: float

    @property
    def pct(self) -> float:
        return 100.0 * (self.after / self.before - 1.0)

    def label(self) -> str:
        return f"{fmt_exchange(self.ts)} {self.before:g}->{self.after:g} ({self.pct:+.1f}%)"


def price_jumps(bars: Bars, limit_pct: float = JUMP_PCT) -> list[Jump]:
    """Bars whose open or close is more than `limit_pct` away from the previous bar's close."""
    if len(bars) < 2:
        return []
    prev = bars.close[:-1]
    worst = np.where(np.abs(bars.open[1:] / prev - 1) >= np.abs(bars.close[1:] / prev - 1),
                     bars.open[1:], bars.close[1:])
    hits = np.flatnonzero(np.abs(worst / prev - 1) * 100.0 > limit_pct)
    return [Jump(int(bars.ts[i + 1]), float(prev[i]), float(worst[i])) for i in hits.tolist()]


@dataclass(frozen=True)
class DayCheck:
    """What one stored day holds compared with the calendar's session."""

    day: dt.date
    session: bool
    expected: int                     # regular-hours minutes: 390, 210 on an early close, 0 if closed
    present: int                      # distinct regular-hours bars on the minute grid
    parts: SessionParts
    duplicates: int                   # repeated timestamps (the store should never hold any)
    off_grid: int                     # regular-hours bars not on a whole minute after the open
    gaps: list[Gap] = field(default_factory=list)
    jumps: list[Jump] = field(default_factory=list)
    spill: bool = False               # a session day holding only extended-hours bars at the edge of the
                                      # stored range (e.g. a UTC-dated file's previous evening): not counted

    @property
    def missing(self) -> int:
        return self.expected - self.present

    @property
    def counted(self) -> bool:
        """Counts as a session in the totals."""
        return self.session and not self.spill

    def to_dict(self) -> dict:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        out["parts"] = asdict(self.parts)
        out["extended"] = self.parts.extended
        out["missing"] = self.missing
        out["jumps"] = [{"time": fmt_exchange(j.ts), "ts": j.ts, "before": j.before, "after": j.after,
                         "pct": round(j.pct, 4)} for j in self.jumps]
        out["gaps"] = [
            {"start": fmt_exchange(g.start_ns), "end": fmt_exchange(g.end_ns), "count": g.count,
             "start_ns": g.start_ns, "end_ns": g.end_ns}
            for g in self.gaps
        ]
        return out


def check_day(bars: Bars, day: dt.date, calendar) -> DayCheck:
    """Check one exchange day of one symbol against the calendar's regular session."""
    ts = bars.ts
    duplicates = int(len(ts) - len(np.unique(ts)))
    if not calendar.is_session(day):
        return DayCheck(day, False, 0, 0, day_parts(ts, None, None), duplicates, 0, [])
    open_ns, close_ns = calendar.open_close_ns(day)
    n_minutes = (close_ns - open_ns) // NS_PER_MIN
    regular_bars = bars.between(open_ns, close_ns)
    regular = np.unique(regular_bars.ts)
    offset = regular - open_ns
    on_grid = offset % NS_PER_MIN == 0
    index = offset[on_grid] // NS_PER_MIN
    gaps = [
        Gap(open_ns + s * NS_PER_MIN, open_ns + e * NS_PER_MIN, n)
        for s, e, n in missing_runs(index, n_minutes)
    ]
    return DayCheck(
        day=day, session=True, expected=int(n_minutes), present=int(len(index)),
        parts=day_parts(ts, open_ns, close_ns), duplicates=duplicates,
        off_grid=int(np.count_nonzero(~on_grid)), gaps=gaps, jumps=price_jumps(regular_bars),
    )


def check_symbol(store, calendar, symbol: str, start: dt.date | None = None,
                 end: dt.date | None = None) -> list[DayCheck]:
    """Check every trading session in [start, end] plus any stored non-session day in that range.

    Defaults to the symbol's whole stored range. Raises ValueError for a symbol with no data.
    """
    stored = store.days(symbol)
    if not stored:
        raise ValueError(f"no bars stored for symbol {symbol!r}")
    start = start or stored[0]
    end = end or stored[-1]
    if end < start:
        raise ValueError(f"end date {end} is before start date {start}")
    wanted = set(calendar.sessions(start, end))
    wanted.update(d for d in stored if start <= d <= end)
    checks = [check_day(store.read_day(symbol, day), day, calendar) for day in sorted(wanted)]
    return _mark_spill(checks)


def _mark_spill(checks: list[DayCheck]) -> list[DayCheck]:
    """Session days at either end of the range that hold extended-hours bars only are spill-over from a
    neighbouring day's file (e.g. 20:00-23:59 ET of the evening before a UTC-dated file), not sessions."""
    with_regular = [i for i, c in enumerate(checks) if c.present > 0]
    if not with_regular:
        return checks
    first, last = with_regular[0], with_regular[-1]
    out = []
    for i, c in enumerate(checks):
        edge = i < first or i > last
        spill = edge and c.session and c.present == 0 and c.parts.extended > 0
        out.append(replace(c, spill=True) if spill else c)
    return out


def describe_ts(ns: int) -> str:
    """Exchange-time label of a timestamp for messages ('2025-07-02 09:30 ET')."""
    return f"{fmt_exchange(ns, with_date=True)} ET"
