"""The Python API (session_engine): inline and process runs write byte-identical files (the demo config, the
real AAPL file added at 12:06, a trading run with the broker), results as DataFrames, run.bars() against
pandas resampling and the session's own replica, strategies as classes and instances, honest failures."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import session_engine as se
from common.config import ConfigError
from conftest import ROOT, SHARED_REAL
from services.analysis.results import read_replica_dump
from support.identity import GOLDEN, results_hashes

DAY = "2025-07-02"


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory, calendar):
    """The sample set `make run` generates (AAPL, MSFT, RIVN 2025-06-02..2025-07-08)."""
    return se.sample_store(tmp_path_factory.mktemp("api-store"))


def _demo(results, store, **extra) -> dict:
    config = json.loads((ROOT / "configs" / "default.json").read_text())
    config.update(data_root=str(store), results_dir=str(results), dump_replica=True, **extra)
    return config


def _same_files(inline: se.Run, procs: se.Run) -> dict[str, bytes]:
    files = inline.files()
    assert files and files == procs.files()
    for key in ("config_hash", "data_fingerprint", "sessions_run", "dynamic", "dynamic_added", "status"):
        assert inline.record[key] == procs.record[key], key
    assert (inline.mode, procs.mode) == ("inline", "processes")
    return files


def test_demo_config_inline_and_processes_byte_identical(tmp_path, demo_store):
    config = _demo(tmp_path, demo_store)
    inline, procs = se.run(config), se.run(config, mode="processes")
    files = _same_files(inline, procs)
    assert {"analysis/signals.parquet", "analysis/summary.parquet", f"analysis/replica_{DAY}.parquet"} <= set(files)
    golden = json.loads(GOLDEN.read_text())["demo"]  # what the processes wrote before the API existed
    assert results_hashes(inline.folder, ["analysis"]) == golden
    assert inline.record["dynamic_added"]["RIVN"]["date"] == DAY and inline.completed


@pytest.mark.skipif(not SHARED_REAL.exists(), reason="../shared/data/real not present")
def test_real_aapl_added_at_1206_inline_and_processes_byte_identical(tmp_path, calendar):
    from common.data.generate import generate
    from common.data.store import BarStore
    from services.ctl.csvimport import import_csv
    from support.realdata import one_day_copy

    store = BarStore(tmp_path / "store")
    generate(store, calendar, ["AAPL", "MSFT"], "2025-06-23", "2025-07-01", seed=3)
    generate(store, calendar, ["MSFT"], DAY, DAY, seed=3)
    import_csv(store, one_day_copy(SHARED_REAL / "AAPL_2025-07-02_1m_extended.csv", DAY, tmp_path), symbol="AAPL")
    config = _demo(tmp_path / "results", store.root,
                   historical=[{"trailing_days": 3, "intervals": ["1m", "5m", "1d"], "apply_to": "all"}],
                   schedule=[{"date": DAY, "at": "12:06", "command": "add-symbol", "symbols": ["AAPL"]}])
    config["session"].update(start_date=DAY, end_date=DAY, symbols=["MSFT"])
    inline, procs = se.run(config), se.run(config, mode="processes")
    _same_files(inline, procs)
    assert results_hashes(inline.folder, ["analysis"]) == json.loads(GOLDEN.read_text())["real_add_1206"]
    five = inline.bars("AAPL", "5m")
    assert five.index[0].strftime("%H:%M") == "09:30"  # caught up from the open
    assert len(inline.bars("AAPL", "1m")) == 349       # the real file's regular-hours minutes (41 missing)


def test_trading_run_with_the_broker_inline_and_processes_byte_identical(tmp_path, demo_store):
    from strategies.trading import SmaCrossTrader

    config = json.loads((ROOT / "configs" / "trading.json").read_text())
    config.update(data_root=str(demo_store), results_dir=str(tmp_path))
    config["session"]["end_date"] = DAY
    classes = [{**entry, "class": SmaCrossTrader} for entry in config["strategies"]]  # classes, not strings
    inline = se.run(config, strategies=classes)
    procs = se.run(config, mode="processes", strategies=classes)
    files = _same_files(inline, procs)
    assert {f"broker/{name}.parquet" for name in ("orders", "fills", "equity", "metrics", "trades")} <= set(files)
    assert inline.record["config"]["strategies"][0]["class"] == "strategies.trading:SmaCrossTrader"
    metrics, fills, equity = inline.metrics, inline.fills, inline.equity
    assert sorted(metrics["account"]) == ["analysis/sma_limit", "analysis/sma_market"]
    assert len(fills) > 0 and set(fills["symbol"]) <= {"AAPL", "MSFT", "RIVN"}
    last = equity.groupby("account")["equity"].last()
    assert np.allclose(last.sort_index().values, metrics.sort_values("account")["final_equity"].values)
    assert str(equity["ts"].dt.tz) == "America/New_York"
    assert [t.strftime("%H:%M") for t in fills["ts"]] == [t[-5:] for t in fills["time"]]
    report = inline.report()
    assert report == inline.folder / "report.html" and "sma_market" in report.read_text()
    listed = se.runs_table(tmp_path)
    assert sorted(listed["run_id"]) == sorted([inline.run_id, procs.run_id]) and set(listed["status"]) == {"completed"}


def test_run_bars_equal_pandas_resampling_and_the_replica(tmp_path, demo_store):
    run = se.run(_demo(tmp_path, demo_store), **{"session.end_date": DAY})
    one, five = run.bars("MSFT", "1m", date=DAY), run.bars("MSFT", "5m", date=DAY)
    oracle = one.resample("5min", label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}).dropna()
    pd.testing.assert_frame_equal(five[list(oracle.columns)], oracle, check_freq=False)
    replica = read_replica_dump(run.folder / "analysis" / f"replica_{DAY}.parquet")
    assert np.array_equal(replica["MSFT/5m/ts"], five.index.as_unit("ns").asi8)
    for column in ("sma(20)", "rsi(14)", "macd(12,26,9).hist", "bbands(20,2,2).upper"):
        key = column if "." in column.split(")")[-1] else f"{column}.value"
        assert np.array_equal(replica[f"MSFT/5m/{key}"], five[column].to_numpy(), equal_nan=True), column
    assert "wma(10)" in one.columns and "vwap" in one.columns
    added = run.bars("RIVN", "1m")  # added at 12:06: its whole day, as caught up
    assert added.index[0].strftime("%Y-%m-%d %H:%M") == f"{DAY} 09:30"


class CountBars:
    """A strategy given as a class or an instance: counts its 5m bars and signals once per session."""

    intervals = ("5m",)

    def __init__(self, every=10):
        self.every, self.seen = every, 0

    def on_bar(self, ctx, symbol, interval, bar):
        self.seen += 1
        if self.seen % self.every == 0:
            ctx.signal(symbol, "buy", 1, "count", seen=self.seen)


def test_strategies_as_classes_and_instances_inline_and_in_processes(tmp_path, demo_store):
    """A class of a module, an instance, and a class defined in a function (as in a notebook): inline,
    and in the processes, which get them by value."""
    config = _demo(tmp_path, demo_store, schedule=[])
    config["session"].update(start_date=DAY, end_date=DAY)
    by_class = se.run(config, strategies=[{"class": CountBars, "params": {"every": 7}}])
    instance = CountBars(every=7)
    by_instance = se.run(config, strategies=[instance])
    assert by_class.signals.drop(columns="clock").equals(by_instance.signals.drop(columns="clock"))
    assert len(by_class.signals) == instance.seen // 7 > 0
    assert by_class.record["config"]["strategies"] == [{"class": "test_api:CountBars", "params": {"every": 7},
                                                         "name": "CountBars"}]

    class Local(CountBars):  # not importable by module:Class from another process
        def on_session_end(self, ctx, date):
            ctx.signal("MSFT", "sell", 1, "local", seen=self.seen)
    inline = se.run(config, strategies=[Local, CountBars(every=5)])  # an instance keeps its state: a new one each
    procs = se.run(config, strategies=[Local, CountBars(every=5)], mode="processes")
    _same_files(inline, procs)
    assert set(procs.signals["strategy"]) == {"Local", "CountBars"} and "local" in set(procs.signals["reason"])
    with pytest.raises(ConfigError, match="params go with a class"):
        se.run(config, strategies=[{"class": instance, "params": {"every": 3}}])
    prepared = se.prepare(config, strategies=[Local])  # a prepared config keeps its strategy objects
    assert se.run(prepared).signals.equals(se.run(config, strategies=[Local]).signals)
    with pytest.raises(ValueError, match=f"run {inline.run_id} exists already"):
        se.run(config, run_id=inline.run_id)


def test_overrides_name_places_in_the_config(tmp_path, demo_store):
    config = _demo(tmp_path, demo_store)
    parsed = se.prepare(config, {"strategies.sma_cross.params.fast": 7, "end_date": DAY,
                                 "historical__0__trailing_days": 2, "flow.window": 4})
    assert parsed.strategies[0].params["fast"] == 7 and parsed.end_date.isoformat() == DAY
    assert parsed.historical[0].trailing_days == 2 and parsed.flow_window == 4
    with pytest.raises(ConfigError, match="no entry 'nope' \\(entries: sma_cross, rsi_reversion\\)"):
        se.prepare(config, {"strategies.nope.params.fast": 1})
    with pytest.raises(ConfigError, match="flow.window"):
        se.prepare(config, {"flow.window": 0})
    with pytest.raises(ValueError, match="mode 'threads'"):
        se.run(config, mode="threads")
    with pytest.raises(ConfigError, match=r"strategies\[0\]: 42 is not a strategy"):
        se.run(config, strategies=[42])
    with pytest.raises(ConfigError, match=r"data_root: .*nowhere is not a folder"):
        se.run(config, data_root=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"schedule\[0\]: a scheduled pause waits for an operator"):
        se.run(config, schedule=[{"at": "10:00", "command": "pause"}])


def test_a_run_that_does_not_complete_raises_with_its_record(tmp_path, demo_store):
    config = _demo(tmp_path, demo_store)
    with pytest.raises(se.RunError, match="aborted") as failed:
        se.run(config, end_date="2025-07-15")  # the store ends on 07-08
    assert failed.value.run.status == "aborted" and failed.value.run.record["exit_code"] == 1
    quiet = se.run(config, end_date="2025-07-15", check=False)
    assert quiet.status == "aborted" and quiet.record["sessions_run"] == 5


class DeclaresSma:
    """Declares sma(12) on 5m (not in the config) and keeps what it read at each session's end."""

    intervals = ("5m",)
    indicators = {"5m": ["sma(12)"]}

    def __init__(self):
        self.read = {}

    def on_session_end(self, ctx, date):
        for symbol in ctx.symbols:
            closes = np.concatenate([ctx.history(symbol, "5m").close, ctx.bars(symbol, "5m").close])
            self.read[(date, symbol)] = (closes, ctx.indicator(symbol, "5m", "sma(12)"))


