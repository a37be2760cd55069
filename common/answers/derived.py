"""Processor logic: derived N-minute bars and incremental indicators, answered once per step.

Its replica holds the 1m session (the symbol table and what it received); the derived bars it computes
live in the aggregators and go out in its answers, so it does not store them twice.

Per session the processor keeps one WindowAggregator per derived interval and one Indicator object per
config entry, all vectorised over slots. Indicators run over the trailing history first (history and
session form one input series, as TA-Lib would see it); VWAP restarts at each session open.
A symbol added mid-session is brought to the same state by the same kernels, in one pass over its
history and catch-up bars, so its values equal those of a symbol configured from the start.
"""
from __future__ import annotations

import numpy as np

from common.wire import protocol as P
from common.domain.aggregate import WindowAggregator, aggregate_sessions
from common.domain.bars import Bars
from common.stage.replica import SessionReplica, apply_coordinator_message, slot_index


def _interval_minutes(interval: str) -> int | None:
    """'5m' -> 5, '1d' -> None."""
    return None if interval == "1d" else int(interval[:-1])


class IndicatorSet:
    """The config's indicators for one session, grouped by interval."""

    def __init__(self, entries, n_slots: int):
        from common.domain.indicators import make_indicator

        self.by_interval: dict[str, list] = {}
        for entry in entries:
            ind = make_indicator(entry["name"], entry["params"], n_slots)
            self.by_interval.setdefault(entry["interval"], []).append(ind)

    def all(self):
        return [ind for inds in self.by_interval.values() for ind in inds]

    def describe(self) -> list:
        return [[interval, ind.key, list(ind.outputs)] for interval, inds in self.by_interval.items() for ind in inds]

    def update(self, interval: str, slots: np.ndarray, bars: Bars, arrays: dict, used: list) -> None:
        """Advance the interval's indicators by one bar per slot and add their values to `arrays`."""
        inds = self.by_interval.get(interval)
        if not inds or not len(slots):
            return
        arrays[f"{interval}|slot"] = np.asarray(slots, np.int32)
        arrays[f"{interval}|ts"] = bars.ts
        for ind in inds:
            values = ind.update(slots, bars.open, bars.high, bars.low, bars.close, bars.volume)
            for output, arr in values.items():
                arrays[f"{interval}|{ind.key}|{output}"] = np.asarray(arr, np.float64)
            used.append([interval, ind.key, list(ind.outputs)])

    def feed_history(self, interval: str, slots: np.ndarray, bars: Bars, session_opens: np.ndarray) -> None:
        """Feed many symbols' history through the streaming kernel, one timestamp at a time (vectorised
        over the symbols that have a bar then); indicators restart per session where they reset."""
        inds = self.by_interval.get(interval)
        if not inds or not len(slots):
            return
        order = np.lexsort((slots, bars.ts))
        slots, bars = slots[order], bars.take(order)
        bounds = np.flatnonzero(np.diff(bars.ts)) + 1
        starts = np.concatenate([[0], bounds]).astype(int)
        ends = np.concatenate([bounds, [len(slots)]]).astype(int)
        session_of = np.searchsorted(session_opens, bars.ts, side="right")
        current_session = -1
        all_slots = np.unique(slots)
        for lo, hi in zip(starts, ends):
            if session_of[lo] != current_session:
                current_session = session_of[lo]
                for ind in inds:
                    ind.new_session(all_slots)
            part = bars.take(slice(lo, hi))
            for ind in inds:
                ind.update(slots[lo:hi], part.open, part.high, part.low, part.close, part.volume)

    def run_series(self, interval: str, slot: int, bars: Bars, session_starts: np.ndarray) -> dict:
        """One symbol's whole series through the same kernel; returns {key|output: values}."""
        out = {}
        for ind in self.by_interval.get(interval, []):
            values = ind.run_series(slot, bars.open, bars.high, bars.low, bars.close, bars.volume, session_starts)
            for output, arr in values.items():
                out[f"{ind.key}|{output}"] = np.asarray(arr, np.float64)
        return out

    def new_session(self, slots) -> None:
        for ind in self.all():
            ind.new_session(slots)

    def copy_slot(self, source: "IndicatorSet", source_slot: int, slot: int) -> None:
        """Take one slot's state from another set built from the same config (a prepared warm-up)."""
        for mine, theirs in zip(self.all(), source.all()):
            mine.load_state(theirs.state([source_slot]), slots=[slot])

    def resize(self, n_slots: int) -> None:
        for ind in self.all():
            ind.resize(n_slots)

    def reset_slot(self, slot: int) -> None:
        for ind in self.all():
            ind.reset_slot(slot)


