"""Vendor CSV import: parse, validate row by row, then write to the bar store in one go.

Columns are found by header name (case-insensitive, common aliases). Timestamps may be tz-aware ISO
(`2025-07-02 13:30:00+00:00`), naive ISO or US style (`11/5/2019 9:30`, taken in the exchange zone
unless `tz` says otherwise) or epoch numbers (s/ms/us/ns, UTC). Every bad row is reported as
`file:line: problem` with the physical line number (the header is line 1). By default one bad row
rejects the whole file before anything is written; `skip_bad=True` writes the good rows.
Exact duplicate rows are kept once and counted; rows may come in any order (they are sorted).
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from common.data.datacheck import (
    SessionParts,
    describe_ts,
    normalise_symbol,
    session_parts,
)
from common.data.store import StoreError
from common.domain.bars import PRICE_FIELDS, Bars
from common.domain.timeconv import (
    EXCHANGE_TZ,
    NS_PER_MIN,
    NS_PER_SEC,
    UTC,
    ns_from_datetime,
)

VALUE_FIELDS = PRICE_FIELDS + ("volume",)
MAX_PRICE = 10_000_000.0      # no listed US instrument trades above this per share or point
MAX_VOLUME = 1_000_000_000_000.0  # a trillion units in one minute is a data error
ALIASES: dict[str, tuple[str, ...]] = {
    "timestamp": ("timestamp", "datetime", "date_time", "time_stamp", "ts"),
    "open": ("open", "o", "open_price"),
    "high": ("high", "h", "high_price"),
    "low": ("low", "l", "low_price"),
    "close": ("close", "c", "close_price", "last"),
    "volume": ("volume", "vol", "v"),
}
MAX_ERRORS_IN_MESSAGE = 3

_US_DATETIME_RE = re.compile(
    r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?$"
)
_EPOCH_RE = re.compile(r"^\d{9,19}$")
_FILE_TICKER_RE = re.compile(r"^[A-Z][A-Z0-9]{0,9}(?:[.\-][A-Z]{1,3})?$")


class CsvImportError(ValueError):
    """A file that cannot be imported; `errors` lists every bad row (may be empty for file problems)."""

    def __init__(self, message: str, errors: list["RowError"] | None = None):
        super().__init__(message)
        self.errors = list(errors or [])


@dataclass(frozen=True)
class RowError:
    path: str
    line: int
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.problem}"


@dataclass(frozen=True)
class ParsedCsv:
    """Good rows as sorted, unique `bars`, plus every bad row and the count of exact duplicates."""

    path: str
    symbol: str
    bars: Bars
    errors: list[RowError]
    duplicates: int
    rows: int                      # data rows read (blank lines excluded)
    was_sorted: bool               # rows were already in time order in the file


@dataclass(frozen=True)
class ImportReport:
    path: str
    symbol: str
    rows: int
    bars: int                      # bars written (good, unique rows)
    added: int
    replaced: int
    days: int
    parts: SessionParts
    duplicates: int
    errors: list[RowError] = field(default_factory=list)   # rows skipped with skip_bad=True

    def summary_line(self) -> str:
        p = self.parts
        line = (f"{self.path}: {self.symbol} {self.bars} bars on {self.days} day(s) "
                f"(added {self.added}, replaced {self.replaced}); "
                f"pre {p.pre}, regular {p.regular}, post {p.post}")
        if p.closed:
            line += f", non-session {p.closed}"
        line += f"; duplicates {self.duplicates}"
        if self.errors:
            line += f"; skipped {len(self.errors)} bad row(s)"
        return line

    def to_dict(self) -> dict:
        out = asdict(self)
        out["parts"] = asdict(self.parts)
        out["errors"] = [str(e) for e in self.errors]
        return out


# ---- header and symbol -------------------------------------------------------------------------
def _norm_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().strip("<>").lower())


def map_columns(header: list[str]) -> dict[str, int | tuple[int, int]]:
    """Field -> column index, by header name. A separate Date + Time pair maps to a tuple."""
    names = [_norm_header(h) for h in header]
    mapping: dict[str, int | tuple[int, int]] = {}
    for fld, aliases in ALIASES.items():
        for alias in aliases:
            if alias in names:
                mapping[fld] = names.index(alias)
                break
    if "timestamp" not in mapping:
        if "date" in names and "time" in names:
            mapping["timestamp"] = (names.index("date"), names.index("time"))
        elif "date" in names or "time" in names:
            mapping["timestamp"] = names.index("date" if "date" in names else "time")
    missing = [f for f in ALIASES if f not in mapping]
    if missing:
        raise ValueError(f"no column for {', '.join(missing)} (header: {', '.join(header)})")
    return mapping


def symbol_from_filename(path: str | os.PathLike) -> str | None:
    """'AAPL_2025-07-02_1m.csv' -> 'AAPL'; None unless the name starts with an upper-case ticker."""
    first = re.split(r"[_\s]", Path(path).stem, maxsplit=1)[0]
    return first if _FILE_TICKER_RE.match(first) else None


def _resolve_tz(tz) -> dt.tzinfo:
    if tz is None:
        return EXCHANGE_TZ
    if isinstance(tz, dt.tzinfo):
        return tz
    try:
        return ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise CsvImportError(f"unknown time zone {tz!r} (use a name like America/New_York)") from None


# ---- field parsing -----------------------------------------------------------------------------
def parse_timestamp(text: str) -> tuple[int, bool]:
    """One timestamp -> (ns, aware). Aware values are UTC ns; naive ones are wall-clock ns
    (the wall time read as if it were UTC), to be localised in bulk by `localise_wall_ns`."""
    text = text.strip()
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        value = _parse_us_or_epoch(text)
        if isinstance(value, int):
            return value, True
    if value.tzinfo is not None and value.utcoffset() is not None:
        return ns_from_datetime(value), True
    return ns_from_datetime(value.replace(tzinfo=UTC)), False


def _parse_us_or_epoch(text: str) -> dt.datetime | int:
    match = _US_DATETIME_RE.match(text)
    if match:
        month, day, year, hour, minute = (int(g) for g in match.groups()[:5])
        second = int(match.group(6) or 0)
        ampm = (match.group(7) or "").lower()
        if ampm:
            if not 1 <= hour <= 12:
                raise ValueError(f"bad 12-hour time {text!r}")
            hour = hour % 12 + (12 if ampm == "pm" else 0)
        return dt.datetime(year, month, day, hour, minute, second)
    if _EPOCH_RE.match(text):
        scale = {10: NS_PER_SEC, 13: 1_000_000, 16: 1_000, 19: 1}.get(len(text))
        if scale is not None:
            return int(text) * scale
    raise ValueError(f"unrecognised timestamp {text!r}")


def localise_wall_ns(wall_ns: np.ndarray, tz: dt.tzinfo) -> tuple[np.ndarray, np.ndarray]:
    """Naive wall-clock ns in `tz` -> (UTC ns, valid mask), vectorised with one zone lookup per
    wall-clock hour. Ambiguous times (the repeated hour in autumn) take the first occurrence;
    times skipped by a spring-forward switch are invalid."""
    hour_ns = 3600 * NS_PER_SEC
    hours, inverse = np.unique(wall_ns // hour_ns, return_inverse=True)
    offsets = np.empty(len(hours), dtype=np.int64)
    valid = np.empty(len(hours), dtype=bool)
    for i, hour in enumerate(hours.tolist()):
        wall = dt.datetime(1970, 1, 1) + dt.timedelta(hours=hour)
        aware = wall.replace(tzinfo=tz)
        offsets[i] = int(aware.utcoffset().total_seconds()) * NS_PER_SEC
        round_trip = aware.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
        valid[i] = round_trip == wall
    return wall_ns - offsets[inverse], valid[inverse]


def parse_floats(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings -> (float64 values, ok mask); vectorised, per element only when something is bad."""
    try:
        values = np.array(texts, dtype=np.float64)
    except ValueError:
        values = np.array([_float_or_nan(t) for t in texts], dtype=np.float64)
    return values, np.isfinite(values)


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