def test_a_declared_indicator_of_a_symbol_added_mid_session_equals_talib(tmp_path, demo_store):
    """A catch-up warms the added symbol's indicators in a set built like the session's: the config's
    plus the declared ones (it was built from the config's alone, and the run aborted)."""
    import talib

    strategy = DeclaresSma()
    run = se.run(_demo(tmp_path, demo_store), strategies=[strategy], end_date=DAY)
    assert run.completed and (DAY, "RIVN") in strategy.read
    for (date, symbol), (closes, sma) in strategy.read.items():
        expected = talib.SMA(closes, 12)[-len(sma):]
        assert np.allclose(sma, expected, equal_nan=True, rtol=0, atol=1e-9), (date, symbol)
    bars = run.bars("RIVN", "5m", date=DAY)  # the declared indicator is a column too, equal to what ctx read
    assert np.array_equal(bars["sma(12)"].to_numpy(), strategy.read[(DAY, "RIVN")][1], equal_nan=True)


def test_a_strategys_own_add_lands_at_the_same_step_inline_and_in_processes(tmp_path, demo_store):
    """With flow.window 1 a strategy's add-symbol is applied at the next step boundary in both modes (the
    scanner adds AAPL on MSFT's 10:00 bar): same catch-up, same files."""
    config = _demo(tmp_path, demo_store, schedule=[])
    config["session"].update(start_date=DAY, end_date=DAY, symbols=["MSFT"])
    config["flow"]["window"] = 1
    config["strategies"] = [{"class": "support.recording:Scanner", "name": "scanner"},
                            {"class": "strategies.examples:SmaCross", "name": "sma", "params": {"fast": 3, "slow": 8}}]
    inline, procs = se.run(config), se.run(config, mode="processes")
    _same_files(inline, procs)
    assert inline.record["dynamic_added"]["AAPL"]["clock_ns"] == procs.record["dynamic_added"]["AAPL"]["clock_ns"]
    assert inline.bars("AAPL", "1m").index[0].strftime("%H:%M") == "09:30"


