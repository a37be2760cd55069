"""Columnar bars: one numpy array per field, never lists of bar objects.

`Bars` holds one symbol's (or one batch's) bars sorted by open time. Prices are float64; volume is
float64 too (vendors deliver fractional and very large volumes; float64 is exact for integers < 2**53).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRICE_FIELDS = ("open", "high", "low", "close")
FIELDS = ("ts",) + PRICE_FIELDS + ("volume",)


@dataclass(frozen=True)
class Bars:
    """Bars labelled by open time `ts` (int64 UTC ns), sorted ascending."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def empty(cls) -> "Bars":
        return cls(np.empty(0, np.int64), *(np.empty(0, np.float64) for _ in range(5)))

    @classmethod
    def from_columns(cls, columns: dict) -> "Bars":
        return cls(
            np.ascontiguousarray(columns["ts"], dtype=np.int64),
            *(np.ascontiguousarray(columns[f], dtype=np.float64) for f in FIELDS[1:]),
        )

    def columns(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in FIELDS}

    def take(self, index) -> "Bars":
        """Subset by boolean mask, slice or integer index array."""
        return Bars(*(getattr(self, f)[index] for f in FIELDS))

    def between(self, start_ns: int, end_ns: int) -> "Bars":
        """Bars with open time in the half-open range [start_ns, end_ns)."""
        lo = int(np.searchsorted(self.ts, start_ns, side="left"))
        hi = int(np.searchsorted(self.ts, end_ns, side="left"))
        return self.take(slice(lo, hi))

    @staticmethod
    def concat(parts: list["Bars"]) -> "Bars":
        parts = [p for p in parts if len(p)]
        if not parts:
            return Bars.empty()
        if len(parts) == 1:
            return parts[0]
        return Bars(*(np.concatenate([getattr(p, f) for p in parts]) for f in FIELDS))

    def equals(self, other: "Bars") -> bool:
        return all(np.array_equal(getattr(self, f), getattr(other, f), equal_nan=True) for f in FIELDS)
