"""Two example strategies a trader would recognise, both on 5m bars with a data-quality gate."""
from __future__ import annotations

import numpy as np


def _quality_ok(ctx, symbol: str, min_quality: float) -> bool:
    """No signal on a symbol whose 1m quality so far is below the threshold (%)."""
    q = ctx.quality(symbol).get("1m")
    return q is None or q["pct"] >= min_quality


class SmaCross:
    """Long when the fast SMA crosses above the slow SMA on 5m bars, flat when it crosses below."""

    intervals = ("5m",)  # on_bar is called for 5m bars only

    def __init__(self, fast: int = 20, slow: int = 50, qty: float = 100, min_quality: float = 95.0):
        self.fast_key, self.slow_key = f"sma({fast})", f"sma({slow})"
        self.indicators = {"5m": [self.fast_key, self.slow_key]}  # computed for this strategy
        self.qty, self.min_quality = qty, min_quality
        self.long: set[str] = set()

    def on_bar(self, ctx, symbol, interval, bar):
        if interval != "5m" or not _quality_ok(ctx, symbol, self.min_quality):
            return
        fast = ctx.indicator(symbol, "5m", self.fast_key)
        slow = ctx.indicator(symbol, "5m", self.slow_key)
        if len(fast) < 2 or np.isnan(slow[-2:]).any() or np.isnan(fast[-2:]).any():
            return
        if fast[-2] <= slow[-2] and fast[-1] > slow[-1] and symbol not in self.long:
            self.long.add(symbol)
            ctx.signal(symbol, "buy", self.qty, "sma cross up", fast=float(fast[-1]), slow=float(slow[-1]))
        elif fast[-2] >= slow[-2] and fast[-1] < slow[-1] and symbol in self.long:
            self.long.discard(symbol)
            ctx.signal(symbol, "sell", self.qty, "sma cross down", fast=float(fast[-1]), slow=float(slow[-1]))

    def on_symbol_removed(self, ctx, symbol):
        self.long.discard(symbol)


class RsiReversion:
    """Buy when RSI(14) on 5m bars drops below `low`, sell when it rises above `high`."""

    intervals = ("5m",)

    def __init__(self, period: int = 14, low: float = 30.0, high: float = 70.0, qty: float = 100,
                 min_quality: float = 95.0):
        self.key, self.low, self.high = f"rsi({period})", low, high
        self.indicators = {"5m": [self.key]}
        self.qty, self.min_quality = qty, min_quality
        self.long: set[str] = set()

    def on_bar(self, ctx, symbol, interval, bar):
        if interval != "5m" or not _quality_ok(ctx, symbol, self.min_quality):
            return
        rsi = ctx.indicator(symbol, "5m", self.key)
        if not len(rsi) or np.isnan(rsi[-1]):
            return
        if rsi[-1] < self.low and symbol not in self.long:
            self.long.add(symbol)
            ctx.signal(symbol, "buy", self.qty, f"rsi {rsi[-1]:.1f} < {self.low}")
        elif rsi[-1] > self.high and symbol in self.long:
            self.long.discard(symbol)
            ctx.signal(symbol, "sell", self.qty, f"rsi {rsi[-1]:.1f} > {self.high}")

    def on_symbol_removed(self, ctx, symbol):
        self.long.discard(symbol)