# ---- reading -----------------------------------------------------------------------------------
@dataclass
class _RawRows:
    """Text cells of the mapped columns, one list per field, plus each row's line number."""

    lines: list[int] = field(default_factory=list)
    cells: dict[str, list[str]] = field(default_factory=lambda: {f: [] for f in ALIASES})
    errors: list[tuple[int, str]] = field(default_factory=list)


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    return max(counts, key=counts.get)


def _read_rows(path: Path) -> tuple[list[str], _RawRows]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            first = fh.readline()
            fh.seek(0)
            reader = csv.reader(fh, delimiter=_sniff_delimiter(first))
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise CsvImportError(f"{path}: empty file (no header line)")
            try:
                mapping = map_columns(header)
            except ValueError as exc:
                raise CsvImportError(f"{path}:1: {exc}") from None
            return header, _collect(reader, mapping)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CsvImportError(f"{path}: cannot read ({reason})") from None


def _collect(reader, mapping: dict) -> _RawRows:
    raw = _RawRows()
    flat = [i for v in mapping.values() for i in (v if isinstance(v, tuple) else (v,))]
    needed = max(flat) + 1
    last_line = reader.line_num
    for row in reader:
        line, last_line = last_line + 1, reader.line_num
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < needed:
            raw.errors.append((line, f"expected at least {needed} fields, got {len(row)}"))
            continue
        raw.lines.append(line)
        for fld, col in mapping.items():
            text = f"{row[col[0]]} {row[col[1]]}" if isinstance(col, tuple) else row[col]
            raw.cells[fld].append(text)
    return raw


