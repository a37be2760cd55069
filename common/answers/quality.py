"""Quality-stage logic: per symbol and interval, % of expected bars present and the gap list.

Answers every STEP with a QUALITY message carrying only the values that changed (body["table"]:
symbol -> interval -> {pct, present, expected, gaps, completeness}), HISTORY with per-day historical
quality, CATCHUP_SNAPSHOT with the added symbol's whole table, and SESSION_END with the full table and
gap lists.
"""
from __future__ import annotations

import numpy as np

from common.wire import protocol as P
from common.domain.quality import QualityTracker, historical_quality
from common.stage.replica import SessionReplica, apply_coordinator_message, split_by_slot
from common.domain.timeconv import fmt_exchange


class QualityHandler:
    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.replica = SessionReplica()
        self.minutes = [1] + config.derived_minutes()
        self.trackers: dict[int, QualityTracker] = {}

    def handle(self, msg: P.Message, answers: dict) -> list[P.Message]:
        apply_coordinator_message(self.replica, msg)
        body = msg.body
        if msg.type == P.SESSION_START:
            self.trackers = {}
            for minutes in self.minutes:
                tracker = QualityTracker(len(body["symbols"]), minutes)
                tracker.start_session(body["open_ns"], body["close_ns"])
                self.trackers[minutes] = tracker
        elif msg.type == P.STEP:
            slots = msg.arrays["slot"].astype(np.int64)
            changed = [tracker.on_step(msg.clock, slots) for tracker in self.trackers.values()]
            return [self._changes(np.unique(np.concatenate(changed)) if changed else np.empty(0, np.int64))]
        elif msg.type == P.HISTORY:
            return [P.Message(P.QUALITY_SNAPSHOT, {"scope": "history", "table": self._history_table(msg)})]
        elif msg.type == P.CATCHUP_SNAPSHOT:
            slot = body["slot"]
            _, bars = P.batch_from_arrays(msg.arrays, "s_")
            for tracker in self.trackers.values():
                if tracker.n_slots <= slot:
                    tracker.resize(slot + 1)
                tracker.seed_slot(slot, bars.ts, msg.clock)
            table = self._table([slot], with_gaps=True)
            table[body["symbol"]]["history"] = self._history_rows(msg, "h_").get(slot, [])
            return [P.Message(P.QUALITY_SNAPSHOT, {"scope": "catchup", "table": table})]
        elif msg.type == P.SYMBOL_REMOVED:
            slot = self.replica.slot_of[body["symbol"]]
            for tracker in self.trackers.values():
                tracker.clear_slot(slot)
        elif msg.type == P.SESSION_END:
            active = [self.replica.slot_of[s] for s in sorted(self.replica.active)]
            table = self._table(active, with_gaps=True)
            for symbol, row in table.items():
                q = row["1m"]
                self.log.info("quality %s %s: 1m %.2f%% (%d/%d), %d gap(s)", body["date"], symbol, q["pct"],
                              q["present"], q["expected"], q["gaps"])
            return [P.Message(P.QUALITY_SNAPSHOT, {"scope": "session_end", "table": table})]
        return []

    def _changes(self, slots: np.ndarray) -> P.Message:
        """QUALITY: per interval, arrays of the figures of the slots that changed at this step."""
        index = self.replica.active_slots(np.asarray(slots, np.int64))
        arrays, expected = {}, {}
        for minutes, tracker in self.trackers.items():
            interval = f"{minutes}m"
            expected[interval] = int(tracker.expected)
            arrays[f"{interval}|slot"] = index.astype(np.int32)
            arrays[f"{interval}|pct"] = np.asarray(tracker.pct(index), np.float64)
            arrays[f"{interval}|present"] = np.asarray(tracker.present(index), np.int64)
            arrays[f"{interval}|gaps"] = np.asarray(tracker.gap_count(index), np.int64)
            if minutes > 1:
                arrays[f"{interval}|completeness"] = np.asarray(tracker.completeness(index), np.float64)
        return P.Message(P.QUALITY, {"intervals": list(expected), "expected": expected}, arrays)

    def _table(self, slots: list[int], with_gaps: bool = False) -> dict:
        """{symbol: {interval: values}} for the given slots (removed symbols left out); one vectorised
        read per tracker, not one per slot."""
        slots = [s for s in slots if self.replica.symbols[s] in self.replica.active]
        table: dict[str, dict] = {self.replica.symbols[s]: {} for s in slots}
        if not slots:
            return table
        index = np.asarray(slots, np.int64)
        for minutes, tracker in self.trackers.items():
            interval = f"{minutes}m"
            pct = tracker.pct(index).tolist()
            present = tracker.present(index).tolist()
            gaps = tracker.gap_count(index).tolist()
            completeness = tracker.completeness(index).tolist() if minutes > 1 else None
            expected = int(tracker.expected)
            for i, slot in enumerate(slots):
                entry = {"pct": pct[i], "present": present[i], "expected": expected, "gaps": gaps[i]}
                if completeness is not None:
                    entry["completeness"] = completeness[i]
                if with_gaps:
                    entry["gap_list"] = [[fmt_exchange(int(g[0])), fmt_exchange(int(g[1])), int(g[2])]
                                         for g in tracker.gaps(slot)]
                table[self.replica.symbols[slot]][interval] = entry
        return table

    def _history_rows(self, msg: P.Message, prefix: str = "") -> dict[int, list]:
        """Per slot: [[date, present, expected, pct], ...] over the trailing sessions."""
        slots, bars = P.batch_from_arrays(msg.arrays, prefix)
        sessions = msg.body.get("sessions", [])
        out = {}
        for slot, part in split_by_slot(slots, bars).items():
            rows = []
            for date, open_ns, close_ns in sessions:
                present, expected, pct = historical_quality(part.between(open_ns, close_ns).ts, open_ns, close_ns)
                rows.append([date, int(present), int(expected), round(float(pct), 4)])
            out[slot] = rows
        return out

    def _history_table(self, msg: P.Message) -> dict:
        rows = self._history_rows(msg)
        wanted = msg.body.get("history_days", {})
        table = {}
        for slot, symbol in enumerate(self.replica.symbols):
            have, want = wanted.get(symbol, [len(rows.get(slot, [])), 0])
            table[symbol] = {"history": rows.get(slot, []), "history_days": [have, want]}
        return table
