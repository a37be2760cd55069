"""`ctl report` and `ctl chart` on a run over the real AAPL file of 2025-07-02 (added at 12:06, traded by
the SMA-cross strategy through the broker), checked in a real headless browser (Debian's chromium and
chromedriver with selenium; skipped with the reason when they are not installed) and as a PNG.
Skipped without ../shared/data/real."""
from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SHARED_REAL, Pipeline, ctl, write_config
from support.realdata import one_day_copy

pytestmark = pytest.mark.skipif(not SHARED_REAL.exists(), reason="../shared/data/real not present")
DAY = "2025-07-02"
ADD_AT = "12:06"
ET = ZoneInfo("America/New_York")
TRADER = {"class": "strategies.trading:SmaCrossTrader", "name": "sma", "params": {"fast": 5, "slow": 20, "qty": 10}}


def local(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, ET).strftime("%Y-%m-%d %H:%M")


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, calendar):
    """MSFT configured, the real AAPL day added at 12:06; the trading config's indicators; broker on."""
    from common.data.generate import generate
    from common.data.store import BarStore
    from services.ctl.csvimport import import_csv

    tmp = tmp_path_factory.mktemp("report")
    store = BarStore(tmp / "store")
    generate(store, calendar, ["MSFT"], "2025-06-27", "2025-07-03", seed=3)
    generate(store, calendar, ["AAPL"], "2025-06-27", "2025-07-01", seed=3)
    import_csv(store, one_day_copy(SHARED_REAL / "AAPL_2025-07-02_1m_extended.csv", DAY, tmp), symbol="AAPL")
    indicators = json.loads((ROOT / "configs" / "trading.json").read_text())["indicators"]
    config = write_config(tmp, store.root, session={"start_date": DAY, "end_date": DAY, "symbols": ["MSFT"]},
                          historical=[{"trailing_days": 2, "intervals": ["1m", "5m"], "apply_to": "all"}],
                          indicators=indicators, strategies=[TRADER],
                          schedule=[{"date": DAY, "at": ADD_AT, "command": "add-symbol", "symbols": ["AAPL"]}],
                          stages=["processor", "quality", "analysis", "broker"],
                          broker={"commission": {"per_share": 0.005, "minimum": 1.0}})
    pipe = Pipeline(tmp, config)
    codes = pipe.wait(timeout=180)
    assert set(codes.values()) == {0}, pipe.all_logs()
    res = ctl(config, "report", timeout=120)
    assert res.returncode == 0, res.stderr
    folder = (tmp / "results" / "latest").resolve()
    return {"config": config, "folder": folder, "store": store, "report": folder / "report.html", "tmp": tmp}


def test_the_report_is_one_file_in_the_run_folder_with_plotly_inlined_once(real_run):
    text = real_run["report"].read_text()
    assert text.count("<script src=") == 0 and "https://" not in text.split("</script>", 1)[1]
    assert text.count("Plotly.newPlot") == 1 and 'id="chart-AAPL-2025-07-02"' in text
    manifest = json.loads((real_run["folder"] / "manifest.json").read_text())
    assert manifest["run_id"] in text and manifest["data_fingerprint"] in text
    assert manifest["dynamic_added"]["AAPL"]["date"] == DAY


def test_indicators_equal_what_the_session_computed(real_run, calendar):
    """The report's indicator values equal the processor's (the analysis replica dump), bit for bit."""
    from common.config import load_config
    from services.ctl.rundata import day_view, load_run

    record = load_run(real_run["folder"])
    assert load_config(real_run["config"]).indicators == record.config.indicators
    dump = pq.read_table(real_run["folder"] / "analysis" / f"replica_{DAY}.parquet").to_pydict()
    replica = {k: np.array(v if v is not None else i, np.float64) for k, v, i in
               zip(dump["key"], dump["floats"], dump["ints"])}
    compared = 0
    for symbol in ("AAPL", "MSFT"):
        view = day_view(record, real_run["store"], calendar, symbol, DAY)
        for interval, columns in view.indicators.items():
            for name, column in columns.items():
                if name == "ts":
                    continue
                key = f"{symbol}/{interval}/{name if '.' in name else name + '.value'}"
                np.testing.assert_array_equal(column, replica[key], err_msg=key)
                compared += 1
    assert compared >= 2 * len(record.config.indicators)


def test_an_unknown_run_is_named_and_the_runs_listed(real_run):
    res = ctl(real_run["config"], "report", "20990101-000000-nope")
    assert res.returncode != 0
    assert "20990101-000000-nope" in res.stderr and real_run["folder"].name in res.stderr


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no chromium/chromedriver on PATH (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=options)


READ_CHART = """const done = arguments[arguments.length - 1];
reportRenderAll().then(() => { const gd = document.getElementById('chart-AAPL-2025-07-02');
  done({data: gd.data.map(t => ({meta: t.meta, x: t.x, y: t.y})), shapes: gd.layout.shapes,
        equity: document.querySelectorAll('.chart .main-svg').length}); }).catch(e => done({error: String(e)}));"""


@pytest.fixture(scope="module")
def in_browser(real_run):
    driver = _browser()
    try:
        driver.set_script_timeout(120)
        driver.get(real_run["report"].as_uri())
        chart = driver.execute_async_script(READ_CHART)
        logs = driver.get_log("browser")
    finally:
        driver.quit()
    return chart, logs


