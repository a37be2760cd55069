"""The add-symbol catch-up: read ahead (PREPARE), PAUSE with the clock frozen, one CATCHUP_SNAPSHOT per
symbol, RESUME once every participant has acked the last snapshot id.

The store reads happen when the add is queued (or its session starts, for scheduled adds), so the pause
itself only splits bars at the frozen clock; the timing figures say where the pause went.
"""
from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.domain.bars import Bars
from common.domain.timeconv import fmt_exchange
from common.wire import protocol as P
from common.wire.payloads import BarBatch, CatchupPayload, PreparePayload
from services.coordinator.errors import CommandError
from services.coordinator.symbol_ops import check_symbol_op

if TYPE_CHECKING:
    from services.coordinator.engine import SessionEngine

log = logging.getLogger("coordinator")


@dataclass
class DynamicInfo:
    """A symbol added at run time, as `ctl list-dynamic` shows it."""
    symbol: str
    added_clock: int
    added_date: str
    caught_up: int
    dropped: int
    history_days: int
    history_wanted: int
    status: str = "active"


@dataclass
class CatchupTiming:
    """Where the time of the last catch-up went (perf_counter seconds, ms figures)."""
    drain_started: float | None = None  # a due add began waiting for the steps in flight
    drain_ms: float = 0.0    # that wait, before the pause
    load_ms: float = 0.0     # store reads, done ahead when the add was queued
    started: float = 0.0     # PAUSE
    published: float = 0.0   # the last CATCHUP_SNAPSHOT out

    def figures(self, done: float) -> dict[str, float]:
        """RESUME's `catchup_ms`: the pause in total, split into publishing and waiting for the stages."""
        return {"total": (done - self.started) * 1e3, "load": self.load_ms, "drain": self.drain_ms,
                "load_publish": (self.published - self.started) * 1e3, "stages": (done - self.published) * 1e3}


