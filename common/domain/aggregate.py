"""Derived N-minute (and daily) bars from 1-minute bars: one batch path and one streaming path.

A window covers [t, t+N) with t = open + k*N minutes (aligned to the session open). It is emitted at
the step whose clock reaches min(t+N, close): the last window of a session that N does not divide (an
early close) is truncated at the close. Its OHLCV come from the 1m bars present (open of first, max
high, min low, close of last, volume summed in time order) plus `count`, the number of 1m bars in it.
A window without bars emits nothing.

Both paths fold every window with the same sequence of float operations, bar by bar in time order
(`acc = max(acc, x)`, `acc = acc + x`), so batch and streaming agree bit for bit. numpy's `sum`/
`add.reduceat` sum pairwise, which would not, hence `_sequential_sum`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.domain.bars import Bars
from common.domain.timeconv import NS_PER_MIN

_VALUE_FIELDS = ("open", "high", "low", "close", "volume")


# --------------------------------------------------------------------------------------------- batch


def window_ns(minutes: int) -> int:
    """Window length in ns; refuses non-positive lengths (a typo in a config should fail loudly)."""
    if int(minutes) < 1:
        raise ValueError(f"window of {minutes!r} minutes: must be >= 1")
    return int(minutes) * NS_PER_MIN


def window_end(start_ns: int, open_ns: int, close_ns: int, minutes: int) -> int:
    """Clock at which the window containing `start_ns` is emitted: min(t+N, close)."""
    width = window_ns(minutes)
    t = open_ns + (start_ns - open_ns) // width * width
    return min(t + width, close_ns)


def check_next_step(last_clock_ns: int | None, clock_ns: int, close_ns: int | None) -> None:
    """Steps come one minute apart up to the close: a skipped or repeated step is a bug upstream."""
    if last_clock_ns is None:
        raise RuntimeError("start_session() before on_step()")
    if clock_ns != last_clock_ns + NS_PER_MIN or clock_ns > close_ns:
        raise ValueError(f"step clock {clock_ns}: expected {last_clock_ns + NS_PER_MIN} "
                         f"(one minute after {last_clock_ns}, at most the close {close_ns})")


def _sequential_sum(values: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per-group sum folded left to right, exactly as the streaming `acc + x` does.

    Groups are laid out as rows of a grid padded with -0.0 (x + -0.0 == x for every x, including -0.0
    and NaN), then `add.accumulate` along the row, which is sequential by definition.
    """
    if len(starts) == 0:
        return np.empty(0, np.float64)
    group = np.repeat(np.arange(len(starts)), counts)
    position = np.arange(len(values)) - np.repeat(starts, counts)
    grid = np.full((len(starts), int(counts.max())), -0.0)
    grid[group, position] = values
    return np.add.accumulate(grid, axis=1)[:, -1].copy()


def aggregate_session(bars: Bars, open_ns: int, close_ns: int, minutes: int) -> tuple[Bars, np.ndarray]:
    """One symbol's 1m bars of one session -> (N-minute bars labelled by window open, counts int64).

    Bars outside [open, close) are ignored. Empty windows are absent from the result.
    """
    width = window_ns(minutes)
    bars = bars.between(open_ns, close_ns)
    if len(bars) == 0:
        return Bars.empty(), np.empty(0, np.int64)
    window = (bars.ts - open_ns) // width
    starts = np.flatnonzero(np.r_[True, window[1:] != window[:-1]])
    counts = np.diff(np.r_[starts, len(bars)]).astype(np.int64)
    last = starts + counts - 1
    out = Bars(
        open_ns + window[starts] * width,
        bars.open[starts],
        np.maximum.reduceat(bars.high, starts),
        np.minimum.reduceat(bars.low, starts),
        bars.close[last],
        _sequential_sum(bars.volume, starts, counts),
    )
    return out, counts


