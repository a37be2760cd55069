"""Analysis logic: a session-data replica plus the user's strategies, and the result files.

Strategy callbacks (all optional): on_start(ctx), on_session_start(ctx, date), on_bar(ctx, symbol, interval,
bar) (only for the intervals in the strategy's `intervals` attribute, when it has one), on_step(ctx, step), on_symbol_added(ctx, symbol), on_symbol_removed(ctx, symbol),
on_session_end(ctx, date), on_stop(ctx). Catch-up bars never reach on_bar: a symbol added mid-session
arrives whole, and the strategy hears once, through on_symbol_added.
"""
from __future__ import annotations

import importlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from common.wire import protocol as P
from common.domain.bars import FIELDS
from common.stage.replica import (SessionReplica, apply_coordinator_message, apply_processor_answer,
                            apply_quality_answer)
from common.domain.quality import missing_runs
from services.analysis.results import write_replica_dump, write_rows
from common.domain.timeconv import NS_PER_MIN, datetime_from_ns, fmt_exchange

SIGNAL_SCHEMA = pa.schema([
    ("clock_ns", pa.int64()), ("clock", pa.string()), ("session_date", pa.string()), ("strategy", pa.string()),
    ("symbol", pa.string()), ("side", pa.string()), ("qty", pa.float64()), ("reason", pa.string()),
    ("extra", pa.string()),
])
SUMMARY_SCHEMA = pa.schema([
    ("session_date", pa.string()), ("symbols", pa.string()), ("steps", pa.int64()),
    ("bars_seen", pa.string()), ("signals", pa.string()), ("errors", pa.string()), ("complete", pa.bool_()),
])


@dataclass(frozen=True)
class Bar:
    """One bar handed to on_bar: labelled by open time `ts`; `count` = 1m bars inside (1 for 1m)."""
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    count: int = 1

    @property
    def time(self) -> str:
        return fmt_exchange(self.ts)


class StrategyError(RuntimeError):
    pass


class Context:
    """What a strategy sees: the clock, the replica (read-only views) and signal()."""

    def __init__(self, handler: "AnalysisHandler", strategy_name: str):
        self._handler = handler
        self.strategy = strategy_name

    @property
    def clock_ns(self) -> int:
        return self._handler.replica.clock_ns

    @property
    def clock(self):
        """Exchange-time datetime of the clock."""
        return datetime_from_ns(self.clock_ns)

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

    def signal(self, symbol: str, side: str, qty: float, reason: str = "", **extra) -> None:
        if side not in ("buy", "sell"):
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        self._handler.record_signal(self.strategy, symbol, side, float(qty), reason, extra)


def _wanted_intervals(strategy, default: str) -> tuple[str, ...]:
    """A strategy's `intervals` attribute as a tuple ('5m' alone is one interval, not characters)."""
    wanted = getattr(strategy, "intervals", (default,))
    return (wanted,) if isinstance(wanted, str) else tuple(wanted)


def load_strategy(target: str, params: dict):
    """'package.module:Class' -> instance; errors name the target."""
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"strategy {target}: cannot load ({exc})") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ImportError(f"strategy {target}: bad params {params} ({exc})") from None


