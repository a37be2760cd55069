"""Moving averages: SMA, EMA, WMA."""
from __future__ import annotations

import numpy as np

from common.domain.indicators.base import (
    NAN,
    Indicator,
    _ema_k,
    _ema_next,
    _Field,
    _oldest_first,
    _oldest_first_scalar,
    _ordered_sum,
    _ordered_sum_rows,
    _sma_push,
    _sma_push_scalar,
)


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
        """_sma_push_scalar's running total as one sequential sum (np.add.accumulate adds left to right):
        + x, then - the value leaving the window once it is full (-0.0, which changes nothing, before)."""
        if not c:
            return ([],)
        buf, n0, p, length = st["buf"], st["n"], self.period, len(c)
        x = np.asarray(c)
        ext = np.concatenate([np.asarray(_oldest_first_scalar(buf, n0 - 1)), x])  # values n0-p .. n0+len-1
        full = n0 + np.arange(length) >= p - 1
        terms = np.empty(2 * length + 1)
        terms[0], terms[1::2], terms[2::2] = st["total"], x, np.where(full, -ext[1:length + 1], -0.0)
        acc = np.add.accumulate(terms)
        for i in range(max(0, length - p), length):
            buf[(n0 + i) % p] = c[i]
        st["total"] = float(acc[-1])
        return (np.where(full, acc[1::2] / p, NAN),)


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
        steady = n.min() >= p                             # every row's window full (the common case)
        leaving = buf[pos, rows] if steady else np.where(n >= p, buf[pos, rows], 0.0)  # x[n-p]: trailingValue
        buf[pos, rows] = c
        sub = (s["sub"][rows] + c) - leaving
        if steady:
            return self._steady_step(rows, n, c, sub, s["wsum"][rows] + c * float(p))
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

    def _steady_step(self, rows, n, c, sub, wsum):
        """_step once every row is past its first window: no masks."""
        s, p = self._state, self.period
        due = np.flatnonzero((n - p + 2) % self.reanchor_every == 0)
        if len(due):
            window = _oldest_first(s["buf"], rows[due], n[due])
            sub[due] = _ordered_sum_rows(window)
            wsum[due] = _ordered_sum_rows(window * np.arange(1.0, p + 1)[:, None])
        s["sub"][rows] = sub
        s["wsum"][rows] = wsum - sub
        return (wsum / self.divider,)

    def _scan(self, st, o, h, l, c, v, starts):
        """The loop's two running sums as sequential sums (np.add.accumulate adds left to right; a - b is
        a + -b in IEEE), one stretch per re-anchoring; the re-anchoring bars themselves as the loop."""
        p = self.period
        if p == 1:
            return (list(c),)
        if not c:
            return ([],)
        n0, buf, length = st["n"], st["buf"], len(c)
        x = np.asarray(c)
        # values n0-p .. n0+len-1: the ring (oldest first, as of before the first bar) then the bars
        ext = np.concatenate([np.asarray(_oldest_first_scalar(buf, n0 - 1)), x])
        n = n0 + np.arange(length)
        leaving = np.where(n >= p, ext[:length], 0.0)
        weighted = x * np.minimum(n + 1, p).astype(np.float64)
        full = n >= p - 1
        out = np.full(length, NAN)
        anchors = np.flatnonzero(full & ((n - p + 2) % self.reanchor_every == 0)).tolist()
        sub, wsum = st["sub"], st["wsum"]
        lo = 0
        for hi in anchors + [length]:
            if lo < hi:
                sub, wsum = self._stretch(lo, hi, sub, wsum, x, leaving, weighted, full, out)
            if hi < length:  # re-anchor: both sums from the window, in the loop's order
                window = ext[hi + 1:hi + p + 1].tolist()
                sub = _ordered_sum(window)
                wsum = _ordered_sum([w * (j + 1.0) for j, w in enumerate(window)])
                out[hi] = wsum / self.divider
                wsum = wsum - sub
                lo = hi + 1
        for i in range(max(0, length - p), length):
            buf[(n0 + i) % p] = c[i]
        st["sub"], st["wsum"] = sub, wsum
        return (out,)

    def _stretch(self, lo, hi, sub, wsum, x, leaving, weighted, full, out) -> tuple[float, float]:
        """Bars lo..hi-1 without re-anchoring: sub += x - leaving; wsum += x*weight, out, wsum -= sub."""
        terms = np.empty(2 * (hi - lo) + 1)
        terms[0], terms[1::2], terms[2::2] = sub, x[lo:hi], -leaving[lo:hi]
        subs = np.add.accumulate(terms)[2::2]
        part_full = full[lo:hi]
        terms[0], terms[1::2], terms[2::2] = wsum, weighted[lo:hi], np.where(part_full, -subs, -0.0)
        acc = np.add.accumulate(terms)
        out[lo:hi] = np.where(part_full, acc[1::2] / self.divider, NAN)
        return float(subs[-1]), float(acc[-1])
