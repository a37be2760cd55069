"""Parquet bar store: one file per symbol, interval and exchange-local date.

Layout: ``<root>/<interval>/<SYMBOL>/<YYYY>/<YYYY-MM-DD>.parquet``. Loading one symbol-day is one small
read; a date range touches only the files of the dates inside it. The date of a file is the exchange-local
(America/New_York) calendar date of the bars' open times, so a day's pre-market, regular and post-market
bars live together.

Schema: ts (timestamp[ns, UTC], bar open time), open, high, low, close (float64), volume (float64).
Writes merge with what is there (same ts -> replaced, never duplicated) and are atomic: a temp file in the
same folder, fsync, then rename, so a crash never leaves a torn file.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from common.domain.bars import FIELDS, Bars
from common.domain.timeconv import EXCHANGE_TZ, NS_PER_SEC, parse_date

SCHEMA = pa.schema(
    [("ts", pa.timestamp("ns", tz="UTC"))] + [(f, pa.float64()) for f in FIELDS[1:]]
)
_UTC_OFFSET_CACHE: dict[int, int] = {}


class StoreError(RuntimeError):
    """A store problem that names the file (corrupt file, bad schema)."""


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


def _bars_to_table(bars: Bars) -> pa.Table:
    arrays = [pa.array(bars.ts.astype("datetime64[ns]"), type=pa.timestamp("ns", tz="UTC"))]
    arrays += [pa.array(getattr(bars, f), type=pa.float64()) for f in FIELDS[1:]]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="snappy")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


class BarStore:
    """Read and write 1-minute (or other interval) bars under a root folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path_for(self, symbol: str, day: dt.date, interval: str = "1m") -> Path:
        return self.root / interval / symbol / f"{day.year:04d}" / f"{day.isoformat()}.parquet"

    # ---- writing -------------------------------------------------------------------------------
    def write_bars(self, symbol: str, bars: Bars, interval: str = "1m") -> WriteResult:
        """Merge `bars` (sorted, unique ts) into the store, one atomic file write per day touched."""
        if not len(bars):
            return WriteResult(0, 0, 0)
        days = exchange_day_numbers(bars.ts)
        bounds = np.flatnonzero(np.diff(days)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [len(bars)]])
        added = replaced = 0
        for lo, hi in zip(starts.tolist(), ends.tolist()):
            day = _day_from_number(days[lo])
            part = bars.take(slice(lo, hi))
            path = self.path_for(symbol, day, interval)
            old = self._read_path(path) if path.exists() else Bars.empty()
            merged, n_replaced = merge_bars(old, part)
            atomic_write_table(_bars_to_table(merged), path)
            replaced += n_replaced
            added += len(part) - n_replaced
        return WriteResult(len(starts), added, replaced)

    # ---- reading -------------------------------------------------------------------------------
    def _read_path(self, path: Path) -> Bars:
        try:
            # one read() of a small file, then decode from memory: ~2x faster than pq.read_table
            with open(path, "rb") as fh:
                table = pq.ParquetFile(pa.BufferReader(fh.read())).read(use_threads=False)
        except (pa.ArrowException, OSError) as exc:
            raise StoreError(f"{path}: unreadable Parquet file ({exc})") from None
        return _table_to_bars(table, path)

    def read_day(self, symbol: str, day: dt.date | str, interval: str = "1m") -> Bars:
        """Every bar of the exchange-local date (pre, regular and post market); empty if none."""
        path = self.path_for(symbol, parse_date(day), interval)
        if not path.exists():
            return Bars.empty()
        return self._read_path(path)

    def read_session(self, symbol: str, day: dt.date | str, open_ns: int, close_ns: int,
                     interval: str = "1m") -> tuple[Bars, int]:
        """Regular-hours bars [open_ns, close_ns) of one day, and how many extended-hours bars were dropped."""
        bars = self.read_day(symbol, day, interval)
        regular = bars.between(open_ns, close_ns)
        return regular, len(bars) - len(regular)

    def read_sessions(self, symbols: list[str], day: dt.date | str, open_ns: int, close_ns: int
                      ) -> list[tuple[Bars, int]]:
        """read_session for many symbols, in their order (≈ 0.3 ms per symbol-day)."""
        return [self.read_session(s, day, open_ns, close_ns) for s in symbols]

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
        days = self.days(symbol, interval)
        return {
            "symbol": symbol,
            "first_date": days[0].isoformat() if days else None,
            "last_date": days[-1].isoformat() if days else None,
            "days": len(days),
            "bars": sum(self.row_count(symbol, d, interval) for d in days),
        }
