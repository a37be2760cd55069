"""A finished run as pandas DataFrames: its record, its result files, and a tidy view of its bars.

Everything is read from the run's folder (results/<run id>/), so a run made by processes, inline, on a
Dask worker or last week reads the same way. Times are int64 UTC nanoseconds in the files; the frames
add exchange-local timestamps where a column holds a time (`clock`, `ts`).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from common import runs
from common.config import parse_config
from common.data.store import BarStore
from common.domain.aggregate import aggregate_session
from common.domain.calendar import TradingCalendar
from common.domain.interval import Interval
from common.domain.timeconv import EXCHANGE_TZ
from services.ctl.rundata import indicator_values

BROKER_TABLES = ("orders", "fills", "positions", "equity", "trades", "metrics")
BAR_COLUMNS = ("open", "high", "low", "close", "volume")


class RunError(RuntimeError):
    """A run that did not complete (stopped or aborted): `run` is its Run, with the record saying why."""

    def __init__(self, message: str, run: "Run | None" = None):
        super().__init__(message)
        self.run = run


def _exchange_times(ns) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(ns, np.int64), utc=True).tz_convert(EXCHANGE_TZ)


def _read(path: Path) -> pd.DataFrame:
    return pq.read_table(path).to_pandas() if path.exists() else pd.DataFrame()


class Run:
    """One run's folder read back. `status` is completed / stopped / aborted (running: it died unsaid)."""

    def __init__(self, folder: Path, mode: str | None = None, elapsed_s: float | None = None):
        self.folder = Path(folder)
        self.mode = mode
        self.elapsed_s = elapsed_s
        manifest = runs.read_manifest(self.folder)
        if manifest is None:
            raise RunError(f"{self.folder}: no readable {runs.MANIFEST} (not a run folder)")
        self.record = manifest

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, status={self.status!r}, folder={str(self.folder)!r})"

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    @property
    def status(self) -> str:
        return self.record.get("status", "running")

    @property
    def exit_reason(self) -> str | None:
        return self.record.get("exit_reason")

    @property
    def completed(self) -> bool:
        return self.status == runs.RunStatus.COMPLETED.value

    @functools.cached_property
    def config(self):
        return parse_config(self.record["config"], self.record.get("config_path", str(self.folder)))

    @functools.cached_property
    def _computed(self):
        """The config with the indicators the sessions computed (the strategies' declared ones too)."""
        computed = self.record.get("session_indicators")
        return dataclasses.replace(self.config, indicators=tuple(computed)) if computed else self.config

    # ---- result files ----------------------------------------------------------------------------
    def stage_folders(self) -> list[Path]:
        return sorted(p.parent for p in self.folder.glob("*/signals.parquet"))

    @property
    def signals(self) -> pd.DataFrame:
        """Every analysis stage's signals, with the stage's name and the exchange time of each."""
        frames = [_read(folder / "signals.parquet").assign(stage=folder.name) for folder in self.stage_folders()]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=["clock_ns", "clock", "session_date", "strategy", "symbol", "side",
                                         "qty", "reason", "extra", "stage"])
        out = pd.concat(frames, ignore_index=True)
        out["extra"] = [json.loads(x) if x else {} for x in out["extra"]]
        return out

    @property
    def summary(self) -> pd.DataFrame:
        frames = [_read(folder / "summary.parquet").assign(stage=folder.name) for folder in self.stage_folders()]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def broker_table(self, name: str) -> pd.DataFrame:
        """One of the broker's files (orders, fills, positions, equity, trades, metrics); empty when the run
        had no broker."""
        if name not in BROKER_TABLES:
            raise ValueError(f"{name!r} is not one of {', '.join(BROKER_TABLES)}")
        frame = _read(self.folder / "broker" / f"{name}.parquet")
        times = {"equity": "clock_ns", "fills": "ts_ns"}  # the step's clock; the bar a fill came from
        if name in times and len(frame):
            frame.insert(1, "ts", _exchange_times(frame[times[name]]))
        return frame

    orders = property(lambda self: self.broker_table("orders"))
    fills = property(lambda self: self.broker_table("fills"))
    positions = property(lambda self: self.broker_table("positions"))
    equity = property(lambda self: self.broker_table("equity"))
    trades = property(lambda self: self.broker_table("trades"))
    metrics = property(lambda self: self.broker_table("metrics"))

    def files(self) -> dict[str, bytes]:
        """Every result file of the run (path relative to the run folder -> bytes), the manifest excepted:
        what must be byte-identical between two runs of the same config."""
        return {str(p.relative_to(self.folder)): p.read_bytes() for p in sorted(self.folder.rglob("*.parquet"))}

    def report(self, data_root: str | None = None) -> Path:
        """Write the run's HTML report into its folder (as `ctl report`); returns its path."""
        from services.ctl.rundata import load_run
        from services.ctl.report import ReportWriter

        return ReportWriter(load_run(self.folder), data_root).write()

    # ---- bars ------------------------------------------------------------------------------------
    def days(self) -> list[str]:
        calendar = TradingCalendar(self.config.calendar)
        return [d.isoformat() for d in calendar.sessions(self.record["start_date"], self.record["end_date"])]

    def bars(self, symbol: str, interval: str = "1m", date: str | None = None,
             data_root: str | None = None) -> pd.DataFrame:
        """`symbol`'s bars of `interval` over the run's sessions (or one `date`) as the session made them,
        one row per bar indexed by its exchange-local open time, with a column per indicator of that
        interval the session computed, configured or declared by a strategy (`sma(20)`,
        `macd(12,26,9).hist`), computed with the session's kernels over the
        same trailing history (equal to what strategies read from ctx). A symbol added mid-session has
        its whole day, as its catch-up gave it."""
        minutes = Interval.parse(interval).minutes
        store = BarStore(Path(data_root) if data_root else Path(self.config.data_root))
        calendar = TradingCalendar(self.config.calendar)
        days = [date] if date else self._symbol_days(symbol)
        frames = [self._day_frame(store, calendar, symbol, day, interval, minutes) for day in days]
        frames = [f for f in frames if len(f)]
        if not frames:
            return pd.DataFrame(columns=list(BAR_COLUMNS), index=pd.DatetimeIndex([], tz=EXCHANGE_TZ, name="ts"))
        return pd.concat(frames)

    def _symbol_days(self, symbol: str) -> list[str]:
        """The run's days for a configured symbol; from its add on for a symbol added at run time."""
        if symbol in self.record.get("symbols", []):
            return self.days()
        added = (self.record.get("dynamic_added") or {}).get(symbol)
        return [d for d in self.days() if d >= added["date"]] if added else []

    def _day_frame(self, store, calendar, symbol: str, day: str, interval: str, minutes: int) -> pd.DataFrame:
        open_ns, close_ns = calendar.open_close_ns(dt.date.fromisoformat(day))
        session, _ = store.read_session(symbol, day, open_ns, close_ns)
        bars = session if minutes == 1 else aggregate_session(session, open_ns, close_ns, minutes)[0]
        frame = pd.DataFrame({name: getattr(bars, name) for name in BAR_COLUMNS},
                             index=pd.Index(_exchange_times(bars.ts), name="ts"))
        values = indicator_values(self._computed, store, calendar, symbol, day, session).get(interval, {})
        for key, column in values.items():
            if key != "ts":
                frame[key] = column
        return frame


def runs_table(results_dir="results") -> pd.DataFrame:
    """Every run under `results_dir` (as `ctl runs`): id, config, status, dates, sessions, signals, exit
    reason, start, and the broker's key metrics per account (a list of dicts, empty without a broker)."""
    from services.ctl.runs import run_rows

    return pd.DataFrame(run_rows(Path(results_dir)), columns=["run_id", "config", "status", "dates", "symbols",
                                                              "sessions", "signals", "exit_reason", "started_at",
                                                              "metrics"])