class CatchUp:
    """Catch-ups of `engine`'s session; `awaiting` is the snapshot id every participant must ack before
    RESUME (None: no catch-up under way)."""

    def __init__(self, engine: SessionEngine):
        self.engine = engine
        self.prefetched: dict[str, tuple[Bars, tuple[Bars, list[str], int], float]] = {}
        self.snapshot_id = 0  # one id per snapshot over the whole run
        self.awaiting: int | None = None
        self.timing = CatchupTiming()

    @property
    def active(self) -> bool:
        return self.awaiting is not None

    def new_session(self) -> None:
        self.prefetched = {}

    def waiting_for_drain(self) -> None:
        """A due add waits for the steps in flight: the drain time is counted from the first such wait."""
        if self.timing.drain_started is None:
            self.timing.drain_started = time.perf_counter()

    def read_ahead(self, symbol: str, announce: bool) -> Bars | None:
        """The symbol's bars of the session date (extended hours included), read ahead; None when the store
        has no such day."""
        day = self.engine.session.day
        if not self.engine.store.has_day(symbol, day):
            return None
        self.prefetch(symbol, announce)
        return self.prefetched[symbol][0]

    def prefetch(self, symbol: str, announce: bool = True) -> None:
        """Read a symbol's day and trailing history ahead of its add (when the request is queued or its
        session starts), so the pause itself only splits bars at the frozen clock; with `announce`, also
        publish PREPARE so the processor warms the symbol's indicators up on its history ahead too."""
        if symbol in self.prefetched:
            return
        session = self.engine.session
        t0 = time.perf_counter()
        day_bars = self.engine.store.read_day(symbol, session.day)
        history = self.engine.history.for_symbol(symbol, session.day)
        self.prefetched[symbol] = (day_bars, history, (time.perf_counter() - t0) * 1e3)
        if announce and len(day_bars.between(session.open_ns, session.close_ns)):
            self._publish_prepare(symbol, history[0], history[1])

    def _publish_prepare(self, symbol: str, history: Bars, days: list[str]) -> None:
        engine = self.engine
        fields = {"symbol": symbol, "days": days, "sessions": engine.history.sessions_table(days)}
        engine.publish(P.Message.of(P.PREPARE, PreparePayload(BarBatch.of_slot(0, history), fields),
                                    step=engine.global_step, clock=engine.clock_ns))

    def still_addable(self, symbols: list[str]) -> list[str]:
        """The due adds that pass the check again (the session may have changed since), each once."""
        read = functools.partial(self.read_ahead, announce=False)
        todo = []
        for symbol in symbols:
            try:
                check_symbol_op("add-symbol", symbol, self.engine.session, read_day=read)
            except CommandError as exc:
                log.error("[DYNAMIC] add %s refused: %s", symbol, exc)
                continue
            if symbol not in todo:
                todo.append(symbol)
        return todo

    def start(self, symbols: list[str]) -> None:
        """PAUSE and one CATCHUP_SNAPSHOT per symbol (checked addable); RESUME waits for `finish`."""
        engine, timing = self.engine, self.timing
        t0 = time.perf_counter()
        timing.drain_ms = (t0 - timing.drain_started) * 1e3 if timing.drain_started is not None else 0.0
        timing.drain_started = None
        timing.load_ms = 0.0
        log.info("[DYNAMIC] Pausing streaming at %s for %s", fmt_exchange(engine.clock_ns), ", ".join(symbols))
        engine.publish(P.Message(P.PAUSE, {"reason": "add-symbol", "symbols": symbols},
                                 step=engine.global_step, clock=engine.clock_ns))
        for symbol in symbols:
            self.snapshot_id += 1  # one id per snapshot; acks are cumulative, so the last id covers all
            self._add(symbol)
        self.awaiting = self.snapshot_id
        timing.started = t0
        timing.published = time.perf_counter()

    def _add(self, symbol: str) -> None:
        """Give `symbol` a slot and send its snapshot: history, and its bars from the open to the clock."""
        engine, session = self.engine, self.engine.session
        log.info("[DYNAMIC] Processing addition: %s", symbol)
        self.prefetch(symbol, announce=False)
        all_bars, (history, days, wanted), load_ms = self.prefetched.pop(symbol)
        self.timing.load_ms += load_ms
        regular = all_bars.between(session.open_ns, session.close_ns)
        dropped = len(all_bars) - len(regular)
        log.info("[DYNAMIC] Loaded %d bars for %s 1m (%d regular hours)", len(all_bars), symbol, len(regular))
        caught = regular.between(session.open_ns, engine.clock_ns)
        slot = session.add(symbol, regular.between(engine.clock_ns, session.close_ns), caught.ts)
        if wanted and len(days) < wanted:
            log.warning("[DYNAMIC] %s: %d of %d trailing days of history in the store", symbol, len(days), wanted)
        self._publish_snapshot(symbol, slot, history, days, wanted, caught, dropped)
        engine.dynamic[symbol] = DynamicInfo(symbol, engine.clock_ns, session.day.isoformat(), len(caught),
                                             dropped, len(days), wanted)
        log.info("[DYNAMIC] Catchup complete: %d bars processed, %d bars dropped (%s, clock %s)",
                 len(caught), dropped, symbol, fmt_exchange(engine.clock_ns))

    def _publish_snapshot(self, symbol: str, slot: int, history: Bars, days: list[str], wanted: int,
                          caught: Bars, dropped: int) -> None:
        engine, session = self.engine, self.engine.session
        fields = {"symbol": symbol, "slot": slot, "days": days, "caught_up": len(caught),
                  "dropped": dropped, "snapshot_id": self.snapshot_id, "history_wanted": wanted,
                  "sessions": engine.history.sessions_table(days), "open_ns": session.open_ns,
                  "close_ns": session.close_ns}
        payload = CatchupPayload(BarBatch.of_slot(slot, history), BarBatch.of_slot(slot, caught), fields)
        engine.publish(P.Message.of(P.CATCHUP_SNAPSHOT, payload, step=engine.global_step, clock=engine.clock_ns))

    def finish(self) -> None:
        """Every participant has the snapshots: RESUME, and restart the pacing from the frozen clock."""
        engine = self.engine
        self.awaiting = None
        ms = self.timing.figures(time.perf_counter())
        engine.publish(P.Message(P.RESUME, {"reason": "add-symbol", "catchup_ms": ms,
                                            "operator_paused": engine.operator_paused},
                                 step=engine.global_step, clock=engine.clock_ns))
        log.info("[DYNAMIC] Resuming streaming at %s (pause %.2f ms: snapshot %.2f ms, stages %.2f ms; "
                 "before it: in-flight steps drained %.2f ms, store load %.2f ms done when queued)",
                 fmt_exchange(engine.clock_ns), ms["total"], ms["load_publish"], ms["stages"], ms["drain"],
                 ms["load"])
        engine.reset_pacing()
