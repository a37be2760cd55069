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

Layout: ``base`` (the Indicator class: state storage, snapshots, the two entry points, and the
arithmetic both paths share), ``averages`` (SMA, EMA, WMA), ``momentum`` (RSI, MACD, STOCH, WILLR,
CCI), ``volatility`` (BBANDS, ATR), ``volume`` (OBV, VWAP) and ``registry`` (parameters, keys,
config validation, the factory). docs/indicators.md is the reference table.
"""
from common.domain.indicators.base import Indicator
from common.domain.indicators.registry import (
    INDICATORS,
    MAX_PERIOD,
    describe_indicators,
    indicator_key,
    make_indicator,
    normalise_params,
    parse_indicator_key,
    validate_indicator,
)

__all__ = [
    "INDICATORS",
    "MAX_PERIOD",
    "Indicator",
    "describe_indicators",
    "indicator_key",
    "make_indicator",
    "normalise_params",
    "parse_indicator_key",
    "validate_indicator",
]
