"""What a run's report and charts show, read back from its folder and the store it ran on.

A run is a folder under the results directory (common/runs.py): its manifest (config as run, dates,
symbols, status, fingerprint, performance), the broker's files (`broker/*.parquet`: orders, fills,
equity, trades, metrics) and every analysis process's `signals.parquet`. The bars come from the
store named by the config's `data_root`; the N-minute bars are aggregated by the project's own code
(common/domain/aggregate.py) and the indicators are run through the same kernels as in the session
(common/answers/derived.py IndicatorSet), over the same trailing history, so they equal what the
strategies saw.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np
import pyarrow.parquet as pq

from common import runs
from common.answers.derived import IndicatorSet
from common.config import ConfigError, SessionConfig, parse_config
from common.data.store import BarStore
from common.domain.aggregate import aggregate_session, aggregate_sessions
from common.domain.bars import Bars
from common.domain.calendar import TradingCalendar
from common.domain.interval import Interval
from common.domain.quality import session_gaps
from common.domain.timeconv import EXCHANGE_TZ, exchange_ns

BROKER_FILES = ("metrics", "equity", "trades", "fills", "orders")
CHART_INTERVALS = ("1m", "5m", "15m")


def resolve_run(root: Path, run: str | None) -> Path:
    """The folder of `run` (a run id, `latest`, or a path to a run folder); None = the latest run.
    An unknown run is an error that names it and lists the runs there are."""
    root = Path(root)
    if run and Path(run).is_dir() and (Path(run) / runs.MANIFEST).exists():
        return Path(run)
    known = [r["run_id"] for r in runs.list_runs(root)]
    if run in (None, runs.LATEST):
        if (root / runs.LATEST).exists():
            return (root / runs.LATEST).resolve()
        if known:
            return root / known[-1]
        raise click.ClickException(f"no runs under {root}")
    if run in known:
        return root / run
    listing = ", ".join(known[-20:]) if known else "none"
    raise click.ClickException(f"run {run!r} does not exist under {root} (runs there: {listing})")


def read_rows(path: Path) -> list[dict]:
    try:
        return pq.read_table(path).to_pylist()
    except (OSError, ValueError):
        return []


@dataclass
class RunRecord:
    """A run as read from its folder."""

    folder: Path
    manifest: dict
    config: SessionConfig
    broker: dict[str, list[dict]] = field(default_factory=dict)
    signals: list[dict] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.manifest.get("run_id") or self.folder.name

    @property
    def has_broker(self) -> bool:
        return bool(self.broker.get("equity") or self.broker.get("metrics"))

    def symbols(self) -> list[str]:
        return list(dict.fromkeys(list(self.manifest.get("symbols", [])) + list(self.manifest.get("dynamic", []))))

    def days(self, calendar: TradingCalendar) -> list[str]:
        start, end = self.manifest.get("start_date"), self.manifest.get("end_date")
        return [d.isoformat() for d in calendar.sessions(start, end)] if start and end else []

    def added_ns(self, symbol: str, day: str) -> int | None:
        """When `symbol` was added mid-session on `day`: the manifest's record, else the config's schedule."""
        added = (self.manifest.get("dynamic_added") or {}).get(symbol)
        if added:
            return added["clock_ns"] if added.get("date") == day else None
        if symbol not in self.manifest.get("dynamic", []):
            return None
        first = self.manifest.get("start_date")
        for cmd in self.config.schedule:
            when = (cmd.date.isoformat() if cmd.date else first)
            if cmd.command == "add-symbol" and symbol in cmd.symbols and when == day:
                return exchange_ns(dt.date.fromisoformat(day), cmd.time)
        return None


def load_run(folder: Path) -> RunRecord:
    manifest = runs.read_manifest(folder)
    if manifest is None:
        raise click.ClickException(f"{folder}: no readable {runs.MANIFEST}")
    try:
        config = parse_config(manifest.get("config", {}), manifest.get("config_path", str(folder)))
    except ConfigError as exc:
        raise click.ClickException(f"{folder}: the run's config does not parse: {exc}") from None
    broker = {name: read_rows(folder / "broker" / f"{name}.parquet") for name in BROKER_FILES}
    signals = [row for path in sorted(folder.glob("*/signals.parquet")) for row in read_rows(path)]
    return RunRecord(folder, manifest, config, broker, signals)


def run_store(record: RunRecord, data_root: str | None = None) -> BarStore:
    root = Path(data_root) if data_root else Path(record.config.data_root)
    if not root.is_dir():
        raise click.ClickException(f"the store {root} of run {record.run_id} is not there (pass --data-root)")
    return BarStore(root)


@dataclass
class DayView:
    """One symbol's session as the charts show it (times are int64 UTC ns)."""

    symbol: str
    day: str
    open_ns: int
    close_ns: int
    bars: dict[str, Bars]                       # interval -> bars of the session
    indicators: dict[str, dict[str, np.ndarray]]  # interval -> {"ts": ..., "key.output": values}
    gaps: list[tuple[int, int, int]]            # (first missing, last missing, minutes)
    added_ns: int | None
    fills: list[dict]
    orders: list[dict]
    signals: list[dict]


