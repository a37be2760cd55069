"""What a strategy sees: `ctx` (clock, replica views, signals, commands) and the `Bar` on_bar receives."""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import numpy as np

from common.domain.bars import FIELDS
from common.domain.quality import missing_runs
from common.domain.timeconv import datetime_from_ns, fmt_exchange


class Bar(NamedTuple):
    """One bar handed to on_bar: labelled by open time `ts`; `count` = 1m bars inside (1 for 1m). A named
    tuple: immutable, and built at the cost of a tuple (on_bar gets one per bar)."""
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    count: int = 1

    @property
    def time(self) -> str:
        """Open time as exchange-local 'HH:MM'."""
        return fmt_exchange(self.ts)

    @property
    def datetime(self) -> dt.datetime:
        """Open time as an exchange-local, timezone-aware datetime."""
        return datetime_from_ns(self.ts)


class IndicatorNotComputed(LookupError):
    """ctx.indicator() for an indicator this session does not compute."""


class Context:
    """What a strategy sees: the clock, the replica (read-only views) and signal()."""

    def __init__(self, handler, strategy_name: str):  # handler: services.analysis.handler.AnalysisHandler
        self._handler = handler
        self.strategy = strategy_name

    @property
    def clock(self) -> int:
        """The simulated clock, int64 UTC nanoseconds like every `ts` (every bar closed at or before it is
        known). `ctx.now()` gives it as an exchange-local datetime."""
        return self._handler.replica.clock_ns

    def now(self) -> dt.datetime:
        """The clock as an exchange-local (America/New_York), timezone-aware datetime."""
        return datetime_from_ns(self.clock)

    @staticmethod
    def exchange_time(ns: int) -> dt.datetime:
        """Any engine timestamp (int64 UTC ns: a clock, a bar's ts) as an exchange-local datetime."""
        return datetime_from_ns(int(ns))

    @staticmethod
    def fmt(ns: int, with_date: bool = False) -> str:
        """A timestamp as exchange-local 'HH:MM' (or 'YYYY-MM-DD HH:MM')."""
        return fmt_exchange(int(ns), with_date=with_date)

    @property
    def session_date(self) -> str | None:
        return self._handler.replica.date

    @property
    def symbols(self) -> list[str]:
        r = self._handler.replica
        return [s for s in r.symbols if s in r.active]

    def bars(self, symbol: str, interval: str = "1m"):
        return self._handler.replica.bars(symbol, interval)

    def history(self, symbol: str, interval: str = "1m"):
        return self._handler.replica.history_bars(symbol, interval)

    def latest(self, symbol: str, interval: str = "1m") -> Bar | None:
        bars, counts = self._handler.replica.bars_with_counts(symbol, interval)
        if not len(bars):
            return None
        return Bar(int(bars.ts[-1]), *(float(getattr(bars, f)[-1]) for f in FIELDS[1:]), int(counts[-1]))

    def indicator(self, symbol: str, interval: str, key: str, output: str = "value") -> np.ndarray:
        """Values of indicator `key` (e.g. 'sma(20)', 'macd(12,26,9)' with output 'hist') at the symbol's
        bars of `interval`, aligned with bars(symbol, interval); NaN while warming up. An indicator the
        session does not compute raises IndicatorNotComputed naming where to declare it."""
        outputs = self._handler.computed_indicators.get((interval, key))
        if outputs is None or output not in outputs:
            raise IndicatorNotComputed(_not_computed(interval, key, output, outputs,
                                                     self._handler.computed_indicators))
        return self._handler.replica.indicator(symbol, interval, key, output)

    def gaps(self, symbol: str, interval: str = "1m") -> list[tuple[str, str, int]]:
        """Runs of missing bars so far this session: (first missing, last missing, count), exchange time."""
        r = self._handler.replica
        grid = r.grids[interval]
        ends = np.minimum(r.open_ns + (np.arange(grid.n_rows) + 1) * grid.step_ns, r.close_ns)
        done = int(np.searchsorted(ends, r.clock_ns, side="right"))  # windows closed by the clock
        present = np.flatnonzero(grid.present[:done, r.slot_of[symbol]])
        return [(fmt_exchange(r.open_ns + a * grid.step_ns), fmt_exchange(r.open_ns + b * grid.step_ns), n)
                for a, b, n in missing_runs(present, done)]

    def quality(self, symbol: str) -> dict:
        return self._handler.replica.quality_of(symbol)

    def add_symbol(self, *symbols: str) -> None:
        """Ask the coordinator to add symbols at the next step boundary (a scanner). Sent before this
        step is acknowledged, so with flow.window 1 the add lands at the same clock on every run."""
        self._handler.outbox.append(("add-symbol", {"symbols": [s.upper() for s in symbols]}))

    def remove_symbol(self, *symbols: str) -> None:
        """Ask the coordinator to remove symbols at the next step boundary."""
        self._handler.outbox.append(("remove-symbol", {"symbols": [s.upper() for s in symbols]}))

    # ---- trading (needs "broker" in the config's stages) --------------------------------------------
    def order(self, symbol: str, qty: float, type: str = "market", limit: float | None = None,
              stop: float | None = None, tif: str = "day") -> int:
        """Place an order (qty > 0 buys, < 0 sells); returns its id. It is decided on the bar that opens at
        the current clock (the first bar this strategy has not seen); on_order tells it accepted or
        rejected (with a reason), on_fill each fill. A bad field raises OrderError naming it."""
        return self._handler.desk.order(self.strategy, symbol, qty, type, limit, stop, tif)

    def buy(self, symbol: str, qty: float, **kwargs) -> int:
        return self.order(symbol, abs(qty), **kwargs)

    def sell(self, symbol: str, qty: float, **kwargs) -> int:
        return self.order(symbol, -abs(qty), **kwargs)

    def cancel(self, order_id: int) -> bool:
        """Cancel an open order; False when it is no longer open (filled, expired, unknown)."""
        return self._handler.desk.cancel(self.strategy, order_id)

    def position(self, symbol: str) -> float:
        """Signed shares held (0.0 when flat)."""
        return self._handler.desk.position(self.strategy, symbol)

    def orders(self) -> list:
        """This strategy's open orders (copies: Order with id, symbol, qty, type, status, filled, ...)."""
        return self._handler.desk.open_orders(self.strategy)

    @property
    def cash(self) -> float:
        return self._handler.desk.cash(self.strategy)

    @property
    def equity(self) -> float:
        """Cash plus positions at their last close."""
        return self._handler.desk.equity(self.strategy)

    def signal(self, symbol: str, side: str, qty: float, reason: str = "", **extra) -> None:
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        self._handler.record_signal(self.strategy, symbol, side, float(qty), reason, extra)


def _not_computed(interval: str, key: str, output: str, outputs, computed: dict) -> str:
    if outputs is not None:
        return f"indicator {interval} {key} has outputs {', '.join(outputs)}, not {output!r}"
    listed = ", ".join(f"{i} {k}" for i, k in sorted(computed)) or "none"
    return (f"indicator {interval} {key} is not computed in this session: add it to the config's "
            f"\"indicators\" (e.g. {{\"name\": \"{key.split('(')[0]}\", \"interval\": \"{interval}\", "
            f"\"params\": {{...}}}}; keys and params: docs/indicators.md); computed: {listed}")
