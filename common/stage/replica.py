"""Session-data replica: a columnar copy of the session that every stage keeps from the messages.

One session's bars of an interval live in a dense grid: row = window index since the open
(minute for 1m), column = slot (one per symbol, in the order symbols joined the session). Appending one
step for all symbols is one vectorised assignment; reading a symbol's bars compacts its column.
Slots are stable for the whole session (a removed symbol keeps its slot, marked inactive), so a STEP
can name symbols by slot.
"""
from __future__ import annotations

import numpy as np

from common import progress
from common.domain.bars import FIELDS, Bars
from common.domain.timeconv import NS_PER_MIN


class BarGrid:
    """Dense (rows x slots) arrays for one interval of one session."""

    def __init__(self, open_ns: int, minutes: int, n_rows: int, capacity: int):
        self.open_ns = open_ns
        self.step_ns = minutes * NS_PER_MIN
        self.n_rows = n_rows
        self.values = {f: np.full((n_rows, capacity), np.nan) for f in FIELDS[1:]}
        self.present = np.zeros((n_rows, capacity), dtype=bool)
        self.count = np.zeros((n_rows, capacity), dtype=np.int16)
        self.n_present = np.zeros(capacity, dtype=np.int64)  # bars present per slot (= present.sum(axis=0))
        self._rows: dict[int, np.ndarray] = {}  # slot -> rows present (readers' cache; any write clears it)

    @property
    def capacity(self) -> int:
        return self.present.shape[1]

    def grow(self, capacity: int) -> None:
        extra = capacity - self.capacity
        if extra <= 0:
            return
        for f, arr in self.values.items():
            self.values[f] = np.concatenate([arr, np.full((self.n_rows, extra), np.nan)], axis=1)
        self.present = np.concatenate([self.present, np.zeros((self.n_rows, extra), bool)], axis=1)
        self.count = np.concatenate([self.count, np.zeros((self.n_rows, extra), np.int16)], axis=1)
        self.n_present = np.concatenate([self.n_present, np.zeros(extra, np.int64)])
        self._rows = {}

    def rows_of(self, ts: np.ndarray) -> np.ndarray:
        rows = (ts - self.open_ns) // self.step_ns
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n_rows):
            raise ValueError("bar outside the session grid")
        return rows

    def put(self, slots: np.ndarray, bars: Bars, counts: np.ndarray | None = None) -> None:
        if not len(bars):
            return
        rows = self.rows_of(bars.ts)
        for f in FIELDS[1:]:
            self.values[f][rows, slots] = getattr(bars, f)
        np.add.at(self.n_present, slots[~self.present[rows, slots]], 1)  # (a slot may repeat: many rows)
        self.present[rows, slots] = True
        self.count[rows, slots] = 1 if counts is None else counts
        self._rows = {}

    def rows_present(self, slot: int) -> np.ndarray:
        """Rows where `slot` has a bar, in time order (cached until the grid changes; do not modify)."""
        rows = self._rows.get(slot)
        if rows is None:
            rows = self._rows[slot] = np.flatnonzero(self.present[:, slot])
        return rows

    def column(self, slot: int) -> tuple[Bars, np.ndarray]:
        rows = self.rows_present(slot)
        ts = self.open_ns + rows.astype(np.int64) * self.step_ns
        bars = Bars(ts, *(self.values[f][rows, slot] for f in FIELDS[1:]))
        return bars, self.count[rows, slot].astype(np.int64)

    def clear(self, slot: int) -> None:
        for arr in self.values.values():
            arr[:, slot] = np.nan
        self.present[:, slot] = False
        self.count[:, slot] = 0
        self.n_present[slot] = 0
        self._rows = {}


