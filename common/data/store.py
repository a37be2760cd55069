"""Parquet bar store: one file per symbol, interval and exchange-local date.

Layout: ``<root>/<interval>/<SYMBOL>/<YYYY>/<YYYY-MM-DD>.parquet``. Loading one symbol-day is one small
read; a date range touches only the files of the dates inside it. The date of a file is the exchange-local
(America/New_York) calendar date of the bars' open times, so a day's pre-market, regular and post-market
bars live together.

Schema: ts (timestamp[ns, UTC], bar open time), open, high, low, close (float64), volume (float64).
Each file records its day's source in the schema metadata (`source`: the imported file's name and
content hash, or the generator and its seed). A write merges with a day from the same source (same
ts -> replaced, never duplicated: re-importing a file changes nothing); a day held by another source
is refused, naming both, unless the write replaces whole days. A write of several days is
all-or-nothing: every day goes to a temp file first, the renames happen only when all are written,
and a failed rename puts the earlier days back.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common import progress
from common.domain.bars import FIELDS, Bars
from common.domain.timeconv import EXCHANGE_TZ, NS_PER_SEC, parse_date

SCHEMA = pa.schema(
    [("ts", pa.timestamp("ns", tz="UTC"))] + [(f, pa.float64()) for f in FIELDS[1:]]
)
_UTC_OFFSET_CACHE: dict[int, int] = {}
UNKNOWN_SOURCE = "unknown (written before sources were recorded)"


class StoreError(RuntimeError):
    """A store problem that names the file (corrupt file, bad schema)."""


class SourceConflict(StoreError):
    """A write into days that hold bars from another source (nothing was written)."""


@dataclass(frozen=True)
class WriteResult:
    days: int
    added: int
    replaced: int


def exchange_day_numbers(ts: np.ndarray) -> np.ndarray:
    """Exchange-local day number (days since 1970-01-01) of each UTC ns timestamp, vectorised.

    The UTC offset is looked up once per UTC hour, so DST switches are handled by the zone database.
    """
    hours = ts // (3600 * NS_PER_SEC)
    unique_hours, inverse = np.unique(hours, return_inverse=True)
    offsets = np.empty(len(unique_hours), dtype=np.int64)
    for i, hour in enumerate(unique_hours.tolist()):
        offset = _UTC_OFFSET_CACHE.get(hour)
        if offset is None:
            moment = dt.datetime.fromtimestamp(hour * 3600, tz=dt.timezone.utc).astimezone(EXCHANGE_TZ)
            offset = int(moment.utcoffset().total_seconds()) * NS_PER_SEC
            _UTC_OFFSET_CACHE[hour] = offset
        offsets[i] = offset
    return (ts + offsets[inverse]) // (86_400 * NS_PER_SEC)


def _day_from_number(num: int) -> dt.date:
    return dt.date(1970, 1, 1) + dt.timedelta(days=int(num))


def _bars_to_table(bars: Bars, source: str = UNKNOWN_SOURCE) -> pa.Table:
    arrays = [pa.array(bars.ts.astype("datetime64[ns]"), type=pa.timestamp("ns", tz="UTC"))]
    arrays += [pa.array(getattr(bars, f), type=pa.float64()) for f in FIELDS[1:]]
    return pa.Table.from_arrays(arrays, schema=SCHEMA.with_metadata({b"source": source.encode()}))


def _schema_source(schema: pa.Schema) -> str:
    return (schema.metadata or {}).get(b"source", UNKNOWN_SOURCE.encode()).decode()


def _table_to_bars(table: pa.Table, path: Path) -> Bars:
    names = set(table.column_names)
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise StoreError(f"{path}: missing column(s) {', '.join(missing)}")
    ts = table.column("ts").to_numpy().astype("datetime64[ns]").view(np.int64)
    return Bars(ts, *(table.column(f).to_numpy().astype(np.float64, copy=False) for f in FIELDS[1:]))


def merge_bars(old: Bars, new: Bars) -> tuple[Bars, int]:
    """Union by timestamp; a bar of `new` replaces the one of `old` with the same ts."""
    if not len(old):
        return new, 0
    keep_old = ~np.isin(old.ts, new.ts)
    replaced = int(len(old) - keep_old.sum())
    merged = Bars.concat([old.take(keep_old), new])
    order = np.argsort(merged.ts, kind="stable")
    return merged.take(order), replaced


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    tmp = _write_temp(table, path)
    try:
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_temp(table: pa.Table, path: Path) -> Path:
    """`table` into a hidden temp file beside `path`, fsynced; removed again if the write fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="snappy")
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException as exc:
        if tmp.exists():
            tmp.unlink()
        if isinstance(exc, OSError):
            raise StoreError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise
    return tmp


