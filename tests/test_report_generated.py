"""`ctl report` on a run folder over generated data (no pipeline, no broker, no ../shared needed): which
run it picks, what it says about a run that does not exist, and what the page holds."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from common import runs
from common.data.generate import generate
from common.data.store import BarStore
from common.domain.timeconv import exchange_ns
from services.ctl.cli import cli

DAYS = ("2025-07-01", "2025-07-02")


@pytest.fixture(scope="module")
def results(tmp_path_factory, calendar):
    """Two runs over generated AAPL and RIVN; the second has RIVN added at 11:00 on 07-02."""
    tmp = tmp_path_factory.mktemp("report-gen")
    store = BarStore(tmp / "store")
    generate(store, calendar, ["AAPL", "RIVN"], "2025-06-27", DAYS[-1], seed=5)
    config = {"session": {"mode": "backtest", "start_date": DAYS[0], "end_date": DAYS[-1], "symbols": ["AAPL"],
                          "streams": ["1m", "5m"]},
              "indicators": [{"name": "sma", "interval": "5m", "params": {"period": 3}},
                             {"name": "rsi", "interval": "1m", "params": {"period": 5}}],
              "data_root": str(store.root), "results_dir": str(tmp / "results")}
    for i, run_id in enumerate(("20261126-100000-first", "20261126-110000-second")):
        manifest = {"run_id": run_id, "config": config, "status": "completed", "start_date": DAYS[0],
                    "end_date": DAYS[-1], "symbols": ["AAPL"], "dynamic": ["RIVN"] if i else [],
                    "dynamic_added": {"RIVN": {"date": DAYS[-1], "clock_ns": exchange_ns(
                        calendar.sessions(DAYS[-1], DAYS[-1])[0], "11:00")}} if i else {}}
        runs.write_manifest(tmp / "results" / run_id, manifest)
    runs.point_latest(tmp / "results", "20261126-110000-second")
    return tmp / "results"


def _report(results, *args):
    return CliRunner().invoke(cli, ["report", "--results", str(results), *args], catch_exceptions=False)


def test_the_latest_run_by_default_and_a_named_one_on_request(results):
    res = _report(results)
    assert res.exit_code == 0, res.output
    assert (results / "20261126-110000-second" / "report.html").exists()
    assert not (results / "20261126-100000-first" / "report.html").exists()
    assert _report(results, "20261126-100000-first").exit_code == 0
    assert (results / "20261126-100000-first" / "report.html").exists()


def test_an_unknown_run_is_named_and_the_runs_listed(results):
    res = CliRunner().invoke(cli, ["report", "--results", str(results), "20260101-000000-gone"])
    assert res.exit_code != 0
    assert "20260101-000000-gone" in res.output and "20261126-100000-first" in res.output
    assert "20261126-110000-second" in res.output


def _figure(text: str, div: str) -> dict:
    return json.loads(re.search(rf'id="{div}-fig">(.*?)</script>', text, re.S).group(1))


def test_the_page_holds_every_symbol_day_the_indicators_and_the_add(results):
    _report(results, "20261126-110000-second")
    text = (results / "20261126-110000-second" / "report.html").read_text()
    assert "This run had no broker" in text
    for symbol in ("AAPL", "RIVN"):
        for day in DAYS:
            assert f'id="chart-{symbol}-{day}"' in text
    rivn = _figure(text, f"chart-RIVN-{DAYS[-1]}")
    assert [s["x0"] for s in rivn["layout"]["shapes"] if s["name"] == "added"] == [f"{DAYS[-1]} 11:00"]
    assert not [s for s in _figure(text, f"chart-RIVN-{DAYS[0]}")["layout"]["shapes"] if s["name"] == "added"]
    kinds = {(t["meta"]["kind"], t["meta"].get("key")) for t in rivn["data"]}
    assert ("overlay", "sma(3)") in kinds and ("panel", "rsi(5)") in kinds
    candles = [t for t in rivn["data"] if t["meta"]["kind"] == "candles"]
    assert [t["meta"]["interval"] for t in candles] == ["1m", "5m", "15m"] and [t["visible"] for t in candles] == [
        True, False, False]
    windows = sorted({x[:-2] + f"{int(x[-2:]) // 5 * 5:02d}" for x in candles[0]["x"]})
    assert candles[1]["x"] == windows


def test_gap_shapes_are_the_missing_minutes(results, calendar):
    text = (results / "20261126-110000-second" / "report.html").read_text()
    store = BarStore(json.loads((results / "latest" / "manifest.json").read_text())["config"]["data_root"])
    for symbol in ("AAPL", "RIVN"):
        day = DAYS[-1]
        present = set(store.read_day(symbol, day).ts.tolist())
        missing = [int(t) for t in calendar.minute_grid(day) if int(t) not in present]
        shapes = [s for s in _figure(text, f"chart-{symbol}-{day}")["layout"]["shapes"] if s["name"] == "gap"]
        minutes = sum((np.datetime64(s["x1"]) - np.datetime64(s["x0"])).astype("timedelta64[m]").astype(int) for s in shapes)
        assert minutes == len(missing)