class ProcessorHandler:
    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.replica = SessionReplica()
        self.derived = config.derived_minutes()
        wants_daily = any("1d" in h.intervals for h in config.historical)
        self.history_intervals = [f"{m}m" for m in self.derived] + (["1d"] if wants_daily else [])
        self.aggs: dict[int, WindowAggregator] = {}
        self.indicators: IndicatorSet | None = None
        self.prepared: dict[str, tuple] = {}  # symbol -> (history days, history intervals, warmed IndicatorSet)
        if config.indicators:
            IndicatorSet(config.indicators, 1)  # fail at start-up, not mid-run, on a bad entry

    # ---- dispatch ------------------------------------------------------------------------------
    def handle(self, msg: P.Message, answers: dict) -> list[P.Message]:
        apply_coordinator_message(self.replica, msg)
        if msg.type == P.SESSION_START:
            self._start_session(msg)
        elif msg.type == P.STEP:
            return [self._on_step(msg)]
        elif msg.type == P.HISTORY:
            return [self._on_history(msg)]
        elif msg.type == P.PREPARE:
            _, bars = P.batch_from_arrays(msg.arrays, "h_")
            self.prepared[msg.body["symbol"]] = (msg.body["days"], *self._warm_up(bars, msg.body["sessions"]))
        elif msg.type == P.CATCHUP_SNAPSHOT:
            return [self._on_catchup(msg)]
        elif msg.type == P.SYMBOL_REMOVED:
            slot = self.replica.slot_of[msg.body["symbol"]]
            for agg in self.aggs.values():
                agg.clear_slot(slot)
            self.indicators.reset_slot(slot)
        elif msg.type == P.SESSION_END:
            self.log.info("session %s done: %d steps", msg.body["date"], self.replica.steps)
        return []

    def _start_session(self, msg: P.Message) -> None:
        n = len(msg.body["symbols"])
        self.aggs = {}
        for minutes in self.derived:
            agg = WindowAggregator(minutes, n)
            agg.start_session(msg.body["open_ns"], msg.body["close_ns"])
            self.aggs[minutes] = agg
        self.indicators = IndicatorSet(self.config.indicators, n)
        self.prepared = {}

    # ---- streaming -----------------------------------------------------------------------------
    def _on_step(self, msg: P.Message) -> P.Message:
        slots, bars = P.batch_from_arrays(msg.arrays)
        slots = slots.astype(np.int64)
        arrays: dict[str, np.ndarray] = {}
        intervals, used = [], []
        self.indicators.update("1m", slots, bars, arrays, used)
        for minutes, agg in self.aggs.items():
            emitted = agg.on_step(msg.clock, slots, bars.open, bars.high, bars.low, bars.close, bars.volume)
            if emitted is None or not len(emitted):
                continue
            interval = f"{minutes}m"
            derived = emitted.bars
            arrays.update(P.batch_arrays(emitted.slots, derived, f"{interval}_"))
            arrays[f"{interval}_count"] = np.asarray(emitted.count, np.int64)
            intervals.append(interval)
            self.indicators.update(interval, np.asarray(emitted.slots, np.int64), derived, arrays, used)
        return P.Message(P.DERIVED, {"intervals": intervals, "indicators": used}, arrays)

    # ---- history and catch-up ------------------------------------------------------------------
    def _history_intervals(self, slots: np.ndarray, bars: Bars, sessions: list) -> dict[str, tuple]:
        """History of many slots -> {interval: (slots, bars, counts)} incl. '1m' itself."""
        opens = np.array([s[1] for s in sessions], dtype=np.int64)
        closes = np.array([s[2] for s in sessions], dtype=np.int64)
        out = {"1m": (slots, bars, np.ones(len(slots), np.int64))}
        per_slot = slot_index(slots)
        for interval in self.history_intervals:
            parts_slots, parts_bars, parts_counts = [], [], []
            for slot, index in per_slot.items():
                derived, counts = aggregate_sessions(bars.take(index), opens, closes, _interval_minutes(interval))
                parts_slots.append(np.full(len(derived), slot, np.int64))
                parts_bars.append(derived)
                parts_counts.append(np.asarray(counts, np.int64))
            if parts_bars:
                out[interval] = (np.concatenate(parts_slots), Bars.concat(parts_bars), np.concatenate(parts_counts))
            else:
                out[interval] = (np.empty(0, np.int64), Bars.empty(), np.empty(0, np.int64))
        return out

    def _on_history(self, msg: P.Message) -> P.Message:
        slots, bars = P.batch_from_arrays(msg.arrays)
        sessions = msg.body.get("sessions", [])
        history = self._history_intervals(slots.astype(np.int64), bars, sessions)
        opens = np.array([s[1] for s in sessions], dtype=np.int64)
        for interval, (h_slots, h_bars, _) in history.items():
            self.indicators.feed_history(interval, h_slots, h_bars, opens)
        self.indicators.new_session(np.arange(len(self.replica.symbols)))
        return self._snapshot_message("history", history, {}, [])

    def _snapshot_message(self, scope: str, history: dict, session: dict, indicator_rows: list) -> P.Message:
        arrays, history_intervals = {}, []
        for interval, (h_slots, h_bars, h_counts) in history.items():
            if interval == "1m":
                continue
            arrays.update(P.batch_arrays(h_slots, h_bars, f"h:{interval}_"))
            arrays[f"h:{interval}_count"] = h_counts
            history_intervals.append(interval)
        intervals = []
        for interval, (s_slots, s_bars, s_counts) in session.items():
            arrays.update(P.batch_arrays(s_slots, s_bars, f"{interval}_"))
            arrays[f"{interval}_count"] = s_counts
            intervals.append(interval)
        for interval, slot, ts, values in indicator_rows:
            arrays[f"{interval}|slot"] = np.full(len(ts), slot, np.int32)
            arrays[f"{interval}|ts"] = ts
            arrays.update({f"{interval}|{k}": v for k, v in values.items()})
        used = [row for row in self.indicators.describe() if f"{row[0]}|slot" in arrays]
        return P.Message(P.DERIVED_SNAPSHOT, {"intervals": intervals, "history_intervals": history_intervals,
                                              "indicators": used, "scope": scope}, arrays)

    def _warm_up(self, h_bars: Bars, sessions: list) -> tuple[dict, IndicatorSet]:
        """A symbol's history through the indicator kernels in a one-slot scratch set: (history per
        interval, warmed set). Same bars, same kernels: the state equals warming the symbol's own slot."""
        history = self._history_intervals(np.zeros(len(h_bars), np.int64), h_bars, sessions)
        opens = np.array([s[1] for s in sessions], dtype=np.int64)
        scratch = IndicatorSet(self.config.indicators, 1)
        for interval, (_, bars, _) in history.items():
            starts = np.zeros(len(bars), bool)
            if len(bars):
                session_of = np.searchsorted(opens, bars.ts, side="right")
                starts[0] = True
                starts[1:] = np.diff(session_of) != 0
            scratch.run_series(interval, 0, bars, starts)
        scratch.new_session([0])
        return history, scratch

    def _on_catchup(self, msg: P.Message) -> P.Message:
        slot = msg.body["slot"]
        n = slot + 1
        for agg in self.aggs.values():
            if agg.n_slots < n:
                agg.resize(n)
            else:
                agg.clear_slot(slot)
        self.indicators.resize(max(n, len(self.replica.symbols)))
        prepared = self.prepared.pop(msg.body["symbol"], None)
        if prepared is None or prepared[0] != msg.body["days"]:
            _, h_bars = P.batch_from_arrays(msg.arrays, "h_")
            prepared = (msg.body["days"], *self._warm_up(h_bars, msg.body.get("sessions", [])))
        _, history, scratch = prepared
        history = {k: (np.full(len(b), slot, np.int64), b, c) for k, (_, b, c) in history.items()}
        self.indicators.copy_slot(scratch, 0, slot)
        _, s_bars = P.batch_from_arrays(msg.arrays, "s_")
        session = {}
        indicator_rows = []
        s_series = {"1m": (s_bars, np.ones(len(s_bars), np.int64))}
        for minutes, agg in self.aggs.items():
            done, counts = agg.seed_slot(slot, s_bars, msg.clock)
            interval = f"{minutes}m"
            s_series[interval] = (done, np.asarray(counts, np.int64))
            session[interval] = (np.full(len(done), slot, np.int64), done, np.asarray(counts, np.int64))
        for interval, (bars, _) in s_series.items():
            values = self.indicators.run_series(interval, slot, bars, np.zeros(len(bars), bool))
            if values:
                indicator_rows.append((interval, slot, bars.ts, values))
        return self._snapshot_message("catchup", history, session, indicator_rows)
