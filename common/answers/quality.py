"""Quality answers: per symbol and interval, % of expected bars present and the gap list.

The quality process publishes these answers; a late-joining analysis process recomputes them with this
same code while it replays the coordinator's journal. Answers every STEP with a QUALITY message carrying only the values that changed (body["table"]:
symbol -> interval -> {pct, present, expected, gaps, completeness}), HISTORY with per-day historical
quality, CATCHUP_SNAPSHOT with the added symbol's whole table, and SESSION_END with the full table and
gap lists.
"""
from __future__ import annotations

import numpy as np

from common import progress
from common.domain.interval import BASE, Interval
from common.domain.quality import QualityTracker, historical_quality
from common.domain.timeconv import fmt_exchange
from common.stage.replica import SessionReplica, apply_coordinator_message
from common.wire import protocol as P
from common.wire.payloads import (
    BarBatch,
    QualityColumns,
    QualityPayload,
    QualityTablePayload,
    StepBatchPayload,
)


_NO_SLOTS = np.empty(0, np.int64)


class QualityAnswers:
    """The quality stage's answers to coordinator messages (None: no answer)."""

    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.replica = SessionReplica()
        self.intervals = [BASE] + config.derived_intervals()
        self.trackers: dict[Interval, QualityTracker] = {}

    def answer(self, msg: P.Message) -> QualityPayload | QualityTablePayload | None:
        apply_coordinator_message(self.replica, msg)
        body = msg.body
        if msg.type == P.SESSION_START:
            self.trackers = {}
            for interval in self.intervals:
                tracker = QualityTracker(len(body["symbols"]), interval.minutes)
                tracker.start_session(body["open_ns"], body["close_ns"])
                self.trackers[interval] = tracker
        elif msg.type == P.STEP:
            return self._on_step(msg)
        elif msg.type == P.STEPS:
            batch = msg.payload
            return StepBatchPayload(P.QUALITY, batch.steps, batch.clocks, [self._on_step(m) for m in P.split_batch(msg)])
        elif msg.type == P.HISTORY:
            return QualityTablePayload(self._history_table(msg), "history")
        elif msg.type == P.CATCHUP_SNAPSHOT:
            return self._on_catchup(msg)
        elif msg.type == P.SYMBOL_REMOVED:
            slot = self.replica.slot_of[body["symbol"]]
            for tracker in self.trackers.values():
                tracker.clear_slot(slot)
        elif msg.type == P.SESSION_END:
            active = [self.replica.slot_of[s] for s in sorted(self.replica.active)]
            return QualityTablePayload(self._table(active, with_gaps=True), "session_end")
        return None

    def _on_step(self, msg: P.Message) -> QualityPayload:
        slots = msg.payload.batch.slots.astype(np.int64)
        changed = [c for tracker in self.trackers.values() for c in [tracker.on_step(msg.clock, slots)] if len(c)]
        return self._changes(np.unique(np.concatenate(changed)) if changed else _NO_SLOTS)

    def _on_catchup(self, msg: P.Message) -> QualityTablePayload:
        slot = msg.body["slot"]
        for tracker in self.trackers.values():
            if tracker.n_slots <= slot:
                tracker.resize(slot + 1)
            tracker.seed_slot(slot, msg.payload.session.bars.ts, msg.clock)
        table = self._table([slot], with_gaps=True)
        table[msg.body["symbol"]]["history"] = self._history_rows(msg.payload.history, msg.body).get(slot, [])
        return QualityTablePayload(table, "catchup")

    def _changes(self, slots: np.ndarray) -> QualityPayload:
        """QUALITY: per interval, the figures of the slots that changed at this step."""
        index = self.replica.active_slots(np.asarray(slots, np.int64))
        columns, expected = {}, {}
        for interval, tracker in self.trackers.items():
            expected[interval.name] = int(tracker.expected)
            if not len(index):  # most steps: nothing moved, no columns (expected still goes)
                continue
            figures = {"pct": tracker.pct(index), "present": tracker.present(index), "gaps": tracker.gap_count(index)}
            if interval.minutes > 1:
                figures["completeness"] = tracker.completeness(index)
            columns[interval.name] = QualityColumns(index, figures)
        return QualityPayload(columns, expected)

    def _table(self, slots: list[int], with_gaps: bool = False) -> dict:
        """{symbol: {interval: values}} for the given slots (removed symbols left out); one vectorised
        read per tracker, not one per slot."""
        slots = [s for s in slots if self.replica.symbols[s] in self.replica.active]
        table: dict[str, dict] = {self.replica.symbols[s]: {} for s in slots}
        if not slots:
            return table
        index = np.asarray(slots, np.int64)
        for interval, tracker in self.trackers.items():
            pct = tracker.pct(index).tolist()
            present = tracker.present(index).tolist()
            gaps = tracker.gap_count(index).tolist()
            completeness = tracker.completeness(index).tolist() if interval.minutes > 1 else None
            expected = int(tracker.expected)
            for i, slot in enumerate(slots):
                progress.tick()
                entry = {"pct": pct[i], "present": present[i], "expected": expected, "gaps": gaps[i]}
                if completeness is not None:
                    entry["completeness"] = completeness[i]
                if with_gaps:
                    entry["gap_list"] = [[fmt_exchange(int(g[0])), fmt_exchange(int(g[1])), int(g[2])]
                                         for g in tracker.gaps(slot)]
                table[self.replica.symbols[slot]][interval.name] = entry
        return table

    @staticmethod
    def _history_rows(history: BarBatch, body: dict) -> dict[int, list]:
        """Per slot: [[date, present, expected, pct], ...] over the trailing sessions."""
        sessions = body.get("sessions", [])
        out = {}
        for slot, part in history.per_slot().items():
            progress.tick()
            rows = []
            for date, open_ns, close_ns in sessions:
                present, expected, pct = historical_quality(part.bars.between(open_ns, close_ns).ts, open_ns, close_ns)
                rows.append([date, int(present), int(expected), round(float(pct), 4)])
            out[slot] = rows
        return out

    def _history_table(self, msg: P.Message) -> dict:
        rows = self._history_rows(msg.payload.batch, msg.body)
        wanted = msg.body.get("history_days", {})
        table = {}
        for slot, symbol in enumerate(self.replica.symbols):
            have, want = wanted.get(symbol, [len(rows.get(slot, [])), 0])
            table[symbol] = {"history": rows.get(slot, []), "history_days": [have, want]}
        return table
