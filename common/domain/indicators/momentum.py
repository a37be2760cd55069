"""Momentum oscillators: RSI, MACD, and the range oscillators STOCH, WILLR, CCI."""
from __future__ import annotations

import math

import numpy as np

from common.domain.indicators.base import (
    NAN,
    Indicator,
    _ema_k,
    _ema_next,
    _Field,
    _is_flat,
    _ordered_sum,
    _ordered_sum_rows,
    _safe,
    _sma_push,
    _sma_push_scalar,
    _typical_price,
)


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
    """MACD line, signal EMA and histogram, with TA-Lib's seeding and warm-up (see the package docstring)."""
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

    def feed(self, slot, open, high, low, close, volume, session_starts=None) -> None:
        """The state is the last `period` typical prices and the count: only those are computed."""
        self._check_slot(slot)
        p, n0, length = self.period, int(self._state["n"][slot]), len(close)
        if len(open) != length or len(high) != length or len(low) != length or len(volume) != length:
            raise ValueError(f"{self.key}: bar arrays differ in length")
        first = max(0, length - p)
        tp = _typical_price(np.asarray(high[first:], np.float64), np.asarray(low[first:], np.float64),
                            np.asarray(close[first:], np.float64))
        self._state["buf"][(n0 + np.arange(first, length)) % p, slot] = tp
        self._state["n"][slot] = n0 + length

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
