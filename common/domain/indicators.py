"""Incremental technical indicators, vectorised across symbol slots, equal to TA-Lib's output.

Why this shape: the processor owns a fixed set of *slots* (one per symbol). Each step it hands an
indicator instance the bars of the symbols that have one, as aligned arrays, and gets back the
values for those symbols. All per-symbol state lives in numpy arrays whose LAST axis is the slot
(scalars: ``(n_slots,)``, ring buffers: ``(width, n_slots)``), so a step costs a few dozen vector
operations whatever the number of symbols, and the state of one slot or of all can be copied out
and loaded back (late joiners, snapshots).

Two code paths compute every indicator:

* ``update()`` - the vector kernel (``_step``): many slots, one bar each;
* ``run_series()`` - the batch path for history and catch-up (``_scan``): one slot, many bars, a
  plain Python loop over floats doing *the same IEEE operations in the same order*.

They are bit-identical, results and state (Python floats and numpy float64 element-wise ops round
identically; sums over windows are explicit ordered loops on both sides, never numpy's pairwise
``np.sum``); the test suite proves it for every indicator. Several kernels also have a "steady"
fast path used once every slot in the call is past warm-up; it performs the same operations the
general path performs on a warmed-up slot (the general path only adds exact identities such as
``x * 1.0`` or ``x - 0.0`` for warming slots).

Values match TA-Lib 0.8 (default compatibility mode, no unstable period) and the warm-up is
identical: NaN until TA-Lib gives a value. SMA, WMA, RSI, STOCH, WILLR, CCI, OBV, BBANDS and the
MACD line are bit for bit TA-Lib's (BBANDS' upper band may differ by an ulp when nbdevup !=
nbdevdn); EMA, the MACD signal and ATR differ by an ulp now and then, because TA-Lib computes
those steps with a fused multiply-add that pure Python cannot express (the recursions are
contractive, so the difference never grows). TA-Lib behaviour reproduced on purpose:

* MACD: the fast EMA is seeded on the same bar as the slow one (SMA of the last ``fast`` prices of
  the slow seed window); macd/signal/hist stay NaN until the signal line exists; ``fast``/``slow``
  are swapped when given the wrong way round; ``signal=1`` makes signal == macd.
* STOCH: slowk stays NaN until slowd exists.
* Flat windows: STOCH/WILLR/CCI answer 0 when the range (or deviation) is within ~90 ulp of the
  price level (TA-Lib's ``TA_IS_ZERO_SCALED``); RSI answers 0 when gain + loss == 0; BBANDS bands
  collapse onto the middle band.
* WMA and BBANDS use TA-Lib's O(1) running sums *including* its periodic re-anchoring from the
  window (WMA every 8*period bars; BBANDS every 32*period bars or when cancellation threatens),
  which keeps them accurate over arbitrarily long series.
* SMA/EMA/WMA with period 1 return the input unchanged; ATR(1) is the true range.
* OBV starts from the first bar's volume. VWAP (not in TA-Lib) is sum(TP*V)/sum(V) since the
  session start with TP = (H+L+C)/3, and NaN while the session's cumulative volume is 0 (e.g. index
  data, whose volume is 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Mapping

import numpy as np

NAN = float("nan")
MAX_PERIOD = 10_000          # ring buffers cost period x slots x 8 bytes
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

    def __init__(self, params: Mapping, n_slots: int):
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
        counts = self._state["n"]
        n = counts[rows]
        values = self._step(rows, n, *cols)
        counts[rows] = n + 1
        return dict(zip(self.outputs, values))

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


# ------------------------------------------------------------------------------------------------
# Moving averages
# ------------------------------------------------------------------------------------------------

class SMA(Indicator):
    """Simple moving average, TA-Lib's running-sum order."""
    name = "sma"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        super().__init__(params, n_slots)

    def _fields(self):
        return {"buf": _Field(self.period), "total": _Field()}

    def _step(self, rows, n, o, h, l, c, v):
        return (_sma_push(self._state["buf"], self._state["total"], rows, n, c),)

    def _scan(self, st, o, h, l, c, v, starts):
        buf, total, n = st["buf"], st["total"], st["n"]
        out = []
        for x in c:
            mean, total = _sma_push_scalar(buf, total, n, x)
            out.append(mean)
            n += 1
        st["total"] = total
        return (out,)


