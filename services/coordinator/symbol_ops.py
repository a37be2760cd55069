"""Add/remove-symbol and pause ops waiting for their step boundary: ctl requests (and strategy commands),
and the config's schedule. An op is validated by `check_symbol_op` when it is queued and again when it is
applied (the session may have changed in between); `due_clock` says when it is due.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Callable

from common.config import ConfigError, ScheduledCommand
from common.domain.bars import Bars
from common.domain.timeconv import NS_PER_MIN, exchange_ns, fmt_exchange
from common.wire import protocol as P
from services.coordinator.day import SessionDay
from services.coordinator.errors import CommandError

log = logging.getLogger("coordinator")
LATER_SESSION = 2 ** 63 - 1  # the due clock of an op scheduled for a later session: after any clock of today


@dataclass
class PendingOp:
    """A queued add/remove/pause: applied at a step boundary (at_clock None = the next one)."""
    request_id: str
    command: str
    symbols: tuple[str, ...]
    at_clock: int | None
    session_date: dt.date | None
    wall_time: dt.time | None = None  # scheduled ops: exchange time, resolved per session


def due_clock(op: PendingOp, day: dt.date) -> int | None:
    """The clock at which `op` is due in session `day`: None = at the next step boundary (also a scheduled
    op whose day is past: its time was after that day's close, so it runs at the next session's open);
    LATER_SESSION for an op of a later session."""
    if op.session_date is not None:
        if op.session_date > day:
            return LATER_SESSION
        if op.session_date < day:
            return None
    return op.at_clock if op.wall_time is None else exchange_ns(day, op.wall_time)


def check_symbol_op(command: str, symbol: str, session: SessionDay, *,
                    read_day: Callable[[str], Bars | None] | None = None, queued_adds=frozenset()) -> None:
    """Raise CommandError unless `command` can apply to `symbol` in `session`. An add needs a symbol not in
    the session nor in `queued_adds`, with regular-hours bars on the session date (like a configured
    symbol): `read_day(symbol)` reads its day ahead, None when the store has no such day."""
    if command != "add-symbol":
        if not session.is_present(symbol):
            raise CommandError(f"{symbol} is not in the session")
        return
    if session.is_present(symbol):
        raise CommandError(f"{symbol} is already in the session")
    if symbol in queued_adds:
        raise CommandError(f"{symbol} is already queued to be added today")
    day_bars = read_day(symbol)
    if day_bars is None or not len(day_bars.between(session.open_ns, session.close_ns)):
        raise CommandError(f"{symbol}: no data in the store for session {session.day}")


class PendingOps:
    """The queue, in the order ops were queued (the schedule's first)."""

    def __init__(self, ops: list[PendingOp] = ()):
        self.ops = list(ops)

    @classmethod
    def from_schedule(cls, schedule: tuple[ScheduledCommand, ...], sessions: list[dt.date]) -> "PendingOps":
        ops = []
        for i, entry in enumerate(schedule):
            if entry.date is not None and entry.date not in sessions:
                raise ConfigError(f"schedule[{i}].date: {entry.date} is not a trading session of the backtest "
                                  f"({sessions[0]}..{sessions[-1]})")
            ops.append(PendingOp(f"schedule-{i}", entry.command, entry.symbols, None, entry.date, entry.time))
        return cls(ops)

    def __iter__(self):
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)

    def append(self, op: PendingOp) -> None:
        self.ops.append(op)

    def adds_until(self, day: dt.date) -> list[str]:
        """Symbols of the adds due in session `day` or earlier (not those of a later session)."""
        return [s for op in self.ops if op.command == "add-symbol" and due_clock(op, day) != LATER_SESSION
                for s in op.symbols]

    def any_due(self, day: dt.date, clock_ns: int) -> bool:
        return any(_is_due(op, day, clock_ns) for op in self.ops)

    def due_after_next_step(self, day: dt.date, clock_ns: int) -> bool:
        """Some timed op (--at or schedule) becomes due at the clock of the next step."""
        next_clock = clock_ns + NS_PER_MIN
        return any((at := due_clock(op, day)) is not None and clock_ns < at <= next_clock for op in self.ops)

    def next_due_clock(self, day: dt.date, clock_ns: int) -> int | None:
        """The earliest clock after `clock_ns` at which a timed op of session `day` becomes due (None: none)."""
        clocks = [at for op in self.ops if (at := due_clock(op, day)) is not None and clock_ns < at < LATER_SESSION]
        return min(clocks, default=None)

    def take_due(self, day: dt.date, clock_ns: int) -> list[PendingOp]:
        """Remove and return the ops due at `clock_ns`, in queue order."""
        due, keep = [], []
        for op in self.ops:
            (due if _is_due(op, day, clock_ns) else keep).append(op)
        self.ops = keep
        return due


def _is_due(op: PendingOp, day: dt.date, clock_ns: int) -> bool:
    at = due_clock(op, day)
    return at is None or at <= clock_ns


def remove_symbol(engine, symbol: str) -> None:
    """Take a symbol out of the session at this boundary (SYMBOL_REMOVED); refused when it is not in it."""
    try:
        check_symbol_op("remove-symbol", symbol, engine.session)
    except CommandError:  # the only reason a remove is refused
        log.error("[DYNAMIC] remove %s refused: not in the session", symbol)
        return
    engine.session.deactivate(symbol)
    if symbol in engine.base_symbols:
        engine.base_symbols.remove(symbol)
    if symbol in engine.dynamic:
        engine.dynamic[symbol].status = "removed"
    engine.publish(P.Message(P.SYMBOL_REMOVED, {"symbol": symbol}, step=engine.global_step, clock=engine.clock_ns))
    log.info("[DYNAMIC] Removed %s at %s", symbol, fmt_exchange(engine.clock_ns))