def test_the_analysis_process_loads_pickled_strategies_only_from_a_private_file(tmp_path):
    import pickle

    from services.analysis.strategies import strategy_objects

    path = tmp_path / "strategies.pkl"
    path.write_bytes(pickle.dumps({"count": CountBars(every=3)}))
    path.chmod(0o600)
    assert strategy_objects(str(path))["count"].every == 3
    path.chmod(0o666)
    with pytest.raises(ImportError, match="writable by others: not loaded"):
        strategy_objects(str(path))
    path.chmod(0o600)
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ImportError, match="holds list"):
        strategy_objects(str(path))
    with pytest.raises(ImportError, match="cannot load"):
        strategy_objects(str(tmp_path / "missing.pkl"))


class Interrupted:
    """Ctrl-C arrives while the strategy runs (as in a notebook cell interrupted mid-run)."""

    def on_bar(self, ctx, symbol, interval, bar):
        if ctx.fmt(ctx.clock) == "11:00":
            raise KeyboardInterrupt


def test_an_interrupted_inline_run_is_recorded_as_stopped_with_its_results(tmp_path, demo_store):
    config = _demo(tmp_path, demo_store)
    with pytest.raises(KeyboardInterrupt):
        se.run(config, strategies=[Interrupted], run_id="20250101-000000-interrupted")
    run = se.Run(tmp_path / "20250101-000000-interrupted")
    assert (run.status, run.exit_reason, run.record["exit_code"]) == ("stopped", "stopped by an interrupt "
                                                                      "(KeyboardInterrupt)", 3)
    assert (run.folder / "analysis" / "summary.parquet").exists() and run.record["sessions_run"] == 0