def test_the_page_loads_with_no_console_errors(in_browser):
    chart, logs = in_browser
    assert "error" not in chart, chart
    assert [entry for entry in logs if entry["level"] == "SEVERE"] == []
    assert chart["equity"] > 0


def test_the_aapl_1m_candles_are_the_days_regular_hours_bars(in_browser, real_run, calendar):
    chart, _ = in_browser
    [candles] = [t for t in chart["data"] if t["meta"]["kind"] == "candles" and t["meta"]["interval"] == "1m"]
    open_ns, close_ns = calendar.open_close_ns(DAY)
    bars = real_run["store"].read_day("AAPL", DAY)
    regular = bars.ts[(bars.ts >= open_ns) & (bars.ts < close_ns)]
    assert len(candles["x"]) == len(regular) == 349
    assert candles["x"] == [local(t) for t in regular.tolist()]


def test_gap_shapes_cover_exactly_the_missing_minutes(in_browser, real_run, calendar):
    chart, _ = in_browser
    grid = calendar.minute_grid(DAY)
    present = set(real_run["store"].read_day("AAPL", DAY).ts.tolist())
    missing = [local(t) for t in grid.tolist() if t not in present]
    shaded = []
    for shape in (s for s in chart["shapes"] if s.get("name") == "gap"):
        at = dt.datetime.fromisoformat(shape["x0"])
        while at < dt.datetime.fromisoformat(shape["x1"]):
            shaded.append(at.strftime("%Y-%m-%d %H:%M"))
            at += dt.timedelta(minutes=1)
    assert shaded == missing and len(missing) == len(grid) - 349 == 41


def test_the_add_marker_sits_at_the_add_time_with_the_caught_up_span(in_browser):
    chart, _ = in_browser
    [added] = [s for s in chart["shapes"] if s.get("name") == "added"]
    [span] = [s for s in chart["shapes"] if s.get("name") == "caught-up"]
    assert added["x0"] == added["x1"] == f"{DAY} {ADD_AT}"
    assert span["x0"] == f"{DAY} 09:30" and span["x1"] == f"{DAY} {ADD_AT}"


def test_the_fill_markers_are_the_fills_file(in_browser, real_run):
    chart, _ = in_browser
    [markers] = [t for t in chart["data"] if t["meta"]["kind"] == "fills"]
    fills = [f for f in pq.read_table(real_run["folder"] / "broker" / "fills.parquet").to_pylist()
             if f["symbol"] == "AAPL"]
    assert fills, "the strategy did not trade AAPL"
    assert list(zip(markers["x"], markers["y"])) == [(local(f["ts_ns"]), f["price"]) for f in fills]


@pytest.mark.parametrize("interval", ["1m", "5m"])
def test_ctl_chart_writes_a_png_of_the_day(real_run, interval):
    out = real_run["tmp"] / f"AAPL-{interval}.png"
    res = ctl(real_run["config"], "chart", "AAPL", "--date", DAY, "--interval", interval, "-o", str(out), timeout=120)
    assert res.returncode == 0, res.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 500
    from PIL import Image

    pixels = np.asarray(Image.open(out).convert("L"))
    assert pixels.std() > 10  # not a blank image


def test_ctl_chart_names_a_date_outside_the_run(real_run):
    res = ctl(real_run["config"], "chart", "AAPL", "--date", "2025-07-03", "-o", str(real_run["tmp"] / "x.png"))
    assert res.returncode != 0 and "2025-07-03" in res.stderr and "2025-07-02" in res.stderr


def test_a_large_run_gets_an_index_and_per_symbol_pages_sharing_one_plotly(real_run, monkeypatch, tmp_path):
    """Beyond SINGLE_FILE_MAX symbol-days: report/index.html, one page per symbol, one plotly.min.js; a
    symbol's page draws in the browser without errors."""
    import shutil as sh

    from services.ctl import report
    from services.ctl.rundata import load_run

    folder = tmp_path / real_run["folder"].name
    sh.copytree(real_run["folder"], folder)
    monkeypatch.setattr(report, "SINGLE_FILE_MAX", 1)
    index = report.ReportWriter(load_run(folder)).write()
    assert index == folder / "report" / "index.html"
    assert sorted(p.name for p in index.parent.iterdir()) == ["AAPL.html", "MSFT.html", "index.html",
                                                                "plotly.min.js"]
    for page in index.parent.glob("*.html"):
        text = page.read_text()
        assert text.count('<script src="plotly.min.js"></script>') == 1 and len(text) < 2_000_000
    assert 'href="AAPL.html"' in index.read_text()
    driver = _browser()
    try:
        driver.set_script_timeout(120)
        driver.get((index.parent / "AAPL.html").as_uri())
        chart = driver.execute_async_script(READ_CHART)
        logs = driver.get_log("browser")
    finally:
        driver.quit()
    assert [e for e in logs if e["level"] == "SEVERE"] == []
    [candles] = [t for t in chart["data"] if t["meta"]["kind"] == "candles" and t["meta"]["interval"] == "1m"]
    assert len(candles["x"]) == 349