class EMA(Indicator):
    """Exponential moving average seeded with the SMA of the first `period` values
    (period 1 returns the input)."""
    name = "ema"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.k = _ema_k(self.period)
        super().__init__(params, n_slots)

    def _fields(self):
        return {"total": _Field(), "ema": _Field()}

    def _step(self, rows, n, o, h, l, c, v):
        s, p = self._state, self.period
        if p == 1:
            return (c.copy(),)
        if n.min() >= p:                                   # steady: every slot seeded
            ema = _ema_next(self.k, c, s["ema"][rows])
            s["ema"][rows] = ema
            return (ema,)
        seeding = n < p
        total = s["total"][rows] + np.where(seeding, c, 0.0)
        ema = np.where(seeding, total / p, _ema_next(self.k, c, s["ema"][rows]))
        s["total"][rows] = total
        s["ema"][rows] = ema
        return (np.where(n >= p - 1, ema, NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p, k = self.period, self.k
        if p == 1:
            return (list(c),)
        n, total, ema = st["n"], st["total"], st["ema"]
        out = []
        for x in c:
            if n < p:
                total += x
                ema = total / p
            else:
                ema = (x - ema) * k + ema
            out.append(ema if n >= p - 1 else NAN)
            n += 1
        st["total"], st["ema"] = total, ema
        return (out,)


class WMA(Indicator):
    """Linearly weighted moving average (weights 1..period, oldest first), TA-Lib's algorithm:
    O(1) running sums re-anchored from the window every 8*period bars so they never drift."""
    name = "wma"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.divider = self.period * (self.period + 1) / 2.0
        self.reanchor_every = 8 * self.period
        super().__init__(params, n_slots)

    def _fields(self):
        return {"buf": _Field(self.period), "sub": _Field(), "wsum": _Field()}

    def _step(self, rows, n, o, h, l, c, v):
        s, p = self._state, self.period
        if p == 1:
            return (c.copy(),)
        buf = s["buf"]
        pos = n % p
        leaving = np.where(n >= p, buf[pos, rows], 0.0)   # x[n-p]: TA-Lib's trailingValue
        buf[pos, rows] = c
        sub = (s["sub"][rows] + c) - leaving
        wsum = s["wsum"][rows] + c * np.minimum(n + 1, p).astype(np.float64)
        full = n >= p - 1
        due = np.flatnonzero(full & ((n - p + 2) % self.reanchor_every == 0))
        if len(due):
            window = _oldest_first(buf, rows[due], n[due])
            sub[due] = _ordered_sum_rows(window)
            wsum[due] = _ordered_sum_rows(window * np.arange(1.0, p + 1)[:, None])
        s["sub"][rows] = sub
        s["wsum"][rows] = np.where(full, wsum - sub, wsum)
        return (np.where(full, wsum / self.divider, NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p = self.period
        if p == 1:
            return (list(c),)
        buf, n, sub, wsum = st["buf"], st["n"], st["sub"], st["wsum"]
        divider, every = self.divider, self.reanchor_every
        out = []
        for x in c:
            pos = n % p
            leaving = buf[pos] if n >= p else 0.0
            buf[pos] = x
            sub = (sub + x) - leaving
            wsum = wsum + x * float(min(n + 1, p))
            if n >= p - 1:
                if (n - p + 2) % every == 0:
                    window = _oldest_first_scalar(buf, n)
                    sub = _ordered_sum(window)
                    wsum = _ordered_sum([w * (j + 1.0) for j, w in enumerate(window)])
                out.append(wsum / divider)
                wsum = wsum - sub
            else:
                out.append(NAN)
            n += 1
        st["sub"], st["wsum"] = sub, wsum
        return (out,)


# ------------------------------------------------------------------------------------------------
# Momentum
# ------------------------------------------------------------------------------------------------

class RSI(Indicator):
    """Wilder's RSI: averages seeded over the first `period` changes, then smoothed by 1/period."""
    name = "rsi"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.inv = 1.0 / self.period
        super().__init__(params, n_slots)

    def _fields(self):
        return {"prev": _Field(), "gain": _Field(), "loss": _Field()}

    @staticmethod
    def _index(gain, loss):
        """100 * gain / (gain + loss), 0 when nothing moved (TA-Lib)."""
        total = gain + loss
        moved = total > 0.0
        return np.where(moved, 100.0 * (gain / _safe(total, moved)), 0.0)

    def _step(self, rows, n, o, h, l, c, v):
        s, p = self._state, self.period
        gain, loss = s["gain"][rows], s["loss"][rows]
        if n.min() > p:                                    # steady: plain Wilder smoothing
            d = c - s["prev"][rows]
            up = np.where(d > 0.0, d, 0.0)
            gain = (gain * (p - 1.0) + up) * self.inv
            loss = (loss * (p - 1.0) + (up - d)) * self.inv
        else:                                              # x * 1.0 is exact: warm-up just adds
            d = np.where(n == 0, 0.0, c - s["prev"][rows])
            up = np.where(d > 0.0, d, 0.0)
            keep = np.where(n > p, p - 1.0, 1.0)
            scale = np.where(n >= p, self.inv, 1.0)
            gain = (gain * keep + up) * scale
            loss = (loss * keep + (up - d)) * scale
        s["prev"][rows] = c
        s["gain"][rows] = gain
        s["loss"][rows] = loss
        return (np.where(n >= p, self._index(gain, loss), NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p, inv, keep = self.period, self.inv, self.period - 1.0
        n, prev, gain, loss = st["n"], st["prev"], st["gain"], st["loss"]
        out = []
        for x in c:
            d = 0.0 if n == 0 else x - prev
            up = d if d > 0.0 else 0.0
            if n > p:
                gain = (gain * keep + up) * inv
                loss = (loss * keep + (up - d)) * inv
            elif n == p:
                gain = (gain + up) * inv
                loss = (loss + (up - d)) * inv
            else:
                gain = gain + up
                loss = loss + (up - d)
            prev = x
            if n >= p:
                total = gain + loss
                out.append(100.0 * (gain / total) if total > 0.0 else 0.0)
            else:
                out.append(NAN)
            n += 1
        st["prev"], st["gain"], st["loss"] = prev, gain, loss
        return (out,)


class MACD(Indicator):
    """MACD line, signal EMA and histogram, with TA-Lib's seeding and warm-up (see module doc)."""
    name = "macd"
    outputs = ("macd", "signal", "hist")

    def __init__(self, params, n_slots):
        self.fast, self.slow = sorted((params["fast"], params["slow"]))   # TA-Lib swaps
        self.signal = params["signal"]
        self.fk, self.sk, self.gk = (_ema_k(p) for p in (self.fast, self.slow, self.signal))
        super().__init__(params, n_slots)

    def _fields(self):
        return {name: _Field() for name in ("fast_sum", "slow_sum", "fast", "slow", "sig_sum", "sig")}

    def _signal_next(self, line, prev):
        return line if self.signal == 1 else _ema_next(self.gk, line, prev)

    def _step(self, rows, n, o, h, l, c, v):
        s, f, sl, g = self._state, self.fast, self.slow, self.signal
        fast = _ema_next(self.fk, c, s["fast"][rows])
        slow = _ema_next(self.sk, c, s["slow"][rows])
        if n.min() >= sl + g - 1:                           # steady: every line seeded
            line = fast - slow
            sig = self._signal_next(line, s["sig"][rows])
        else:
            slow_seed = n < sl
            fast_seed = slow_seed & (n >= sl - f)           # fast seed = last `fast` bars of slow's
            fast_sum = s["fast_sum"][rows] + np.where(fast_seed, c, 0.0)
            slow_sum = s["slow_sum"][rows] + np.where(slow_seed, c, 0.0)
            seeded_now = n == sl - 1
            fast = np.where(slow_seed, np.where(seeded_now, fast_sum / f, 0.0), fast)
            slow = np.where(slow_seed, np.where(seeded_now, slow_sum / sl, 0.0), slow)
            line = fast - slow
            m = n - (sl - 1)                                # index in the MACD-line series
            sig_sum = s["sig_sum"][rows] + np.where((m >= 0) & (m < g), line, 0.0)
            prev = s["sig"][rows]
            sig = np.where(m >= g, self._signal_next(line, prev), np.where(m == g - 1, sig_sum / g, prev))
            s["fast_sum"][rows] = fast_sum
            s["slow_sum"][rows] = slow_sum
            s["sig_sum"][rows] = sig_sum
        s["fast"][rows] = fast
        s["slow"][rows] = slow
        s["sig"][rows] = sig
        if n.min() < sl + g - 2:                            # some slot has no signal line yet
            ready = n >= sl + g - 2
            line, sig = np.where(ready, line, NAN), np.where(ready, sig, NAN)
        return line, sig, line - sig

    def _scan(self, st, o, h, l, c, v, starts):
        f, sl, g, fk, sk, gk = self.fast, self.slow, self.signal, self.fk, self.sk, self.gk
        n = st["n"]
        fast_sum, slow_sum, fast, slow = st["fast_sum"], st["slow_sum"], st["fast"], st["slow"]
        sig_sum, sig = st["sig_sum"], st["sig"]
        out_line, out_sig, out_hist = [], [], []
        for x in c:
            if n < sl:
                slow_sum += x
                if n >= sl - f:
                    fast_sum += x
                if n == sl - 1:
                    fast, slow = fast_sum / f, slow_sum / sl
                else:
                    fast, slow = 0.0, 0.0
            else:
                fast = (x - fast) * fk + fast
                slow = (x - slow) * sk + slow
            line = fast - slow
            m = n - (sl - 1)
            if 0 <= m < g:
                sig_sum += line
            if m >= g:
                sig = line if g == 1 else (line - sig) * gk + sig
            elif m == g - 1:
                sig = sig_sum / g
            if m >= g - 1:
                out_line.append(line)
                out_sig.append(sig)
                out_hist.append(line - sig)
            else:
                out_line.append(NAN)
                out_sig.append(NAN)
                out_hist.append(NAN)
            n += 1
        st.update(fast_sum=fast_sum, slow_sum=slow_sum, fast=fast, slow=slow,
                  sig_sum=sig_sum, sig=sig)
        return out_line, out_sig, out_hist


# ------------------------------------------------------------------------------------------------
# Volatility
# ------------------------------------------------------------------------------------------------

class BBANDS(Indicator):
    """Bollinger bands: SMA middle band +/- nbdev population standard deviations.

    TA-Lib's cancellation-free algorithm: running sums of deviations from a `shift` near the
    window mean, re-anchored from the window (two-pass) every 32*period bars, when the variance
    gets small against the sums it is extracted from, or when an outlier leaves the window.
    """
    name = "bbands"
    outputs = ("upper", "middle", "lower")

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.inv = 1.0 / self.period
        self.up, self.dn = float(params["nbdevup"]), float(params["nbdevdn"])
        self.reanchor_every = 32 * self.period
        super().__init__(params, n_slots)

    def _fields(self):
        return {"buf": _Field(self.period), "total": _Field(), "shift": _Field(), "dev_sum": _Field(),
                "sq_sum": _Field(), "countdown": _Field(fill=32 * self.period, dtype=np.int64)}

    def _bands(self, middle, variance):
        std = np.sqrt(np.where(variance > 0.0, variance, 0.0))
        return middle + std * self.up, middle, middle - std * self.dn

    def _step(self, rows, n, o, h, l, c, v):
        s, p, inv = self._state, self.period, self.inv
        buf = s["buf"]
        shift = np.where(n == 0, c, s["shift"][rows])
        buf[n % p, rows] = c
        full = n >= p - 1
        total = s["total"][rows] + c
        dev = c - shift
        dev_sum = s["dev_sum"][rows] + dev
        sq_sum = s["sq_sum"][rows] + dev * dev
        mean_dev = dev_sum * inv
        variance = sq_sum * inv - mean_dev * mean_dev
        middle = total / p
        oldest = np.where(full, buf[(n + 1) % p, rows], 0.0)
        total = total - oldest
        gone = np.where(full, oldest - shift, 0.0)
        gone_sq = gone * gone
        dev_sum = dev_sum - gone
        sq_sum = sq_sum - gone_sq
        countdown = s["countdown"][rows] - full
        stale = full & ((variance < 1e-6 * (sq_sum * inv)) | (gone_sq > 1e6 * sq_sum) | (countdown <= 0))
        due = np.flatnonzero(stale)
        if len(due):
            window = _oldest_first(buf, rows[due], n[due])
            shift[due], dev_sum[due], sq_sum[due], variance[due] = self._reanchor(window)
            countdown[due] = self.reanchor_every
        for name, value in (("shift", shift), ("total", total), ("dev_sum", dev_sum),
                            ("sq_sum", sq_sum), ("countdown", countdown)):
            s[name][rows] = value
        upper, middle, lower = self._bands(middle, variance)
        return tuple(np.where(full, band, NAN) for band in (upper, middle, lower))

    def _reanchor(self, window):
        """Two-pass sums about the window mean, the variance (floored), minus the oldest value."""
        inv = self.inv
        shift = _ordered_sum_rows(window) * inv
        dev_sum = np.zeros(window.shape[1])
        sq_sum = np.zeros(window.shape[1])
        for row in window:
            d = row - shift
            dev_sum += d
            sq_sum += d * d
        mean_dev = dev_sum * inv
        variance = sq_sum * inv - mean_dev * mean_dev
        variance = np.where(variance < 1e-12 * (sq_sum * inv), 0.0, variance)
        gone = window[0] - shift
        return shift, dev_sum - gone, sq_sum - gone * gone, variance

    def _scan(self, st, o, h, l, c, v, starts):
        p, inv, up, dn = self.period, self.inv, self.up, self.dn
        buf, n = st["buf"], st["n"]
        total, shift, dev_sum, sq_sum, countdown = (st[k] for k in ("total", "shift", "dev_sum",
                                                                     "sq_sum", "countdown"))
        upper, middle, lower = [], [], []
        for x in c:
            if n == 0:
                shift = x
            buf[n % p] = x
            total += x
            dev = x - shift
            dev_sum += dev
            sq_sum += dev * dev
            if n < p - 1:
                upper.append(NAN)
                middle.append(NAN)
                lower.append(NAN)
                n += 1
                continue
            mean_dev = dev_sum * inv
            variance = sq_sum * inv - mean_dev * mean_dev
            mid = total / p
            oldest = buf[(n + 1) % p]
            total -= oldest
            gone = oldest - shift
            gone_sq = gone * gone
            dev_sum -= gone
            sq_sum -= gone_sq
            countdown -= 1
            if variance < 1e-6 * (sq_sum * inv) or gone_sq > 1e6 * sq_sum or countdown <= 0:
                shift, dev_sum, sq_sum, variance = self._reanchor_scalar(_oldest_first_scalar(buf, n))
                countdown = self.reanchor_every
            std = math.sqrt(variance) if variance > 0.0 else 0.0
            upper.append(mid + std * up)
            middle.append(mid)
            lower.append(mid - std * dn)
            n += 1
        st.update(total=total, shift=shift, dev_sum=dev_sum, sq_sum=sq_sum, countdown=countdown)
        return upper, middle, lower

    def _reanchor_scalar(self, window: list):
        inv = self.inv
        shift = _ordered_sum(window) * inv
        dev_sum = sq_sum = 0.0
        for x in window:
            d = x - shift
            dev_sum += d
            sq_sum += d * d
        mean_dev = dev_sum * inv
        variance = sq_sum * inv - mean_dev * mean_dev
        if variance < 1e-12 * (sq_sum * inv):
            variance = 0.0
        gone = window[0] - shift
        return shift, dev_sum - gone, sq_sum - gone * gone, variance


class ATR(Indicator):
    """Wilder's average true range: SMA of the first `period` true ranges, then Wilder smoothing.

    TA-Lib fuses the smoothing step into one FMA; we round twice, so values differ by an ulp or
    two (the recursion is contractive: the difference never grows).
    """
    name = "atr"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.alpha, self.beta = _wilder_weights(self.period)
        super().__init__(params, n_slots)

    def _fields(self):
        return {"prev_close": _Field(), "total": _Field(), "atr": _Field()}

    def _step(self, rows, n, o, h, l, c, v):
        s, p = self._state, self.period
        pc = s["prev_close"][rows]
        tr = np.maximum(np.maximum(h - l, np.abs(pc - h)), np.abs(pc - l))
        smoothed = self.alpha * tr + self.beta * s["atr"][rows]
        s["prev_close"][rows] = c
        if n.min() > p:                                    # steady: only the smoothing runs
            s["atr"][rows] = smoothed
            return (smoothed,)
        total = s["total"][rows] + np.where((n >= 1) & (n <= p), tr, 0.0)
        atr = np.where(n > p, smoothed, np.where(n == p, total / p, s["atr"][rows]))
        s["total"][rows] = total
        s["atr"][rows] = atr
        return (np.where(n >= p, atr, NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p, alpha, beta = self.period, self.alpha, self.beta
        n, pc, total, atr = st["n"], st["prev_close"], st["total"], st["atr"]
        out = []
        for hi, lo, cl in zip(h, l, c):
            tr = max(max(hi - lo, abs(pc - hi)), abs(pc - lo))
            if n > p:
                atr = alpha * tr + beta * atr
            elif n >= 1:
                total += tr
                if n == p:
                    atr = total / p
            out.append(atr if n >= p else NAN)
            pc = cl
            n += 1
        st["prev_close"], st["total"], st["atr"] = pc, total, atr
        return (out,)


# ------------------------------------------------------------------------------------------------
# Range oscillators (highest high / lowest low of the last `period` bars)
# ------------------------------------------------------------------------------------------------

class _RollingRange(Indicator):
    """Tracks each slot's highest high and lowest low over the last `range_period` bars in O(1)
    amortised: an extreme is kept with its bar index and the window is rescanned only when it
    expires. Max/min are exact, so the values equal a full rescan every bar."""

    range_period: int

    def _fields(self):
        return {"highs": _Field(self.range_period, -math.inf), "lows": _Field(self.range_period, math.inf),
                "highest": _Field(fill=-math.inf), "highest_at": _Field(fill=-1, dtype=np.int64),
                "lowest": _Field(fill=math.inf), "lowest_at": _Field(fill=-1, dtype=np.int64)}

    def _push_range(self, rows, n, h, l):
        """Store this bar; return (highest, lowest) of each row's window."""
        s, p = self._state, self.range_period
        s["highs"][n % p, rows] = h
        s["lows"][n % p, rows] = l
        oldest = n - (p - 1)
        highest = self._track(rows, n, oldest, h, s["highs"], "highest", np.greater_equal, np.argmax)
        lowest = self._track(rows, n, oldest, l, s["lows"], "lowest", np.less_equal, np.argmin)
        return highest, lowest

    def _track(self, rows, n, oldest, x, ring, name, beats, arg_extreme):
        s, p = self._state, self.range_period
        best, at = s[name][rows], s[f"{name}_at"][rows]
        take = beats(x, best)
        best = np.where(take, x, best)
        at = np.where(take, n, at)
        expired = np.flatnonzero(at < oldest)
        if len(expired):
            window = ring[:, rows[expired]]
            j = arg_extreme(window, axis=0)                # first physical slot holding it
            best[expired] = window[j, np.arange(len(expired))]
            at[expired] = n[expired] - (n[expired] - j) % p
        s[name][rows] = best
        s[f"{name}_at"][rows] = at
        return best

    def _scan_range(self, st, h, l) -> list[tuple[float, float]]:
        """Scalar twin of _push_range: (highest, lowest) for each bar."""
        p, highs, lows, n = self.range_period, st["highs"], st["lows"], st["n"]
        highest, highest_at, lowest, lowest_at = (st[k] for k in ("highest", "highest_at",
                                                                  "lowest", "lowest_at"))
        extremes = []
        for hi, lo in zip(h, l):
            highs[n % p] = hi
            lows[n % p] = lo
            if hi >= highest:
                highest, highest_at = hi, n
            if lo <= lowest:
                lowest, lowest_at = lo, n
            oldest = n - (p - 1)
            if highest_at < oldest:
                highest = max(highs)
                highest_at = n - (n - highs.index(highest)) % p
            if lowest_at < oldest:
                lowest = min(lows)
                lowest_at = n - (n - lows.index(lowest)) % p
            extremes.append((highest, lowest))
            n += 1
        st.update(highest=highest, highest_at=highest_at, lowest=lowest, lowest_at=lowest_at)
        return extremes


class STOCH(_RollingRange):
    """Slow stochastic: fast %K over fastk_period, SMA-smoothed into slowk, then into slowd."""
    name = "stoch"
    outputs = ("slowk", "slowd")

    def __init__(self, params, n_slots):
        self.range_period = params["fastk_period"]
        self.slowk_period, self.slowd_period = params["slowk_period"], params["slowd_period"]
        self._steady_from = self.range_period + self.slowk_period + self.slowd_period - 3
        super().__init__(params, n_slots)

    def _fields(self):
        return {**super()._fields(),
                "kbuf": _Field(self.slowk_period), "ktotal": _Field(),
                "dbuf": _Field(self.slowd_period), "dtotal": _Field()}

    @staticmethod
    def fast_k(close, highest, lowest):
        """TA-Lib: ((close - lowest) / (highest - lowest)) * 100, 0 on a flat window."""
        span = highest - lowest
        flat = _is_flat(span, np.abs(highest) + np.abs(lowest))
        return np.where(flat, 0.0, ((close - lowest) / _safe(span, ~flat)) * 100.0)

    def _step(self, rows, n, o, h, l, c, v):
        s = self._state
        highest, lowest = self._push_range(rows, n, h, l)
        m1 = n - (self.range_period - 1)                   # index in the fast %K series
        if n.min() >= self._steady_from:                   # steady: both averages full
            k = _sma_push(s["kbuf"], s["ktotal"], rows, m1, self.fast_k(c, highest, lowest))
            d = _sma_push(s["dbuf"], s["dtotal"], rows, m1 - (self.slowk_period - 1), k)
            return k, d
        slowk = np.full(len(rows), NAN)
        slowd = np.full(len(rows), NAN)
        at1 = np.flatnonzero(m1 >= 0)
        if len(at1) == 0:
            return slowk, slowd
        fast = self.fast_k(c[at1], highest[at1], lowest[at1])
        k = _sma_push(s["kbuf"], s["ktotal"], rows[at1], m1[at1], fast)
        m2 = m1[at1] - (self.slowk_period - 1)             # index in the slow %K series
        has_k = m2 >= 0
        at2 = at1[has_k]
        d = _sma_push(s["dbuf"], s["dtotal"], rows[at2], m2[has_k], k[has_k])
        slowk[at2] = np.where(m2[has_k] >= self.slowd_period - 1, k[has_k], NAN)
        slowd[at2] = d
        return slowk, slowd

    def _scan(self, st, o, h, l, c, v, starts):
        p, pk, pd = self.range_period, self.slowk_period, self.slowd_period
        kbuf, dbuf, n, ktotal, dtotal = st["kbuf"], st["dbuf"], st["n"], st["ktotal"], st["dtotal"]
        out_k, out_d = [], []
        for cl, (highest, lowest) in zip(c, self._scan_range(st, h, l)):
            k = d = NAN
            m1 = n - (p - 1)
            if m1 >= 0:
                span = highest - lowest
                if _is_flat(span, abs(highest) + abs(lowest)):
                    fast = 0.0
                else:
                    fast = ((cl - lowest) / span) * 100.0
                k, ktotal = _sma_push_scalar(kbuf, ktotal, m1, fast)
                m2 = m1 - (pk - 1)
                if m2 >= 0:
                    d, dtotal = _sma_push_scalar(dbuf, dtotal, m2, k)
                    if m2 < pd - 1:
                        k = NAN
            out_k.append(k)
            out_d.append(d)
            n += 1
        st["ktotal"], st["dtotal"] = ktotal, dtotal
        return out_k, out_d


class WILLR(_RollingRange):
    """Williams %R: ((highest - close) / (highest - lowest)) * -100, 0 on a flat window."""
    name = "willr"

    def __init__(self, params, n_slots):
        self.range_period = params["period"]
        super().__init__(params, n_slots)

    def _step(self, rows, n, o, h, l, c, v):
        highest, lowest = self._push_range(rows, n, h, l)
        span = highest - lowest
        flat = _is_flat(span, np.abs(highest) + np.abs(lowest))
        value = np.where(flat, 0.0, ((highest - c) / _safe(span, ~flat)) * -100.0)
        return (np.where(n >= self.range_period - 1, value, NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p, n = self.range_period, st["n"]
        out = []
        for cl, (highest, lowest) in zip(c, self._scan_range(st, h, l)):
            span = highest - lowest
            if n < p - 1:
                out.append(NAN)
            elif _is_flat(span, abs(highest) + abs(lowest)):
                out.append(0.0)
            else:
                out.append(((highest - cl) / span) * -100.0)
            n += 1
        return (out,)


class CCI(Indicator):
    """Commodity channel index over the typical price. O(period) per bar like TA-Lib, whose
    window sums run in circular-buffer order (slot n % period), as here."""
    name = "cci"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        super().__init__(params, n_slots)

    def _fields(self):
        return {"buf": _Field(self.period)}

    def _step(self, rows, n, o, h, l, c, v):
        s, p = self._state, self.period
        tp = _typical_price(h, l, c)
        s["buf"][n % p, rows] = tp
        window = s["buf"][:, rows]
        avg = _ordered_sum_rows(window) / p
        mean_dev = _ordered_sum_rows(np.abs(window - avg)) / p
        dev = tp - avg
        scale = np.abs(avg)
        zero = _is_flat(dev, scale) | _is_flat(mean_dev, scale)
        value = np.where(zero, 0.0, dev / _safe(0.015 * mean_dev, ~zero))
        return (np.where(n >= p - 1, value, NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p, buf, n = self.period, st["buf"], st["n"]
        out = []
        for hi, lo, cl in zip(h, l, c):
            tp = _typical_price(hi, lo, cl)
            buf[n % p] = tp
            if n >= p - 1:
                avg = _ordered_sum(buf) / p
                mean_dev = _ordered_sum([abs(b - avg) for b in buf]) / p
                dev = tp - avg
                scale = abs(avg)
                if _is_flat(dev, scale) or _is_flat(mean_dev, scale):
                    out.append(0.0)
                else:
                    out.append(dev / (0.015 * mean_dev))
            else:
                out.append(NAN)
            n += 1
        return (out,)


# ------------------------------------------------------------------------------------------------
# Volume
# ------------------------------------------------------------------------------------------------

class OBV(Indicator):
    """On-balance volume, starting from the first bar's volume (TA-Lib)."""
    name = "obv"

    def _fields(self):
        return {"prev_close": _Field(), "obv": _Field()}

    def _step(self, rows, n, o, h, l, c, v):
        s = self._state
        prev, obv = s["prev_close"][rows], s["obv"][rows]
        moved = np.where(c > prev, obv + v, np.where(c < prev, obv - v, obv))
        obv = np.where(n == 0, v, moved)
        s["prev_close"][rows] = c
        s["obv"][rows] = obv
        return (obv,)

    def _scan(self, st, o, h, l, c, v, starts):
        n, prev, obv = st["n"], st["prev_close"], st["obv"]
        out = []
        for cl, vol in zip(c, v):
            if n == 0:
                obv = vol
            elif cl > prev:
                obv = obv + vol
            elif cl < prev:
                obv = obv - vol
            out.append(obv)
            prev = cl
            n += 1
        st["prev_close"], st["obv"] = prev, obv
        return (out,)


class VWAP(Indicator):
    """Session VWAP: sum(TP*V)/sum(V) since the last new_session(); NaN while sum(V) is 0."""
    name = "vwap"

    def _fields(self):
        return {"pv": _Field(), "volume": _Field()}

    def new_session(self, slots) -> None:
        rows = np.asarray(slots, dtype=np.intp)
        self._state["pv"][rows] = 0.0
        self._state["volume"][rows] = 0.0

    def _step(self, rows, n, o, h, l, c, v):
        s = self._state
        pv = s["pv"][rows] + _typical_price(h, l, c) * v
        vol = s["volume"][rows] + v
        s["pv"][rows] = pv
        s["volume"][rows] = vol
        traded = vol > 0.0
        return (np.where(traded, pv / _safe(vol, traded), NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        pv, vol = st["pv"], st["volume"]
        out = []
        for i, (hi, lo, cl, vo) in enumerate(zip(h, l, c, v)):
            if starts is not None and starts[i]:
                pv = vol = 0.0
            pv = pv + _typical_price(hi, lo, cl) * vo
            vol = vol + vo
            out.append(pv / vol if vol > 0.0 else NAN)
        st["pv"], st["volume"] = pv, vol
        return (out,)


# ------------------------------------------------------------------------------------------------
# Registry, keys, config validation, factory
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its type (int or float), default and inclusive range."""
    name: str
    kind: type
    default: int | float
    low: int | float
    high: int | float
    in_key: bool = True          # matype-style switches stay out of the display key


@dataclass(frozen=True)
class IndicatorSpec:
    name: str
    params: tuple[ParamSpec, ...]
    outputs: tuple[str, ...]
    factory: type


def _period(name: str, default: int, low: int = 2) -> ParamSpec:
    return ParamSpec(name, int, default, low, MAX_PERIOD)


def _sma_only(name: str) -> ParamSpec:
    return ParamSpec(name, int, 0, 0, 0, in_key=False)


def _spec(cls: type, *params: ParamSpec) -> IndicatorSpec:
    return IndicatorSpec(cls.name, params, cls.outputs, cls)


# Defaults and minimum periods are TA-Lib 0.8's (talib.abstract, TA_*_Lookback).
INDICATORS: Mapping[str, IndicatorSpec] = MappingProxyType({s.name: s for s in (
    _spec(SMA, _period("period", 30, 1)),
    _spec(EMA, _period("period", 30, 1)),
    _spec(WMA, _period("period", 30, 1)),
    _spec(RSI, _period("period", 14)),
    _spec(MACD, _period("fast", 12), _period("slow", 26), _period("signal", 9, 1)),
    _spec(BBANDS, _period("period", 20), ParamSpec("nbdevup", float, 2.0, 0.0, 100.0),
          ParamSpec("nbdevdn", float, 2.0, 0.0, 100.0), _sma_only("matype")),
    _spec(ATR, _period("period", 14, 1)),
    _spec(STOCH, _period("fastk_period", 5, 1), _period("slowk_period", 3, 1),
          _sma_only("slowk_matype"), _period("slowd_period", 3, 1), _sma_only("slowd_matype")),
    _spec(CCI, _period("period", 14)),
    _spec(WILLR, _period("period", 14)),
    _spec(OBV),
    _spec(VWAP),
)})


def _format_number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def indicator_key(name: str, params: Mapping) -> str:
    """Stable display key: 'sma(20)', 'macd(12,26,9)', 'bbands(20,2,2)', 'obv'."""
    spec = INDICATORS[name]
    shown = [_format_number(params.get(p.name, p.default)) for p in spec.params if p.in_key]
    return f"{name}({','.join(shown)})" if shown else name


def _check_param(p: ParamSpec, value, where: str):
    if p.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    if p.low == p.high and value != p.low:
        raise ValueError(f"{where}: only {p.low} (SMA) is supported, got {value!r}")
    if not p.low <= value <= p.high:
        raise ValueError(f"{where}: {value!r} is out of range ({p.low}..{p.high})")
    return p.kind(value)


def _known() -> str:
    return ", ".join(sorted(INDICATORS))


def normalise_params(name: str, params: Mapping | None, where: str) -> dict:
    """Check params against the spec of `name`; return them complete, defaults filled in."""
    if name not in INDICATORS:
        raise ValueError(f"{where}: unknown indicator {name!r} (known: {_known()})")
    spec = INDICATORS[name]
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: expected an object of parameters, got {params!r}")
    allowed = [p.name for p in spec.params]
    for key in params:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown parameter for {name} "
                             f"(allowed: {', '.join(allowed) or 'none'})")
    return {p.name: _check_param(p, params[p.name], f"{where}.{p.name}") if p.name in params
            else p.default for p in spec.params}


def validate_indicator(entry, where: str) -> dict:
    """Check one config entry {name, interval, params}; return it normalised.

    Errors are ValueError naming the entry path, e.g. "indicators[2].params.period: 0 is out of
    range (2..10000)". `interval` defaults to '1m'; '1d' is refused (indicators run intraday).
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected an object like {{'name': 'sma', 'params': {{'period': 20}}}}")
    unknown = sorted(set(entry) - {"name", "interval", "params"})
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (allowed: interval, name, params)")
    name = entry.get("name")
    if not isinstance(name, str):
        raise ValueError(f"{where}.name: expected an indicator name (known: {_known()})")
    if name not in INDICATORS:
        raise ValueError(f"{where}.name: unknown indicator {name!r} (known: {_known()})")
    interval = _check_interval(entry.get("interval", "1m"), f"{where}.interval")
    params = normalise_params(name, entry.get("params", {}), f"{where}.params")
    return {"name": name, "interval": interval, "params": params}


def _check_interval(value, where: str) -> str:
    from common.domain.interval import Interval

    if not isinstance(value, str):
        raise ValueError(f"{where}: expected an interval like '5m', got {value!r}")
    try:
        interval = Interval.parse(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if interval.daily:
        raise ValueError(f"{where}: indicators run on intraday intervals, not {value!r}")
    return value


def make_indicator(name: str, params: Mapping | None, n_slots: int) -> Indicator:
    """Build one indicator instance over n_slots slots; params are checked, defaults filled."""
    normalised = normalise_params(name, params, f"indicator {name}" if name in INDICATORS else "indicator")
    return INDICATORS[name].factory(normalised, n_slots)
