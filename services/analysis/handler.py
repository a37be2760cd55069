"""Analysis logic: a session-data replica plus the user's strategies, and the result files.

Strategy callbacks (all optional): on_start(ctx), on_session_start(ctx, date), on_bar(ctx, symbol, interval,
bar) (only for the intervals in the strategy's `intervals` attribute, when it has one), on_step(ctx, step), on_symbol_added(ctx, symbol), on_symbol_removed(ctx, symbol),
on_session_end(ctx, date), on_stop(ctx). Catch-up bars never reach on_bar: a symbol added mid-session
arrives whole, and the strategy hears once, through on_symbol_added.
"""
from __future__ import annotations

import dataclasses
import json
import traceback
from itertools import repeat
from pathlib import Path

import numpy as np

from common import progress
from common.answers.derived import DerivedAnswers, IndicatorSet
from common.answers.quality import QualityAnswers
from common.domain.timeconv import NS_PER_MIN, fmt_exchange
from common.runs import is_run_id
from common.stage.replica import (
    SessionReplica,
    apply_coordinator_message,
    apply_indicator_blocks,
    apply_processor_answer,
    apply_quality_answer,
)
from common.wire import protocol as P
from services.analysis.context import Bar, Context
from services.analysis.results import (
    SIGNAL_SCHEMA,
    SUMMARY_SCHEMA,
    write_replica_dump,
    write_rows,
)
from services.analysis.trading import TradingDesk
from services.analysis.strategies import (
    declared_indicators,
    load_strategy,
    wanted_intervals,
)


