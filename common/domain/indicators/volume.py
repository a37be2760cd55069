"""Volume: OBV, VWAP."""
from __future__ import annotations

import numpy as np

from common.domain.indicators.base import NAN, Indicator, _Field, _safe, _typical_price


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
        """One sequential sum (np.add.accumulate adds left to right, as the loop does): each bar adds +v,
        -v (x - v == x + -v in IEEE) or -0.0 (x + -0.0 == x, also for a signed zero)."""
        if not c:
            return ([],)
        close, vol = np.asarray(c), np.asarray(v)
        prev = np.empty(len(close))
        prev[0], prev[1:] = st["prev_close"], close[:-1]
        terms = np.where(close > prev, vol, np.where(close < prev, -vol, -0.0))
        terms[0] = vol[0] if st["n"] == 0 else st["obv"] + terms[0]
        obv = np.add.accumulate(terms)
        st["prev_close"], st["obv"] = c[-1], float(obv[-1])
        return (obv,)


class VWAP(Indicator):
    """Session VWAP: sum(TP*V)/sum(V) since the last new_session(); NaN while sum(V) is 0."""
    name = "vwap"
    forgets_at_session = True

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
