"""Determinism of the broker's record: byte-identical files run to run, and the same trading whether a
symbol was configured or added at 12:06 (real AAPL file; skipped without ../shared)."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from conftest import SHARED_REAL, Pipeline, write_config
from support.realdata import one_day_copy

pytestmark = pytest.mark.skipif(not SHARED_REAL.exists(), reason="../shared/data/real not present")
DAY = "2025-07-02"
TRADER = {"class": "strategies.trading:SmaCrossTrader", "name": "sma",
          "params": {"fast": 5, "slow": 20, "qty": 10, "start": "12:06", "replica_closes": True}}
FILES = ("orders", "fills", "equity", "positions", "trades", "metrics")


@pytest.fixture(scope="module")
def real_store(tmp_path_factory, calendar):
    from common.data.generate import generate
    from common.data.store import BarStore
    from services.ctl.csvimport import import_csv

    store = BarStore(tmp_path_factory.mktemp("broker-real"))
    generate(store, calendar, ["MSFT"], "2025-06-30", "2025-07-03", seed=3)
    csv = one_day_copy(SHARED_REAL / "AAPL_2025-07-02_1m_extended.csv", DAY, tmp_path_factory.mktemp("csv"))
    import_csv(store, csv, symbol="AAPL")
    return store


def _run(tmp, store, symbols, schedule):
    config = write_config(tmp, store.root, session={"start_date": DAY, "end_date": DAY, "symbols": symbols},
                          historical=[], strategies=[TRADER], schedule=schedule,
                          stages=["processor", "quality", "analysis", "broker"],
                          broker={"commission": {"per_share": 0.005, "minimum": 1.0}, "slippage": {"bps": 1}})
    pipe = Pipeline(tmp, config)
    codes = pipe.wait(timeout=180)
    assert set(codes.values()) == {0}, pipe.all_logs()
    assert "LOSS" not in pipe.all_logs() and " ERROR " not in pipe.all_logs(), pipe.all_logs()
    return tmp / "results" / "latest" / "broker"


@pytest.fixture(scope="module")
def configured(tmp_path_factory, real_store):
    return _run(tmp_path_factory.mktemp("configured"), real_store, ["MSFT", "AAPL"], [])


def test_two_runs_write_byte_identical_files(tmp_path, real_store, configured):
    again = _run(tmp_path, real_store, ["MSFT", "AAPL"], [])
    for name in FILES:
        assert (again / f"{name}.parquet").read_bytes() == (configured / f"{name}.parquet").read_bytes(), name


def test_a_symbol_added_at_1206_trades_as_if_configured(tmp_path, real_store, configured):
    added = _run(tmp_path, real_store, ["MSFT"], [{"date": DAY, "at": "12:06", "command": "add-symbol",
                                                    "symbols": ["AAPL"]}])
    read = {name: (pq.read_table(configured / f"{name}.parquet").to_pylist(),
                   pq.read_table(added / f"{name}.parquet").to_pylist()) for name in FILES}
    fills, fills_added = read["fills"]
    assert any(f["symbol"] == "AAPL" for f in fills) and len(fills) >= 4
    assert fills_added == fills
    assert read["orders"][1] == read["orders"][0]
    first = fills[0]["clock_ns"]
    equity, equity_added = read["equity"]
    assert [r for r in equity_added if r["clock_ns"] >= first] == [r for r in equity if r["clock_ns"] >= first]
    for name in ("trades", "positions"):
        assert read[name][1] == read[name][0], name