def _starts(ts: np.ndarray, opens: np.ndarray) -> np.ndarray:
    session_of = np.searchsorted(opens, ts, side="right")
    return np.concatenate([[True], np.diff(session_of) != 0]) if len(ts) else np.zeros(0, bool)


def indicator_values(config: SessionConfig, store: BarStore, calendar: TradingCalendar, symbol: str, day: str,
                     session: Bars) -> dict[str, dict[str, np.ndarray]]:
    """Every configured indicator over the trailing history then the session, through the session's
    kernels; the values at the session's bars, per interval."""
    if not config.indicators:
        return {}
    history_days = calendar.sessions_before(day, config.history_days(symbol))
    spans = [calendar.open_close_ns(d) for d in history_days] + [calendar.open_close_ns(day)]
    opens = np.array([s[0] for s in spans], np.int64)
    closes = np.array([s[1] for s in spans], np.int64)
    history = [store.read_session(symbol, d, *calendar.open_close_ns(d))[0] for d in history_days]
    minute = Bars.concat(history + [session])
    kernels = IndicatorSet(config.indicators, 1)
    out = {}
    for interval in kernels.by_interval:
        minutes = Interval.parse(interval).minutes
        bars = minute if minutes == 1 else aggregate_sessions(minute, opens, closes, minutes)[0]
        block = kernels.run_series(interval, 0, bars, _starts(bars.ts, opens))
        keep = bars.ts >= opens[-1]
        values = {"ts": bars.ts[keep]}
        for (key, output), column in block.values.items():
            values[f"{key}.{output}" if output != "value" else key] = column[keep]
        out[interval] = values
    return out


def day_view(record: RunRecord, store: BarStore, calendar: TradingCalendar, symbol: str, day: str,
             with_indicators: bool = True) -> DayView:
    open_ns, close_ns = calendar.open_close_ns(day)
    session, _ = store.read_session(symbol, day, open_ns, close_ns)
    bars = {"1m": session}
    for name in CHART_INTERVALS[1:]:
        bars[name] = aggregate_session(session, open_ns, close_ns, Interval.parse(name).minutes)[0]
    indicators = indicator_values(record.config, store, calendar, symbol, day, session) if with_indicators else {}

    def mine(rows):
        return [r for r in rows if r.get("symbol") == symbol and r.get("session_date") == day]
    return DayView(symbol, day, open_ns, close_ns, bars, indicators, session_gaps(session.ts, open_ns, close_ns),
                   record.added_ns(symbol, day), mine(record.broker.get("fills", [])),
                   mine(record.broker.get("orders", [])), mine(record.signals))


def local_times(ts: np.ndarray) -> list[str]:
    """int64 UTC ns -> 'YYYY-MM-DD HH:MM' exchange-local strings (one offset per call: a session's day)."""
    ts = np.asarray(ts, np.int64)
    if not len(ts):
        return []
    offset = dt.datetime.fromtimestamp(int(ts[0]) // 10**9, EXCHANGE_TZ).utcoffset()
    local = ts.astype("datetime64[ns]") + np.timedelta64(int(offset.total_seconds()), "s")
    return [s.replace("T", " ") for s in np.datetime_as_string(local, unit="m").tolist()]


def local_time(ns: int) -> str:
    return local_times(np.array([ns], np.int64))[0]


def file_size(path: Path) -> int:
    return os.path.getsize(path) if path.exists() else 0
