"""A session day: its symbol table and 1m bars, sorted by minute so each step is one slice; and the reads behind it.

The coordinator loads every symbol's regular-hours bars once per session, tags them with their slot and
minute row, and sorts by (row, slot). Step k (clock = open + (k+1) min) then publishes the slice of
rows == k. A symbol added mid-session gets its own small batch, merged into each step's slice.
`DayLoader` reads a session's bars, `HistoryCache` the trailing days before it (shared by consecutive
sessions, so each day is read once).
"""
from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from common import progress
from common.config import SessionConfig
from common.data.store import BarStore, StoreError
from common.domain.bars import FIELDS, Bars
from common.domain.calendar import TradingCalendar
from common.domain.timeconv import NS_PER_MIN
from common.logsetup import log_per_symbol

log = logging.getLogger("coordinator")


@dataclass
class DayBatch:
    slots: np.ndarray   # int32 slot per bar
    bars: Bars          # sorted by (minute row, slot)
    bounds: np.ndarray  # bounds[k]:bounds[k+1] is the slice of minute row k

    @classmethod
    def build(cls, per_slot: list[tuple[int, Bars]], open_ns: int, n_minutes: int) -> "DayBatch":
        parts = [(slot, bars) for slot, bars in per_slot if len(bars)]
        slots = np.concatenate([np.full(len(b), s, np.int32) for s, b in parts]) if parts else np.empty(0, np.int32)
        bars = Bars.concat([b for _, b in parts])
        rows = (bars.ts - open_ns) // NS_PER_MIN
        order = np.lexsort((slots, rows))
        bounds = np.searchsorted(rows[order], np.arange(n_minutes + 1), side="left")
        return cls(slots[order], bars.take(order), bounds)

    def minute(self, row: int) -> tuple[np.ndarray, Bars]:
        lo, hi = int(self.bounds[row]), int(self.bounds[row + 1])
        return self.slots[lo:hi], self.bars.take(slice(lo, hi))

    def without_slot(self, slot: int) -> "DayBatch":
        """This batch minus one slot's bars (a removed symbol added again gets a batch of its own)."""
        keep = self.slots != slot
        if keep.all():
            return self
        removed_before = np.concatenate([[0], np.cumsum(~keep)])
        bounds = self.bounds - removed_before[self.bounds]
        return DayBatch(self.slots[keep], self.bars.take(keep), bounds)