def commit_files(tables: list[tuple[Path, pa.Table]]) -> None:
    """Write several files all-or-nothing: every table to a temp file first; only when all are written,
    rename them into place, keeping the previous files aside until the last rename succeeded."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, table in tables:
            temps.append((_write_temp(table, path), path))
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    _rename_all(temps)


def _rename_all(temps: list[tuple[Path, Path]]) -> None:
    backups: list[tuple[Path, Path | None]] = []
    try:
        for tmp, path in temps:
            backup = path.with_name(f".{path.name}.old-{os.getpid()}") if path.exists() else None
            if backup is not None:
                os.replace(path, backup)
            backups.append((path, backup))
            os.replace(tmp, path)
    except BaseException:
        for path, backup in reversed(backups):
            if backup is not None:
                os.replace(backup, path)
            else:
                path.unlink(missing_ok=True)
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    for _, backup in backups:
        if backup is not None:
            backup.unlink(missing_ok=True)


def _split_days(bars: Bars):
    """(exchange-local date, that day's bars) for sorted bars."""
    days = exchange_day_numbers(bars.ts)
    bounds = np.flatnonzero(np.diff(days)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(bars)]])
    for lo, hi in zip(starts.tolist(), ends.tolist()):
        yield _day_from_number(days[lo]), bars.take(slice(lo, hi))


