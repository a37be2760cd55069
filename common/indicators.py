"""Incremental technical indicators, vectorised across symbol slots, equal to TA-Lib's output.

Why this shape: the processor owns a fixed set of *slots* (one per symbol, slot index = row of
every state array). Each step it hands one indicator instance the bars of the symbols that have
one, as aligned arrays, and gets back the values for those symbols. All per-symbol state lives in
numpy arrays, so one step costs a handful of vector operations whatever the number of symbols,
and the state of one slot or of all can be copied out and loaded back (late joiners, snapshots).

Two code paths compute every indicator:

* ``update()`` - the vector kernel (``_step``), many slots, one bar each;
* ``run_series()`` - the batch path for history/catch-up (``_scan``), one slot, many bars,
  a plain Python loop over floats doing *the same IEEE operations in the same order*.

The two are bit-identical, results and state (Python floats and numpy float64 element-wise ops
round identically; sums over windows are explicit ordered loops on both sides, never numpy's
pairwise ``np.sum``). The test suite proves it for every indicator.

Values match TA-Lib (default compatibility mode, no unstable period) to ~1e-12 relative, with
identical warm-up (NaN until TA-Lib gives a value). Quirks of TA-Lib reproduced on purpose:

* MACD: the fast EMA is seeded on the same bar as the slow one (SMA of the last ``fast`` prices
  of the slow seed window); macd/signal/hist all stay NaN until the signal line exists; ``fast``
  and ``slow`` are swapped when given in the wrong order; ``signal=1`` makes signal == macd.
* STOCH: slowk stays NaN until slowd exists; fast %K is 0 on a flat window.
* Flat-window rules: STOCH/WILLR/CCI answer 0 when the range (or deviation) is within ~90 ulp
  of the price level (TA-Lib's ``TA_IS_ZERO_SCALED``); RSI answers 0 when gain + loss == 0.
* BBANDS: the deviation is the population standard deviation, computed cancellation-free (TA-Lib
  >= 0.8 does the same; the naive E[x^2]-E[x]^2 would lose up to 8 digits at index levels) and
  forced to exactly 0 on a flat window.
* SMA/EMA/WMA with period 1 return the input unchanged; ATR(1) is the true range.
* OBV starts from the first bar's volume. VWAP (not in TA-Lib) is sum(TP*V)/sum(V) since the
  session start with TP = (H+L+C)/3; it is NaN while the session's cumulative volume is 0
  (e.g. index data with zero volume).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar, Mapping

import numpy as np

NAN = float("nan")
MAX_PERIOD = 10_000          # ring buffers cost period x slots x 8 bytes
_FLAT_EPSILON = 1e-14        # TA-Lib's TA_EPSILON, used relative to the price level
_VAR_FLOOR = 1e-12           # TA-Lib var.c: a variance this small relative to the spread is 0


# --------------------------------------------------------------------------------------------
# Arithmetic shared by both paths (works on Python floats and on numpy arrays alike)
# --------------------------------------------------------------------------------------------

def _ema_k(period: int) -> float:
    return 2.0 / (period + 1)


def _ema_next(k, x, prev):
    """TA-Lib's EMA step, in its operation order: prev + k * (x - prev)."""
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


# --------------------------------------------------------------------------------------------
# Running-window helpers: one vector form, one scalar form, same operation order
# --------------------------------------------------------------------------------------------

def _sma_push(buf: np.ndarray, total: np.ndarray, rows: np.ndarray, n: np.ndarray, x: np.ndarray):
    """Push x as value number n (0-based) of each row's series; return the window mean or NaN.

    TA-Lib INT_SMA order: total += x; mean = total / p; total -= oldest.
    """
    period = buf.shape[1]
    buf[rows, n % period] = x
    t = total[rows] + x
    full = n >= period - 1
    mean = np.where(full, t / period, NAN)
    total[rows] = t - np.where(full, buf[rows, (n + 1) % period], 0.0)
    return mean


