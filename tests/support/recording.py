"""Strategies used by the integration tests: they record what they saw as signals."""


class ClockRecorder:
    """One signal per step with the clock and the number of 1m bars in it."""

    def on_step(self, ctx, step):
        ctx.signal("CLOCK", "buy", len(step["1m"]["symbols"]), "step")


class CallbackRecorder:
    """One signal per callback: which callback, symbol, interval and bar time (catch-up checks)."""

    def on_bar(self, ctx, symbol, interval, bar):
        ctx.signal(symbol, "buy", bar.count, f"on_bar {interval} {bar.ts}")

    def on_symbol_added(self, ctx, symbol):
        ctx.signal(symbol, "buy", len(ctx.bars(symbol)), "on_symbol_added")

    def on_symbol_removed(self, ctx, symbol):
        ctx.signal(symbol, "sell", 0, "on_symbol_removed")


class Slow:
    """Deliberately slow on every step, so an observer with a small buffer falls behind and loses messages."""

    def on_step(self, ctx, step):
        import time
        time.sleep(0.01)


class Raiser:
    """Raises on the 10th 1m bar it sees (error-handling tests)."""

    def __init__(self):
        self.seen = 0

    def on_bar(self, ctx, symbol, interval, bar):
        self.seen += 1
        if self.seen == 10:
            raise ZeroDivisionError("boom")


class Scanner(CallbackRecorder):
    """Adds AAPL when it sees MSFT's 10:00 bar (a scanner), once; records callbacks like its parent."""

    intervals = ("1m",)

    def __init__(self):
        self.done = False

    def on_bar(self, ctx, symbol, interval, bar):
        super().on_bar(ctx, symbol, interval, bar)
        if symbol == "MSFT" and bar.time == "10:00" and not self.done:
            self.done = True
            ctx.add_symbol("AAPL")


class ContextRecorder:
    """Keeps every callback, in order, with what ctx showed at that moment (in memory, `calls`)."""

    indicators = {"1m": ["sma(3)"], "5m": ["sma(3)"]}

    def __init__(self):
        self.calls = []

    def _seen(self, ctx, *what):
        shown = {s: (len(ctx.bars(s)), len(ctx.bars(s, "5m")), ctx.quality(s).get("1m", {}).get("pct"),
                     ctx.latest(s, "15m"), ctx.indicator(s, "1m", "sma(3)").tolist(),
                     ctx.indicator(s, "5m", "sma(3)").tolist()) for s in ctx.symbols}
        self.calls.append(repr((what, ctx.clock, ctx.session_date, shown)))

    def on_session_start(self, ctx, date):
        self._seen(ctx, "session_start", date)

    def on_bar(self, ctx, symbol, interval, bar):
        self._seen(ctx, "bar", symbol, interval, bar)

    def on_step(self, ctx, step):
        self._seen(ctx, "step", {i: (part["symbols"], part["bars"].close.tolist()) for i, part in step.items()})

    def on_symbol_added(self, ctx, symbol):
        self._seen(ctx, "added", symbol)

    def on_session_end(self, ctx, date):
        self._seen(ctx, "session_end", date)