# ---- validation ----------------------------------------------------------------------------------
def _timestamps(texts: list[str], tz: dt.tzinfo) -> tuple[np.ndarray, list[str | None]]:
    """UTC ns per row and a problem text (or None) per row."""
    n = len(texts)
    ns = np.zeros(n, dtype=np.int64)
    aware = np.zeros(n, dtype=bool)
    problems: list[str | None] = [None] * n
    for i, text in enumerate(texts):
        try:
            ns[i], aware[i] = parse_timestamp(text)
        except (ValueError, OverflowError):
            problems[i] = f"unparsable timestamp {text.strip()!r}"
    naive = ~aware & np.array([p is None for p in problems], dtype=bool)
    if naive.any():
        utc, valid = localise_wall_ns(ns[naive], tz)
        ns[naive] = utc
        for i in np.flatnonzero(naive)[~valid].tolist():
            problems[i] = f"timestamp {texts[i].strip()!r} does not exist in {tz} (DST switch)"
    for i in np.flatnonzero(ns % NS_PER_MIN != 0).tolist():
        if problems[i] is None:
            problems[i] = f"timestamp {texts[i].strip()!r} is not on a whole minute"
    return ns, problems


def _calendar_span(calendar) -> tuple[int, int] | None:
    """UTC ns range of the calendar's first to last day (bars outside it cannot be sessions)."""
    if calendar is None:
        return None
    first = ns_from_datetime(dt.datetime.combine(calendar.first_session, dt.time(), EXCHANGE_TZ))
    last = ns_from_datetime(dt.datetime.combine(calendar.last_session + dt.timedelta(days=1), dt.time(), EXCHANGE_TZ))
    return first, last


def _plausibility_checks(o, h, l, c, v) -> list:
    """(mask, message) of values no real 1-minute bar has: beyond MAX_PRICE / MAX_VOLUME."""
    return [
        (np.max(np.stack([o, h, l, c]), axis=0) > MAX_PRICE,
         lambda i: f"price {max(o[i], h[i], l[i], c[i]):g} above {MAX_PRICE:,.0f} (implausible)"),
        (v > MAX_VOLUME, lambda i: f"volume {v[i]:g} above {MAX_VOLUME:,.0f} (implausible)"),
    ]


def _row_problems(raw: _RawRows, tz: dt.tzinfo, span: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, dict[str, np.ndarray], list[list[str]]]:
    """Parse every field; return ts, values and a list of problems per row."""
    ts, ts_problems = _timestamps(raw.cells["timestamp"], tz)
    if span is not None:
        for i in np.flatnonzero((ts < span[0]) | (ts >= span[1])).tolist():
            if ts_problems[i] is None:
                ts_problems[i] = (f"timestamp {raw.cells['timestamp'][i].strip()!r} is outside the trading "
                                  f"calendar's range")
    problems = [[p] if p else [] for p in ts_problems]
    values: dict[str, np.ndarray] = {}
    for fld in VALUE_FIELDS:
        vals, ok = parse_floats(raw.cells[fld])
        values[fld] = vals
        for i in np.flatnonzero(~ok).tolist():
            problems[i].append(f"unparsable {fld} {raw.cells[fld][i].strip()!r}")
    o, h, l, c, v = (values[f] for f in VALUE_FIELDS)
    with np.errstate(invalid="ignore"):
        checks = [
            (np.min(np.stack([o, h, l, c]), axis=0) <= 0, lambda i: "non-positive price"),
            (h < np.maximum(o, c), lambda i: f"high {h[i]:g} < max(open, close) {max(o[i], c[i]):g}"),
            (l > np.minimum(o, c), lambda i: f"low {l[i]:g} > min(open, close) {min(o[i], c[i]):g}"),
            (v < 0, lambda i: f"negative volume {v[i]:g}"),
        ] + _plausibility_checks(o, h, l, c, v)
    for mask, message in checks:
        for i in np.flatnonzero(mask).tolist():
            problems[i].append(message(i))
    return ts, values, problems