def _sma_push_scalar(buf: list, total: float, n: int, x: float) -> tuple[float, float]:
    """Scalar twin of _sma_push; returns (mean or NaN, new total)."""
    period = len(buf)
    buf[n % period] = x
    total += x
    if n >= period - 1:
        return total / period, total - buf[(n + 1) % period]
    return NAN, total


def _ordered_sum_rows(w: np.ndarray) -> np.ndarray:
    """Left-to-right sum of each row (np.cumsum is sequential, unlike pairwise np.sum)."""
    return np.cumsum(w, axis=1)[:, -1]


def _ordered_sum(values: list) -> float:
    """Scalar twin of _ordered_sum_rows: ((v0 + v1) + v2) + ..."""
    s = values[0]
    for v in values[1:]:
        s += v
    return s


def _window_std_rows(w: np.ndarray) -> np.ndarray:
    """Population std of each row: shifted two-pass (cancellation-free), zero on flat windows."""
    inv = 1.0 / w.shape[1]
    mean = _ordered_sum_rows(w) * inv
    d = w - mean[:, None]
    mean1 = _ordered_sum_rows(d) * inv
    mean_sq = _ordered_sum_rows(d * d) * inv
    var = mean_sq - mean1 * mean1
    return np.sqrt(np.where(var < _VAR_FLOOR * mean_sq, 0.0, var))


def _window_std(w: list) -> float:
    """Scalar twin of _window_std_rows."""
    inv = 1.0 / len(w)
    mean = _ordered_sum(w) * inv
    d0 = w[0] - mean
    s1 = d0
    s2 = d0 * d0
    for v in w[1:]:
        d = v - mean
        s1 += d
        s2 += d * d
    mean1 = s1 * inv
    mean_sq = s2 * inv
    var = mean_sq - mean1 * mean1
    return math.sqrt(0.0 if var < _VAR_FLOOR * mean_sq else var)


# --------------------------------------------------------------------------------------------
# Base class
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Field:
    """One per-slot state array: width 0 = one value per slot, else a ring of that width."""
    width: int = 0
    fill: float = 0.0
    dtype: type = np.float64


