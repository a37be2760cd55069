"""The coordinator's session state machine, free of sockets.

`SessionEngine` owns the simulated clock and drives the backtest session by session; the concerns it
delegates live next to it: `stages` (registry, acks, credit window), `day` (a session's symbol table and
bars, history), `symbol_ops` (the pending add/remove queue), `catchup` (adding a symbol mid-session),
`commands` (ctl) and `report` (status, performance). The coordinator service feeds it registrations, acks,
commands and the wall time, and gives it a `publish(Message)` callable; `advance(now)` publishes as much as
credits, pacing and pauses allow, and says how long the service may wait before calling again.
"""
from __future__ import annotations

import enum
import functools
import logging
import time

from common.config import ConfigError, SessionConfig
from common.data.store import BarStore
from common.domain.calendar import TradingCalendar
from common.domain.timeconv import fmt_exchange
from common.wire import protocol as P
from common.wire.payloads import BarBatch, HistoryPayload
from services.coordinator import report
from services.coordinator.catchup import CatchUp, DynamicInfo
from services.coordinator.commands import Commands
from services.coordinator.day import DayLoader, HistoryCache, SessionDay
from services.coordinator.errors import CommandError
from services.coordinator.stages import StageRegistry, relayable_actions
from services.coordinator.stepping import StepPublisher
from services.coordinator.symbol_ops import PendingOp, PendingOps, check_symbol_op, remove_symbol

log = logging.getLogger("coordinator")

_AGAIN = object()  # `_advance_once` did something: decide again at the (new) boundary


class State(enum.Enum):
    """Where the backtest is. A catch-up is not a state: it runs while RUNNING and while PAUSED alike (an
    add queued during an operator pause is caught up at once, and RESUME reports the pause), so a
    CATCHING_UP state would have to remember which of the two to go back to; `catchup.active` says it."""
    WAITING = "waiting"  # for every stage of the config to say HELLO; nothing sequenced is published
    RUNNING = "running"
    PAUSED = "paused"    # by the operator (ctl pause or a scheduled pause): the clock stands
    ENDING = "ending"    # BACKTEST_END is out; the service waits for the flushes, then SHUTDOWN

    def __str__(self) -> str:
        return self.value


class Pacer:
    """Paces steps at `speed` x real time (None = as fast as the stages ack). The origin restarts after
    pauses and speed changes, so rounding never accumulates into drift."""

    def __init__(self, speed: float | None, clock):
        self.speed = speed
        self.clock = clock
        self.origin = clock()
        self.row = 0

    def restart(self, row: int) -> None:
        self.origin = self.clock()
        self.row = row

    def wait(self, now: float, row: int) -> float:
        """Seconds until the step of minute `row` is due. A step more than one interval late (the stages
        held the clock back) restarts the pacing from now: the clock goes on at its pace, without a burst
        of the steps it missed."""
        if self.speed is None:
            return 0.0
        interval = 60.0 / self.speed
        due = self.origin + (row - self.row + 1) * interval
        if due < now - interval:
            self.origin, self.row = now - interval, row
            return 0.0
        return max(0.0, due - now)


