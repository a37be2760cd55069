"""Volatility: BBANDS, ATR."""
from __future__ import annotations

import math

import numpy as np

from common.domain.indicators.base import (
    NAN,
    Indicator,
    _Field,
    _oldest_first,
    _oldest_first_scalar,
    _ordered_sum,
    _ordered_sum_rows,
    _wilder_weights,
)


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
