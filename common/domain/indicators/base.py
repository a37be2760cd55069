"""The Indicator base class and the arithmetic its subclasses share.

Every indicator computes twice: ``update()`` runs the vector kernel ``_step`` (many slots, one bar
each) and ``run_series()`` runs the scalar loop ``_scan`` (one slot, many bars); the helpers below
serve both and keep their IEEE operations in the same order, so the paths are bit-identical. See
the package docstring for the design and the TA-Lib notes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import numpy as np

NAN = float("nan")
_FLAT_EPSILON = 1e-14        # TA-Lib's TA_EPSILON, applied relative to the price level



# ------------------------------------------------------------------------------------------------
# Arithmetic shared by both paths (works on Python floats and on numpy arrays alike)
# ------------------------------------------------------------------------------------------------

def _ema_k(period: int) -> float:
    return 2.0 / (period + 1)


def _ema_next(k, x, prev):
    """TA-Lib's EMA step, in its operation order."""
    return (x - prev) * k + prev


def _wilder_weights(period: int) -> tuple[float, float]:
    """TA-Lib ATR weights: beta = (p-1)/p and alpha = 1 - beta (exactly 1 together)."""
    beta = (period - 1) / period
    return 1.0 - beta, beta


def _is_flat(diff, scale):
    """TA_IS_ZERO_SCALED: |diff| within ~90 ulp of the operands' magnitude counts as zero."""
    return abs(diff) <= _FLAT_EPSILON * scale


def _typical_price(high, low, close):
    return (high + low + close) / 3


def _safe(denominator, usable):
    """Replace unusable denominators by 1.0 so masked-out lanes raise no warnings."""
    return np.where(usable, denominator, 1.0)


# ------------------------------------------------------------------------------------------------
# Ring-buffer helpers (rings are (width, n_slots); n = 0-based index of the bar being added)
# ------------------------------------------------------------------------------------------------

def _sma_push(buf: np.ndarray, total: np.ndarray, rows, n, x):
    """Add x as value n of each row's series; return the window mean (NaN until full).

    TA-Lib INT_SMA order: total += x; mean = total / p; total -= oldest.
    """
    period = buf.shape[0]
    buf[n % period, rows] = x
    t = total[rows] + x
    full = n >= period - 1
    total[rows] = t - np.where(full, buf[(n + 1) % period, rows], 0.0)
    return np.where(full, t / period, NAN)


def _sma_push_scalar(buf: list, total: float, n: int, x: float) -> tuple[float, float]:
    """Scalar twin of _sma_push; returns (mean or NaN, new total)."""
    period = len(buf)
    buf[n % period] = x
    total += x
    if n >= period - 1:
        return total / period, total - buf[(n + 1) % period]
    return NAN, total


def _oldest_first(buf: np.ndarray, rows, n) -> np.ndarray:
    """(width, len(rows)) window in time order, after value n was written."""
    width = buf.shape[0]
    ages = np.arange(1, width + 1)[:, None]
    return buf[(n[None, :] + ages) % width, rows[None, :]]


def _oldest_first_scalar(buf: list, n: int) -> list:
    start = (n + 1) % len(buf)
    return buf[start:] + buf[:start]


def _ordered_sum_rows(window: np.ndarray) -> np.ndarray:
    """Left-to-right sum over axis 0, 0.0 + w0 + w1 + ... (TA-Lib's loops)."""
    total = np.zeros(window.shape[1])
    for row in window:
        total += row
    return total


def _ordered_sum(values: list) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


# ------------------------------------------------------------------------------------------------
# Base class
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Field:
    """One per-slot state array: width 0 = one value per slot, else a ring of that width."""
    width: int = 0
    fill: float = 0.0
    dtype: type = np.float64


