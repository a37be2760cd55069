"""ctl views of runs and of a running session, with real processes: `ctl runs` and `ctl compare` show the
broker's metrics of two trading runs, `ctl top` draws frames of a running session, and the coordinator
logs progress lines (day n of N, steps/s, ETA)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pyarrow.parquet as pq
from conftest import ROOT, Pipeline, ctl, proc_env, write_config
from test_broker import trading_config
from test_pipeline import _wait_for_status

from services.ctl.compare import fmt_metric


def _ctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.ctl", *args], cwd=ROOT, env=proc_env(),
                          capture_output=True, text=True, timeout=120)


def _trading_run(tmp, store_root, results, name: str, fast: int) -> str:
    tmp.mkdir()
    trader = {"class": "strategies.trading:SmaCrossTrader", "name": "sma_trader",
              "params": {"fast": fast, "slow": 20, "qty": 10}}
    config = trading_config(tmp, store_root, strategies=[trader], name=name, results_dir=str(results),
                            session={"end_date": "2025-07-03"})
    codes = Pipeline(tmp, config).wait(timeout=180)
    assert set(codes.values()) == {0}, codes
    return json.loads((results / "latest" / "manifest.json").read_text())["run_id"]


def test_runs_and_compare_show_the_brokers_metrics_of_two_runs(tmp_path, sample_store):
    results = tmp_path / "results"
    first = _trading_run(tmp_path / "a", sample_store.root, results, "fast5", 5)
    second = _trading_run(tmp_path / "b", sample_store.root, results, "fast10", 10)
    metrics = {run: pq.read_table(results / run / "broker" / "metrics.parquet").to_pylist()[0]
               for run in (first, second)}
    listed = json.loads(_ctl("runs", "--results", str(results), "--json").stdout)
    assert {r["run_id"]: r["metrics"][0]["total_return"] for r in listed} == \
        {run: m["total_return"] for run, m in metrics.items()}
    text = _ctl("runs", "--results", str(results)).stdout
    assert text.count("analysis/sma_trader: return ") == 2 and "sharpe" in text
    html = tmp_path / "compare.html"
    compared = _ctl("compare", "--results", str(results), first, second, "--html", str(html))
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    assert lines[0].startswith(f"A = {first}") and lines[1].startswith(f"B = {second}")
    row = next(line for line in lines if line.startswith("total_return")).split()
    assert row[1:] == [fmt_metric("total_return", metrics[first]["total_return"]),
                       fmt_metric("total_return", metrics[second]["total_return"])]
    page = html.read_text()
    figure = json.loads(re.search(r'id="chart-compare-equity-fig">(.*?)</script>', page).group(1))
    equity = pq.read_table(results / first / "broker" / "equity.parquet").column("equity").to_pylist()
    assert [t["name"] for t in figure["data"]] == ["A:analysis/sma_trader", "B:analysis/sma_trader"]
    assert figure["data"][0]["y"] == equity
    assert "Plotly" in page and "<script src=" not in page  # offline: plotly.js inlined
    missing = _ctl("compare", "--results", str(results), first, "nope")
    assert missing.returncode != 0 and "run 'nope' does not exist" in missing.stderr


def test_top_draws_the_running_session_and_the_coordinator_logs_progress(tmp_path, sample_store):
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02", "clock": {"speed": 1500}},
                          flow={"window": 4, "ack_timeout_s": 10, "heartbeat_s": 0.2, "progress_s": 0.3})
    pipe = Pipeline(tmp_path, config)
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] > 5)
        top = ctl(config, "top", "--frames", "2", "--interval", "0.5")
        assert ctl(config, "speed", "max").returncode == 0
        codes = pipe.wait()
    finally:
        pipe.kill()
    assert top.returncode == 0, top.stderr
    frames = top.stdout.split("session 2025-07-02")
    assert len(frames) == 3, top.stdout  # two frames
    second = frames[2]
    assert re.search(r"steps/s [\d,]+", second) and "day 1 of 1" in second
    assert all(re.search(rf"{stage}\s+participant\s+lag \d+ steps", second) for stage in
               ("processor", "quality", "analysis"))
    assert re.search(r"AAPL\s+\d+", second) and re.search(r"MSFT\s+\d+", second)
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}
    progress = [line for line in pipe.log("coordinator").splitlines() if "progress: day 1 of 1 (2025-07-02)" in line]
    assert progress and all(re.search(r"of ~390 steps, [\d,]+ steps/s, ETA", line) for line in progress)