class Indicator:
    """One configured indicator over a fixed, growable set of slots.

    Subclasses declare their state (`_fields`), the vector kernel `_step` and the scalar loop
    `_scan`; everything else (state storage, snapshots, the batch entry point) lives here.
    """

    name: ClassVar[str]
    outputs: ClassVar[tuple[str, ...]] = ("value",)

    def __init__(self, params: Mapping, n_slots: int):
        self.params = dict(params)
        self.key = indicator_key(self.name, self.params)
        self._spec = {"n": _Field(dtype=np.int64), **self._fields()}
        self._state = {f: self._blank(spec, 0) for f, spec in self._spec.items()}
        self.resize(n_slots)

    # -- to implement -------------------------------------------------------------------------
    def _fields(self) -> dict[str, _Field]:
        return {}

    def _step(self, rows, o, h, l, c, v) -> tuple[np.ndarray, ...]:
        raise NotImplementedError

    def _scan(self, st: dict, o, h, l, c, v, starts) -> tuple[list, ...]:
        raise NotImplementedError

    # -- slots --------------------------------------------------------------------------------
    @property
    def n_slots(self) -> int:
        return len(self._state["n"])

    @staticmethod
    def _blank(spec: _Field, rows: int) -> np.ndarray:
        shape = (rows,) if spec.width == 0 else (rows, spec.width)
        return np.full(shape, spec.fill, dtype=spec.dtype)

    def resize(self, n_slots: int) -> None:
        """Grow to n_slots; new slots start empty (as if never fed)."""
        current = self.n_slots
        if n_slots < current:
            raise ValueError(f"{self.key}: cannot shrink from {current} to {n_slots} slots")
        if n_slots == current:
            return
        for f, spec in self._spec.items():
            self._state[f] = np.concatenate([self._state[f], self._blank(spec, n_slots - current)])

    def reset_slot(self, slot: int) -> None:
        """Forget everything about one slot (symbol removed, maybe re-added later)."""
        self._check_slot(slot)
        for f, spec in self._spec.items():
            self._state[f][slot] = spec.fill

    def new_session(self, slots) -> None:
        """Session boundary for these slots; only session-anchored indicators (VWAP) care."""

    def _check_slot(self, slot: int) -> None:
        if not 0 <= slot < self.n_slots:
            raise IndexError(f"{self.key}: slot {slot} out of range (0..{self.n_slots - 1})")

    # -- state snapshots ----------------------------------------------------------------------
    def state(self, slots=None) -> dict[str, np.ndarray]:
        """Copy of the state arrays, for all slots or only the given rows (in that order)."""
        if slots is None:
            return {f: a.copy() for f, a in self._state.items()}
        rows = np.asarray(slots, dtype=np.intp)
        return {f: a[rows] for f, a in self._state.items()}

    def load_state(self, state: Mapping[str, np.ndarray], slots=None) -> None:
        """Restore arrays from state(); with slots, write those rows only (same order as taken)."""
        if set(state) != set(self._spec):
            raise ValueError(f"{self.key}: state fields {sorted(state)} != {sorted(self._spec)}")
        arrays = {f: np.asarray(state[f], dtype=spec.dtype) for f, spec in self._spec.items()}
        for f, spec in self._spec.items():
            if arrays[f].shape[1:] != self._blank(spec, 0).shape[1:]:
                raise ValueError(f"{self.key}: state field {f!r} has shape {arrays[f].shape}")
        if slots is None:
            self._state = {f: a.copy() for f, a in arrays.items()}
            return
        rows = np.asarray(slots, dtype=np.intp)
        for f, a in arrays.items():
            self._state[f][rows] = a

    # -- feeding ------------------------------------------------------------------------------
    def update(self, slots, open, high, low, close, volume) -> dict[str, np.ndarray]:
        """Add one bar for each of `slots` (unique); return each output for those slots."""
        rows = np.asarray(slots, dtype=np.intp)
        cols = [np.asarray(a, dtype=np.float64) for a in (open, high, low, close, volume)]
        if any(len(a) != len(rows) for a in cols):
            raise ValueError(f"{self.key}: slots and bar arrays differ in length")
        if len(rows) == 0:
            return {name: np.empty(0) for name in self.outputs}
        if rows.min() < 0 or rows.max() >= self.n_slots:
            raise IndexError(f"{self.key}: slots out of range (0..{self.n_slots - 1})")
        values = self._step(rows, *cols)
        self._state["n"][rows] += 1
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
        st = {f: a[slot].tolist() for f, a in self._state.items()}
        values = self._scan(st, *cols, starts)
        st["n"] += length
        for f, a in self._state.items():
            a[slot] = st[f]
        return {name: np.asarray(v, dtype=np.float64) for name, v in zip(self.outputs, values)}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key} slots={self.n_slots}>"


# --------------------------------------------------------------------------------------------
# Moving averages
# --------------------------------------------------------------------------------------------

class SMA(Indicator):
    """Simple moving average, TA-Lib's running-sum order."""
    name = "sma"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        super().__init__(params, n_slots)

    def _fields(self):
        return {"buf": _Field(self.period), "total": _Field()}

    def _step(self, rows, o, h, l, c, v):
        s = self._state
        return (_sma_push(s["buf"], s["total"], rows, s["n"][rows], c),)

    def _scan(self, st, o, h, l, c, v, starts):
        buf, total, n = st["buf"], st["total"], st["n"]
        out = []
        for i, x in enumerate(c):
            mean, total = _sma_push_scalar(buf, total, n + i, x)
            out.append(mean)
        st["total"] = total
        return (out,)