class Indicator:
    """One configured indicator over a fixed, growable set of slots.

    Subclasses declare their state (`_fields`), the vector kernel `_step` and the scalar loop
    `_scan`; state storage, snapshots and the batch entry point live here.
    """

    name: ClassVar[str]
    outputs: ClassVar[tuple[str, ...]] = ("value",)
    # True when new_session() clears every field but the bar count `n`: history followed by new_session()
    # leaves such an indicator as skip() does, so a history feed need not run its kernel (VWAP)
    forgets_at_session: ClassVar[bool] = False

    def __init__(self, params: Mapping, n_slots: int):
        # Imported late: the registry imports the indicator classes, which import this module.
        from common.domain.indicators.registry import indicator_key

        self.params = dict(params)
        self.key = indicator_key(self.name, self.params)
        self._spec = {"n": _Field(dtype=np.int64), **self._fields()}
        self._state = {f: self._blank(spec, 0) for f, spec in self._spec.items()}
        self.resize(n_slots)

    # -- to implement -----------------------------------------------------------------------------
    def _fields(self) -> dict[str, _Field]:
        return {}

    def _step(self, rows, n, o, h, l, c, v) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def _scan(self, st: dict, o, h, l, c, v, starts) -> tuple[list, ...]:
        raise NotImplementedError

    # -- slots ------------------------------------------------------------------------------------
    @property
    def n_slots(self) -> int:
        return len(self._state["n"])

    @staticmethod
    def _blank(spec: _Field, slots: int) -> np.ndarray:
        shape = (slots,) if spec.width == 0 else (spec.width, slots)
        return np.full(shape, spec.fill, dtype=spec.dtype)

    def resize(self, n_slots: int) -> None:
        """Grow to n_slots; new slots start empty (as if never fed)."""
        current = self.n_slots
        if n_slots < current:
            raise ValueError(f"{self.key}: cannot shrink from {current} to {n_slots} slots")
        for f, spec in self._spec.items():
            extra = self._blank(spec, n_slots - current)
            self._state[f] = np.concatenate([self._state[f], extra], axis=-1)

    def reset_slot(self, slot: int) -> None:
        """Forget everything about one slot (symbol removed, maybe re-added later)."""
        self._check_slot(slot)
        for f, spec in self._spec.items():
            self._state[f][..., slot] = spec.fill

    def new_session(self, slots) -> None:
        """Session boundary for these slots; only session-anchored indicators (VWAP) care."""

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.n_slots:
            raise IndexError(f"{self.key}: slot {slot} out of range (0..{self.n_slots - 1})")

    # -- state snapshots --------------------------------------------------------------------------
    def state(self, slots=None) -> dict[str, np.ndarray]:
        """Copy of the state arrays (slot axis last), for all slots or the given ones in order."""
        if slots is None:
            return {f: a.copy() for f, a in self._state.items()}
        rows = np.asarray(slots, dtype=np.intp)
        return {f: a[..., rows] for f, a in self._state.items()}

    def load_state(self, state: Mapping[str, np.ndarray], slots=None) -> None:
        """Restore arrays taken by state(); with slots, write only those (same order as taken)."""
        if set(state) != set(self._spec):
            raise ValueError(f"{self.key}: state fields {sorted(state)} != {sorted(self._spec)}")
        arrays = {f: np.asarray(state[f], dtype=spec.dtype) for f, spec in self._spec.items()}
        for f, spec in self._spec.items():
            if arrays[f].shape[:-1] != self._blank(spec, 0).shape[:-1]:
                raise ValueError(f"{self.key}: state field {f!r} has shape {arrays[f].shape}")
        if slots is None:
            self._state = {f: a.copy() for f, a in arrays.items()}
            return
        rows = np.asarray(slots, dtype=np.intp)
        for f, a in arrays.items():
            self._state[f][..., rows] = a

    # -- feeding ----------------------------------------------------------------------------------
    def update(self, slots, open, high, low, close, volume) -> dict[str, np.ndarray]:
        """Add one bar for each of `slots` (unique, any order); return each output for them."""
        rows = np.asarray(slots, dtype=np.intp)
        cols = [np.asarray(a, dtype=np.float64) for a in (open, high, low, close, volume)]
        if any(len(a) != len(rows) for a in cols):
            raise ValueError(f"{self.key}: slots and bar arrays differ in length")
        if len(rows) == 0:
            return {name: np.empty(0) for name in self.outputs}
        if rows.min() < 0 or rows.max() >= self.n_slots:
            raise IndexError(f"{self.key}: slots out of range (0..{self.n_slots - 1})")
        return self.update_checked(rows, cols)

    def update_checked(self, rows: np.ndarray, cols: list) -> dict[str, np.ndarray]:
        """update() once its arguments are checked: `rows` unique intp slots in range (at least one),
        `cols` the five float64 columns of one length (IndicatorSet checks a step once for all)."""
        counts = self._state["n"]
        n = counts[rows]
        values = self._step(rows, n, *cols)
        counts[rows] = n + 1
        return dict(zip(self.outputs, values))

    def skip(self, slots, counts) -> None:
        """Count `counts[i]` bars into slot `slots[i]` without computing them: only for an indicator that
        `forgets_at_session`, right before new_session() of those slots (state as if they were fed)."""
        if not self.forgets_at_session:
            raise TypeError(f"{self.key}: only an indicator that forgets at a session start can skip bars")
        self._state["n"][np.asarray(slots, dtype=np.intp)] += np.asarray(counts, dtype=np.int64)

    def feed(self, slot: int, open, high, low, close, volume, session_starts=None) -> None:
        """run_series() without its output: the state it leaves (an indicator whose state is its last
        bars only may take a shortcut)."""
        self.run_series(slot, open, high, low, close, volume, session_starts)

    def run_series(self, slot: int, open, high, low, close, volume,
                   session_starts=None) -> dict[str, np.ndarray]:
        """Feed one symbol's bars into `slot`; return the output series.

        Results and the slot's final state are bit-identical to calling update() bar by bar
        (with new_session() before each bar flagged in session_starts).
        """
        self._check_slot(slot)
        cols = [np.asarray(a, dtype=np.float64).tolist() for a in (open, high, low, close, volume)]
        length = len(cols[0])
        if any(len(a) != length for a in cols):
            raise ValueError(f"{self.key}: bar arrays differ in length")
        starts = None
        if session_starts is not None:
            starts = np.asarray(session_starts, dtype=bool).tolist()
            if len(starts) != length:
                raise ValueError(f"{self.key}: session_starts has the wrong length")
        st = {f: a[..., slot].tolist() for f, a in self._state.items()}
        values = self._scan(st, *cols, starts)
        st["n"] += length
        for f, a in self._state.items():
            a[..., slot] = st[f]
        return {name: np.asarray(v, dtype=np.float64) for name, v in zip(self.outputs, values)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key} slots={self.n_slots}>"