class AnalysisHandler:
    def __init__(self, config, log, name: str = "analysis", strategies=None, results_dir: Path | None = None,
                 listen_to=("processor", "quality")):
        self.config = config
        self.log = log
        self.name = name
        self.replica = SessionReplica()
        entries = config.strategies if strategies is None else strategies
        self.strategies = [(e.name, load_strategy(e.target, e.params), e.on_error) for e in entries]
        self.contexts = {n: Context(self, n) for n, _, _ in self.strategies}
        self.disabled: dict[str, str] = {}
        self.results_dir = Path(results_dir or config.results_dir) / name
        self.signals: list[dict] = []
        self.summary: list[dict] = []
        self.bars_seen: dict[str, int] = {}
        self.started = False
        self.stop_run = False  # a strategy with on_error="stop" raised: the runtime asks the coordinator to stop
        self.session_steps = 0
        self.silent = False  # replaying a snapshot: rebuild state, call no strategy
        self.outbox: list[tuple[str, dict]] = []  # commands strategies asked for, sent by the runtime

    def take_commands(self) -> list[tuple[str, dict]]:
        out, self.outbox = self.outbox, []
        return out

    def replay(self, messages: list) -> None:
        """Late join (Clone pattern): rebuild the replica from the coordinator's session journal.

        Processor and quality answers for the journal are recomputed here with the same kernels the
        processor and quality processes run, so the result is identical to theirs; no strategy is
        called. Then the strategies start: on_start, and on_session_start when a session is running.
        """
        from common.answers.derived import ProcessorHandler
        from common.answers.quality import QualityHandler
        from common.stage.runtime import RESPONSES

        processor, quality = ProcessorHandler(self.config, self.log), QualityHandler(self.config, self.log)
        self.replica = SessionReplica()
        self.silent = True
        try:
            for msg in messages:
                answers = {}
                for stage, local in (("processor", processor), ("quality", quality)):
                    out = local.handle(msg, {})
                    if msg.type in RESPONSES[stage] and out:
                        answers[stage] = out[0]
                self.handle(msg, answers)
        finally:
            self.silent = False
        if not self.started:
            self.started = True
            self._call_all("on_start")
            if self.replica.date and self.replica.steps < self._session_steps_total():
                self._call_all("on_session_start", self.replica.date)

    def _session_steps_total(self) -> int:
        return (self.replica.close_ns - self.replica.open_ns) // NS_PER_MIN
    # ---- message handling ----------------------------------------------------------------------
    def handle(self, msg: P.Message, answers: dict) -> list:
        apply_coordinator_message(self.replica, msg)
        derived = answers.get("processor")
        if derived is not None:
            apply_processor_answer(self.replica, derived)
        if answers.get("quality") is not None:
            apply_quality_answer(self.replica, answers["quality"])
        kind = msg.type
        if self.stop_run:
            return []  # halted at the failing step: what follows depends on timing, so it is not recorded
        if kind == P.SESSION_START:
            self.session_steps = 0
            self.bars_seen = {}
            if not self.started and not self.silent:
                self.started = True
                self._call_all("on_start")
            self._call_all("on_session_start", msg.body["date"])
        elif kind == P.STEP:
            self.session_steps += 1
            self._on_step(msg, derived)
        elif kind == P.CATCHUP_SNAPSHOT:
            self._call_all("on_symbol_added", msg.body["symbol"])
        elif kind == P.SYMBOL_REMOVED:
            self._call_all("on_symbol_removed", msg.body["symbol"])
        elif kind == P.SESSION_END:
            self._call_all("on_session_end", msg.body["date"])
            self._end_of_day(msg.body["date"])
        elif kind == P.BACKTEST_END:
            self._call_all("on_stop")
        return []

    def _on_step(self, msg: P.Message, derived: P.Message | None) -> None:
        slots, bars = P.batch_from_arrays(msg.arrays)
        batches = [("1m", slots, bars, np.ones(len(slots), np.int64))]
        if derived is not None:
            for interval in derived.body["intervals"]:
                d_slots, d_bars = P.batch_from_arrays(derived.arrays, f"{interval}_")
                batches.append((interval, d_slots, d_bars, derived.arrays[f"{interval}_count"]))
        for interval, s, _, _ in batches:
            self.bars_seen[interval] = self.bars_seen.get(interval, 0) + len(s)
        if self.silent:
            return
        wants_bar = [(n, st) for n, st, _ in self.strategies if hasattr(st, "on_bar") and n not in self.disabled]
        wants_step = [(n, st) for n, st, _ in self.strategies if hasattr(st, "on_step") and n not in self.disabled]
        if wants_bar:
            symbols = self.replica.symbols
            for interval, s, b, counts in batches:
                takers = [(n, st) for n, st in wants_bar if interval in _wanted_intervals(st, interval)]
                if not takers:
                    continue
                for i in range(len(s)):
                    bar = Bar(int(b.ts[i]), float(b.open[i]), float(b.high[i]), float(b.low[i]),
                              float(b.close[i]), float(b.volume[i]), int(counts[i]))
                    symbol = symbols[int(s[i])]
                    for name, strategy in takers:
                        if name not in self.disabled:
                            self._call(name, strategy, "on_bar", symbol, interval, bar)
        if wants_step:
            step = {interval: {"symbols": [self.replica.symbols[int(x)] for x in s], "bars": b, "count": c}
                    for interval, s, b, c in batches}
            for name, strategy in wants_step:
                if name not in self.disabled:
                    self._call(name, strategy, "on_step", step)

    # ---- strategy calls ------------------------------------------------------------------------
    def _call_all(self, callback: str, *args) -> None:
        if self.silent:
            return
        for name, strategy, _ in self.strategies:
            if name not in self.disabled and hasattr(strategy, callback):
                self._call(name, strategy, callback, *args)

    def _call(self, name: str, strategy, callback: str, *args) -> None:
        try:
            getattr(strategy, callback)(self.contexts[name], *args)
        except Exception as exc:  # a user's strategy may raise anything; report it and go on
            symbol = args[0] if args and isinstance(args[0], str) and callback != "on_session_start" else "-"
            entry = next(e for n, _, e in self.strategies if n == name)
            self.log.error("strategy %s raised in %s (symbol %s, clock %s): %s: %s; %s", name, callback, symbol,
                           fmt_exchange(self.replica.clock_ns, with_date=True), type(exc).__name__, exc,
                           "stopping the run" if entry == "stop" else "strategy disabled")
            self.disabled[name] = f"{callback} {symbol} {fmt_exchange(self.replica.clock_ns, with_date=True)}: {exc}"
            if entry == "stop":
                self.stop_run = True

    def record_signal(self, strategy: str, symbol: str, side: str, qty: float, reason: str, extra: dict) -> None:
        clock = self.replica.clock_ns
        self.signals.append({"clock_ns": clock, "clock": fmt_exchange(clock, with_date=True),
                             "session_date": self.replica.date, "strategy": strategy, "symbol": symbol,
                             "side": side, "qty": qty, "reason": reason,
                             "extra": json.dumps(extra, sort_keys=True, default=str)})

    # ---- results -------------------------------------------------------------------------------
    def _end_of_day(self, date: str, complete: bool = True) -> None:
        per_strategy = {n: 0 for n, _, _ in self.strategies}
        for s in self.signals:
            if s["session_date"] == date:
                per_strategy[s["strategy"]] = per_strategy.get(s["strategy"], 0) + 1
        active = sorted(self.replica.active)
        self.summary.append({"session_date": date, "symbols": ",".join(active), "steps": self.session_steps,
                             "bars_seen": json.dumps(self.bars_seen, sort_keys=True),
                             "signals": json.dumps(per_strategy, sort_keys=True),
                             "errors": json.dumps(self.disabled, sort_keys=True), "complete": complete})
        if self.config.dump_replica and complete:
            write_replica_dump(self.results_dir / f"replica_{date}.parquet", self.replica.export())
        self.log.info("session %s: %d steps, bars seen %s, signals %s", date, self.session_steps,
                      self.bars_seen, per_strategy)

    def flush(self) -> None:
        """Write the results; a session cut short (stop, strategy error) gets a summary row marked incomplete."""
        if self.replica.date and not any(r["session_date"] == self.replica.date for r in self.summary):
            self._end_of_day(self.replica.date, complete=False)
        self.results_dir.mkdir(parents=True, exist_ok=True)
        write_rows(self.results_dir / "signals.parquet", self.signals, SIGNAL_SCHEMA)
        write_rows(self.results_dir / "summary.parquet", self.summary, SUMMARY_SCHEMA)
        self.log.info("results written to %s: %d signal(s) over %d session(s)", self.results_dir,
                      len(self.signals), len(self.summary))
        for row in self.summary:
            self.log.info("  %s  steps %d  bars %s  signals %s", row["session_date"], row["steps"],
                          row["bars_seen"], row["signals"])