class AnalysisHandler:
    def __init__(self, config, log, name: str = "analysis", strategies=None, results_dir: Path | None = None,
                 listen_to=("processor", "quality"), observer: bool = False):
        self.config = config
        self.log = log
        self.name = name
        self.replica = SessionReplica()
        entries = config.strategies if strategies is None else strategies
        self.strategies = [(e.name, load_strategy(e.target, e.params), e.on_error) for e in entries]
        self.contexts = {n: Context(self, n) for n, _, _ in self.strategies}
        self.disabled: dict[str, str] = {}
        self.results_root = Path(results_dir or config.results_dir)
        self.run_id: str | None = None  # from SESSION_START: results go to results/<run id>/<name>/
        self.signals: list[dict] = []
        self.summary: list[dict] = []
        self.bars_seen: dict[str, int] = {}
        self.started = False
        self.stop_run = False  # a strategy with on_error="stop" raised: the runtime asks the coordinator to stop
        self.session_steps = 0
        self.silent = False  # replaying a snapshot: rebuild state, call no strategy
        self._takers: dict[tuple[str, int], list] = {}  # (interval, strategies disabled) -> on_bar takers
        self.outbox: list[tuple[str, dict]] = []  # commands strategies asked for, sent by the runtime
        # indicators the strategies declared (sent with HELLO) and what the session computes
        self.declared = declared_indicators(self.strategies, config)
        self.computed_indicators = IndicatorSet(config.session_indicators(self.declared), 1).catalog()
        self.desk = TradingDesk(config, [n for n, _, _ in self.strategies], observer)
        self.listeners = {(n, cb): st for n, st, _ in self.strategies for cb in ("on_order", "on_fill")
                          if hasattr(st, cb)}

    def trades(self) -> bool:
        return self.desk.enabled

    def ack_fields(self) -> dict:
        return self.desk.ack_fields()

    def status(self) -> dict | None:
        return None

    def wanted_indicators(self) -> list[dict]:
        """Indicator entries to compute for this stage's strategies (HELLO carries them)."""
        return self.declared

    def take_commands(self) -> list[tuple[str, dict]]:
        out, self.outbox = self.outbox, []
        return out

    def stop_wanted(self) -> bool:
        return self.stop_run

    def replay(self, messages: list) -> list:
        """Late join (Clone pattern): rebuild the replica from the coordinator's session journal.

        Processor and quality answers for the journal are recomputed here with the same kernels the
        processor and quality processes run, so the result is identical to theirs; no strategy is
        called. Then the strategies start: on_start, and on_session_start when a session is running.
        """
        local = {"processor": DerivedAnswers(self.config, self.log), "quality": QualityAnswers(self.config, self.log)}
        self.replica = SessionReplica()
        own = self.desk.start_replay(messages, self.name) if self.desk.enabled else 0
        first = messages[0] if messages else P.Message(P.SHUTDOWN)
        if self.desk.enabled and first.type == P.SESSION_START and first.body.get("day_index", 0) > 0:
            self._take_run_id(first.body.get("run_id"))  # a restart on a later session: the book it had
            self.desk.restore(first.body["day_index"], self.log)
        self.silent = True
        try:
            for msg in messages:
                progress.tick()
                answers = {}
                for stage, answerer in local.items():
                    payload = answerer.answer(msg)
                    if payload is not None:
                        answers[stage] = P.Message(P.ANSWERS[stage][msg.type], payload=payload)
                self.handle(msg, answers)  # books again what this stage placed at msg before
        finally:
            self.silent = False
            differ = self.desk.end_replay()
        if own or differ:
            self.log.info("book rebuilt from this session's journal: %d order action(s), %d id(s) differ",
                          own, differ)
        if not self.started:
            self.started = True
            self._call_all("on_start")
            if self.replica.date and self.replica.steps < self._session_steps_total():
                self._call_all("on_session_start", self.replica.date)
        return []  # an analysis process publishes nothing

    def _session_steps_total(self) -> int:
        return (self.replica.close_ns - self.replica.open_ns) // NS_PER_MIN
    # ---- message handling ----------------------------------------------------------------------
    def handle(self, msg: P.Message, answers: dict, part: int = 0, indicators_written: bool = False) -> list:
        """One coordinator message (`part`: its step in a STEPS batch being split, whose indicator values
        are then `indicators_written` already) with its answers."""
        if msg.type == P.STEPS:
            return self._handle_batch(msg, answers)
        apply_coordinator_message(self.replica, msg)
        derived = answers.get("processor")
        if derived is not None:
            apply_processor_answer(self.replica, derived.payload, indicators=not indicators_written)
        if answers.get("quality") is not None:
            apply_quality_answer(self.replica, answers["quality"].payload)
        self.desk.on_message(msg, part)  # fills of this step, expiries at the close: before any strategy hears
        if self.stop_run:
            return []  # halted at the failing step: what follows depends on timing, so it is not recorded
        self._deliver_trading_events()
        self._dispatch(msg, derived)
        self._deliver_trading_events()
        return []

    def _deliver_trading_events(self) -> None:
        """on_order / on_fill to the strategy that owns the order, until no callback places more."""
        if not self.listeners:  # no strategy has on_order / on_fill: nothing to deliver
            self.desk.take_events()
            return
        for _ in range(100):
            events = self.desk.take_events()
            if not events or self.silent:
                return
            for event in events:
                name = event[1].account
                callback = "on_order" if event[0] == "order" else "on_fill"
                strategy = self.listeners.get((name, callback))
                if strategy is not None and name not in self.disabled:
                    # an order changes after the event: the strategy gets it as it was (a fill never changes)
                    self._call(name, strategy, callback, dataclasses.replace(event[1]) if event[0] == "order"
                               else event[1])

    def _dispatch(self, msg: P.Message, derived) -> None:
        kind = msg.type
        if kind == P.SESSION_START:
            self._take_run_id(msg.body.get("run_id"))
            self.computed_indicators = IndicatorSet(msg.body.get("indicators", self.config.indicators), 1).catalog()
            self.session_steps = 0
            self.bars_seen = {}
            if not self.started and not self.silent:
                self.started = True
                self._call_all("on_start")
        elif kind == P.HISTORY:  # follows SESSION_START: the day starts for strategies with history in place
            self._call_all("on_session_start", self.replica.date)
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
            self._take_run_id(msg.body.get("run_id"))  # a run aborted before its first session
            self._call_all("on_stop")

    def _handle_batch(self, msg: P.Message, answers: dict) -> list:
        """A STEPS batch, one step at a time: the replica and every callback as if each step came alone."""
        steps = P.split_batch(msg)
        upstream = {stage: P.split_batch(answer) for stage, answer in answers.items()}
        for stage, parts in upstream.items():
            if [m.step for m in parts] != [m.step for m in steps]:
                raise P.ProtocolError(f"{stage} answered steps {[m.step for m in parts]} to STEPS of "
                                      f"{[m.step for m in steps]}")
        if "processor" in upstream:  # the batch's indicator values in one write per output (unseen ahead of their bars)
            apply_indicator_blocks(self.replica, [m.payload for m in upstream["processor"]])
        for i, step in enumerate(steps):
            self.handle(step, {stage: parts[i] for stage, parts in upstream.items()}, i, indicators_written=True)
        return []

    def _on_step(self, msg: P.Message, derived: P.Message | None) -> None:
        step = msg.payload.batch
        batches = [("1m", step.slots, step.bars, None)]
        if derived is not None:
            batches += [(interval, b.slots, b.bars, b.counts) for interval, b in derived.payload.session.items()]
        for interval, s, _, _ in batches:
            self.bars_seen[interval] = self.bars_seen.get(interval, 0) + len(s)
        if self.silent:
            return
        for interval, s, b, counts in batches:
            takers = self._bar_takers(interval)
            if takers and len(s):
                self._call_on_bar(takers, interval, s, b, counts)
        steppers = [(n, st) for n, st, _ in self.strategies if hasattr(st, "on_step") and n not in self.disabled]
        if steppers:
            symbols = self.replica.symbols
            view = {interval: {"symbols": [symbols[x] for x in s.tolist()], "bars": b,
                               "count": np.ones(len(s), np.int64) if c is None else c}
                    for interval, s, b, c in batches}
            for name, strategy in steppers:
                if name not in self.disabled:
                    self._call(name, strategy, "on_step", view)

    def _bar_takers(self, interval: str) -> list:
        """(name, bound on_bar, ctx) of the enabled strategies that take `interval`'s bars, in order."""
        key = (interval, len(self.disabled))
        takers = self._takers.get(key)
        if takers is None:
            takers = self._takers[key] = [
                (name, strategy.on_bar, self.contexts[name]) for name, strategy, _ in self.strategies
                if hasattr(strategy, "on_bar") and name not in self.disabled
                and interval in wanted_intervals(strategy, interval)]
        return takers

    def _call_on_bar(self, takers: list, interval: str, s: np.ndarray, b, counts) -> None:
        """on_bar for every bar of one interval: one Bar (a tuple) per bar, columns read as Python lists."""
        symbols, disabled = self.replica.symbols, self.disabled
        counts = repeat(1) if counts is None else counts.tolist()
        for slot, ts, o, h, lo, c, v, n in zip(s.tolist(), b.ts.tolist(), b.open.tolist(), b.high.tolist(),
                                               b.low.tolist(), b.close.tolist(), b.volume.tolist(), counts):
            bar = Bar(ts, o, h, lo, c, v, n)
            symbol = symbols[slot]
            for name, on_bar, ctx in takers:
                if name in disabled:
                    continue
                try:
                    on_bar(ctx, symbol, interval, bar)
                except Exception as exc:  # a user's strategy may raise anything; report it and go on
                    self._failed(name, "on_bar", (symbol, interval, bar), exc)

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
            self._failed(name, callback, args, exc)

    def _failed(self, name: str, callback: str, args: tuple, exc: Exception) -> None:
        """Log a strategy's exception in one line; disable the strategy or stop the run (its on_error)."""
        symbol = args[0] if args and isinstance(args[0], str) and callback != "on_session_start" else "-"
        entry = next(e for n, _, e in self.strategies if n == name)
        self.log.error("strategy %s raised in %s (symbol %s, clock %s): %s: %s; %s; traceback: %s", name,
                       callback, symbol, fmt_exchange(self.replica.clock_ns, with_date=True), type(exc).__name__,
                       exc, "stopping the run" if entry == "stop" else "strategy disabled", one_line_traceback(exc))
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
    def _take_run_id(self, run_id) -> None:
        if run_id is None or run_id == self.run_id:
            return
        if not is_run_id(run_id):
            self.log.error("SESSION_START names run %r, which is not a run id: results go to %s", run_id,
                           self.results_root / self.name)
            return
        self.run_id = run_id
        if self.desk.enabled:
            self.desk.checkpoint = self.results_dir / ".checkpoint" / "book.msgpack"

    @property
    def results_dir(self) -> Path:
        """results/<run id>/<stage name>/ (results/<stage name>/ when no run id was announced)."""
        return (self.results_root / self.run_id if self.run_id else self.results_root) / self.name

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
        if self.desk.after_end:
            self.log.warning("%d order(s) placed after the backtest's last bar were rejected (on_order told the "
                             "strategy; the broker's files hold only what could trade)", self.desk.after_end)


def one_line_traceback(exc: BaseException) -> str:
    """The frames below the strategy call as 'file:line in function' joined by ' > ' (the log stays one
    line per event and still shows where the strategy failed)."""
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # [0] is AnalysisHandler._call itself
    return " > ".join(f"{_short_path(f.filename)}:{f.lineno} in {f.name}" for f in frames) or "-"


def _short_path(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(Path.cwd()))
    except ValueError:
        return filename