class EMA(Indicator):
    """Exponential moving average seeded with the SMA of the first `period` values.

    Period 1 returns the input unchanged (TA-Lib >= 0.7.1).
    """
    name = "ema"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.k = _ema_k(self.period)
        super().__init__(params, n_slots)

    def _fields(self):
        return {"total": _Field(), "ema": _Field()}

    def _step(self, rows, o, h, l, c, v):
        s, p = self._state, self.period
        if p == 1:
            return (c.copy(),)
        n = s["n"][rows]
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
    """Linearly weighted moving average, weights 1..period oldest first.

    O(period) per bar on purpose: TA-Lib's O(1) running sums drift over long series (it
    re-anchors them every 8*period bars with exactly this ordered sum); summing the window
    every bar never drifts and equals TA-Lib's re-anchored value bit for bit.
    """
    name = "wma"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.divider = self.period * (self.period + 1) / 2.0
        self._weights = np.arange(1, self.period + 1, dtype=np.float64)
        self._ages = np.arange(1, self.period + 1)
        super().__init__(params, n_slots)

    def _fields(self):
        return {"buf": _Field(self.period)}

    def _step(self, rows, o, h, l, c, v):
        p, buf = self.period, self._state["buf"]
        n = self._state["n"][rows]
        buf[rows, n % p] = c
        oldest_first = buf[rows[:, None], (n[:, None] + self._ages) % p]
        value = _ordered_sum_rows(oldest_first * self._weights) / self.divider
        return (np.where(n >= p - 1, value, NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p, buf, n, divider = self.period, st["buf"], st["n"], self.divider
        out = []
        for x in c:
            buf[n % p] = x
            if n >= p - 1:
                start = (n + 1) % p
                window = buf[start:] + buf[:start]
                out.append(_ordered_sum([w * (j + 1.0) for j, w in enumerate(window)]) / divider)
            else:
                out.append(NAN)
            n += 1
        return (out,)


# --------------------------------------------------------------------------------------------
# Oscillators
# --------------------------------------------------------------------------------------------

class RSI(Indicator):
    """Wilder's RSI: averages seeded over the first `period` changes, then smoothed by 1/period."""
    name = "rsi"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.inv = 1.0 / self.period
        super().__init__(params, n_slots)

    def _fields(self):
        return {"prev": _Field(), "gain": _Field(), "loss": _Field()}

    def _step(self, rows, o, h, l, c, v):
        s, p = self._state, self.period
        n = s["n"][rows]
        d = np.where(n == 0, 0.0, c - s["prev"][rows])
        up = np.where(d > 0.0, d, 0.0)
        smoothing = n > p
        scale = np.where(n >= p, self.inv, 1.0)      # x * 1.0 is exact: warm-up just adds
        keep = np.where(smoothing, float(p - 1), 1.0)
        gain = (s["gain"][rows] * keep + up) * scale
        loss = (s["loss"][rows] * keep + (up - d)) * scale
        s["prev"][rows] = c
        s["gain"][rows] = gain
        s["loss"][rows] = loss
        total = gain + loss
        value = np.where(total > 0.0, 100.0 * (gain / np.where(total > 0.0, total, 1.0)), 0.0)
        return (np.where(n >= p, value, NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p, inv, keep = self.period, self.inv, float(self.period - 1)
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

    def _step(self, rows, o, h, l, c, v):
        s, f, sl, g = self._state, self.fast, self.slow, self.signal
        n = s["n"][rows]
        slow_seed = n < sl
        fast_seed = slow_seed & (n >= sl - f)      # fast seed = last `fast` bars of slow's
        fast_sum = s["fast_sum"][rows] + np.where(fast_seed, c, 0.0)
        slow_sum = s["slow_sum"][rows] + np.where(slow_seed, c, 0.0)
        seeded_now = n == sl - 1
        fast = np.where(slow_seed, np.where(seeded_now, fast_sum / f, 0.0),
                        _ema_next(self.fk, c, s["fast"][rows]))
        slow = np.where(slow_seed, np.where(seeded_now, slow_sum / sl, 0.0),
                        _ema_next(self.sk, c, s["slow"][rows]))
        line = fast - slow
        m = n - (sl - 1)                           # index in the MACD-line series
        sig_seed = (m >= 0) & (m < g)
        sig_sum = s["sig_sum"][rows] + np.where(sig_seed, line, 0.0)
        sig_prev = s["sig"][rows]
        follow = line if g == 1 else _ema_next(self.gk, line, sig_prev)
        sig = np.where(m >= g, follow, np.where(m == g - 1, sig_sum / g, sig_prev))
        for name, value in (("fast_sum", fast_sum), ("slow_sum", slow_sum), ("fast", fast),
                            ("slow", slow), ("sig_sum", sig_sum), ("sig", sig)):
            s[name][rows] = value
        ready = m >= g - 1
        return (np.where(ready, line, NAN), np.where(ready, sig, NAN),
                np.where(ready, line - sig, NAN))

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


class BBANDS(Indicator):
    """Bollinger bands: SMA middle band +/- nbdev population standard deviations."""
    name = "bbands"
    outputs = ("upper", "middle", "lower")

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.up, self.dn = float(params["nbdevup"]), float(params["nbdevdn"])
        super().__init__(params, n_slots)

    def _fields(self):
        return {"buf": _Field(self.period), "total": _Field()}

    def _step(self, rows, o, h, l, c, v):
        s = self._state
        middle = _sma_push(s["buf"], s["total"], rows, s["n"][rows], c)
        std = _window_std_rows(s["buf"][rows])
        return middle + std * self.up, middle, middle - std * self.dn

    def _scan(self, st, o, h, l, c, v, starts):
        buf, total, n = st["buf"], st["total"], st["n"]
        up, dn = self.up, self.dn
        upper, middle, lower = [], [], []
        for x in c:
            mid, total = _sma_push_scalar(buf, total, n, x)
            std = _window_std(buf)
            upper.append(mid + std * up)
            middle.append(mid)
            lower.append(mid - std * dn)
            n += 1
        st["total"] = total
        return upper, middle, lower


class ATR(Indicator):
    """Wilder's average true range: SMA of the first `period` true ranges, then Wilder smoothing.

    TA-Lib fuses the smoothing step into one FMA; we round twice, so values differ by an ulp
    or two (the recursion is contractive, the difference never grows).
    """
    name = "atr"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        self.alpha, self.beta = _wilder_weights(self.period)
        super().__init__(params, n_slots)

    def _fields(self):
        return {"prev_close": _Field(), "total": _Field(), "atr": _Field()}

    def _step(self, rows, o, h, l, c, v):
        s, p = self._state, self.period
        n = s["n"][rows]
        pc = s["prev_close"][rows]
        tr = np.maximum(np.maximum(h - l, np.abs(pc - h)), np.abs(l - pc))
        seeding = (n >= 1) & (n <= p)
        total = s["total"][rows] + np.where(seeding, tr, 0.0)
        prev = s["atr"][rows]
        smoothed = self.alpha * tr + self.beta * prev
        atr = np.where(n > p, smoothed, np.where(n == p, total / p, prev))
        s["prev_close"][rows] = c
        s["total"][rows] = total
        s["atr"][rows] = atr
        return (np.where(n >= p, atr, NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p, alpha, beta = self.period, self.alpha, self.beta
        n, pc, total, atr = st["n"], st["prev_close"], st["total"], st["atr"]
        out = []
        for hi, lo, cl in zip(h, l, c):
            tr = max(max(hi - lo, abs(pc - hi)), abs(lo - pc))
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


class _RollingRange(Indicator):
    """Shared state for indicators on the highest high / lowest low of the last `period` bars."""

    range_period: int

    def _fields(self):
        return {"highs": _Field(self.range_period, -math.inf),
                "lows": _Field(self.range_period, math.inf)}

    def _push_range(self, rows, n, h, l):
        """Store this bar; return (highest, lowest) of each row's window (max/min are exact)."""
        s, p = self._state, self.range_period
        s["highs"][rows, n % p] = h
        s["lows"][rows, n % p] = l
        return s["highs"][rows].max(axis=1), s["lows"][rows].min(axis=1)


class STOCH(_RollingRange):
    """Slow stochastic: fast %K over fastk_period, SMA-smoothed into slowk, then into slowd."""
    name = "stoch"
    outputs = ("slowk", "slowd")

    def __init__(self, params, n_slots):
        self.range_period = params["fastk_period"]
        self.slowk_period, self.slowd_period = params["slowk_period"], params["slowd_period"]
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
        return np.where(flat, 0.0, ((close - lowest) / np.where(flat, 1.0, span)) * 100.0)

    def _step(self, rows, o, h, l, c, v):
        s = self._state
        n = s["n"][rows]
        highest, lowest = self._push_range(rows, n, h, l)
        slowk = np.full(len(rows), NAN)
        slowd = np.full(len(rows), NAN)
        m1 = n - (self.range_period - 1)             # index in the fast %K series
        at1 = np.flatnonzero(m1 >= 0)
        if len(at1) == 0:
            return slowk, slowd
        fast = self.fast_k(c[at1], highest[at1], lowest[at1])
        k = _sma_push(s["kbuf"], s["ktotal"], rows[at1], m1[at1], fast)
        m2 = m1[at1] - (self.slowk_period - 1)       # index in the slow %K series
        has_k = m2 >= 0
        at2 = at1[has_k]
        d = _sma_push(s["dbuf"], s["dtotal"], rows[at2], m2[has_k], k[has_k])
        ready = m2[has_k] >= self.slowd_period - 1
        slowk[at2] = np.where(ready, k[has_k], NAN)
        slowd[at2] = d
        return slowk, slowd

    def _scan(self, st, o, h, l, c, v, starts):
        p, pk, pd = self.range_period, self.slowk_period, self.slowd_period
        highs, lows, kbuf, dbuf = st["highs"], st["lows"], st["kbuf"], st["dbuf"]
        n, ktotal, dtotal = st["n"], st["ktotal"], st["dtotal"]
        out_k, out_d = [], []
        for hi, lo, cl in zip(h, l, c):
            highs[n % p] = hi
            lows[n % p] = lo
            k = d = NAN
            m1 = n - (p - 1)
            if m1 >= 0:
                highest, lowest = max(highs), min(lows)
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

    def _step(self, rows, o, h, l, c, v):
        n = self._state["n"][rows]
        highest, lowest = self._push_range(rows, n, h, l)
        span = highest - lowest
        flat = _is_flat(span, np.abs(highest) + np.abs(lowest))
        value = np.where(flat, 0.0, ((highest - c) / np.where(flat, 1.0, span)) * -100.0)
        return (np.where(n >= self.range_period - 1, value, NAN),)

    def _scan(self, st, o, h, l, c, v, starts):
        p, highs, lows, n = self.range_period, st["highs"], st["lows"], st["n"]
        out = []
        for hi, lo, cl in zip(h, l, c):
            highs[n % p] = hi
            lows[n % p] = lo
            if n >= p - 1:
                highest, lowest = max(highs), min(lows)
                span = highest - lowest
                if _is_flat(span, abs(highest) + abs(lowest)):
                    out.append(0.0)
                else:
                    out.append(((highest - cl) / span) * -100.0)
            else:
                out.append(NAN)
            n += 1
        return (out,)


class CCI(Indicator):
    """Commodity channel index over the typical price; the window sums run in TA-Lib's
    circular-buffer order (slot n % period), so O(period) per bar."""
    name = "cci"

    def __init__(self, params, n_slots):
        self.period = params["period"]
        super().__init__(params, n_slots)

    def _fields(self):
        return {"buf": _Field(self.period)}

    def _step(self, rows, o, h, l, c, v):
        s, p = self._state, self.period
        n = s["n"][rows]
        tp = _typical_price(h, l, c)
        s["buf"][rows, n % p] = tp
        window = s["buf"][rows]
        avg = _ordered_sum_rows(window) / p
        mean_dev = _ordered_sum_rows(np.abs(window - avg[:, None])) / p
        dev = tp - avg
        scale = np.abs(avg)
        zero = _is_flat(dev, scale) | _is_flat(mean_dev, scale)
        value = np.where(zero, 0.0, dev / (0.015 * np.where(zero, 1.0, mean_dev)))
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


# --------------------------------------------------------------------------------------------
# Volume
# --------------------------------------------------------------------------------------------

class OBV(Indicator):
    """On-balance volume, starting from the first bar's volume (TA-Lib)."""
    name = "obv"

    def _fields(self):
        return {"prev_close": _Field(), "obv": _Field()}

    def _step(self, rows, o, h, l, c, v):
        s = self._state
        n = s["n"][rows]
        prev, obv = s["prev_close"][rows], s["obv"][rows]
        moved = np.where(c > prev, obv + v, np.where(c < prev, obv - v, obv))
        obv = np.where(n == 0, v, moved)
        s["prev_close"][rows] = c
        s["obv"][rows] = obv
        return (obv.copy(),)

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

    def _step(self, rows, o, h, l, c, v):
        s = self._state
        pv = s["pv"][rows] + _typical_price(h, l, c) * v
        vol = s["volume"][rows] + v
        s["pv"][rows] = pv
        s["volume"][rows] = vol
        return (np.where(vol > 0.0, pv / np.where(vol > 0.0, vol, 1.0), NAN),)

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


# --------------------------------------------------------------------------------------------
# Registry, keys, config validation, factory
# --------------------------------------------------------------------------------------------

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


# Defaults and minimum periods are TA-Lib's (talib.abstract / TA_*_Lookback).
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


def normalise_params(name: str, params: Mapping | None, where: str) -> dict:
    """Check params against the spec of `name`; return them complete, defaults filled in."""
    if name not in INDICATORS:
        raise ValueError(f"{where}: unknown indicator {name!r} (known: {', '.join(sorted(INDICATORS))})")
    spec = INDICATORS[name]
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: expected an object of parameters, got {params!r}")
    allowed = {p.name for p in spec.params}
    for key in params:
        if key not in allowed:
            listed = ", ".join(p.name for p in spec.params) or "none"
            raise ValueError(f"{where}.{key}: unknown parameter for {name} (allowed: {listed})")
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
        raise ValueError(f"{where}.name: expected an indicator name (known: {', '.join(sorted(INDICATORS))})")
    if name not in INDICATORS:
        raise ValueError(f"{where}.name: unknown indicator {name!r} (known: {', '.join(sorted(INDICATORS))})")
    interval = _check_interval(entry.get("interval", "1m"), f"{where}.interval")
    params = normalise_params(name, entry.get("params", {}), f"{where}.params")
    return {"name": name, "interval": interval, "params": params}


def _check_interval(value, where: str) -> str:
    from common.timeconv import interval_minutes

    if not isinstance(value, str):
        raise ValueError(f"{where}: expected an interval like '5m', got {value!r}")
    try:
        minutes = interval_minutes(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if minutes == 0:
        raise ValueError(f"{where}: indicators run on intraday intervals, not {value!r}")
    return value


def make_indicator(name: str, params: Mapping | None, n_slots: int) -> Indicator:
    """Build one indicator instance over n_slots slots; params are checked, defaults filled."""
    full = normalise_params(name, params, f"indicator {name}" if name in INDICATORS else "indicator")
    return INDICATORS[name].factory(full, n_slots)