def daily_bar(bars: Bars, open_ns: int, close_ns: int) -> tuple[Bars, np.ndarray]:
    """The `1d` bar of one session (labelled by the session open) from its regular-hours 1m bars.

    Returns (Bars of length 0 or 1, counts): a whole session is simply one window.
    """
    session_minutes = max(1, -(-(close_ns - open_ns) // NS_PER_MIN))
    return aggregate_session(bars, open_ns, close_ns, session_minutes)


def aggregate_sessions(bars: Bars, opens: np.ndarray, closes: np.ndarray, minutes: int | None
                       ) -> tuple[Bars, np.ndarray]:
    """History over many sessions: N-minute bars (or daily bars when minutes is None), concatenated."""
    parts, counts = [], []
    for open_ns, close_ns in zip(np.asarray(opens).tolist(), np.asarray(closes).tolist()):
        if minutes is None:
            part, count = daily_bar(bars, open_ns, close_ns)
        else:
            part, count = aggregate_session(bars, open_ns, close_ns, minutes)
        parts.append(part)
        counts.append(count)
    if not parts:
        return Bars.empty(), np.empty(0, np.int64)
    return Bars.concat(parts), np.concatenate(counts)


def aggregate_many(slots: np.ndarray, bars: Bars, opens: np.ndarray, closes: np.ndarray, minutes: int | None
                   ) -> tuple[np.ndarray, Bars, np.ndarray]:
    """`aggregate_sessions` of many symbols at once (`slots[i]` is bar i's symbol): (slots, bars, counts)
    ordered by slot, then time, bit-identical to aggregating each slot's bars on its own and concatenating
    in slot order (max/min are exact; volumes fold per window in time order with `_sequential_sum`).
    Sessions must be in time order and disjoint; bars outside every [open, close) are ignored."""
    opens, closes = np.asarray(opens, np.int64), np.asarray(closes, np.int64)
    order = np.lexsort((bars.ts, slots))
    slots, bars = np.asarray(slots, np.int64)[order], bars.take(order)
    session = np.searchsorted(opens, bars.ts, side="right") - 1
    inside = np.flatnonzero((session >= 0) & (bars.ts < closes[np.maximum(session, 0)])) if len(opens) else []
    slots, bars, session = slots[inside], bars.take(inside), session[inside]
    if not len(bars):
        return np.empty(0, np.int64), Bars.empty(), np.empty(0, np.int64)
    if minutes is None:  # one window per session, as daily_bar
        session_minutes = np.maximum(1, -(-(closes - opens) // NS_PER_MIN))
        width = session_minutes[session] * NS_PER_MIN
    else:
        width = window_ns(minutes)
    open_of = opens[session]
    window = (bars.ts - open_of) // width
    new = (slots[1:] != slots[:-1]) | (session[1:] != session[:-1]) | (window[1:] != window[:-1])
    starts = np.flatnonzero(np.r_[True, new])
    counts = np.diff(np.r_[starts, len(bars)]).astype(np.int64)
    width_at = width[starts] if minutes is None else width
    out = Bars(open_of[starts] + window[starts] * width_at, bars.open[starts],
               np.maximum.reduceat(bars.high, starts), np.minimum.reduceat(bars.low, starts),
               bars.close[starts + counts - 1], _sequential_sum(bars.volume, starts, counts))
    return slots[starts], out, counts


# ----------------------------------------------------------------------------------------- streaming


@dataclass(frozen=True)
class Emitted:
    """Windows closed at one step, one row per slot that had >= 1 bar in its window (slot order)."""

    slots: np.ndarray
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return int(self.slots.shape[0])

    @property
    def bars(self) -> Bars:
        return Bars(self.ts, self.open, self.high, self.low, self.close, self.volume)


class WindowAggregator:
    """N-minute windows for many symbols at once; one slot (array index) per symbol.

    Protocol: `start_session(open, close)`, then `on_step(clock, ...)` for clock = open+1m, open+2m,
    ..., close, in order (a skipped or repeated step raises). The aggregator's `clock_ns` is the last
    step processed (the open before the first step). All windows of all slots share the same
    boundaries, so per slot the state is just the running OHLCV and count of the current window.
    """

    def __init__(self, minutes: int, n_slots: int = 0):
        self.minutes = int(minutes)
        self._width = window_ns(minutes)
        self.open_ns: int | None = None
        self.close_ns: int | None = None
        self.clock_ns: int | None = None
        self._window_start = 0
        self._window_end = 0
        self._values = {f: np.zeros(0, np.float64) for f in _VALUE_FIELDS}
        self._count = np.zeros(0, np.int64)
        self.resize(n_slots)

    # -- slots ---------------------------------------------------------------------------------

    @property
    def n_slots(self) -> int:
        return int(self._count.shape[0])

    def resize(self, n_slots: int) -> None:
        """Grow (new slots empty) or shrink (dropping the highest slots) the slot arrays."""
        keep = min(n_slots, self.n_slots)
        for field, old in self._values.items():
            new = np.zeros(n_slots, np.float64)
            new[:keep] = old[:keep]
            self._values[field] = new
        count = np.zeros(n_slots, np.int64)
        count[:keep] = self._count[:keep]
        self._count = count

    def clear_slot(self, slot: int) -> None:
        """Forget the slot's partial window (symbol removed, slot to be reused)."""
        self._count[slot] = 0

    # -- session -------------------------------------------------------------------------------

    def start_session(self, open_ns: int, close_ns: int) -> None:
        if close_ns <= open_ns:
            raise ValueError(f"session close {close_ns} is not after its open {open_ns}")
        self.open_ns, self.close_ns, self.clock_ns = int(open_ns), int(close_ns), int(open_ns)
        self._set_window(self.open_ns)
        self._count[:] = 0

    def _set_window(self, start_ns: int) -> None:
        self._window_start = start_ns
        self._window_end = min(start_ns + self._width, self.close_ns)

    def _window_start_after(self, clock_ns: int) -> int:
        """Start of the window still open once step `clock_ns` is done (the close after the last)."""
        if clock_ns >= self.close_ns:
            return self.close_ns
        return self.open_ns + (clock_ns - self.open_ns) // self._width * self._width

    def on_step(self, clock_ns: int, slots: np.ndarray, open: np.ndarray, high: np.ndarray,
                low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> Emitted | None:
        """Fold the 1m bars that closed at `clock_ns` (open time clock-1m); emit windows ending now.

        `slots` must be unique; the value arrays are aligned with it.
        """
        check_next_step(self.clock_ns, clock_ns, self.close_ns)
        self.clock_ns = int(clock_ns)
        self._fold(np.asarray(slots, np.int64), open, high, low, close, volume)
        if clock_ns != self._window_end:
            return None
        emitted = self._emit()
        self._set_window(self._window_end)
        return emitted

    def _fold(self, slots, open, high, low, close, volume) -> None:
        """acc = op(acc, bar) for slots with a partial window, acc = bar for the others."""
        if len(slots) == 0:
            return
        v = self._values
        fresh = self._count[slots] == 0
        if not fresh.any():  # mid-window (most steps): every slot folds
            v["high"][slots] = np.maximum(v["high"][slots], high)
            v["low"][slots] = np.minimum(v["low"][slots], low)
            v["volume"][slots] = v["volume"][slots] + volume
            v["close"][slots] = close
            self._count[slots] += 1
            return
        v["open"][slots] = np.where(fresh, open, v["open"][slots])
        v["high"][slots] = np.where(fresh, high, np.maximum(v["high"][slots], high))
        v["low"][slots] = np.where(fresh, low, np.minimum(v["low"][slots], low))
        v["volume"][slots] = np.where(fresh, volume, v["volume"][slots] + volume)
        v["close"][slots] = close
        self._count[slots] += 1

    def _emit(self) -> Emitted | None:
        done = np.flatnonzero(self._count > 0)
        if len(done) == 0:
            return None
        emitted = Emitted(
            done, np.full(len(done), self._window_start, np.int64),
            *(self._values[f][done] for f in _VALUE_FIELDS), self._count[done],
        )
        self._count[done] = 0
        return emitted

    # -- catch-up ------------------------------------------------------------------------------

    def seed_slot(self, slot: int, bars_1m_so_far: Bars, clock_ns: int) -> tuple[Bars, np.ndarray]:
        """Catch up a symbol added at clock T == `clock_ns` (the last step processed).

        Leaves the slot exactly as if its bars with open time in [open, T) had arrived step by step
        (the partial current window filled) and returns (bars, counts) of the windows that already
        ended at or before T, as `aggregate_session` computes them.
        """
        if self.clock_ns is None or clock_ns != self.clock_ns:
            raise ValueError(f"seed_slot at clock {clock_ns}: the aggregator is at {self.clock_ns}")
        bars = bars_1m_so_far.between(self.open_ns, clock_ns)
        done, counts = aggregate_session(bars.between(self.open_ns, self._window_start),
                                         self.open_ns, self.close_ns, self.minutes)
        partial, partial_count = aggregate_session(bars.between(self._window_start, clock_ns),
                                                   self.open_ns, self.close_ns, self.minutes)
        self._count[slot] = partial_count[0] if len(partial_count) else 0
        for field in _VALUE_FIELDS:
            self._values[field][slot] = getattr(partial, field)[0] if len(partial) else 0.0
        return done, counts
