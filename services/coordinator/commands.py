"""ctl commands: one function per command name, with its argument checks and its errors.

`Commands.handle` applies a request id once: ctl retries (Lazy Pirate) resend the same id and get the first
reply again, so an add is never queued twice. Queries are answered afresh every time.
"""
from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

from common.config import ConfigError, check_ticker
from common.domain.timeconv import exchange_ns, fmt_exchange, parse_wall_time
from services.coordinator import report
from services.coordinator.errors import CommandError

if TYPE_CHECKING:
    from services.coordinator.engine import SessionEngine

log = logging.getLogger("coordinator")

MAX_REPLIES = 4096  # a ctl retry comes within seconds: the newest replies are the ones it may ask for
QUERIES = ("status", "session", "list-dynamic")  # read-only: never cached


MAX_SPEED = 1_000_000.0  # a million x real time: a session in 0.02 s; beyond is 'max'


def _status(engine: SessionEngine, args: dict, request_id: str) -> dict:
    return {"status": report.status(engine)}


def _session(engine: SessionEngine, args: dict, request_id: str) -> dict:
    return {"session": report.session_table(engine)}


def _list_dynamic(engine: SessionEngine, args: dict, request_id: str) -> dict:
    return {"dynamic": report.dynamic_table(engine)}


def _pause(engine: SessionEngine, args: dict, request_id: str) -> dict:
    engine.require_running()
    if engine.operator_paused:
        raise CommandError(f"already paused (clock {fmt_exchange(engine.clock_ns)}); `ctl resume` releases it")
    engine.pause("operator")
    return {"clock": fmt_exchange(engine.clock_ns)}


def _resume(engine: SessionEngine, args: dict, request_id: str) -> dict:
    engine.require_running()
    if not engine.operator_paused:
        raise CommandError(f"not paused (clock {fmt_exchange(engine.clock_ns)} is running)")
    engine.resume()
    return {"clock": fmt_exchange(engine.clock_ns)}


def _speed(engine: SessionEngine, args: dict, request_id: str) -> dict:
    value = args.get("speed")
    if value in ("max", None):
        engine.set_speed(None)
    else:
        engine.set_speed(_speed_value(value))
    return {"speed": engine.pacer.speed or "max"}


def _speed_value(value) -> float:
    """A finite speed in (0, MAX_SPEED]: N x real time."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise CommandError(f"speed must be a number or 'max', got {value!r}")
    try:
        speed = float(value)
    except ValueError:
        raise CommandError(f"speed must be a number or 'max', got {value!r}") from None
    if not (math.isfinite(speed) and 0 < speed <= MAX_SPEED):
        raise CommandError(f"speed must be > 0 and at most {MAX_SPEED:,.0f} (x real time), or 'max'; got {value}")
    return speed


def _stop(engine: SessionEngine, args: dict, request_id: str) -> dict:
    by = args.get("by")
    engine.request_stop(by=by[:100] if isinstance(by, str) and by else "ctl stop")
    return {"stopping": True}


def _add_symbol(engine: SessionEngine, args: dict, request_id: str) -> dict:
    return _queue_symbol_op(engine, "add-symbol", args, request_id)


def _remove_symbol(engine: SessionEngine, args: dict, request_id: str) -> dict:
    return _queue_symbol_op(engine, "remove-symbol", args, request_id)


def _queue_symbol_op(engine: SessionEngine, name: str, args: dict, request_id: str) -> dict:
    """Check the arguments here and the symbols against the session in the engine; queue the op."""
    engine.require_running()
    symbols = _tickers(args.get("symbols") or [])
    _check_streams(args.get("streams") or ["1m"], engine.config.streams)
    at_clock = _at_clock(engine, args.get("at"))
    engine.queue_symbol_op(name, symbols, at_clock, request_id)
    when = fmt_exchange(at_clock) if at_clock is not None else "next step"
    log.info("[DYNAMIC] queued %s %s at %s (request %s)", name, " ".join(symbols), when, request_id)
    return {"queued": True, "request_id": request_id, "symbols": symbols, "at": when}


def _tickers(raw) -> list[str]:
    if not isinstance(raw, list) or not raw:
        raise CommandError("give at least one symbol")
    symbols = []
    for value in raw:
        try:
            symbols.append(check_ticker(value, "symbol"))
        except ConfigError:
            raise CommandError(f"{value!r} is not a ticker") from None
    return symbols


def _check_streams(streams, session_streams: tuple[str, ...]) -> None:
    """An added symbol gets the session's streams: `--streams` may only name some of them."""
    if not isinstance(streams, list) or not all(isinstance(x, str) for x in streams):
        raise CommandError("streams must be a list of intervals like ['1m', '5m']")
    unknown = [x for x in streams if x not in session_streams]
    if unknown:
        raise CommandError(f"streams {unknown} are not among the session's streams "
                           f"({', '.join(session_streams)}); an added symbol gets the session's streams")


def _at_clock(engine: SessionEngine, at) -> int | None:
    """`--at HH:MM` as a clock of today's session, not in the past nor after the close (None: next step)."""
    if not at:
        return None
    session = engine.session
    try:
        at_clock = exchange_ns(session.day, parse_wall_time(str(at)))
    except ValueError as exc:
        raise CommandError(f"--at {exc}") from None
    if at_clock < engine.clock_ns:
        raise CommandError(f"--at {at} is in the past (clock {fmt_exchange(engine.clock_ns)})")
    if at_clock > session.close_ns:
        raise CommandError(f"--at {at} is after today's close {fmt_exchange(session.close_ns)}")
    return at_clock


COMMANDS: dict[str, Callable[[SessionEngine, dict, str], dict]] = {
    "status": _status, "session": _session, "list-dynamic": _list_dynamic,
    "pause": _pause, "resume": _resume, "speed": _speed, "stop": _stop,
    "add-symbol": _add_symbol, "remove-symbol": _remove_symbol,
}


class Commands:
    """Applies ctl commands to `engine`, remembering each reply by request id."""

    def __init__(self, engine: SessionEngine):
        self.engine = engine
        self.replies: OrderedDict[str, dict] = OrderedDict()  # the newest MAX_REPLIES, for retried ids

    def handle(self, name: str, args: dict, request_id: str) -> dict:
        """Apply a ctl command; a retried request id gets the first answer again."""
        if request_id in self.replies:
            return self.replies[request_id]
        try:
            command = COMMANDS.get(name) if isinstance(name, str) else None
            if command is None:
                raise CommandError(f"unknown command {name!r}")
            reply = {"ok": True, **command(self.engine, args, request_id)}
        except (CommandError, ValueError) as exc:
            reply = {"ok": False, "error": str(exc)}
        except Exception as exc:  # a store or programming error must not take the session down
            log.exception("command %s failed", name)
            reply = {"ok": False, "error": f"{name} failed: {type(exc).__name__}: {exc}"}
        if name not in QUERIES:
            self.replies[request_id] = reply
            while len(self.replies) > MAX_REPLIES:  # bounded: a flood of fresh ids cannot grow it
                self.replies.popitem(last=False)
        return reply
