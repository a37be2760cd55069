"""Typed message payloads: the arrays inside every message body, named and encoded in one place.

docs/protocol.md names every array of every message; this module is the only code that builds or reads
those names. A payload class owns its part of the message: `encode()` gives (body fields, arrays) and
`decode(body, arrays)` rebuilds it, checking that every array it needs is there and that the columns
of one batch have one length (a ProtocolError otherwise). `protocol.decode` attaches the decoded
payload to the Message it returns, so a payload is decoded once per process, however many parts of
the process read it.

Array names, per message (I = an interval name such as '5m'):

    STEP, HISTORY          bar batch, no prefix: slot ts open high low close volume
    PREPARE                bar batch 'h_' (trailing history)
    CATCHUP_SNAPSHOT       bar batch 'h_' (trailing history), bar batch 's_' (session bars before T)
    DERIVED                per I: bar batch 'I_' + 'I_count'; indicator block 'I|slot' 'I|ts' 'I|key|output'
    DERIVED_SNAPSHOT       DERIVED + per history interval I: bar batch 'h:I_' + 'h:I_count'
    QUALITY                per I: 'I|slot' 'I|pct' 'I|present' 'I|gaps' ['I|completeness']
    STEPS, DERIVED_STEPS,  the arrays of STEP / DERIVED / QUALITY of consecutive steps, concatenated by
    QUALITY_STEPS          name (body 'names', 'lengths' say where each step's part lies)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from common.domain.bars import Bars
from common.wire.errors import ProtocolError

BATCH_COLUMNS = ("slot", "ts", "open", "high", "low", "close", "volume")
QUALITY_COLUMNS = ("pct", "present", "gaps", "completeness")
_QUALITY_DTYPES = {"pct": np.float64, "present": np.int64, "gaps": np.int64, "completeness": np.float64}


def _array(arrays: dict, name: str, kind: str = "") -> np.ndarray:
    """The named array; with `kind` ('i' integer, 'f' float) its dtype must be of that kind."""
    try:
        arr = arrays[name]
    except KeyError:
        raise ProtocolError(f"array {name!r} is missing") from None
    if kind and arr.dtype.kind != kind:
        raise ProtocolError(f"array {name!r} has dtype {arr.dtype}, expected {'integers' if kind == 'i' else 'floats'}")
    return arr


def _column_kind(name: str) -> str:
    return "i" if name in ("slot", "ts", "count") else "f"


def _same_length(what: str, *columns: np.ndarray) -> None:
    if len({len(c) for c in columns}) > 1:
        raise ProtocolError(f"{what}: columns have different lengths")


# --- building blocks ---------------------------------------------------------------------------
@dataclass
class BarBatch:
    """Many symbols' bars in columns: `slots[i]` is the session slot of bar i; `counts[i]` how many
    1m bars a derived bar was built from (None for 1m batches, where it is always 1)."""

    slots: np.ndarray
    bars: Bars
    counts: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.bars)

    @classmethod
    def empty(cls, with_counts: bool = False) -> "BarBatch":
        return cls(np.empty(0, np.int64), Bars.empty(), np.empty(0, np.int64) if with_counts else None)

    @classmethod
    def of_slot(cls, slot: int, bars: Bars, counts: np.ndarray | None = None) -> "BarBatch":
        """One symbol's bars as a batch."""
        return cls(np.full(len(bars), slot, np.int64), bars, counts)

    def encode(self, prefix: str = "") -> dict[str, np.ndarray]:
        out = {prefix + "slot": np.asarray(self.slots, dtype=np.int32), prefix + "ts": self.bars.ts}
        for name in BATCH_COLUMNS[2:]:
            out[prefix + name] = getattr(self.bars, name)
        if self.counts is not None:
            out[prefix + "count"] = np.asarray(self.counts, np.int64)
        return out

    @classmethod
    def decode(cls, arrays: dict, prefix: str = "", with_counts: bool = False) -> "BarBatch":
        cols = [_array(arrays, prefix + name, _column_kind(name)) for name in BATCH_COLUMNS]
        counts = _array(arrays, prefix + "count", "i") if with_counts else None
        _same_length(f"bar batch {prefix or '(no prefix)'}", *cols, *([counts] if with_counts else []))
        if len(cols[0]) and cols[0].min() < 0:
            raise ProtocolError(f"bar batch {prefix or '(no prefix)'}: negative slot")
        return cls(cols[0], Bars(*cols[1:]), counts)

    def counts_or_ones(self) -> np.ndarray:
        return np.ones(len(self.bars), np.int64) if self.counts is None else self.counts

    def per_slot(self) -> dict[int, "BarBatch"]:
        """{slot: that slot's bars, in their original (time) order}."""
        out = {}
        for slot, index in slot_positions(self.slots).items():
            counts = None if self.counts is None else self.counts[index]
            out[slot] = BarBatch(self.slots[index], self.bars.take(index), counts)
        return out