def merge_step(parts: list[tuple[np.ndarray, Bars]]) -> tuple[np.ndarray, Bars]:
    """Concatenate the step slices of the main batch and any added symbols' batches, sorted by slot."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return np.empty(0, np.int32), Bars.empty()
    if len(parts) == 1:
        return parts[0]
    slots = np.concatenate([p[0] for p in parts])
    bars = Bars(*(np.concatenate([getattr(p[1], f) for p in parts]) for f in FIELDS))
    order = np.argsort(slots, kind="stable")
    return slots[order], bars.take(order)


class SessionDay:
    """One session's symbol table and bars. Slots are fixed for the session (the wire identifies symbols by
    slot): a removed symbol keeps its slot, inactive, and an added one gets the next slot."""

    def __init__(self, day: dt.date | None, open_ns: int, close_ns: int, symbols: list[str],
                 per_slot: list[tuple[int, Bars]]):
        self.day = day
        self.open_ns, self.close_ns = open_ns, close_ns
        self.n_minutes = (close_ns - open_ns) // NS_PER_MIN
        self.symbols = list(symbols)
        self.active = np.ones(len(self.symbols), bool)
        self.batch = DayBatch.build(per_slot, open_ns, self.n_minutes)
        self.extra: list[tuple[int, DayBatch]] = []     # (slot, bars from the add on) of added symbols
        self.caught_ts: dict[int, np.ndarray] = {}       # catch-up bars of symbols added this session

    @classmethod
    def before_first(cls) -> "SessionDay":
        """The empty table the engine holds until the first session starts."""
        return cls(None, 0, 0, [], [])

    def is_present(self, symbol: str) -> bool:
        return symbol in self.symbols and bool(self.active[self.symbols.index(symbol)])

    def active_symbols(self) -> list[str]:
        return [s for i, s in enumerate(self.symbols) if self.active[i]]

    def step(self, row: int) -> tuple[np.ndarray, Bars]:
        """The 1m bars of minute `row` of every active symbol, sorted by slot."""
        slots, bars = merge_step([self.batch.minute(row)] + [b.minute(row) for _, b in self.extra])
        if len(slots) and not self.active.all():
            keep = self.active[slots]
            slots, bars = slots[keep], bars.take(keep)
        return slots, bars

    def deactivate(self, symbol: str) -> None:
        self.active[self.symbols.index(symbol)] = False

    def add(self, symbol: str, future: Bars, caught_ts: np.ndarray) -> int:
        """Give `symbol` a slot (its old one if it was removed today) with the bars still to come; returns it."""
        if symbol in self.symbols:
            slot = self.symbols.index(symbol)
            self.active[slot] = True
            self.extra = [(s, b) for s, b in self.extra if s != slot]
            self.batch = self.batch.without_slot(slot)
        else:
            slot = len(self.symbols)
            self.symbols.append(symbol)
            self.active = np.append(self.active, True)
        self.extra.append((slot, DayBatch.build([(slot, future)], self.open_ns, self.n_minutes)))
        self.caught_ts[slot] = caught_ts
        return slot

    def published_by_slot(self, row: int) -> dict[int, np.ndarray]:
        """Open times of the 1m bars each slot has had this session up to minute `row`, one sort for all."""
        hi = int(self.batch.bounds[row])
        slots = [self.batch.slots[:hi]]
        ts = [self.batch.bars.ts[:hi]]
        for slot, extra in self.extra:
            n = int(extra.bounds[row])
            slots.append(np.full(n, slot, np.int32))
            ts.append(extra.bars.ts[:n])
        for slot, caught in self.caught_ts.items():
            slots.append(np.full(len(caught), slot, np.int32))
            ts.append(caught)
        slots, ts = np.concatenate(slots), np.concatenate(ts)
        order = np.lexsort((ts, slots))
        slots, ts = slots[order], ts[order]
        bounds = np.searchsorted(slots, np.arange(len(self.symbols) + 1))
        return {s: ts[bounds[s]:bounds[s + 1]] for s in range(len(self.symbols))}


class DayLoader:
    """Reads a session's regular-hours 1m bars for its symbols; a symbol without any is an error or is
    dropped for that session, as the config's `missing_data` says."""

    def __init__(self, store: BarStore, missing_data: str):
        self.store = store
        self.missing_data = missing_data
        self.ahead: tuple[tuple, Future] | None = None  # a load started in the background, and its arguments

    def load_ahead(self, day: dt.date, open_ns: int, close_ns: int, symbols: list[str]) -> None:
        """Start loading a session in a background thread (the first one, while the stages start up: a
        whole market's 5,000 files then cost no start-up time of their own); `load` takes it over."""
        pool = ThreadPoolExecutor(1, thread_name_prefix="load-ahead")
        self.ahead = ((day, open_ns, close_ns, tuple(symbols)), pool.submit(self._read, day, open_ns, close_ns, symbols))
        pool.shutdown(wait=False)

    def load(self, day: dt.date, open_ns: int, close_ns: int, symbols: list[str]) -> tuple[SessionDay, int]:
        """(the session's table and bars, extended-hours bars dropped)."""
        ahead, self.ahead = self.ahead, None
        if ahead is not None and ahead[0] == (day, open_ns, close_ns, tuple(symbols)):
            return ahead[1].result()  # raises what the background load raised
        if ahead is not None:
            ahead[1].cancel()
        return self._read(day, open_ns, close_ns, symbols)

    def _read(self, day: dt.date, open_ns: int, close_ns: int, symbols: list[str]) -> tuple[SessionDay, int]:
        per_slot, kept, dropped_total, missing = [], [], 0, []
        for symbol, (bars, dropped) in zip(symbols, self.store.read_sessions(symbols, day, open_ns, close_ns)):
            dropped_total += dropped
            if not len(bars):
                if self.missing_data == "error":
                    raise StoreError(f"{symbol}: no bars in the store for session {day} (import them, or set "
                                     f"\"session.missing_data\": \"drop\" to skip such symbol-days with a warning)")
                missing.append(f"{symbol}: no bars for {day}, dropped from this session")
                continue
            kept.append(symbol)
            per_slot.append((len(kept) - 1, bars))
        log_per_symbol(log, logging.WARNING, missing, f"no bars for {day}, dropped from this session")
        return SessionDay(day, open_ns, close_ns, kept, per_slot), dropped_total


