"""Derived answers: N-minute bars and incremental indicators computed from the coordinator's messages.

The processor process publishes these answers; a late-joining analysis process recomputes them with
this same code while it replays the coordinator's journal (so its replica equals the processor's
output without a second snapshot). Its replica holds the 1m session (the symbol table and what it
received); the derived bars it computes live in the aggregators and go out in its answers, so it does
not store them twice.

Per session the processor keeps one WindowAggregator per derived interval and one Indicator object per
config entry, all vectorised over slots. Indicators run over the trailing history first (history and
session form one input series, as TA-Lib would see it); VWAP restarts at each session open.
A symbol added mid-session is brought to the same state by the same kernels, in one pass over its
history and catch-up bars, so its values equal those of a symbol configured from the start.
"""
from __future__ import annotations

import numpy as np

from common import progress
from common.domain.aggregate import WindowAggregator, aggregate_many
from common.domain.bars import Bars
from common.domain.interval import DAILY, Interval
from common.stage.replica import SessionReplica, apply_coordinator_message
from common.wire import protocol as P
from common.wire.payloads import (
    BarBatch,
    DerivedPayload,
    IndicatorBlock,
    StepBatchPayload,
    slot_positions,
)


SERIES_UP_TO_SLOTS = 64  # history of this many symbols or fewer: per-symbol scans; more: per-timestamp vectors


