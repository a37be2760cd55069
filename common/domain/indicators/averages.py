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