def slot_positions(slots: np.ndarray) -> dict[int, np.ndarray]:
    """{slot: positions of that slot in `slots`}, positions in their original (time) order."""
    order = np.argsort(slots, kind="stable")
    sorted_slots = slots[order]
    bounds = np.flatnonzero(np.diff(sorted_slots)) + 1
    starts = np.concatenate([[0], bounds]).astype(int)
    ends = np.concatenate([bounds, [len(slots)]]).astype(int)
    return {int(sorted_slots[lo]): order[lo:hi] for lo, hi in zip(starts, ends) if hi > lo}


@dataclass
class IndicatorBlock:
    """Indicator values of one interval: one row per (slot, bar open time `ts`); `values` maps
    (key, output) -> column, e.g. ('macd(12,26,9)', 'hist'). `keys` lists [key, outputs] in order."""

    slots: np.ndarray
    ts: np.ndarray
    keys: list = field(default_factory=list)
    values: dict = field(default_factory=dict)

    def add(self, key: str, outputs: dict[str, np.ndarray]) -> None:
        self.keys.append([key, list(outputs)])
        for output, column in outputs.items():
            self.values[(key, output)] = np.asarray(column, np.float64)

    def encode(self, interval: str) -> dict[str, np.ndarray]:
        out = {f"{interval}|slot": np.asarray(self.slots, np.int32), f"{interval}|ts": self.ts}
        for (key, output), column in self.values.items():
            out[f"{interval}|{key}|{output}"] = column
        return out

    @classmethod
    def decode(cls, arrays: dict, interval: str, keys: list) -> "IndicatorBlock":
        block = cls(_array(arrays, f"{interval}|slot", "i"), _array(arrays, f"{interval}|ts", "i"))
        for key, outputs in keys:
            block.keys.append([key, list(outputs)])
            for output in outputs:
                block.values[(key, output)] = _array(arrays, f"{interval}|{key}|{output}", "f")
        _same_length(f"indicators of {interval}", block.slots, block.ts, *block.values.values())
        return block


def _indicator_index(blocks: dict[str, IndicatorBlock]) -> list:
    return [[interval, key, outputs] for interval, block in blocks.items() for key, outputs in block.keys]


def _decode_blocks(body: dict, arrays: dict) -> dict[str, IndicatorBlock]:
    grouped: dict[str, list] = {}
    for entry in body["indicators"]:
        if not (isinstance(entry, list) and len(entry) == 3 and isinstance(entry[2], list)):
            raise ProtocolError(f"indicator entry {entry!r} is not [interval, key, outputs]")
        grouped.setdefault(str(entry[0]), []).append([str(entry[1]), [str(o) for o in entry[2]]])
    return {interval: IndicatorBlock.decode(arrays, interval, keys) for interval, keys in grouped.items()}


