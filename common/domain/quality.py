"""Data quality per symbol and interval: completeness so far in the session, and its gaps.

For 1m: present = 1m bars with open time in [open, clock), expected = minutes in [open, clock),
pct = 100 * present / expected capped at 100 (100 when nothing is expected yet). A gap is a run of
missing minutes, reported as (open time of the first missing minute, open time of the last, count).

For an N-minute interval the unit is a window (aligned to the session open, the last one possibly
truncated at the close, see `common.domain.aggregate`): a window is present when it holds >= 1 1m bar,
expected = windows closed so far, gaps are runs of empty windows (count in windows), and completeness
= mean over closed windows of count / window length in minutes (empty windows count 0).

The batch functions are the reference; `QualityTracker` computes the same numbers step by step,
bit for bit (the completeness sum is folded window by window in time order on both paths).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.domain.aggregate import check_next_step, window_ns
from common.domain.timeconv import NS_PER_MIN

Gap = tuple[int, int, int]  # (first missing open time ns, last missing open time ns, count)


# --------------------------------------------------------------------------------------------- batch


def missing_runs(present_minute_index: np.ndarray, n_minutes: int) -> list[tuple[int, int, int]]:
    """Runs of indices in [0, n) absent from the sorted unique `present` indices: (first, last, count)."""
    present = np.asarray(present_minute_index, np.int64)
    bounded = np.concatenate(([-1], present, [n_minutes]))
    step = np.diff(bounded)
    at = np.flatnonzero(step > 1)
    firsts = bounded[at] + 1
    counts = step[at] - 1
    return [(f, f + c - 1, c) for f, c in zip(firsts.tolist(), counts.tolist())]


def quality_pct(present, expected):
    """100 * present / expected, capped at 100; 100 when nothing is expected (arrays or scalars)."""
    present = np.asarray(present, np.float64)
    expected = np.asarray(expected, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.minimum(100.0, 100.0 * present / expected)
    pct = np.where(expected > 0, pct, 100.0)
    return pct.item() if pct.ndim == 0 else pct


def _distinct_units(bars_ts: np.ndarray, start_ns: int, end_ns: int, open_ns: int, width: int) -> np.ndarray:
    """Sorted distinct unit indices (minute or window, counted from the open) of bars in [start, end)."""
    ts = np.asarray(bars_ts, np.int64)
    ts = ts[np.searchsorted(ts, start_ns, "left"):np.searchsorted(ts, end_ns, "left")]
    units = (ts - open_ns) // width
    return units[np.r_[True, units[1:] != units[:-1]]] if len(units) else units


def session_quality(bars_ts: np.ndarray, open_ns: int, clock_ns: int) -> tuple[int, int, float]:
    """1m quality at clock T: (present, expected, pct) over the minutes [open, T)."""
    expected = max(0, (clock_ns - open_ns) // NS_PER_MIN)
    present = len(_distinct_units(bars_ts, open_ns, clock_ns, open_ns, NS_PER_MIN))
    return present, expected, quality_pct(present, expected)


def session_gaps(bars_ts: np.ndarray, open_ns: int, clock_ns: int) -> list[Gap]:
    """1m gaps in [open, T) as (first missing open time, last missing open time, minutes)."""
    expected = max(0, (clock_ns - open_ns) // NS_PER_MIN)
    present = _distinct_units(bars_ts, open_ns, clock_ns, open_ns, NS_PER_MIN)
    return _gaps_ns(missing_runs(present, expected), open_ns, NS_PER_MIN)


def _gaps_ns(runs, open_ns: int, width: int) -> list[Gap]:
    return [(open_ns + first * width, open_ns + last * width, count) for first, last, count in runs]


def window_lengths(open_ns: int, close_ns: int, minutes: int, n_windows: int) -> np.ndarray:
    """Length in minutes of the first `n_windows` windows (the last one truncated at the close)."""
    width = window_ns(minutes)
    starts = open_ns + np.arange(n_windows, dtype=np.int64) * width
    return (np.minimum(starts + width, close_ns) - starts) // NS_PER_MIN


def closed_windows(open_ns: int, close_ns: int, clock_ns: int, minutes: int) -> int:
    """How many windows have ended (been emitted) by clock T."""
    if clock_ns >= close_ns:
        return -(-(close_ns - open_ns) // window_ns(minutes))
    return max(0, (clock_ns - open_ns) // window_ns(minutes))


@dataclass(frozen=True)
class WindowQuality:
    present: int
    expected: int
    pct: float
    completeness: float  # mean of count / window minutes over closed windows; 1.0 when none closed
    gaps: list[Gap]


def _completeness_sum(counts: np.ndarray, lengths: np.ndarray) -> float:
    """Sum of count/length folded in time order, as the tracker adds it window by window."""
    if len(counts) == 0:
        return 0.0
    return float(np.add.accumulate(counts / lengths)[-1])


def window_quality(bars_ts: np.ndarray, open_ns: int, close_ns: int, clock_ns: int,
                   minutes: int) -> WindowQuality:
    """Quality of the N-minute interval at clock T from the symbol's 1m bar open times."""
    width = window_ns(minutes)
    expected = closed_windows(open_ns, close_ns, clock_ns, minutes)
    end = min(open_ns + expected * width, close_ns)
    ts = np.asarray(bars_ts, np.int64)
    ts = ts[np.searchsorted(ts, open_ns, "left"):np.searchsorted(ts, end, "left")]
    counts = np.bincount((ts - open_ns) // width, minlength=expected)[:expected]
    present_units = np.flatnonzero(counts > 0)
    total = _completeness_sum(counts, window_lengths(open_ns, close_ns, minutes, expected))
    return WindowQuality(
        present=len(present_units), expected=expected, pct=quality_pct(len(present_units), expected),
        completeness=total / expected if expected else 1.0,
        gaps=_gaps_ns(missing_runs(present_units, expected), open_ns, width),
    )


def historical_quality(bars_ts: np.ndarray, open_ns, close_ns):
    """Per trading day (present, expected, pct) of 1m bars in [open, close).

    `open_ns`/`close_ns` are scalars (one day -> ints and a float) or arrays (one row per day).
    Assumes one bar per minute (as the store guarantees).
    """
    ts = np.asarray(bars_ts, np.int64)
    opens, closes = np.asarray(open_ns, np.int64), np.asarray(close_ns, np.int64)
    present = np.searchsorted(ts, closes, "left") - np.searchsorted(ts, opens, "left")
    expected = (closes - opens) // NS_PER_MIN
    pct = quality_pct(present, expected)
    if opens.ndim == 0:
        return int(present), int(expected), pct
    return present.astype(np.int64), expected.astype(np.int64), pct


# ----------------------------------------------------------------------------------------- streaming


class QualityTracker:
    """Quality of one interval (1m by default, or N-minute windows) for many symbols, one slot each.

    Protocol as `WindowAggregator`: `start_session(open, close)`, then `on_step(clock, slots_with_bar)`
    for clock = open+1m, ..., close in order, where `slots_with_bar` are the (unique) slots that have a
    1m bar with open time clock-1m. Per slot it keeps the present count, the last present unit (which
    defines the open trailing gap), the list of closed gaps (unit indices) and the completeness sum.
    A slot is tracked from `start_session`/`resize`/`seed_slot` until `clear_slot`.
    """

    def __init__(self, n_slots: int = 0, minutes: int = 1):
        self.minutes = int(minutes)
        self._width = window_ns(minutes)
        self.open_ns: int | None = None
        self.close_ns: int | None = None
        self.clock_ns: int | None = None
        self._closed = 0  # windows closed so far (= expected)
        self._window_end = 0
        self._active = np.zeros(0, bool)
        self._in_window = np.zeros(0, np.int64)
        self._present = np.zeros(0, np.int64)
        self._last_present = np.zeros(0, np.int64)
        self._n_closed_gaps = np.zeros(0, np.int64)
        self._completeness_sum = np.zeros(0, np.float64)
        self._reported_pct = np.zeros(0, np.float64)  # values as last returned by on_step as changed
        self._reported_completeness = np.zeros(0, np.float64)
        self._gaps: list[list[tuple[int, int]]] = []
        self.resize(n_slots)

    # -- slots ---------------------------------------------------------------------------------

    @property
    def n_slots(self) -> int:
        return len(self._gaps)

    @property
    def expected(self) -> int:
        return self._closed

    def resize(self, n_slots: int) -> None:
        """Grow (new slots tracked, with no bars so far) or shrink (dropping the highest slots)."""
        old = self.n_slots
        keep = min(n_slots, old)

        def grown(array, fill):
            new = np.full((n_slots,) + array.shape[1:], fill, array.dtype)
            new[:keep] = array[:keep]
            return new

        self._active = grown(self._active, True)
        self._in_window = grown(self._in_window, 0)
        self._present = grown(self._present, 0)
        self._last_present = grown(self._last_present, -1)
        self._n_closed_gaps = grown(self._n_closed_gaps, 0)
        self._completeness_sum = grown(self._completeness_sum, 0.0)
        self._reported_pct = grown(self._reported_pct, np.nan)
        self._reported_completeness = grown(self._reported_completeness, np.nan)
        self._gaps = self._gaps[:keep] + [[] for _ in range(n_slots - keep)]

    def _reset_slots(self, index) -> None:
        self._in_window[index] = 0
        self._present[index] = 0
        self._last_present[index] = -1
        self._n_closed_gaps[index] = 0
        self._completeness_sum[index] = 0.0
        self._reported_pct[index] = np.nan
        self._reported_completeness[index] = np.nan

    def clear_slot(self, slot: int) -> None:
        """Stop tracking the slot (symbol removed); `seed_slot` starts it again."""
        self._reset_slots(slot)
        self._active[slot] = False
        self._gaps[slot] = []

    # -- session -------------------------------------------------------------------------------

    def start_session(self, open_ns: int, close_ns: int) -> None:
        """New session: every slot's counts restart; the set of tracked slots is kept."""
        if close_ns <= open_ns:
            raise ValueError(f"session close {close_ns} is not after its open {open_ns}")
        self.open_ns, self.close_ns, self.clock_ns = int(open_ns), int(close_ns), int(open_ns)
        self._closed = 0
        self._window_end = min(self.open_ns + self._width, self.close_ns)
        self._reset_slots(slice(None))
        self._gaps = [[] for _ in range(self.n_slots)]

    def on_step(self, clock_ns: int, slots_with_bar: np.ndarray) -> np.ndarray:
        """Count the 1m bars that closed at `clock_ns`; when a window closes, update the quality.

        Returns the tracked slots whose pct, completeness or gaps changed (sorted int64; empty
        between window closes).
        """
        check_next_step(self.clock_ns, clock_ns, self.close_ns)
        self.clock_ns = int(clock_ns)
        self._in_window[np.asarray(slots_with_bar, np.int64)] += 1
        if clock_ns != self._window_end:
            return np.empty(0, np.int64)
        return self._close_window()

    def _close_window(self) -> np.ndarray:
        unit = self._closed
        length = (self._window_end - (self.open_ns + unit * self._width)) // NS_PER_MIN
        has_bar = np.flatnonzero(self._in_window > 0)
        previous = self._last_present[has_bar]
        closes_gap = previous < unit - 1
        self._record_closed_gaps(has_bar[closes_gap], previous[closes_gap] + 1, unit - 1)
        self._last_present[has_bar] = unit
        self._present[has_bar] += 1
        self._completeness_sum += self._in_window / float(length)
        self._in_window[has_bar] = 0
        self._closed = unit + 1
        self._window_end = min(self._window_end + self._width, self.close_ns)
        return self._changed_slots(unit)

    def _record_closed_gaps(self, slots: np.ndarray, firsts: np.ndarray, last: int) -> None:
        """A bar after a gap closes it; a loop only over the few slots where that happened."""
        self._n_closed_gaps[slots] += 1
        for slot, first in zip(slots.tolist(), firsts.tolist()):
            self._gaps[slot].append((first, last))

    def _changed_slots(self, unit: int) -> np.ndarray:
        """Tracked slots whose pct or completeness moved, or whose trailing gap opened or grew (no
        bar in this unit). A gap that closes keeps its (first, last), so it changes nothing."""
        pct, completeness = self.pct(), self.completeness()
        moved = (pct != self._reported_pct) | (completeness != self._reported_completeness)
        changed = np.flatnonzero(self._active & (moved | (self._last_present != unit)))
        self._reported_pct[changed] = pct[changed]
        self._reported_completeness[changed] = completeness[changed]
        return changed

    # -- queries -------------------------------------------------------------------------------

    def _index(self, slots):
        return slice(None) if slots is None else np.asarray(slots, np.int64)

    def present(self, slots=None) -> np.ndarray:
        return self._present[self._index(slots)].copy()

    def pct(self, slots=None) -> np.ndarray:
        present = self._present[self._index(slots)]
        if not self._closed:
            return np.full(present.shape, 100.0)
        return np.minimum(100.0, 100.0 * present / float(self._closed))  # as `quality_pct`

    def completeness(self, slots=None) -> np.ndarray:
        """Mean of count / window minutes over closed windows (1.0 when none has closed yet)."""
        total = self._completeness_sum[self._index(slots)]
        return total / self._closed if self._closed else np.ones_like(total)

    def _trailing_gap(self, slot: int) -> tuple[int, int] | None:
        last = int(self._last_present[slot])
        if not self._active[slot] or last >= self._closed - 1:
            return None
        return last + 1, self._closed - 1

    def gap_count(self, slots=None) -> np.ndarray:
        index = self._index(slots)
        trailing = self._active[index] & (self._last_present[index] < self._closed - 1)
        return self._n_closed_gaps[index] + trailing

    def gaps(self, slot: int) -> list[Gap]:
        """Closed gaps plus the open trailing one: (first missing open time, last, count in units)."""
        runs = list(self._gaps[slot])
        trailing = self._trailing_gap(slot)
        if trailing is not None:
            runs.append(trailing)
        return _gaps_ns([(a, b, b - a + 1) for a, b in runs], self.open_ns, self._width)

    # -- catch-up ------------------------------------------------------------------------------

    def seed_slot(self, slot: int, bar_ts_so_far: np.ndarray, clock_ns: int) -> None:
        """Start tracking a symbol added at clock T == `clock_ns` (the last step processed) with its
        1m bar open times; leaves the slot exactly as if those bars had arrived step by step."""
        if self.clock_ns is None or clock_ns != self.clock_ns:
            raise ValueError(f"seed_slot at clock {clock_ns}: the tracker is at {self.clock_ns}")
        ts = np.asarray(bar_ts_so_far, np.int64)
        ts = ts[np.searchsorted(ts, self.open_ns, "left"):np.searchsorted(ts, clock_ns, "left")]
        counts = np.bincount((ts - self.open_ns) // self._width, minlength=self._closed + 1)
        closed = counts[:self._closed]
        present_units = np.flatnonzero(closed > 0)
        last = int(present_units[-1]) if len(present_units) else -1
        runs = [(a, b) for a, b, _ in missing_runs(present_units, self._closed) if b < last]
        lengths = window_lengths(self.open_ns, self.close_ns, self.minutes, self._closed)
        self._active[slot] = True
        self._in_window[slot] = counts[self._closed] if len(counts) > self._closed else 0
        self._present[slot] = len(present_units)
        self._last_present[slot] = last
        self._n_closed_gaps[slot] = len(runs)
        self._completeness_sum[slot] = _completeness_sum(closed, lengths)
        # as streaming: after a window close the reported values are the current ones
        seen = bool(self._closed)
        self._reported_pct[slot] = self.pct([slot])[0] if seen else np.nan
        self._reported_completeness[slot] = self.completeness([slot])[0] if seen else np.nan
        self._gaps[slot] = runs