def _resolve_duplicates(ts: np.ndarray, values: dict[str, np.ndarray], good: np.ndarray,
                        lines: np.ndarray) -> tuple[np.ndarray, int, list[tuple[int, str]]]:
    """Among good rows (sorted by ts), keep one of each exact duplicate and drop conflicting ones.

    Returns the row indices to keep (in time order), the exact-duplicate count and conflict errors.
    """
    idx = np.flatnonzero(good)
    idx = idx[np.argsort(ts[idx], kind="stable")]
    if not len(idx):
        return idx, 0, []
    t = ts[idx]
    same_as_prev = np.concatenate(([False], t[1:] == t[:-1]))
    if not same_as_prev.any():
        return idx, 0, []
    stacked = np.stack([values[f][idx] for f in VALUE_FIELDS], axis=1)
    group = np.cumsum(~same_as_prev) - 1
    first_of_group = np.flatnonzero(~same_as_prev)[group]
    differs = np.any(stacked != stacked[first_of_group], axis=1)
    conflict_groups = np.unique(group[differs])
    in_conflict = np.isin(group, conflict_groups)
    errors = []
    for g in conflict_groups.tolist():
        members = lines[idx[group == g]]
        listed = ", ".join(str(x) for x in sorted(members.tolist()))
        for line in members.tolist():
            errors.append((line, f"timestamp {describe_ts(int(t[group == g][0]))} has different values "
                                 f"on lines {listed}"))
    duplicates = int(np.count_nonzero(same_as_prev & ~in_conflict))
    keep = ~same_as_prev & ~in_conflict
    return idx[keep], duplicates, errors


def parse_csv(path: str | os.PathLike, symbol: str | None = None, tz=None, calendar=None) -> ParsedCsv:
    """Read and validate one vendor CSV; raises CsvImportError only for file-level problems."""
    path_text = str(path)
    path = Path(path)
    zone = _resolve_tz(tz)
    if not path.is_file():
        raise CsvImportError(f"{path_text}: no such file")
    if symbol is None:
        symbol = symbol_from_filename(path)
        if symbol is None:
            raise CsvImportError(f"{path_text}: cannot infer the symbol from the file name; give one")
    try:
        symbol = normalise_symbol(symbol)
    except ValueError as exc:
        raise CsvImportError(str(exc)) from None
    _, raw = _read_rows(path)
    if not raw.lines and not raw.errors:
        raise CsvImportError(f"{path_text}: no data rows")
    lines = np.array(raw.lines, dtype=np.int64)
    ts, values, problems = _row_problems(raw, zone, _calendar_span(calendar))
    good = np.array([not p for p in problems], dtype=bool)
    keep, duplicates, conflicts = _resolve_duplicates(ts, values, good, lines)
    bad = [(int(lines[i]), "; ".join(p)) for i, p in enumerate(problems) if p]
    errors = sorted(raw.errors + bad + conflicts)
    bars = Bars(ts[keep], *(values[f][keep] for f in VALUE_FIELDS))
    return ParsedCsv(
        path=path_text, symbol=symbol, bars=bars,
        errors=[RowError(path_text, line, problem) for line, problem in errors],
        duplicates=duplicates, rows=len(raw.lines) + len(raw.errors),
        was_sorted=bool(np.all(np.diff(ts[good]) >= 0)),
    )


def rejection_message(parsed: ParsedCsv) -> str:
    """One line: how many rows are bad, and the first few of them."""
    shown = " | ".join(str(e) for e in parsed.errors[:MAX_ERRORS_IN_MESSAGE])
    more = len(parsed.errors) - MAX_ERRORS_IN_MESSAGE
    tail = f" | ... and {more} more" if more > 0 else ""
    return (f"{parsed.path}: rejected, {len(parsed.errors)} bad row(s), nothing written "
            f"(skip them with skip_bad): {shown}{tail}")


def file_source(path: str | os.PathLike) -> str:
    """The store's source label of an imported file: its name and content hash (the same file imported
    twice is the same source; an edited file is another one)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return f"{Path(path).name} (sha256 {digest[:12]})"


def import_csv(store, path: str | os.PathLike, symbol: str | None = None, tz=None,
               skip_bad: bool = False, calendar=None, replace: bool = False) -> ImportReport:
    """Parse, validate and write one file; all-or-nothing unless `skip_bad`.

    `calendar` (a TradingCalendar) is used to count pre/regular/post bars and to refuse dates it does
    not cover; one is built if omitted. Days that hold bars from another source are refused (nothing
    written) unless `replace`, which replaces those whole days by the file's bars.
    """
    if calendar is None:
        from common.domain.calendar import TradingCalendar

        calendar = TradingCalendar()
    parsed = parse_csv(path, symbol=symbol, tz=tz, calendar=calendar)
    if parsed.errors and not skip_bad:
        raise CsvImportError(rejection_message(parsed), parsed.errors)
    try:
        written = store.write_bars(parsed.symbol, parsed.bars, source=file_source(path), replace=replace)
    except StoreError as exc:
        raise CsvImportError(f"{parsed.path}: {exc}") from None
    parts, days = session_parts(parsed.bars.ts, calendar)
    return ImportReport(
        path=parsed.path, symbol=parsed.symbol, rows=parsed.rows, bars=len(parsed.bars),
        added=written.added, replaced=written.replaced, days=days, parts=parts,
        duplicates=parsed.duplicates, errors=parsed.errors,
    )
