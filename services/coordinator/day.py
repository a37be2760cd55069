"""A session day's 1m bars for all symbols, sorted by minute, so each step is one slice.

The coordinator loads every symbol's regular-hours bars once per session, tags them with their slot and
minute row, and sorts by (row, slot). Step k (clock = open + (k+1) min) then publishes the slice of
rows == k. A symbol added mid-session gets its own small batch, merged into each step's slice.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.domain.bars import FIELDS, Bars
from common.domain.timeconv import NS_PER_MIN


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