class SessionReplica:
    """Every stage's local copy of the current session (bars per interval, history, quality)."""

    def __init__(self):
        self.date: str | None = None
        self.open_ns = 0
        self.close_ns = 0
        self.clock_ns = 0
        self.symbols: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.active: set[str] = set()
        self.dynamic: set[str] = set()
        self.grids: dict[str, BarGrid] = {}
        self.history: dict[tuple[str, str], tuple[Bars, np.ndarray]] = {}
        self.indicators: dict[tuple[str, str, str], np.ndarray] = {}  # (interval, key, output) -> grid
        self.quality: dict[str, dict] = {}  # symbol -> {interval: {...}} from snapshots (gap lists, history)
        self.quality_now: dict[str, dict[str, np.ndarray]] = {}  # interval -> field -> value per slot
        self.quality_expected: dict[str, int] = {}
        self.steps = 0

    # ---- session structure ---------------------------------------------------------------------
    def start_session(self, date: str, open_ns: int, close_ns: int, symbols: list[str],
                      intervals_minutes: list[int], dynamic: list[str] = ()) -> None:
        self.date, self.open_ns, self.close_ns, self.clock_ns = date, open_ns, close_ns, open_ns
        self.symbols = list(symbols)
        self.slot_of = {s: i for i, s in enumerate(self.symbols)}
        self.active = set(self.symbols)
        self.dynamic = set(dynamic)
        session_minutes = (close_ns - open_ns) // NS_PER_MIN
        capacity = len(symbols) + max(8, len(symbols) // 8)  # headroom: adds need not reallocate
        self.grids = {}
        for minutes in sorted({1, *intervals_minutes}):
            rows = -(-session_minutes // minutes)
            self.grids[f"{minutes}m"] = BarGrid(open_ns, minutes, rows, capacity)
        self.history = {}
        self.indicators = {}
        self.quality = {}
        self.quality_now = {}
        self.quality_expected = {}
        self.steps = 0

    def add_symbol(self, symbol: str, dynamic: bool = True) -> int:
        """Slot of `symbol`, creating one (a re-added symbol gets its old slot back, cleared)."""
        slot = self.slot_of.get(symbol)
        if slot is None:
            slot = len(self.symbols)
            self.symbols.append(symbol)
            self.slot_of[symbol] = slot
            for grid in self.grids.values():
                if slot >= grid.capacity:
                    grid.grow(max(2 * grid.capacity, slot + 1))
            for key, arr in self.indicators.items():
                if slot >= arr.shape[1]:
                    self.indicators[key] = np.concatenate(
                        [arr, np.full((arr.shape[0], max(arr.shape[1], 1)), np.nan)], axis=1)
        else:
            self.clear_symbol(symbol)
        self.active.add(symbol)
        if dynamic:
            self.dynamic.add(symbol)
        return slot

    def clear_symbol(self, symbol: str) -> None:
        slot = self.slot_of[symbol]
        for grid in self.grids.values():
            grid.clear(slot)
        for arr in self.indicators.values():
            arr[:, slot] = np.nan
        for key in [k for k in self.history if k[0] == symbol]:
            del self.history[key]
        self.quality.pop(symbol, None)
        for fields in self.quality_now.values():
            for arr in fields.values():
                if slot < len(arr):
                    arr[slot] = np.nan

    def remove_symbol(self, symbol: str) -> None:
        if symbol in self.slot_of:
            self.clear_symbol(symbol)
        self.active.discard(symbol)
        self.dynamic.discard(symbol)

    def active_slots(self, slots: np.ndarray) -> np.ndarray:
        """The subset of `slots` whose symbol is in the session (removed symbols keep their slot)."""
        if len(self.active) == len(self.symbols):
            return slots
        mask = np.array([s in self.active for s in self.symbols], dtype=bool)
        return slots[mask[slots]]

    # ---- data ----------------------------------------------------------------------------------
    def append_bars(self, interval: str, slots: np.ndarray, bars: Bars, counts=None) -> None:
        self.grids[interval].put(np.asarray(slots, dtype=np.int64), bars, counts)

    def set_history(self, symbol: str, interval: str, bars: Bars, counts: np.ndarray | None = None) -> None:
        self.history[(symbol, interval)] = (bars, np.ones(len(bars), np.int64) if counts is None else counts)

    def put_indicator(self, interval: str, key: str, output: str, slots: np.ndarray,
                      ts: np.ndarray, values: np.ndarray, rows: np.ndarray | None = None) -> None:
        """`rows`: the grid rows of `ts` when the caller has them (one block's outputs share them)."""
        grid = self.grids[interval]
        name = (interval, key, output)
        arr = self.indicators.get(name)
        if arr is None:
            arr = self.indicators[name] = np.full((grid.n_rows, grid.capacity), np.nan)
        if arr.shape[1] < grid.capacity:
            arr = self.indicators[name] = np.concatenate(
                [arr, np.full((arr.shape[0], grid.capacity - arr.shape[1]), np.nan)], axis=1)
        arr[grid.rows_of(ts) if rows is None else rows, slots] = values

    # ---- reading -------------------------------------------------------------------------------
    def bars(self, symbol: str, interval: str = "1m") -> Bars:
        return self.grids[interval].column(self.slot_of[symbol])[0]

    def bars_with_counts(self, symbol: str, interval: str = "1m") -> tuple[Bars, np.ndarray]:
        return self.grids[interval].column(self.slot_of[symbol])

    def history_bars(self, symbol: str, interval: str = "1m") -> Bars:
        entry = self.history.get((symbol, interval))
        return entry[0] if entry else Bars.empty()

    def indicator(self, symbol: str, interval: str, key: str, output: str = "value") -> np.ndarray:
        """Indicator values at the symbol's bars of `interval` (aligned with bars(symbol, interval))."""
        grid = self.grids[interval]
        slot = self.slot_of[symbol]
        arr = self.indicators.get((interval, key, output))
        rows = grid.rows_present(slot)
        if arr is None:
            return np.full(len(rows), np.nan)
        return arr[rows, slot]

    def set_quality(self, interval: str, slots: np.ndarray, expected: int, values: dict[str, np.ndarray]) -> None:
        """Latest quality figures of `interval` for `slots` (vectorised; one call per step)."""
        fields = self.quality_now.setdefault(interval, {})
        self.quality_expected[interval] = int(expected)
        if not len(slots):  # most steps: nothing moved (an array not made yet reads as "no figures")
            return
        size = max(len(self.symbols), int(slots.max()) + 1)
        for name, vals in values.items():
            arr = fields.get(name)
            if arr is None or len(arr) < size:
                grown = np.full(max(size, 8), np.nan)
                if arr is not None:
                    grown[:len(arr)] = arr
                arr = fields[name] = grown
            arr[slots] = vals

    def quality_of(self, symbol: str) -> dict:
        """{interval: {pct, present, expected, gaps, completeness?, gap_list?}, history?: [...]} of a symbol."""
        out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.quality.get(symbol, {}).items()}
        slot = self.slot_of.get(symbol)
        if slot is None:
            return out
        for interval, fields in self.quality_now.items():
            pct = fields.get("pct")
            if pct is None or slot >= len(pct) or pct.item(slot) != pct.item(slot):  # (NaN: no figures yet)
                continue
            entry = out.setdefault(interval, {})
            for name, arr in fields.items():
                entry[name] = arr.item(slot) if name in ("pct", "completeness") else int(arr.item(slot))
            entry["expected"] = self.quality_expected[interval]
            # QUALITY carries a slot only when its pct, completeness or gaps change; the count of
            # bars present moves every step, so it is read off the replica's own grid
            grid = self.grids.get(interval)
            if grid is not None:
                entry["present"] = grid.n_present.item(slot)
        return out

    def export(self) -> dict[str, np.ndarray]:
        """Every array of the replica keyed 'SYMBOL/interval/field' (for result files and comparisons)."""
        out: dict[str, np.ndarray] = {}
        for symbol in sorted(self.active):
            for interval in self.grids:
                bars, counts = self.bars_with_counts(symbol, interval)
                for f in FIELDS:
                    out[f"{symbol}/{interval}/{f}"] = getattr(bars, f)
                out[f"{symbol}/{interval}/count"] = counts
            for (interval, key, output) in sorted(self.indicators):
                out[f"{symbol}/{interval}/{key}.{output}"] = self.indicator(symbol, interval, key, output)
            for interval, values in sorted(self.quality_of(symbol).items()):
                if isinstance(values, dict):
                    for name in ("pct", "present", "expected", "gaps", "completeness"):
                        if name in values:
                            out[f"{symbol}/quality/{interval}/{name}"] = np.array([values[name]], np.float64)
            for (sym, interval), (bars, counts) in sorted(self.history.items()):
                if sym == symbol:
                    for f in FIELDS:
                        out[f"{symbol}/history/{interval}/{f}"] = getattr(bars, f)
        return out


def apply_coordinator_message(replica: SessionReplica, msg) -> None:
    """Bring a replica up to date with one coordinator message (the part every stage shares)."""
    from common.wire import protocol as P

    body, payload = msg.body, msg.payload
    if msg.type == P.SESSION_START:
        minutes = sorted({m for values in body["generated"].values() for m in values})
        replica.start_session(body["date"], body["open_ns"], body["close_ns"], body["symbols"], minutes,
                              body.get("dynamic", []))
    elif msg.type == P.HISTORY:
        for slot, part in payload.batch.per_slot().items():
            progress.tick()
            replica.set_history(replica.symbols[slot], body["interval"], part.bars)
    elif msg.type == P.STEP:
        replica.append_bars("1m", payload.batch.slots, payload.batch.bars)
        replica.clock_ns = msg.clock
        replica.steps += 1
    elif msg.type == P.STEPS:  # every step of the batch in one write (the grid row comes from the bar's ts)
        parts = [part.batch for part in payload.parts]
        replica.append_bars("1m", np.concatenate([b.slots for b in parts]), Bars.concat([b.bars for b in parts]))
        replica.clock_ns = msg.clock
        replica.steps += len(parts)
    elif msg.type == P.CATCHUP_SNAPSHOT:
        slot = replica.add_symbol(body["symbol"], dynamic=True)
        if slot != body["slot"]:
            raise P.ProtocolError(f"CATCHUP_SNAPSHOT: {body['symbol']} has slot {slot} here, {body['slot']} upstream")
        replica.set_history(body["symbol"], "1m", payload.history.bars)
        replica.append_bars("1m", payload.session.slots, payload.session.bars)
    elif msg.type == P.SYMBOL_REMOVED:
        replica.remove_symbol(body["symbol"])


def apply_processor_answer(replica: SessionReplica, payload, indicators: bool = True) -> None:
    """Derived bars, trailing-history bars and (unless `indicators` is False: the caller wrote them with
    `apply_indicator_blocks`) indicator values of a DerivedPayload."""
    for interval, batch in payload.session.items():
        replica.append_bars(interval, batch.slots, batch.bars, batch.counts)
    for interval, batch in payload.history.items():
        for slot, part in batch.per_slot().items():
            progress.tick()
            replica.set_history(replica.symbols[slot], interval, part.bars, part.counts)
    if indicators:
        apply_indicator_blocks(replica, [payload])


def apply_indicator_blocks(replica: SessionReplica, payloads: list) -> None:
    """The indicator values of DerivedPayloads (e.g. the parts of a step batch) in one write per interval
    and output when their blocks have the same keys. Each (interval, bar, slot) holds one value, so the
    replica ends as with one write per payload; readers see a value only once its bar is in the grid
    (`indicator` reads the rows present), so values written ahead of their bars stay unseen until then."""
    by_interval: dict[str, list] = {}
    for payload in payloads:
        for interval, block in payload.indicators.items():
            by_interval.setdefault(interval, []).append(block)
    for interval, blocks in by_interval.items():
        if any(b.keys != blocks[0].keys for b in blocks):
            groups = [(b.slots, b.ts, b.values) for b in blocks]
        else:
            groups = [(np.concatenate([b.slots for b in blocks]), np.concatenate([b.ts for b in blocks]),
                       {name: np.concatenate([b.values[name] for b in blocks]) for name in blocks[0].values})]
        for slots, ts, values in groups:
            rows = replica.grids[interval].rows_of(ts)
            for (key, output), column in values.items():
                replica.put_indicator(interval, key, output, slots, ts, column, rows)


def apply_quality_answer(replica: SessionReplica, payload) -> None:
    """Quality figures: a QualityPayload carries arrays per interval for the slots that changed; a
    QualityTablePayload (snapshots) carries symbol -> interval -> values."""
    for interval, count in getattr(payload, "expected", {}).items():  # every interval, with or without columns
        replica.quality_now.setdefault(interval, {})  # (intervals first seen in the tracker's order, as before)
        replica.quality_expected[interval] = int(count)
    for interval, columns in getattr(payload, "columns", {}).items():
        replica.set_quality(interval, columns.slots.astype(np.int64), payload.expected[interval], columns.figures)
    for symbol, entries in getattr(payload, "table", {}).items():
        kept = replica.quality.setdefault(symbol, {})
        slot = replica.slot_of.get(symbol)
        for interval, values in entries.items():
            if isinstance(values, dict) and "pct" in values and slot is not None:
                figures = {k: np.array([values[k]], np.float64) for k in ("pct", "present", "gaps", "completeness")
                           if k in values}
                replica.set_quality(interval, np.array([slot]), values["expected"], figures)
                extra = {k: v for k, v in values.items() if k not in figures and k != "expected"}
                if extra:
                    kept.setdefault(interval, {}).update(extra)
            else:
                kept[interval] = values
