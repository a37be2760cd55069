"""Example strategies that trade through the broker (config `stages` must list "broker")."""
from __future__ import annotations


def sma(values: list[float], n: int) -> float:
    return sum(values[-n:]) / n


class SmaCrossTrader:
    """Long `qty` shares when SMA(fast) of the 1m closes crosses above SMA(slow), flat when it crosses
    below. `order_type` "market" (filled at the next bar's open) or "limit" (a GTC limit `offset` better
    than the signal bar's close). `start` ("HH:MM", exchange time) trades only from then on; with
    `replica_closes` the SMAs read ctx.bars (so a symbol added mid-session counts its caught-up bars)."""

    intervals = ("1m",)

    def __init__(self, fast: int = 5, slow: int = 20, qty: float = 10, order_type: str = "market",
                 offset: float = 0.05, tif: str = "gtc", start: str | None = None, replica_closes: bool = False):
        self.fast, self.slow, self.qty = fast, slow, qty
        self.order_type, self.offset, self.tif = order_type, offset, tif
        self.start, self.replica_closes = start, replica_closes
        self.closes: dict[str, list[float]] = {}
        self.fills: list = []

    def on_bar(self, ctx, symbol, interval, bar):
        closes = self.closes.setdefault(symbol, [])
        closes.append(bar.close)
        if self.replica_closes:
            closes = ctx.bars(symbol, "1m").close.tolist()
        if len(closes) <= self.slow or (self.start and ctx.fmt(ctx.clock) <= self.start):
            return
        before, now = closes[:-1], closes
        up = sma(before, self.fast) <= sma(before, self.slow) and sma(now, self.fast) > sma(now, self.slow)
        down = sma(before, self.fast) >= sma(before, self.slow) and sma(now, self.fast) < sma(now, self.slow)
        if any(o.symbol == symbol for o in ctx.orders()):
            return
        held = ctx.position(symbol)
        if up and held == 0:
            self._send(ctx, symbol, self.qty, bar.close - self.offset)
        elif down and held > 0:
            self._send(ctx, symbol, -held, bar.close + self.offset)

    def _send(self, ctx, symbol: str, qty: float, limit: float) -> None:
        if self.order_type == "limit":
            ctx.order(symbol, qty, type="limit", limit=round(limit, 2), tif=self.tif)
        else:
            ctx.order(symbol, qty, tif=self.tif)

    def on_fill(self, ctx, fill):
        self.fills.append(fill)


class EveryBarTrader:
    """Trades on every 5m bar of every symbol: buys `qty` when flat, sells it back when long (the
    broker benchmark's workload)."""

    intervals = ("5m",)

    def __init__(self, qty: float = 1):
        self.qty = qty

    def on_bar(self, ctx, symbol, interval, bar):
        if ctx.position(symbol) > 0:
            ctx.sell(symbol, ctx.position(symbol))
        else:
            ctx.buy(symbol, self.qty)
