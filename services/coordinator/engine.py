"""The coordinator's session state machine, free of sockets.

`SessionEngine` owns the simulated clock, the per-session symbol table and bar batches, the credit window
and the add/remove-symbol flow. The coordinator service feeds it registrations, acks, commands and the
wall time, and gives it a `publish(Message)` callable; `advance(now)` publishes as much as credits, pacing
and pauses allow, and says how long the service may wait before calling again.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

import numpy as np

from common.wire import protocol as P
from common.domain.bars import Bars
from common.domain.calendar import TradingCalendar
from common.config import SessionConfig, check_ticker, ConfigError
from services.coordinator.day import DayBatch, merge_step
from common.domain.quality import missing_runs
from common.data.store import BarStore, StoreError
from common.domain.timeconv import NS_PER_MIN, exchange_ns, fmt_exchange, parse_wall_time

log = logging.getLogger("coordinator")


class CommandError(ValueError):
    """A ctl command that cannot be applied; the session is left unchanged."""


@dataclass
class StageInfo:
    name: str
    role: str
    pid: int
    last_step_ack: int = 0
    last_ack_wall: float = 0.0
    stalled: bool = False
    busy_ns: list = field(default_factory=list)
    waited_on: int = 0
    flushed: bool = False
    snapshot_ack: int = 0


@dataclass
class PendingOp:
    """A queued add/remove: applied at a step boundary (at_clock None = the next one)."""
    request_id: str
    command: str
    symbols: tuple[str, ...]
    at_clock: int | None
    session_date: dt.date | None
    wall_time: dt.time | None = None  # scheduled ops: exchange time, resolved per session


@dataclass
class DynamicInfo:
    symbol: str
    added_clock: int
    added_date: str
    caught_up: int
    dropped: int
    history_days: int
    history_wanted: int
    status: str = "active"


class SessionEngine:
    def __init__(self, config: SessionConfig, calendar: TradingCalendar, store: BarStore, publish,
                 clock=time.monotonic):
        self.config = config
        self.calendar = calendar
        self.store = store
        self.publish = publish
        self.clock = clock
        self.sessions = calendar.sessions(config.start_date, config.end_date)
        if not self.sessions:
            raise ConfigError(f"session: no trading session between {config.start_date} and {config.end_date}")
        self.state = "waiting"       # waiting -> running <-> paused -> ending -> done
        self.stages: dict[str, StageInfo] = {}
        self.base_symbols = list(config.symbols)
        self.dynamic: dict[str, DynamicInfo] = {}
        self.pending: list[PendingOp] = []
        self.replies: dict[str, dict] = {}
        self.speed = config.clock_speed
        self.day_index = -1
        self.global_step = 0
        self.snapshot_id = 0
        self.awaiting_snapshot: int | None = None
        self.operator_paused = False
        self.stop_requested = False
        self.started_wall: float | None = None
        self.run_first_step_wall: float | None = None
        self.run_end_wall: float | None = None
        self.bars_published = 0
        self.steps_published = 0
        self.history_cache: dict[tuple[str, dt.date], Bars] = {}
        self.session_symbols: list[str] = []
        self.active: np.ndarray = np.zeros(0, bool)
        self.batch: DayBatch | None = None
        self.extra: list[tuple[int, DayBatch]] = []
        self.caught_ts: dict[int, np.ndarray] = {}  # catch-up bars of symbols added this session
        self.prefetched: dict[tuple[str, dt.date], tuple] = {}
        self.drain_started: float | None = None
        self.waited_counted = -1  # the step whose credit wait was already charged to a stage
        self.catchup_load_ms = 0.0
        self.journal: list[list] = []  # frames of every message since the current SESSION_START
        self.journal_seq = 0
        self.day: dt.date | None = None
        self.clock_ns = self.open_ns = self.close_ns = 0
        self.step_row = self.n_minutes = 0
        self.pace_origin, self.pace_row = clock(), 0
        self._schedule_config()

    def _publish(self, msg: P.Message) -> None:
        """Publish and journal: a late joiner's snapshot is the current session's journal."""
        if msg.type == P.SESSION_START:
            self.journal = []
        frames = self.publish(msg)
        if frames is not None:
            self.journal.append(frames)
            self.journal_seq = msg.seq

    def snapshot(self) -> tuple[int, list[list]]:
        """(last seq covered, journal frames): replaying them rebuilds every stage's session state."""
        return self.journal_seq, list(self.journal)

    # ---- registration and acks -----------------------------------------------------------------
    def on_hello(self, stage: str, role: str, pid: int = 0) -> dict:
        """Register a stage. A name held by another live process is refused (two processes under one
        name would merge their acks and overwrite each other's results); the same process may re-register
        (resync), and a stalled holder may be replaced (a restarted stage)."""
        if role not in P.STAGE_ROLES:
            raise CommandError(f"role {role!r} is not one of {', '.join(P.STAGE_ROLES)}")
        info = self.stages.get(stage)
        if info is not None and info.pid != pid and not info.stalled:
            raise CommandError(f"stage name {stage!r} is taken by pid {info.pid}; start this one with --name")
        if info is None or info.role != role or info.pid != pid:
            info = self.stages[stage] = StageInfo(stage, role, pid)
        info.last_step_ack = self.global_step
        info.snapshot_ack = self.snapshot_id  # a joiner's snapshot (the journal) includes every catch-up so far
        info.last_ack_wall = self.clock()
        log.info("stage registered: %s (%s, pid %d)", stage, role, pid)
        return {"ok": True, "hello": True, "state": self.state, "step": self.global_step}

    def participants(self) -> list[StageInfo]:
        return [s for s in self.stages.values() if s.role == "participant"]

    def on_ack(self, body: dict) -> None:
        info = self.stages.get(body["stage"])
        if info is None:
            log.warning("ack from unregistered stage %s ignored", body["stage"])
            return
        now = self.clock()
        if info.stalled:
            log.info("stage %s acknowledges again after a stall", info.name)
            info.stalled = False
        info.last_ack_wall = now
        kind, ref = body["kind"], body["ref"]
        if kind == "step":
            if ref > info.last_step_ack:
                info.last_step_ack = ref
            busy = body.get("busy_list")
            if isinstance(busy, list):
                info.busy_ns.extend(int(b) for b in busy)
            elif body.get("busy_ns"):
                info.busy_ns.append(int(body["busy_ns"]))
        elif kind == "snapshot":
            info.snapshot_ack = max(info.snapshot_ack, ref)
        elif kind == "flushed":
            info.flushed = True

    def _stall_check(self, now: float) -> None:
        for info in self.participants():
            behind = self.global_step > info.last_step_ack or (
                self.awaiting_snapshot is not None and info.snapshot_ack < self.awaiting_snapshot)
            if behind and not info.stalled and now - info.last_ack_wall > self.config.ack_timeout_s:
                info.stalled = True
                log.error("stage %s has not acknowledged for %.1f s (last ack step %d, published %d)",
                          info.name, now - info.last_ack_wall, info.last_step_ack, self.global_step)

    # ---- main driver ---------------------------------------------------------------------------
    def advance(self, now: float) -> float | None:
        """Publish what can be published now; returns seconds until a timed action (None = wait for input)."""
        self._stall_check(now)
        if self.state == "waiting":
            missing = [s for s in self.config.stages if s not in self.stages]
            if missing:
                return None
            self.started_wall = now
            self._begin_session(0)
        while self.state in ("running", "paused"):
            now = self.clock()  # loading a session or a catch-up takes time: never pace on a stale now
            if self.stop_requested:  # first: a stage that never acks a snapshot must not block a stop
                self._end_backtest("stopped")
                break
            if self.awaiting_snapshot is not None:
                if any(s.snapshot_ack < self.awaiting_snapshot for s in self.participants()):
                    return None
                self._finish_catchup()
            if self._due_ops():
                if not self._all_acked():
                    # let the stages finish the steps in flight first: the catch-up then meets idle
                    # stages, and the clock is frozen either way (no step is published meanwhile)
                    if self.drain_started is None:
                        self.drain_started = time.perf_counter()
                    return None
                self._apply_ops(now)
                continue
            if self.operator_paused:
                return None
            if self.step_row >= self.n_minutes:
                if not self._all_acked():
                    return None
                self._end_session()
                continue
            if not self._has_credit():
                self._count_waited_on()
                return None
            if self._op_due_after_next_step() and not self._all_acked():
                # lookahead: an add/remove is scheduled right after the step about to go out; let the
                # stages catch up first, so the pause at that boundary does not wait for a backlog
                return None
            wait = self._pace_wait(now)
            if wait > 0:
                return wait
            self._publish_step(now)
        return None

    def _has_credit(self) -> bool:
        parts = self.participants()
        if not parts:
            return True
        return self.global_step - min(s.last_step_ack for s in parts) < self.config.flow_window

    def _all_acked(self) -> bool:
        return all(s.last_step_ack >= self.global_step for s in self.participants())

    def _count_waited_on(self) -> None:
        """Once per step held back by the window: charge the stage with the oldest ack."""
        parts = self.participants()
        if parts and self.waited_counted != self.global_step:
            self.waited_counted = self.global_step
            min(parts, key=lambda s: s.last_step_ack).waited_on += 1

    def _pace_wait(self, now: float) -> float:
        if self.speed is None:
            return 0.0
        due = self.pace_origin + (self.step_row - self.pace_row + 1) * 60.0 / self.speed
        return max(0.0, due - now)

    def set_speed(self, speed: float | None) -> None:
        self.speed = speed
        self._reset_pacing()

    def _reset_pacing(self) -> None:
        """Restart the pacing origin (after pauses and speed changes), so drift never accumulates."""
        self.pace_origin = self.clock()
        self.pace_row = self.step_row

    # ---- one session ---------------------------------------------------------------------------
    def _begin_session(self, index: int) -> None:
        self.day_index = index
        day = self.sessions[index]
        self.day = day
        self.open_ns, self.close_ns = self.calendar.open_close_ns(day)
        self.n_minutes = (self.close_ns - self.open_ns) // NS_PER_MIN
        self.clock_ns = self.open_ns
        self.step_row = 0
        self.state = "paused" if self.operator_paused else "running"
        symbols = self.base_symbols + [s for s in self.dynamic if s not in self.base_symbols
                                       and self.dynamic[s].status == "active"]
        per_slot, kept, dropped_total = [], [], 0
        for symbol, (bars, dropped) in zip(symbols, self.store.read_sessions(symbols, day, self.open_ns,
                                                                           self.close_ns)):
            dropped_total += dropped
            if not len(bars):
                if self.config.missing_data == "error":
                    raise StoreError(f"{symbol}: no bars in the store for session {day}")
                log.warning("%s: no bars for %s, dropped from this session", symbol, day)
                continue
            kept.append(symbol)
            per_slot.append((len(kept) - 1, bars))
        self.session_symbols = kept
        self.active = np.ones(len(kept), bool)
        self.batch = DayBatch.build(per_slot, self.open_ns, self.n_minutes)
        self.extra = []
        self.caught_ts = {}
        generated = {s: self.config.derived_minutes() for s in kept}
        log.info("session %s (%d/%d): open %s close %s, %d symbols, %d bars queued, %d extended-hours bars dropped",
                 day, index + 1, len(self.sessions), fmt_exchange(self.open_ns), fmt_exchange(self.close_ns),
                 len(kept), len(self.batch.bars), dropped_total)
        self._publish(P.Message(P.SESSION_START, {
            "date": day.isoformat(), "open_ns": self.open_ns, "close_ns": self.close_ns,
            "symbols": kept, "day_index": index, "n_days": len(self.sessions),
            "streamed": {s: ["1m"] for s in kept}, "generated": generated,
            "dynamic": [s for s in kept if s in self.dynamic],
        }, step=self.global_step, clock=self.clock_ns))
        self._publish_history(kept, list(range(len(kept))))
        self.prefetched = {}
        self._prefetch_scheduled()
        self._reset_pacing()

    def _history_for(self, symbol: str) -> tuple[Bars, list[str], int]:
        """Trailing regular-hours 1m bars of `symbol` before the current session (cached per day)."""
        wanted = self.config.history_days(symbol)
        if wanted == 0:
            return Bars.empty(), [], 0
        parts, days = [], []
        for day in self.calendar.sessions_before(self.day, wanted):
            key = (symbol, day)
            bars = self.history_cache.get(key)
            if bars is None:
                o, c = self.calendar.open_close_ns(day)
                bars = self.store.read_session(symbol, day, o, c)[0]
                self.history_cache[key] = bars
            if len(bars):
                parts.append(bars)
                days.append(day.isoformat())
        return Bars.concat(parts), days, wanted

    def _sessions_table(self, days: list[str]) -> list[list]:
        """[[date, open_ns, close_ns], ...] so stages can cut history into sessions without a calendar."""
        return [[d, *self.calendar.open_close_ns(d)] for d in sorted(set(days))]

    def _publish_history(self, symbols: list[str], slots: list[int]) -> None:
        first_needed = min((self.calendar.sessions_before(self.day, max(1, self.config.history_days(s)))[0]
                            for s in symbols), default=self.day) if symbols else self.day
        for key in [k for k in self.history_cache if k[1] < first_needed]:
            del self.history_cache[key]
        all_slots, parts, days_by_symbol, all_days = [], [], {}, []
        for symbol, slot in zip(symbols, slots):
            bars, days, wanted = self._history_for(symbol)
            all_days += days
            if wanted and len(days) < wanted:
                log.warning("%s: %d of %d trailing days of history in the store", symbol, len(days), wanted)
            days_by_symbol[symbol] = [len(days), wanted]
            all_slots.append(np.full(len(bars), slot, np.int32))
            parts.append(bars)
        bars = Bars.concat(parts)
        slots_arr = np.concatenate(all_slots) if all_slots else np.empty(0, np.int32)
        self._publish(P.Message(P.HISTORY, {"symbols": symbols, "interval": "1m", "days": sorted(set(all_days)),
                                           "sessions": self._sessions_table(all_days),
                                           "history_days": days_by_symbol},
                               P.batch_arrays(slots_arr, bars), step=self.global_step, clock=self.clock_ns))

    def _publish_step(self, now: float) -> None:
        row = self.step_row
        parts = [self.batch.minute(row)] + [b.minute(row) for _, b in self.extra]
        slots, bars = merge_step(parts)
        if len(slots) and not self.active.all():
            keep = self.active[slots]
            slots, bars = slots[keep], bars.take(keep)
        self.step_row += 1
        self.global_step += 1
        self.clock_ns = self.open_ns + self.step_row * NS_PER_MIN
        if self.run_first_step_wall is None:
            self.run_first_step_wall = now
        self._publish(P.Message(P.STEP, {"symbols": []}, P.batch_arrays(slots, bars),
                               step=self.global_step, clock=self.clock_ns))
        self.bars_published += len(slots)
        self.steps_published += 1

    def _end_session(self) -> None:
        self._publish(P.Message(P.SESSION_END, {"date": self.day.isoformat(), "steps": self.step_row},
                               step=self.global_step, clock=self.clock_ns))
        log.info("session %s ended: %d steps, clock %s", self.day, self.step_row, fmt_exchange(self.clock_ns))
        if self.day_index + 1 < len(self.sessions):
            self._begin_session(self.day_index + 1)
        else:
            self._end_backtest("completed")

    def _end_backtest(self, reason: str) -> None:
        self.state = "ending"
        self.run_end_wall = self.clock()  # every step acked (or stopped): the run phase ends here
        self._publish(P.Message(P.BACKTEST_END, {"sessions": self.day_index + 1, "reason": reason,
                                                "report": self.performance_report()},
                               step=self.global_step, clock=self.clock_ns))
        log.info("backtest %s after %d session(s); waiting for stages to flush", reason, self.day_index + 1)

    def all_flushed(self) -> bool:
        return all(s.flushed for s in self.participants())

    # ---- commands ------------------------------------------------------------------------------
    def _schedule_config(self) -> None:
        for i, entry in enumerate(self.config.schedule):
            if entry.date is not None and entry.date not in self.sessions:
                raise ConfigError(f"schedule[{i}].date: {entry.date} is not a trading session of the backtest "
                                  f"({self.sessions[0]}..{self.sessions[-1]})")
            self.pending.append(PendingOp(f"schedule-{i}", entry.command, entry.symbols, None, entry.date, entry.time))

    def _is_later(self, op: PendingOp) -> bool:
        """Scheduled for a later session."""
        return op.session_date is not None and op.session_date > self.day

    def _is_due(self, op: PendingOp) -> bool:
        """Due at the current step boundary. A scheduled op whose day is past (its time was after that
        day's close) is due at once, i.e. at the next session's open."""
        if self._is_later(op):
            return False
        if op.session_date is not None and op.session_date < self.day:
            return True
        at = op.at_clock if op.wall_time is None else exchange_ns(self.day, op.wall_time)
        return at is None or at <= self.clock_ns

    def _op_due_after_next_step(self) -> bool:
        """Some timed op (--at or schedule) becomes due at the clock of the next step."""
        next_clock = self.clock_ns + NS_PER_MIN
        for op in self.pending:
            if self._is_later(op) or (op.session_date is not None and op.session_date < self.day):
                continue
            at = op.at_clock if op.wall_time is None else exchange_ns(self.day, op.wall_time)
            if at is not None and self.clock_ns < at <= next_clock:
                return True
        return False

    def _due_ops(self) -> bool:
        return any(self._is_due(op) for op in self.pending)

    def _apply_ops(self, now: float) -> None:
        due, keep = [], []
        for op in self.pending:
            (due if self._is_due(op) else keep).append(op)
        self.pending = keep
        adds = [op for op in due if op.command == "add-symbol"]
        for op in due:
            if op.command == "remove-symbol":
                for symbol in op.symbols:
                    self._remove_symbol(symbol)
            elif op.command == "pause":
                self.operator_paused = True
                self.state = "paused"
                log.info("paused by schedule at %s", fmt_exchange(self.clock_ns))
        if adds:
            self._add_symbols(adds)

    def _add_symbols(self, ops: list[PendingOp]) -> None:
        symbols = [s for op in ops for s in op.symbols]
        todo = []
        for symbol in symbols:
            try:
                self._check_addable(symbol)
            except CommandError as exc:
                log.error("[DYNAMIC] add %s refused: %s", symbol, exc)
                continue
            if symbol not in todo:
                todo.append(symbol)
        if not todo:
            return
        t0 = time.perf_counter()
        self.catchup_drain_ms = (t0 - self.drain_started) * 1e3 if self.drain_started is not None else 0.0
        self.drain_started = None
        self.catchup_load_ms = 0.0
        log.info("[DYNAMIC] Pausing streaming at %s for %s", fmt_exchange(self.clock_ns), ", ".join(todo))
        self._publish(P.Message(P.PAUSE, {"reason": "add-symbol", "symbols": todo},
                               step=self.global_step, clock=self.clock_ns))
        for symbol in todo:
            self.snapshot_id += 1  # one id per snapshot; acks are cumulative, so the last id covers all
            self._catchup(symbol)
        self.awaiting_snapshot = self.snapshot_id
        self.catchup_started = t0
        self.catchup_published = time.perf_counter()

    def _check_addable(self, symbol: str) -> None:
        if self._is_present(symbol):
            raise CommandError(f"{symbol} is already in the session")
        self._require_session_bars(symbol, announce=False)

    def _is_present(self, symbol: str) -> bool:
        return symbol in self.session_symbols and bool(self.active[self.session_symbols.index(symbol)])

    def _require_session_bars(self, symbol: str, announce: bool = True) -> None:
        """An add needs regular-hours bars of the session date (like a configured symbol); reads ahead."""
        if self.store.has_day(symbol, self.day):
            self.prefetch(symbol, announce)
            day_bars = self.prefetched[(symbol, self.day)][0]
            if len(day_bars.between(self.open_ns, self.close_ns)):
                return
        raise CommandError(f"{symbol}: no data in the store for session {self.day}")

    def prefetch(self, symbol: str, announce: bool = True) -> None:
        """Read a symbol's day and trailing history ahead of its add (when the request is queued or its
        session starts), so the pause itself only splits bars at the frozen clock; with `announce`, also
        publish PREPARE so the processor warms the symbol's indicators up on its history ahead too."""
        key = (symbol, self.day)
        if key in self.prefetched:
            return
        t0 = time.perf_counter()
        day_bars = self.store.read_day(symbol, self.day)
        history = self._history_for(symbol)
        self.prefetched[key] = (day_bars, history, (time.perf_counter() - t0) * 1e3)
        bars, days, _ = history
        if announce and len(day_bars.between(self.open_ns, self.close_ns)):
            self._publish(P.Message(P.PREPARE, {"symbol": symbol, "days": days,
                                                "sessions": self._sessions_table(days)},
                                    P.batch_arrays(np.zeros(len(bars), np.int32), bars, "h_"),
                                    step=self.global_step, clock=self.clock_ns))

    def _prefetch_scheduled(self) -> None:
        for op in self.pending:
            if op.command == "add-symbol" and not self._is_later(op):
                for symbol in op.symbols:
                    if self.store.has_day(symbol, self.day):
                        self.prefetch(symbol)  # may be refused later; then the read was only wasted

    def _catchup(self, symbol: str) -> None:
        log.info("[DYNAMIC] Processing addition: %s", symbol)
        self.prefetch(symbol, announce=False)
        all_bars, (history, days, wanted), load_ms = self.prefetched.pop((symbol, self.day))
        self.catchup_load_ms += load_ms
        regular = all_bars.between(self.open_ns, self.close_ns)
        dropped = len(all_bars) - len(regular)
        log.info("[DYNAMIC] Loaded %d bars for %s 1m (%d regular hours)", len(all_bars), symbol, len(regular))
        caught = regular.between(self.open_ns, self.clock_ns)
        future = regular.between(self.clock_ns, self.close_ns)
        if symbol in self.session_symbols:
            slot = self.session_symbols.index(symbol)
            self.active[slot] = True
            self.extra = [(s, b) for s, b in self.extra if s != slot]
            self.batch = self._without_slot(self.batch, slot)
        else:
            slot = len(self.session_symbols)
            self.session_symbols.append(symbol)
            self.active = np.append(self.active, True)
        self.extra.append((slot, DayBatch.build([(slot, future)], self.open_ns, self.n_minutes)))
        self.caught_ts[slot] = caught.ts
        if wanted and len(days) < wanted:
            log.warning("[DYNAMIC] %s: %d of %d trailing days of history in the store", symbol, len(days), wanted)
        arrays = P.batch_arrays(np.full(len(history), slot, np.int32), history, "h_")
        arrays.update(P.batch_arrays(np.full(len(caught), slot, np.int32), caught, "s_"))
        self._publish(P.Message(P.CATCHUP_SNAPSHOT, {
            "symbol": symbol, "slot": slot, "days": days, "caught_up": len(caught),
            "dropped": dropped, "snapshot_id": self.snapshot_id, "history_wanted": wanted,
            "sessions": self._sessions_table(days), "open_ns": self.open_ns, "close_ns": self.close_ns,
        }, arrays, step=self.global_step, clock=self.clock_ns))
        self.dynamic[symbol] = DynamicInfo(symbol, self.clock_ns, self.day.isoformat(), len(caught),
                                           dropped, len(days), wanted)
        log.info("[DYNAMIC] Catchup complete: %d bars processed, %d bars dropped (%s, clock %s)",
                 len(caught), dropped, symbol, fmt_exchange(self.clock_ns))

    @staticmethod
    def _without_slot(batch: DayBatch, slot: int) -> DayBatch:
        keep = batch.slots != slot
        if keep.all():
            return batch
        removed_before = np.concatenate([[0], np.cumsum(~keep)])
        bounds = batch.bounds - removed_before[batch.bounds]
        return DayBatch(batch.slots[keep], batch.bars.take(keep), bounds)

    def _finish_catchup(self) -> None:
        self.awaiting_snapshot = None
        done = time.perf_counter()
        self.last_catchup_ms = {"total": (done - self.catchup_started) * 1e3,
                                "load": self.catchup_load_ms, "drain": self.catchup_drain_ms,
                                "load_publish": (self.catchup_published - self.catchup_started) * 1e3,
                                "stages": (done - self.catchup_published) * 1e3}
        self._publish(P.Message(P.RESUME, {"reason": "add-symbol", "catchup_ms": self.last_catchup_ms,
                                           "operator_paused": self.operator_paused},
                               step=self.global_step, clock=self.clock_ns))
        log.info("[DYNAMIC] Resuming streaming at %s (pause %.2f ms: snapshot %.2f ms, stages %.2f ms; "
                 "before it: in-flight steps drained %.2f ms, store load %.2f ms done when queued)",
                 fmt_exchange(self.clock_ns), self.last_catchup_ms["total"], self.last_catchup_ms["load_publish"],
                 self.last_catchup_ms["stages"], self.last_catchup_ms["drain"], self.last_catchup_ms["load"])
        self._reset_pacing()

    def _remove_symbol(self, symbol: str) -> None:
        if not self._is_present(symbol):
            log.error("[DYNAMIC] remove %s refused: not in the session", symbol)
            return
        self.active[self.session_symbols.index(symbol)] = False
        if symbol in self.base_symbols:
            self.base_symbols.remove(symbol)
        if symbol in self.dynamic:
            self.dynamic[symbol].status = "removed"
        self._publish(P.Message(P.SYMBOL_REMOVED, {"symbol": symbol}, step=self.global_step, clock=self.clock_ns))
        log.info("[DYNAMIC] Removed %s at %s", symbol, fmt_exchange(self.clock_ns))

    def command(self, name: str, args: dict, request_id: str) -> dict:
        """Apply a ctl command; a retried request id gets the first answer again."""
        if request_id in self.replies:
            return self.replies[request_id]
        try:
            reply = {"ok": True, **self._command(name, args, request_id)}
        except (CommandError, ValueError) as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # a store or programming error must not take the session down
            log.exception("command %s failed", name)
            reply = {"ok": False, "error": f"{name} failed: {type(exc).__name__}: {exc}"}
        if name not in ("status", "session", "list-dynamic"):
            self.replies[request_id] = reply
        return reply

    def _command(self, name: str, args: dict, request_id: str) -> dict:
        if name == "status":
            return {"status": self.status()}
        if name == "session":
            return {"session": self.session_table()}
        if name == "list-dynamic":
            return {"dynamic": [vars(d) | {"added_at": fmt_exchange(d.added_clock, with_date=True)}
                                for d in self.dynamic.values()]}
        if name == "pause":
            self._require_running()
            self.operator_paused, self.state = True, "paused"
            log.info("paused by operator at %s", fmt_exchange(self.clock_ns))
            return {"clock": fmt_exchange(self.clock_ns)}
        if name == "resume":
            self._require_running()
            self.operator_paused, self.state = False, "running"
            self._reset_pacing()
            log.info("resumed by operator at %s", fmt_exchange(self.clock_ns))
            return {"clock": fmt_exchange(self.clock_ns)}
        if name == "speed":
            value = args.get("speed")
            if value in ("max", None):
                self.set_speed(None)
            else:
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise CommandError(f"speed must be a number or 'max', got {value!r}")
                speed = float(value)
                if not speed > 0:
                    raise CommandError("speed must be > 0 or 'max'")
                self.set_speed(speed)
            return {"speed": self.speed or "max"}
        if name == "stop":
            self.request_stop()
            return {"stopping": True}
        if name in ("add-symbol", "remove-symbol"):
            return self._queue_symbol_op(name, args, request_id)
        raise CommandError(f"unknown command {name!r}")

    def request_stop(self) -> None:
        """Stop at the next step boundary; before the first session, end at once."""
        self.stop_requested = True
        if self.state == "waiting":
            self._end_backtest("stopped")

    def _require_running(self) -> None:
        if self.state not in ("running", "paused"):
            raise CommandError(f"no session running (state {self.state})")

    def _queue_symbol_op(self, name: str, args: dict, request_id: str) -> dict:
        self._require_running()
        raw = args.get("symbols") or []
        if not isinstance(raw, list) or not raw:
            raise CommandError("give at least one symbol")
        symbols = []
        for value in raw:
            try:
                symbols.append(check_ticker(value, "symbol"))
            except ConfigError:
                raise CommandError(f"{value!r} is not a ticker") from None
        streams = args.get("streams") or ["1m"]
        if not isinstance(streams, list) or not all(isinstance(x, str) for x in streams):
            raise CommandError("streams must be a list of intervals like ['1m', '5m']")
        unknown = [x for x in streams if x not in self.config.streams]
        if unknown:
            raise CommandError(f"streams {unknown or streams} are not among the session's streams "
                               f"({', '.join(self.config.streams)}); an added symbol gets the session's streams")
        at_clock = None
        if args.get("at"):
            at_clock = exchange_ns(self.day, parse_wall_time(str(args["at"])))
            if at_clock < self.clock_ns:
                raise CommandError(f"--at {args['at']} is in the past (clock {fmt_exchange(self.clock_ns)})")
            if at_clock > self.close_ns:
                raise CommandError(f"--at {args['at']} is after today's close {fmt_exchange(self.close_ns)}")
        queued_adds = {s for op in self.pending if op.command == "add-symbol" and not self._is_later(op)
                       for s in op.symbols}
        for symbol in symbols:
            if name == "add-symbol":
                if self._is_present(symbol):
                    raise CommandError(f"{symbol} is already in the session")
                if symbol in queued_adds:
                    raise CommandError(f"{symbol} is already queued to be added today")
                self._require_session_bars(symbol)
            elif not self._is_present(symbol):
                raise CommandError(f"{symbol} is not in the session")
        self.pending.append(PendingOp(request_id, name, tuple(symbols), at_clock, None))
        when = fmt_exchange(at_clock) if at_clock is not None else "next step"
        log.info("[DYNAMIC] queued %s %s at %s (request %s)", name, " ".join(symbols), when, request_id)
        return {"queued": True, "request_id": request_id, "symbols": symbols, "at": when}

    # ---- reports -------------------------------------------------------------------------------
    def status(self) -> dict:
        now = self.clock()
        return {
            "state": self.state, "mode": self.config.mode,
            "clock": fmt_exchange(self.clock_ns, with_date=True) if self.day_index >= 0 else None,
            "clock_ns": self.clock_ns,
            "session_date": self.day.isoformat() if self.day_index >= 0 else None,
            "day": self.day_index + 1, "n_days": len(self.sessions),
            "speed": self.speed or "max", "operator_paused": self.operator_paused,
            "catchup": self.awaiting_snapshot is not None,
            "symbols": [s for i, s in enumerate(self.session_symbols) if self.active[i]],
            "steps_done": self.global_step, "session_step": self.step_row,
            "window": self.config.flow_window,
            "stages": {s.name: {"role": s.role, "last_ack_step": s.last_step_ack,
                                "last_ack_age_s": round(now - s.last_ack_wall, 3), "stalled": s.stalled}
                       for s in self.stages.values()},
            "waiting_for": [s for s in self.config.stages if s not in self.stages],
            "report": self.performance_report(),
        }

    def session_table(self) -> list[dict]:
        """Per active symbol: 1m bars published so far (catch-up included), first/last, span, quality, gaps."""
        if self.day_index < 0:
            return []
        row = self.step_row
        per_slot = self._published_by_slot(row)
        rows = []
        for slot, symbol in enumerate(self.session_symbols):
            if not self.active[slot]:
                continue
            ts = per_slot.get(slot, np.empty(0, np.int64))
            gaps = missing_runs(np.unique((ts - self.open_ns) // NS_PER_MIN), row)
            rows.append({
                "symbol": symbol, "bars_1m": int(len(ts)),
                "first": fmt_exchange(int(ts[0])) if len(ts) else None,
                "last": fmt_exchange(int(ts[-1])) if len(ts) else None,
                "span_min": int((ts[-1] - ts[0]) // NS_PER_MIN + 1) if len(ts) else 0,
                "quality_pct": round(100.0 * len(ts) / row, 2) if row else 100.0,
                "gaps": len(gaps), "dynamic": symbol in self.dynamic,
            })
        return rows

    def _published_by_slot(self, row: int) -> dict[int, np.ndarray]:
        """Open times of the 1m bars each slot has had this session up to minute `row`, one sort for all."""
        hi = int(self.batch.bounds[row])
        slots = [self.batch.slots[:hi]]
        ts = [self.batch.bars.ts[:hi]]
        for slot, extra in self.extra:
            n = int(extra.bounds[row])
            slots.append(np.full(n, slot, np.int32))
            ts.append(extra.bars.ts[:n])
        for slot, caught in self.caught_ts.items():
            slots.append(np.full(len(caught), slot, np.int32))
            ts.append(caught)
        slots, ts = np.concatenate(slots), np.concatenate(ts)
        order = np.lexsort((ts, slots))
        slots, ts = slots[order], ts[order]
        bounds = np.searchsorted(slots, np.arange(len(self.session_symbols) + 1))
        return {s: ts[bounds[s]:bounds[s + 1]] for s in range(len(self.session_symbols))}

    def report_lines(self) -> list[str]:
        """The performance report as a few readable log lines (the JSON stays in `ctl status --json`)."""
        rep = self.performance_report()
        lines = [f"performance: {rep['steps']} steps, {rep['bars']} bars in {rep['wall_s']} s"
                 + (f" = {rep['bars_per_s']:,.0f} bars/s" if rep["bars_per_s"] else "")]
        for name, st in sorted(rep["stages"].items()):
            busy = st["busy_us"]
            spent = (f"busy per step min/mean/max {busy['min']:.0f}/{busy['mean']:.0f}/{busy['max']:.0f} us"
                     if busy else "no steps")
            lines.append(f"performance: stage {name} ({st['role']}): {spent}; waited on {st['waited_on']} time(s)")
        return lines

    def performance_report(self) -> dict:
        wall = None
        if self.run_first_step_wall is not None:
            wall = (self.run_end_wall or self.clock()) - self.run_first_step_wall
        stages = {}
        for s in self.stages.values():
            busy = np.array(s.busy_ns, dtype=np.float64) / 1e3
            stages[s.name] = {
                "role": s.role, "waited_on": s.waited_on,
                "busy_us": {"min": float(busy.min()), "mean": float(busy.mean()), "max": float(busy.max())}
                if len(busy) else None,
            }
        return {"steps": self.steps_published, "bars": self.bars_published,
                "first_step_monotonic": self.run_first_step_wall,
                "wall_s": round(wall, 4) if wall else None,
                "bars_per_s": round(self.bars_published / wall, 1) if wall else None,
                "stages": stages}
