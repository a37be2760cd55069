"""Integration: adding a symbol mid-session (pause, catch-up snapshot, resume) across real processes.

Uses the real AAPL 1m file of 2025-07-02 (imported into a temp store on top of generated history), so
the catch-up at 12:06 must deliver exactly AAPL's 115 regular-hours bars with open time in [09:30, 12:06).
"""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from services.analysis.results import read_replica_dump
from conftest import SHARED_REAL, Pipeline, write_config
from support.realdata import one_day_copy

pytestmark = pytest.mark.skipif(not SHARED_REAL.exists(), reason="../shared/data/real not present")
DAY = "2025-07-02"
INDICATORS = [
    {"name": "sma", "interval": "5m", "params": {"period": 20}},
    {"name": "ema", "interval": "1m", "params": {"period": 9}},
    {"name": "rsi", "interval": "5m", "params": {"period": 14}},
    {"name": "macd", "interval": "15m", "params": {}},
    {"name": "atr", "interval": "5m", "params": {}},
    {"name": "vwap", "interval": "1m", "params": {}},
]
RECORDER = [{"class": "support.recording:CallbackRecorder", "name": "recorder"}]


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, calendar):
    from services.ctl.csvimport import import_csv
    from common.data.generate import generate
    from common.data.store import BarStore

    store = BarStore(tmp_path_factory.mktemp("realstore"))
    generate(store, calendar, ["AAPL", "MSFT"], "2025-06-23", "2025-07-01", seed=3)
    generate(store, calendar, ["MSFT"], DAY, DAY, seed=3)
    csv = one_day_copy(SHARED_REAL / "AAPL_2025-07-02_1m_extended.csv", DAY, tmp_path_factory.mktemp("csv"))
    import_csv(store, csv, symbol="AAPL")
    return store


def _run(tmp, store, symbols, schedule):
    config = write_config(tmp, store.root, session={"start_date": DAY, "end_date": DAY, "symbols": symbols},
                          indicators=INDICATORS, strategies=RECORDER, schedule=schedule,
                          historical=[{"trailing_days": 3, "intervals": ["1m"], "apply_to": "all"}])
    pipe = Pipeline(tmp, config)
    codes = pipe.wait()
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()
    assert "LOSS" not in pipe.all_logs() and " ERROR " not in pipe.all_logs(), pipe.all_logs()
    return tmp / "results" / "latest" / "analysis", pipe


ADD_AT_1206 = [{"date": DAY, "at": "12:06", "command": "add-symbol", "symbols": ["AAPL"]}]


@pytest.fixture(scope="module")
def added(tmp_path_factory, real_store):
    return _run(tmp_path_factory.mktemp("added"), real_store, ["MSFT"], ADD_AT_1206)


@pytest.fixture(scope="module")
def configured(tmp_path_factory, real_store):
    return _run(tmp_path_factory.mktemp("configured"), real_store, ["MSFT", "AAPL"], [])


def test_catchup_is_exact_and_logged(added, calendar):
    results, pipe = added
    signals = pq.read_table(results / "signals.parquet").to_pydict()
    added_rows = [i for i, r in enumerate(signals["reason"]) if r == "on_symbol_added"]
    assert len(added_rows) == 1
    assert signals["symbol"][added_rows[0]] == "AAPL"
    assert signals["qty"][added_rows[0]] == 115  # regular-hours bars with open in [09:30, 12:06)
    log = pipe.log("coordinator")
    for line in ("[DYNAMIC] Pausing streaming", "[DYNAMIC] Loaded", "[DYNAMIC] Catchup complete: 115 bars processed",
                 "[DYNAMIC] Resuming streaming"):
        assert line in log, log


def test_no_catchup_bar_reaches_on_bar(added, calendar):
    results, _ = added
    signals = pq.read_table(results / "signals.parquet").to_pydict()
    open_ns, _ = calendar.open_close_ns(DAY)
    t_ns = open_ns + 156 * 60_000_000_000  # 12:06
    added_at = signals["clock_ns"][signals["reason"].index("on_symbol_added")]
    assert added_at == t_ns
    for symbol, reason, clock in zip(signals["symbol"], signals["reason"], signals["clock_ns"]):
        if symbol == "AAPL" and reason.startswith("on_bar 1m"):
            assert int(reason.split()[2]) >= t_ns, "a catch-up bar was delivered through on_bar"
            assert clock > t_ns


def test_added_equals_configured_from_the_start(added, configured):
    a = read_replica_dump(added[0] / f"replica_{DAY}.parquet")
    c = read_replica_dump(configured[0] / f"replica_{DAY}.parquet")
    aapl_keys = sorted(k for k in c if k.startswith("AAPL/"))
    assert any("/5m/sma(20).value" in k for k in aapl_keys) and any("/15m/macd" in k for k in aapl_keys)
    assert any("/quality/1m/pct" in k for k in aapl_keys)
    assert sorted(k for k in a if k.startswith("AAPL/")) == aapl_keys
    for key in aapl_keys:
        assert np.array_equal(a[key], c[key], equal_nan=True), key
    assert len(c["AAPL/1m/ts"]) == 349
    assert a["AAPL/quality/1m/present"][0] == 349 and a["AAPL/quality/1m/expected"][0] == 390


def test_same_schedule_gives_identical_files(tmp_path, real_store, added):
    again, _ = _run(tmp_path, real_store, ["MSFT"], ADD_AT_1206)
    for name in ("signals.parquet", "summary.parquet", f"replica_{DAY}.parquet"):
        assert (again / name).read_bytes() == (added[0] / name).read_bytes(), name