class IndicatorSet:
    """The config's indicators for one session, grouped by interval."""

    def __init__(self, entries, n_slots: int):
        from common.domain.indicators import make_indicator

        self.by_interval: dict[str, list] = {}
        for entry in entries:
            ind = make_indicator(entry["name"], entry["params"], n_slots)
            self.by_interval.setdefault(entry["interval"], []).append(ind)

    def catalog(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(interval, key) -> outputs of every indicator in the set."""
        return {(interval, ind.key): tuple(ind.outputs) for interval, inds in self.by_interval.items() for ind in inds}

    def all(self):
        return [ind for inds in self.by_interval.values() for ind in inds]

    def update(self, interval: str, slots: np.ndarray, bars: Bars) -> IndicatorBlock | None:
        """Advance the interval's indicators by one bar per slot; their values at these bars."""
        inds = self.by_interval.get(interval)
        if not inds or not len(slots):
            return None
        block = IndicatorBlock(np.asarray(slots, np.int32), bars.ts)
        rows = np.asarray(slots, dtype=np.intp)
        cols = [np.asarray(a, dtype=np.float64) for a in (bars.open, bars.high, bars.low, bars.close, bars.volume)]
        if any(len(a) != len(rows) for a in cols):
            raise ValueError(f"{interval}: slots and bar arrays differ in length")
        if rows.min() < 0 or rows.max() >= inds[0].n_slots:
            raise IndexError(f"{interval}: slots out of range (0..{inds[0].n_slots - 1})")
        for ind in inds:
            block.add(ind.key, ind.update_checked(rows, cols))
        return block

    def feed_history(self, interval: str, slots: np.ndarray, bars: Bars, session_opens: np.ndarray) -> None:
        """Feed many symbols' history through the streaming kernel, one timestamp at a time (vectorised
        over the symbols that have a bar then); indicators restart per session where they reset. The
        caller starts a new session for every slot next (an indicator that forgets then is not run)."""
        inds = self.by_interval.get(interval)
        if not inds or not len(slots):
            return
        per_slot = slot_positions(np.asarray(slots))
        skipped = [ind for ind in inds if ind.forgets_at_session]  # new_session() follows: only their counts move
        for ind in skipped:
            ind.skip(list(per_slot), [len(index) for index in per_slot.values()])
        inds = [ind for ind in inds if not ind.forgets_at_session]
        if not inds:
            return
        if len(per_slot) <= SERIES_UP_TO_SLOTS:
            # few symbols: each one's series through the kernel's scalar scan (bit-identical to streaming,
            # and no per-timestamp numpy overhead: a year of 10 symbols re-warms 5 days every session)
            for slot, index in per_slot.items():
                progress.tick()
                part = bars.take(index)
                session_of = np.searchsorted(session_opens, part.ts, side="right")
                starts = np.concatenate([[True], np.diff(session_of) != 0])
                for ind in inds:
                    ind.feed(slot, part.open, part.high, part.low, part.close, part.volume, starts)
            return
        self._feed_by_timestamp(inds, slots, bars, session_opens)

    @staticmethod
    def _feed_by_timestamp(inds: list, slots: np.ndarray, bars: Bars, session_opens: np.ndarray) -> None:
        """Many symbols: one vectorised update per timestamp, new_session() where a history session starts."""
        order = np.lexsort((slots, bars.ts))
        slots, bars = slots[order], bars.take(order)
        bounds = np.flatnonzero(np.diff(bars.ts)) + 1
        starts = np.concatenate([[0], bounds]).astype(int)
        ends = np.concatenate([bounds, [len(slots)]]).astype(int)
        session_of = np.searchsorted(session_opens, bars.ts, side="right")
        current_session = -1
        all_slots = np.unique(slots)
        for lo, hi in zip(starts, ends):
            progress.tick()
            if session_of[lo] != current_session:
                current_session = session_of[lo]
                for ind in inds:
                    ind.new_session(all_slots)
            part = bars.take(slice(lo, hi))
            for ind in inds:
                ind.update(slots[lo:hi], part.open, part.high, part.low, part.close, part.volume)

    def run_series(self, interval: str, slot: int, bars: Bars, session_starts: np.ndarray) -> IndicatorBlock | None:
        """One symbol's whole series through the same kernel; its values at every bar."""
        inds = self.by_interval.get(interval)
        if not inds:
            return None
        block = IndicatorBlock(np.full(len(bars), slot, np.int32), bars.ts)
        for ind in inds:
            block.add(ind.key, ind.run_series(slot, bars.open, bars.high, bars.low, bars.close, bars.volume,
                                              session_starts))
        return block

    def new_session(self, slots) -> None:
        for ind in self.all():
            ind.new_session(slots)

    def copy_slot(self, source: "IndicatorSet", source_slot: int, slot: int) -> None:
        """Take one slot's state from another set built from the same config (a prepared warm-up)."""
        for mine, theirs in zip(self.all(), source.all()):
            mine.load_state(theirs.state([source_slot]), slots=[slot])

    def ensure(self, n_slots: int) -> None:
        """At least n_slots slots (a whole market's state is copied only when the headroom is used up)."""
        for ind in self.all():
            if ind.n_slots < n_slots:
                ind.resize(max(n_slots, ind.n_slots + ind.n_slots // 8))

    def reset_slot(self, slot: int) -> None:
        for ind in self.all():
            ind.reset_slot(slot)


class DerivedAnswers:
    """The processor's answers to coordinator messages, as DerivedPayloads (None: no answer)."""

    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.replica = SessionReplica()
        self.derived = config.derived_intervals()
        wants_daily = any("1d" in h.intervals for h in config.historical)
        self.history_intervals = self.derived + ([DAILY] if wants_daily else [])
        self.aggs: dict[Interval, WindowAggregator] = {}
        self.indicators: IndicatorSet | None = None
        self.session_indicators = list(config.indicators)  # SESSION_START sets the session's own
        self.prepared: dict[str, tuple] = {}  # symbol -> (history days, history per interval, warmed IndicatorSet)
        if config.indicators:
            IndicatorSet(config.indicators, 1)  # fail at start-up, not mid-run, on a bad entry

    def answer(self, msg: P.Message) -> DerivedPayload | None:
        """Apply one coordinator message; the payload to publish in answer, if this type gets one."""
        apply_coordinator_message(self.replica, msg)
        if msg.type == P.SESSION_START:
            self._start_session(msg)
        elif msg.type == P.STEP:
            return self._on_step(msg)
        elif msg.type == P.STEPS:
            batch = msg.payload
            return StepBatchPayload(P.DERIVED, batch.steps, batch.clocks, [self._on_step(m) for m in P.split_batch(msg)])
        elif msg.type == P.HISTORY:
            return self._on_history(msg)
        elif msg.type == P.PREPARE:
            body = msg.body
            self.prepared[body["symbol"]] = (body["days"], *self._warm_up(msg.payload.history.bars, body["sessions"]))
        elif msg.type == P.CATCHUP_SNAPSHOT:
            return self._on_catchup(msg)
        elif msg.type == P.SYMBOL_REMOVED:
            slot = self.replica.slot_of[msg.body["symbol"]]
            for agg in self.aggs.values():
                agg.clear_slot(slot)
            self.indicators.reset_slot(slot)
        return None

    def _start_session(self, msg: P.Message) -> None:
        n = len(msg.body["symbols"])
        n = n + max(8, n // 8)  # headroom (as the replica's): an added symbol's slot needs no reallocation
        self.aggs = {}
        for interval in self.derived:
            agg = WindowAggregator(interval.minutes, n)
            agg.start_session(msg.body["open_ns"], msg.body["close_ns"])
            self.aggs[interval] = agg
        # the session's indicators: the config's plus those the strategies declared (a catch-up's warm-up
        # set must hold the same ones, in the same order, for its state to be copied slot for slot)
        self.session_indicators = msg.body.get("indicators", self.config.indicators)
        self.indicators = IndicatorSet(self.session_indicators, n)
        self.prepared = {}

    # ---- streaming -----------------------------------------------------------------------------
    def _on_step(self, msg: P.Message) -> DerivedPayload:
        batch = msg.payload.batch
        slots, bars = batch.slots.astype(np.int64), batch.bars
        out = DerivedPayload()
        self._add_block(out, "1m", self.indicators.update("1m", slots, bars))
        for interval, agg in self.aggs.items():
            emitted = agg.on_step(msg.clock, slots, bars.open, bars.high, bars.low, bars.close, bars.volume)
            if emitted is None or not len(emitted):
                continue
            out.session[interval.name] = BarBatch(emitted.slots, emitted.bars, np.asarray(emitted.count, np.int64))
            d_slots = np.asarray(emitted.slots, np.int64)
            self._add_block(out, interval.name, self.indicators.update(interval.name, d_slots, emitted.bars))
        return out

    @staticmethod
    def _add_block(out: DerivedPayload, interval: str, block: IndicatorBlock | None) -> None:
        if block is not None:
            out.indicators[interval] = block

    # ---- history and catch-up ------------------------------------------------------------------
    def _history_intervals(self, batch: BarBatch, sessions: list) -> dict[str, BarBatch]:
        """History of many slots -> {interval name: batch} incl. '1m' itself."""
        opens = np.array([s[1] for s in sessions], dtype=np.int64)
        closes = np.array([s[2] for s in sessions], dtype=np.int64)
        out = {"1m": BarBatch(batch.slots, batch.bars, np.ones(len(batch), np.int64))}
        for interval in self.history_intervals:  # every symbol at once (as each alone, bit for bit)
            progress.tick()
            slots, derived, counts = aggregate_many(batch.slots, batch.bars, opens, closes, interval.minutes)
            out[interval.name] = BarBatch(slots, derived, counts)
        return out

    def _on_history(self, msg: P.Message) -> DerivedPayload:
        batch = msg.payload.batch
        sessions = msg.body.get("sessions", [])
        history = self._history_intervals(BarBatch(batch.slots.astype(np.int64), batch.bars), sessions)
        opens = np.array([s[1] for s in sessions], dtype=np.int64)
        for interval, h in history.items():
            self.indicators.feed_history(interval, h.slots, h.bars, opens)
        self.indicators.new_session(np.arange(len(self.replica.symbols)))
        return DerivedPayload(history={k: v for k, v in history.items() if k != "1m"}, scope="history")

    def _warm_up(self, h_bars: Bars, sessions: list) -> tuple[dict, IndicatorSet]:
        """A symbol's history through the indicator kernels in a one-slot scratch set: (history per
        interval, warmed set). Same bars, same kernels: the state equals warming the symbol's own slot."""
        history = self._history_intervals(BarBatch.of_slot(0, h_bars), sessions)
        opens = np.array([s[1] for s in sessions], dtype=np.int64)
        scratch = IndicatorSet(self.session_indicators, 1)
        for interval, h in history.items():
            starts = np.zeros(len(h), bool)
            if len(h):
                session_of = np.searchsorted(opens, h.bars.ts, side="right")
                starts[0] = True
                starts[1:] = np.diff(session_of) != 0
            scratch.run_series(interval, 0, h.bars, starts)
        scratch.new_session([0])
        return history, scratch

    def _on_catchup(self, msg: P.Message) -> DerivedPayload:
        slot, body = msg.body["slot"], msg.body
        self._make_room(slot)
        prepared = self.prepared.pop(body["symbol"], None)
        if prepared is None or prepared[0] != body["days"]:
            prepared = (body["days"], *self._warm_up(msg.payload.history.bars, body.get("sessions", [])))
        _, history, scratch = prepared
        self.indicators.copy_slot(scratch, 0, slot)
        s_bars = msg.payload.session.bars
        out = DerivedPayload(scope="catchup")
        out.history = {k: BarBatch.of_slot(slot, h.bars, h.counts) for k, h in history.items() if k != "1m"}
        series = {"1m": s_bars}
        for interval, agg in self.aggs.items():
            done, counts = agg.seed_slot(slot, s_bars, msg.clock)
            series[interval.name] = done
            out.session[interval.name] = BarBatch.of_slot(slot, done, np.asarray(counts, np.int64))
        for interval, bars in series.items():
            self._add_block(out, interval, self.indicators.run_series(interval, slot, bars, np.zeros(len(bars), bool)))
        return out

    def _make_room(self, slot: int) -> None:
        """Aggregators and indicators get a (cleared) column for an added symbol's slot."""
        n = slot + 1
        for agg in self.aggs.values():
            if agg.n_slots < n:
                agg.resize(n)
            else:
                agg.clear_slot(slot)
        self.indicators.ensure(max(n, len(self.replica.symbols)))