class HistoryCache:
    """Trailing regular-hours 1m bars per (symbol, session day), read from the store once: consecutive
    sessions share all but one of their trailing days."""

    def __init__(self, config: SessionConfig, calendar: TradingCalendar, store: BarStore):
        self.config = config
        self.calendar = calendar
        self.store = store
        self.bars: dict[tuple[str, dt.date], Bars] = {}

    def for_symbol(self, symbol: str, day: dt.date) -> tuple[Bars, list[str], int]:
        """(bars of the trailing sessions before `day`, the dates that have bars, days wanted)."""
        wanted = self.config.history_days(symbol)
        if wanted == 0:
            return Bars.empty(), [], 0
        parts, days = [], []
        for before in self.calendar.sessions_before(day, wanted):
            key = (symbol, before)
            bars = self.bars.get(key)
            if bars is None:
                o, c = self.calendar.open_close_ns(before)
                bars = self.store.read_session(symbol, before, o, c)[0]
                self.bars[key] = bars
            if len(bars):
                parts.append(bars)
                days.append(before.isoformat())
        return Bars.concat(parts), days, wanted

    def sessions_table(self, days: list[str]) -> list[list]:
        """[[date, open_ns, close_ns], ...] so stages can cut history into sessions without a calendar."""
        return [[d, *self.calendar.open_close_ns(d)] for d in sorted(set(days))]

    def for_session(self, symbols: list[str], slots: list[int],
                    day: dt.date) -> tuple[np.ndarray, Bars, dict[str, list[int]], list[str]]:
        """The history batch of a session start: (slots, bars, {symbol: [have, wanted]}, dates). Days no
        symbol needs any more leave the cache first."""
        self._evict_before(symbols, day)
        all_slots, parts, days_by_symbol, all_days, short = [], [], {}, [], []
        for symbol, slot in zip(symbols, slots):
            progress.tick()  # a whole market's history is tens of thousands of files
            bars, days, wanted = self.for_symbol(symbol, day)
            all_days += days
            if wanted and len(days) < wanted:
                short.append(f"{symbol}: {len(days)} of {wanted} trailing days of history in the store")
            days_by_symbol[symbol] = [len(days), wanted]
            all_slots.append(np.full(len(bars), slot, np.int32))
            parts.append(bars)
        log_per_symbol(log, logging.WARNING, short, "fewer trailing days of history in the store than wanted")
        slots_arr = np.concatenate(all_slots) if all_slots else np.empty(0, np.int32)
        return slots_arr, Bars.concat(parts), days_by_symbol, all_days

    def _evict_before(self, symbols: list[str], day: dt.date) -> None:
        first_needed = min((self.calendar.sessions_before(day, max(1, self.config.history_days(s)))[0]
                            for s in symbols), default=day) if symbols else day
        for key in [k for k in self.bars if k[1] < first_needed]:
            del self.bars[key]