class SessionEngine:
    """The backtest's clock and lifecycle: sessions one after the other, steps within a session, and the
    step boundaries where stops, catch-ups, symbol ops and pauses are taken care of."""

    def __init__(self, config: SessionConfig, calendar: TradingCalendar, store: BarStore, publish,
                 clock=time.monotonic, run_id: str | None = None):
        self.config, self.calendar, self.store, self._send, self.clock = config, calendar, store, publish, clock
        self.sessions = calendar.sessions(config.start_date, config.end_date)
        if not self.sessions:
            raise ConfigError(f"session: no trading session between {config.start_date} and {config.end_date}")
        self.state = State.WAITING
        # a flag, not a state: honoured at the next boundary, and still read once ENDING (a stop or an
        # abort gives the stages the short flush grace)
        self.stop_requested = False
        self.paused_at_end = False  # the run ended during an operator pause (status still says so)
        self.run_id = run_id        # announced in SESSION_START: analysis results go to results/<run id>/
        self.end_reason: str | None = None   # completed / stopped / error, once ENDING
        self.end_detail: str | None = None   # what went wrong (abort) or who stopped the run
        self.stages = StageRegistry(config.flow_window, config.ack_timeout_s, clock, config.lost_after_s,
                                    config.max_observers)
        self.loader = DayLoader(store, config.missing_data)
        self.history = HistoryCache(config, calendar, store)
        self.session = SessionDay.before_first()
        self.base_symbols = list(config.symbols)
        self.dynamic: dict[str, DynamicInfo] = {}
        self.catchup = CatchUp(self)
        self.commands = Commands(self)
        self.pacer = Pacer(config.clock_speed, clock)
        self.stepper = StepPublisher(self)
        self.figures = report.RunFigures()
        self.day_index = -1
        self.sessions_ended = 0  # sessions run to their close (day_index + 1 counts one that failed to load)
        self.global_step = 0
        self.clock_ns = 0
        self.step_row = 0
        self.journal: list[list] = []  # frames of every message since the current SESSION_START
        self.journal_seq = 0
        self.pending = PendingOps.from_schedule(config.schedule, self.sessions)
        open_ns, close_ns = calendar.open_close_ns(self.sessions[0])
        self.loader.load_ahead(self.sessions[0], open_ns, close_ns, self.base_symbols)

    # ---- publishing ----------------------------------------------------------------------------
    def publish(self, msg: P.Message) -> None:
        """Publish and journal: a late joiner's snapshot is the current session's journal."""
        if msg.type == P.SESSION_START:
            self.journal = []
        msg.body.update(self.stages.orders_stamp())  # the broker books a message once the orders before it are in
        frames = self._send(msg)
        if frames is not None:
            self.journal.append(frames)
            self.journal_seq = msg.seq

    def snapshot(self) -> tuple[int, list[list]]:
        """(last seq covered, journal frames): replaying them rebuilds every stage's session state."""
        return self.journal_seq, list(self.journal)

    # ---- input from the service ----------------------------------------------------------------
    def on_hello(self, stage: str, role: str, pid: int = 0, indicators: list | None = None,
                 peer: bytes | None = None, trades: bool = False) -> dict:
        """Register a stage; the indicators its strategies declared are computed from the next session
        start on (for the configured stages: from the first, as they register before it)."""
        try:
            declared = self.config.declared_indicators(indicators or [], f"{stage}: declared indicators")
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stages.register(stage, role, pid, self.global_step, self.catchup.snapshot_id, declared, peer,
                             (bool(trades), self.journal_seq))
        # a restarted processor/quality republishes its answers once this many stages subscribed to it
        return {"ok": True, "hello": True, "state": self.state.value, "step": self.global_step,
                "listeners": self.stages.answer_listeners()}

    def on_ack(self, body: dict, peer: bytes | None = None) -> None:
        actions = relayable_actions(self.stages.on_ack(body, peer), body)
        if actions and self.state is not State.ENDING:  # after BACKTEST_END nothing would fill
            # relayed at once: they precede every message stamped with this ack's orders_through
            self.publish(P.Message(P.ORDERS, {"stage": body["stage"], "actions": actions},
                                   step=self.global_step, clock=self.clock_ns))

    def command(self, name: str, args: dict, request_id: str) -> dict:
        return self.commands.handle(name, args, request_id)

    # ---- main driver ---------------------------------------------------------------------------
    def advance(self, now: float) -> float | None:
        """Publish what can be published now; returns seconds until a timed action (None = wait for input)."""
        self.stages.stall_check(now, self.global_step, self.catchup.awaiting)
        lost = self.stages.configured_lost(now, self.global_step, self.config.stages)
        if lost and self.config.on_stage_loss == "abort" and self.state is not State.ENDING:
            self.abort(f"stage {lost[0].name} lost at step {lost[0].lost_step}: no sign of life for "
                       f"{now - lost[0].last_seen_wall:.1f} s (flow.lost_after_s {self.config.lost_after_s:g}; "
                       f"flow.on_stage_loss \"wait\" waits for a restarted one)")
            return None
        if self.state is State.WAITING:
            if self.stages.missing(self.config.stages):
                return None
            self._begin_session(0)
        while self.state in (State.RUNNING, State.PAUSED):
            # loading a session or a catch-up takes time: never pace on a stale now
            wait = self._advance_once(self.clock())
            if wait is not _AGAIN:
                return wait
        return None

    def _advance_once(self, now: float):
        """One decision at the step boundary; returns the wait (seconds, None = for input) or _AGAIN."""
        if self.stop_requested:  # first: a stage that never acks a snapshot must not block a stop
            self._end_backtest("stopped")
            return _AGAIN
        if self.catchup.active:
            if not self.stages.snapshot_acked(self.catchup.awaiting):
                return None
            self.catchup.finish()
        if self.pending.any_due(self.session.day, self.clock_ns):
            if not self.stages.all_acked(self.global_step):
                # let the stages finish the steps in flight first: the catch-up then meets idle
                # stages, and the clock is frozen either way (no step is published meanwhile)
                self.catchup.waiting_for_drain()
                return None
            self._apply_due_ops()
            return _AGAIN
        if self.state is State.PAUSED:
            return None
        if self.step_row >= self.session.n_minutes:
            if not self.stages.all_acked(self.global_step):
                return None
            self._end_session()
            return _AGAIN
        return self._step_or_wait(now)

    def _step_or_wait(self, now: float):
        """Publish the next step if the window, a timed op ahead and the pacing allow it."""
        if not self.stages.has_credit(self.global_step):
            self.stages.count_waited_on(self.global_step)
            return None
        if (self.pending.due_after_next_step(self.session.day, self.clock_ns)
                and not self.stages.all_acked(self.global_step)):
            # lookahead: an add/remove is scheduled right after the step about to go out; let the
            # stages catch up first, so the pause at that boundary does not wait for a backlog
            return None
        wait = self.pacer.wait(now, self.step_row)
        if wait > 0:
            return wait
        n = self.stepper.batch_size()
        if n == 0:
            return None  # acks of the steps in flight fill the next batch
        self.stepper.publish(n, now)
        return _AGAIN

    # ---- one session ---------------------------------------------------------------------------
    def _begin_session(self, index: int) -> None:
        """Load session `index`, publish SESSION_START and HISTORY, read today's scheduled adds ahead."""
        self.day_index = index
        day = self.sessions[index]
        open_ns, close_ns = self.calendar.open_close_ns(day)
        # before loading: if it fails, BACKTEST_END and status speak of the session that failed
        self.session = SessionDay(day, open_ns, close_ns, [], [])
        self.clock_ns, self.step_row = open_ns, 0
        if self.state is State.WAITING:
            self.state = State.RUNNING  # otherwise as it was: an operator pause holds over the session change
        symbols = self.base_symbols + [s for s, d in self.dynamic.items()
                                       if s not in self.base_symbols and d.status == "active"]
        self.session, dropped = self.loader.load(day, open_ns, close_ns, symbols)
        kept = self.session.symbols
        log.info("session %s (%d/%d): open %s close %s, %d symbols, %d bars queued, %d extended-hours bars dropped",
                 day, index + 1, len(self.sessions), fmt_exchange(open_ns), fmt_exchange(close_ns),
                 len(kept), len(self.session.batch.bars), dropped)
        self._publish_session_start()
        self._publish_history(list(kept), list(range(len(kept))))
        self.catchup.new_session()
        for symbol in self.pending.adds_until(day):
            if self.store.has_day(symbol, day):
                self.catchup.prefetch(symbol)  # may be refused later; then the read was only wasted
        self.reset_pacing()

    def _publish_session_start(self) -> None:
        session, kept = self.session, self.session.symbols
        self.publish(P.Message(P.SESSION_START, {
            "date": session.day.isoformat(), "open_ns": session.open_ns, "close_ns": session.close_ns,
            "symbols": kept, "day_index": self.day_index, "n_days": len(self.sessions),
            "streamed": {s: ["1m"] for s in kept}, "generated": {s: self.config.derived_minutes() for s in kept},
            "dynamic": [s for s in kept if s in self.dynamic], "run_id": self.run_id,
            "indicators": self.config.session_indicators(self.stages.declared_indicators()),
        }, step=self.global_step, clock=self.clock_ns))

    def _publish_history(self, symbols: list[str], slots: list[int]) -> None:
        slots_arr, bars, days_by_symbol, days = self.history.for_session(symbols, slots, self.session.day)
        fields = {"symbols": symbols, "interval": "1m", "days": sorted(set(days)),
                  "sessions": self.history.sessions_table(days), "history_days": days_by_symbol}
        self.publish(P.Message.of(P.HISTORY, HistoryPayload(BarBatch(slots_arr, bars), fields),
                                  step=self.global_step, clock=self.clock_ns))

    def _end_session(self) -> None:
        day = self.session.day
        last = self.day_index + 1 >= len(self.sessions)  # no session follows: no bar is left for any order
        self.publish(P.Message(P.SESSION_END, {"date": day.isoformat(), "steps": self.step_row, "last": last},
                               step=self.global_step, clock=self.clock_ns))
        log.info("session %s ended: %d steps, clock %s", day, self.step_row, fmt_exchange(self.clock_ns))
        self.sessions_ended += 1
        if self.day_index + 1 < len(self.sessions):
            self._begin_session(self.day_index + 1)
        else:
            self._end_backtest("completed")

    # ---- ending --------------------------------------------------------------------------------
    def _end_backtest(self, reason: str) -> None:
        self.paused_at_end = self.operator_paused
        self.state = State.ENDING
        self.end_reason = reason
        self.figures.end_wall = self.clock()  # every step acked (or stopped): the run phase ends here
        self.publish(P.Message(P.BACKTEST_END, {"sessions": self.day_index + 1, "reason": reason,
                                                "detail": self.end_detail or "", "run_id": self.run_id,
                                                "report": report.performance_report(self),
                                                "lost": [s.name for s in self.stages.lost()]},
                               step=self.global_step, clock=self.clock_ns))
        log.info("backtest %s after %d session(s); waiting for stages to flush", reason, self.day_index + 1)

    def request_stop(self, by: str = "ctl stop") -> None:
        """Stop at the next step boundary; before the first session, end at once."""
        if not self.stop_requested:
            self.end_detail = f"stopped by {by}"
        self.stop_requested = True
        if self.state is State.WAITING:
            self._end_backtest("stopped")

    def abort(self, reason) -> None:
        """End the run now on a store or data error (BACKTEST_END reason "error"); stages get the stop grace."""
        log.error("session aborted: %s", reason)
        self.end_detail = str(reason)
        self.stop_requested = True
        self._end_backtest("error")

    # ---- operator ------------------------------------------------------------------------------
    @property
    def operator_paused(self) -> bool:
        return self.state is State.PAUSED or self.paused_at_end

    def require_running(self) -> None:
        if self.state not in (State.RUNNING, State.PAUSED):
            raise CommandError(f"no session running (state {self.state.value})")

    def pause(self, by: str) -> None:
        """Freeze the clock at this step boundary (`by` the operator or the schedule); catch-ups still run."""
        self.require_running()
        self.state = State.PAUSED
        log.info("paused by %s at %s", by, fmt_exchange(self.clock_ns))

    def resume(self) -> None:
        self.require_running()
        self.state = State.RUNNING
        self.reset_pacing()
        log.info("resumed by operator at %s", fmt_exchange(self.clock_ns))

    def set_speed(self, speed: float | None) -> None:
        log.info("speed %s -> %s at %s", self.pacer.speed or "max", speed or "max", fmt_exchange(self.clock_ns))
        self.pacer.speed = speed
        self.reset_pacing()

    def reset_pacing(self) -> None:
        """Pace from now on (after pauses and speed changes)."""
        self.pacer.restart(self.step_row)

    # ---- adding and removing symbols -----------------------------------------------------------
    def queue_symbol_op(self, command: str, symbols: list[str], at_clock: int | None, request_id: str) -> None:
        """Check a ctl (or strategy) add/remove against the session and queue it. An add's data is read
        right away, and PREPARE published, so the pause at the boundary only splits bars."""
        queued = set(self.pending.adds_until(self.session.day))
        read = functools.partial(self.catchup.read_ahead, announce=True)
        for symbol in symbols:
            check_symbol_op(command, symbol, self.session, read_day=read, queued_adds=queued)
        self.pending.append(PendingOp(request_id, command, tuple(symbols), at_clock, None))

    def _apply_due_ops(self) -> None:
        """Removes and pauses in queue order, then every due add in one catch-up (one pause)."""
        due = self.pending.take_due(self.session.day, self.clock_ns)
        for op in due:
            if op.command == "remove-symbol":
                for symbol in op.symbols:
                    remove_symbol(self, symbol)
            elif op.command == "pause":
                self.pause("schedule")
        addable = self.catchup.still_addable([s for op in due if op.command == "add-symbol" for s in op.symbols])
        if addable:
            self.catchup.start(addable)
        else:
            self.catchup.timing.drain_started = None  # the wait was for a remove or pause: not an add's