def _str_list(body: dict, name: str) -> list[str]:
    values = body.get(name, [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ProtocolError(f"body field {name!r} must be a list of strings")
    return values


# --- coordinator messages with arrays ----------------------------------------------------------
@dataclass
class StepPayload:
    """STEP: every 1m bar that closed at the message's clock, all symbols."""

    batch: BarBatch

    def encode(self) -> tuple[dict, dict]:
        return {"symbols": []}, self.batch.encode()

    @classmethod
    def decode(cls, body: dict, arrays: dict) -> "StepPayload":
        return cls(BarBatch.decode(arrays))


@dataclass
class HistoryPayload:
    """HISTORY: trailing regular-hours 1m bars of the session's symbols (body fields: docs/protocol.md)."""

    batch: BarBatch
    fields: dict

    def encode(self) -> tuple[dict, dict]:
        return dict(self.fields), self.batch.encode()

    @classmethod
    def decode(cls, body: dict, arrays: dict) -> "HistoryPayload":
        return cls(BarBatch.decode(arrays), body)


@dataclass
class PreparePayload:
    """PREPARE: one symbol's trailing history, sent when its add is queued."""

    history: BarBatch
    fields: dict

    def encode(self) -> tuple[dict, dict]:
        return dict(self.fields), self.history.encode("h_")

    @classmethod
    def decode(cls, body: dict, arrays: dict) -> "PreparePayload":
        return cls(BarBatch.decode(arrays, "h_"), body)


@dataclass
class CatchupPayload:
    """CATCHUP_SNAPSHOT: an added symbol's history and its session bars with open in [open, T)."""

    history: BarBatch
    session: BarBatch
    fields: dict

    def encode(self) -> tuple[dict, dict]:
        return dict(self.fields), {**self.history.encode("h_"), **self.session.encode("s_")}

    @classmethod
    def decode(cls, body: dict, arrays: dict) -> "CatchupPayload":
        return cls(BarBatch.decode(arrays, "h_"), BarBatch.decode(arrays, "s_"), body)


# --- processor answers -------------------------------------------------------------------------
@dataclass
class DerivedPayload:
    """DERIVED (scope 'step') and DERIVED_SNAPSHOT (scope 'history' or 'catchup'): derived bars per
    session interval, trailing-history bars per interval (snapshots) and indicator values."""

    session: dict[str, BarBatch] = field(default_factory=dict)
    indicators: dict[str, IndicatorBlock] = field(default_factory=dict)
    history: dict[str, BarBatch] = field(default_factory=dict)
    scope: str = "step"

    def encode(self) -> tuple[dict, dict]:
        arrays: dict[str, np.ndarray] = {}
        for interval, batch in self.session.items():
            arrays.update(batch.encode(f"{interval}_"))
        for interval, batch in self.history.items():
            arrays.update(batch.encode(f"h:{interval}_"))
        for interval, block in self.indicators.items():
            arrays.update(block.encode(interval))
        body = {"intervals": list(self.session), "indicators": _indicator_index(self.indicators)}
        if self.scope != "step":
            body.update(history_intervals=list(self.history), scope=self.scope)
        return body, arrays

    @classmethod
    def decode(cls, body: dict, arrays: dict) -> "DerivedPayload":
        session = {i: BarBatch.decode(arrays, f"{i}_", with_counts=True) for i in _str_list(body, "intervals")}
        history = {i: BarBatch.decode(arrays, f"h:{i}_", with_counts=True)
                   for i in _str_list(body, "history_intervals")}
        return cls(session, _decode_blocks(body, arrays), history, body.get("scope", "step"))


# --- quality answers ---------------------------------------------------------------------------
@dataclass
class QualityColumns:
    """One interval's quality figures for some slots: pct, present, gaps and (derived) completeness."""

    slots: np.ndarray
    figures: dict[str, np.ndarray]

    def encode(self, interval: str) -> dict[str, np.ndarray]:
        out = {f"{interval}|slot": np.asarray(self.slots, np.int32)}
        for name, column in self.figures.items():
            out[f"{interval}|{name}"] = np.asarray(column, _QUALITY_DTYPES[name])
        return out

    @classmethod
    def decode(cls, arrays: dict, interval: str) -> "QualityColumns":
        figures = {n: arrays[f"{interval}|{n}"] for n in QUALITY_COLUMNS if f"{interval}|{n}" in arrays}
        columns = cls(_array(arrays, f"{interval}|slot", "i"), figures)
        _same_length(f"quality of {interval}", columns.slots, *figures.values())
        return columns


@dataclass
class QualityPayload:
    """QUALITY: per interval, the figures of the slots that changed at this step, and the windows
    expected so far."""

    columns: dict[str, QualityColumns]
    expected: dict[str, int]

    def encode(self) -> tuple[dict, dict]:
        arrays = {}
        for interval, columns in self.columns.items():
            arrays.update(columns.encode(interval))
        return {"intervals": list(self.columns), "expected": dict(self.expected)}, arrays

    @classmethod
    def decode(cls, body: dict, arrays: dict) -> "QualityPayload":
        expected = body.get("expected", {})
        intervals = _str_list(body, "intervals")
        if (not isinstance(expected, dict) or any(not isinstance(expected.get(i), int) for i in intervals)
                or any(not isinstance(v, int) or isinstance(v, bool) for v in expected.values())):
            raise ProtocolError("body field 'expected' must map every interval to an integer")
        return cls({i: QualityColumns.decode(arrays, i) for i in intervals}, expected)


@dataclass
class QualityTablePayload:
    """QUALITY_SNAPSHOT: {symbol: {interval: {pct, present, expected, gaps, ...}, history?, ...}}."""

    table: dict
    scope: str

    def encode(self) -> tuple[dict, dict]:
        return {"scope": self.scope, "table": self.table}, {}

    @classmethod
    def decode(cls, body: dict, arrays: dict) -> "QualityTablePayload":
        table = body.get("table", {})
        if not isinstance(table, dict):
            raise ProtocolError("body field 'table' must be a map")
        return cls(table, body["scope"])


# --- step batches ------------------------------------------------------------------------------
def _int_list(body: dict, name: str) -> list[int]:
    values = body.get(name)
    if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ProtocolError(f"body field {name!r} must be a list of integers")
    return values


@dataclass
class StepBatchPayload:
    """STEPS, DERIVED_STEPS, QUALITY_STEPS: consecutive steps in one message. `parts[i]` is the payload the
    one-step message (`part`: STEP, DERIVED or QUALITY) would carry for global step `steps[i]` at clock
    `clocks[i]`. On the wire the parts' arrays are concatenated by name; body `names` lists them and
    `lengths[i][j]` is the length of array `names[j]` in part i (-1: part i has no such array)."""

    part: str
    steps: list[int]
    clocks: list[int]
    parts: list

    def __len__(self) -> int:
        return len(self.parts)

    def encode(self) -> tuple[dict, dict]:
        bodies, per_part, names = [], [], {}
        for payload in self.parts:
            body, arrays = payload.encode()
            bodies.append(body)
            per_part.append(arrays)
            names.update(dict.fromkeys(arrays))
        lengths = [[len(arrays[n]) if n in arrays else -1 for n in names] for arrays in per_part]
        joined = {n: np.concatenate([np.asarray(a[n]) for a in per_part if n in a]) for n in names}
        return {"part": self.part, "steps": list(self.steps), "clocks": list(self.clocks), "bodies": bodies,
                "names": list(names), "lengths": lengths}, joined

    @classmethod
    def decode(cls, body: dict, arrays: dict) -> "StepBatchPayload":
        part_class = _BATCH_PARTS.get(body.get("part"))
        if part_class is None:
            raise ProtocolError(f"body field 'part' {body.get('part')!r} is not one of {', '.join(_BATCH_PARTS)}")
        steps, clocks = _int_list(body, "steps"), _int_list(body, "clocks")
        names, bodies, lengths = _str_list(body, "names"), body.get("bodies"), body.get("lengths")
        if not (isinstance(bodies, list) and isinstance(lengths, list)
                and len(steps) == len(clocks) == len(bodies) == len(lengths) >= 1):
            raise ProtocolError("steps, clocks, bodies and lengths must be lists of one length (at least 1)")
        table = _lengths_table(lengths, len(names))
        ends = np.cumsum(np.maximum(table, 0), axis=0)
        columns = [_array(arrays, n) for n in names]
        if set(arrays) != set(names) or any(int(e) != len(c) for e, c in zip(ends[-1], columns)):
            raise ProtocolError("array lengths do not add up to the parts' lengths")
        starts = (ends - np.maximum(table, 0)).tolist()
        present, ends = (table >= 0).tolist(), ends.tolist()
        parts = []
        for i, part_body in enumerate(bodies):
            if not isinstance(part_body, dict):
                raise ProtocolError(f"part {i}: body is not a map")
            part_arrays = {n: c[lo:hi] for n, c, lo, hi, has in zip(names, columns, starts[i], ends[i], present[i]) if has}
            try:
                parts.append(part_class.decode(part_body, part_arrays))
            except (KeyError, TypeError, ValueError) as exc:  # a part body lacking what its type needs
                raise ProtocolError(f"part {i}: {exc!r}") from None
        return cls(body["part"], steps, clocks, parts)


def _lengths_table(lengths: list, n_names: int) -> np.ndarray:
    """body 'lengths' as an int64 (parts x names) table; a ProtocolError unless every entry is an int >= -1."""
    if not all(isinstance(row, list) and len(row) == n_names for row in lengths):
        raise ProtocolError("every part needs one length per array name")
    try:
        table = np.array(lengths).reshape(len(lengths), n_names)
    except (ValueError, TypeError, OverflowError):
        raise ProtocolError("lengths must be integers") from None
    if table.size and table.dtype.kind != "i":
        raise ProtocolError("lengths must be integers")
    table = table.astype(np.int64)
    if (table < -1).any():
        raise ProtocolError("a length is below -1")
    return table


_BATCH_PARTS = {"STEP": StepPayload, "DERIVED": DerivedPayload, "QUALITY": QualityPayload}
