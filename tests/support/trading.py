"""Strategies for broker tests."""
from __future__ import annotations


class BuyOnce:
    """Buys 1 share on its first bar."""

    intervals = ("1m",)

    def __init__(self):
        self.sent = False

    def on_bar(self, ctx, symbol, interval, bar):
        if not self.sent:
            self.sent = True
            ctx.buy(symbol, 1)


class BuyOnceRaiseOnFill(BuyOnce):
    """Buys once on its first bar; raises in on_fill (tests the on_error policy)."""

    def on_fill(self, ctx, fill):
        raise RuntimeError(f"boom on fill of order {fill.order_id}")


class BadOrders:
    """Sends a malformed order (caught), then an order beyond buying power, then a good one."""

    intervals = ("1m",)

    def __init__(self):
        self.done = False
        self.errors: list[str] = []
        self.events: list[tuple] = []

    def on_bar(self, ctx, symbol, interval, bar):
        if self.done:
            return
        self.done = True
        try:
            ctx.order(symbol, 10, type="limit")
        except ValueError as exc:
            ctx.signal(symbol, "buy", 0, f"refused: {exc}")
        ctx.buy(symbol, 10**9)
        ctx.buy(symbol, 1)

    def on_order(self, ctx, order):
        ctx.signal(order.symbol, "buy", order.qty, f"order {order.id} {order.status.value} {order.reason}")


class FillRecorder:
    """strategies.trading:SmaCrossTrader that records every on_fill and on_order as a signal (its own view
    of its fills, to compare with the broker's record)."""

    intervals = ("1m",)

    def __init__(self, buy_at_close: float = 0, **params):
        from strategies.trading import SmaCrossTrader

        self.inner = SmaCrossTrader(**params)
        self.buy_at_close = buy_at_close  # > 0: buys that many AAPL in each on_session_end (open over the close)

    def on_bar(self, ctx, symbol, interval, bar):
        self.inner.on_bar(ctx, symbol, interval, bar)

    def on_fill(self, ctx, fill):
        ctx.signal(fill.symbol, fill.side, abs(fill.qty), "fill", order_id=fill.order_id, price=fill.price,
                   ts=fill.ts, commission=fill.commission, cash=ctx.cash, position=ctx.position(fill.symbol))

    def on_session_end(self, ctx, date):
        """Its book at each close: cash and positions (a restarted process shows whether it kept them)."""
        ctx.signal("-", "buy", 0, "book", cash=ctx.cash, positions={s: ctx.position(s) for s in ("AAPL", "MSFT")})
        if self.buy_at_close:
            ctx.buy("AAPL", self.buy_at_close, tif="gtc")


class OrdersAtTheEnd(BuyOnce):
    """Buys 1 share on its first bar; in every on_session_end buys 2 shares at market (GTC) and, in on_stop,
    1 more: the one after an earlier session fills at the next session's open, the ones after the last bar
    are rejected with the reason. Records every on_order as a signal."""

    def on_session_end(self, ctx, date):
        ctx.buy("AAPL", 2, tif="gtc")

    def on_stop(self, ctx):
        ctx.buy("AAPL", 1)

    def on_order(self, ctx, order):
        ctx.signal(order.symbol, "buy", order.qty, f"order {order.id} {order.status.value}: {order.reason}",
                   clock=ctx.clock)
