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