class BarStore:
    """Read and write 1-minute (or other interval) bars under a root folder."""

    def __init__(self, root: str | os.PathLike, record_reads: bool = False):
        self.root = Path(root)
        # with record_reads: 'interval/SYMBOL/date' -> sha256 of every file read (a run's data fingerprint)
        self.reads: dict[str, str] | None = {} if record_reads else None

    def path_for(self, symbol: str, day: dt.date, interval: str = "1m") -> Path:
        return Path(f"{self.root}/{interval}/{symbol}/{day.year:04d}/{day.isoformat()}.parquet")

    # ---- writing -------------------------------------------------------------------------------
    def write_bars(self, symbol: str, bars: Bars, interval: str = "1m", source: str = UNKNOWN_SOURCE,
                   replace: bool = False) -> WriteResult:
        """Write `bars` (sorted, unique ts) from `source`, all days or none.

        A day held by the same source is merged (same ts replaced); a day held by another source is a
        SourceConflict naming the day and both sources, unless `replace`: then the day's bars are the
        new ones only. Nothing is written when any day conflicts or any file cannot be written."""
        if not len(bars):
            return WriteResult(0, 0, 0)
        plan, conflicts, added, replaced = [], [], 0, 0
        for day, part in _split_days(bars):
            path = self.path_for(symbol, day, interval)
            old, old_source = self._read_with_source(path)
            if len(old) and old_source != source and not replace:
                conflicts.append(f"{day} holds bars from {old_source}")
                continue
            merged, n_replaced = merge_bars(old if old_source == source else Bars.empty(), part)
            if old_source != source:
                n_replaced = int(np.isin(part.ts, old.ts).sum())
            plan.append((path, _bars_to_table(merged, source)))
            replaced += n_replaced
            added += len(part) - n_replaced
        if conflicts:
            raise SourceConflict(f"{symbol}: refusing to mix sources, nothing written: {'; '.join(conflicts)}; "
                                 f"this write is {source} (replace those whole days with --replace)")
        commit_files(plan)
        return WriteResult(len(plan), added, replaced)

    def _read_with_source(self, path: Path) -> tuple[Bars, str]:
        if not path.exists():
            return Bars.empty(), UNKNOWN_SOURCE
        table = self._read_table(path)  # one read gives the bars and the source
        return _table_to_bars(table, path), _schema_source(table.schema)

    def source_of_path(self, path: Path) -> str:
        try:
            return _schema_source(pq.read_schema(path))
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"{path}: unreadable Parquet file ({exc})") from None

    def source(self, symbol: str, day: dt.date | str, interval: str = "1m") -> str | None:
        """Where a stored day's bars came from (None: no such day)."""
        path = self.path_for(symbol, parse_date(day), interval)
        return self.source_of_path(path) if path.exists() else None

    # ---- reading -------------------------------------------------------------------------------
    def _read_path(self, path: Path) -> Bars:
        return _table_to_bars(self._read_table(path), path)

    def _read_table(self, path: Path) -> pa.Table:
        try:
            # one read() of a small file, then decode from memory: ~2x faster than pq.read_table
            with open(path, "rb") as fh:
                data = fh.read()
            table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
        except FileNotFoundError:
            raise
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"{path}: unreadable Parquet file ({exc})") from None
        if self.reads is not None:
            key = "/".join(path.parts[-4:-2] + (path.stem,))  # interval/SYMBOL/date
            self.reads[key] = "sha256:" + hashlib.sha256(data).hexdigest()
        return table

    def read_day(self, symbol: str, day: dt.date | str, interval: str = "1m") -> Bars:
        """Every bar of the exchange-local date (pre, regular and post market); empty if none."""
        path = self.path_for(symbol, parse_date(day), interval)
        try:
            return self._read_path(path)
        except FileNotFoundError:
            return Bars.empty()

    def read_session(self, symbol: str, day: dt.date | str, open_ns: int, close_ns: int,
                     interval: str = "1m") -> tuple[Bars, int]:
        """Regular-hours bars [open_ns, close_ns) of one day, and how many extended-hours bars were dropped."""
        bars = self.read_day(symbol, day, interval)
        regular = bars.between(open_ns, close_ns)
        return regular, len(bars) - len(regular)

    def read_sessions(self, symbols: list[str], day: dt.date | str, open_ns: int, close_ns: int
                      ) -> list[tuple[Bars, int]]:
        """read_session for many symbols, in their order (≈ 0.3 ms per symbol-day)."""
        out = []
        for symbol in symbols:
            out.append(self.read_session(symbol, day, open_ns, close_ns))
            progress.tick()  # a whole market is thousands of files
        return out

    def read_range(self, symbol: str, start: dt.date | str, end: dt.date | str,
                   interval: str = "1m") -> Bars:
        """All bars of the dates in [start, end]; touches only the files of those dates."""
        start, end = parse_date(start), parse_date(end)
        parts = [self._read_path(p) for p in self._paths_in_range(symbol, start, end, interval)]
        return Bars.concat(parts)

    def _paths_in_range(self, symbol: str, start: dt.date, end: dt.date, interval: str) -> list[Path]:
        base = self.root / interval / symbol
        paths: list[Path] = []
        for year in range(start.year, end.year + 1):
            folder = base / f"{year:04d}"
            if not folder.is_dir():
                continue
            lo, hi = start.isoformat(), end.isoformat()
            for name in sorted(os.listdir(folder)):
                if name.endswith(".parquet") and lo <= name[:10] <= hi:
                    paths.append(folder / name)
        return paths

    def days(self, symbol: str, interval: str = "1m") -> list[dt.date]:
        base = self.root / interval / symbol
        if not base.is_dir():
            return []
        out = []
        for year in sorted(os.listdir(base)):
            for name in sorted(os.listdir(base / year)):
                if name.endswith(".parquet") and not name.startswith("."):
                    out.append(dt.date.fromisoformat(name[:10]))
        return out

    def symbols(self, interval: str = "1m") -> list[str]:
        base = self.root / interval
        if not base.is_dir():
            return []
        return sorted(name for name in os.listdir(base) if (base / name).is_dir())

    def has_day(self, symbol: str, day: dt.date, interval: str = "1m") -> bool:
        return self.path_for(symbol, day, interval).exists()

    def row_count(self, symbol: str, day: dt.date, interval: str = "1m") -> int:
        """Bar count of one file from its Parquet footer (no data read)."""
        path = self.path_for(symbol, day, interval)
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"{path}: unreadable Parquet file ({exc})") from None

    def summary(self, symbol: str, interval: str = "1m") -> dict:
        """First/last date, days and bars of a symbol; unreadable files are listed under `corrupt` (with
        the problem) and left out of the counts, so one bad file does not hide the rest."""
        days = self.days(symbol, interval)
        bars, corrupt = 0, []
        for day in days:
            try:
                bars += self.row_count(symbol, day, interval)
            except StoreError as exc:
                corrupt.append(str(exc))
        return {
            "symbol": symbol,
            "first_date": days[0].isoformat() if days else None,
            "last_date": days[-1].isoformat() if days else None,
            "days": len(days) - len(corrupt),
            "bars": bars,
            "corrupt": corrupt,
        }
