"""Integration: analysis processes that attach to a running session (Clone pattern) and resync on loss."""
from __future__ import annotations

import sys

import numpy as np
import pyarrow.parquet as pq

from services.analysis.results import read_replica_dump
from conftest import Pipeline, ctl, write_config
from test_pipeline import _wait_for_status

INDICATORS = [{"name": "sma", "interval": "5m", "params": {"period": 10}},
              {"name": "rsi", "interval": "1m", "params": {"period": 14}},
              {"name": "vwap", "interval": "1m", "params": {}}]
DAYS = ["2025-07-02", "2025-07-03", "2025-07-07"]


def _late(pipe, name, *extra):
    pipe.start(name, [sys.executable, "-m", "services.analysis", "--config", str(pipe.config), "--name", name,
                      "--strategy", "support.recording:CallbackRecorder", *extra])


def _assert_same_replicas(results, a, b, days):
    for day in days:
        x = read_replica_dump(results / a / f"replica_{day}.parquet")
        y = read_replica_dump(results / b / f"replica_{day}.parquet")
        assert sorted(x) == sorted(y), day
        for key in x:
            assert np.array_equal(x[key], y[key], equal_nan=True), (day, key)


def test_observer_attached_mid_session_ends_with_identical_replica(tmp_path, sample_store):
    # the scheduled pause holds the clock mid-session however loaded the machine (a ctl pause could land
    # after the session's end)
    schedule = [{"date": "2025-07-02", "at": "10:00", "command": "add-symbol", "symbols": ["RIVN"]},
                {"date": "2025-07-02", "at": "11:00", "command": "pause"}]
    config = write_config(tmp_path, sample_store.root, session={"clock": {"speed": 6000}}, indicators=INDICATORS,
                          schedule=schedule)
    pipe = Pipeline(tmp_path, config)
    try:
        _wait_for_status(config, lambda s: s["session_step"] >= 60 and "RIVN" in s["symbols"])
        _late(pipe, "late", "--observer")
        # an observer never acks steps, yet its alive acks show it as live (not "last ack 30 s ago")
        seen = _wait_for_status(config, lambda s: "late" in s["stages"] and s["stages"]["late"]["live"])
        assert seen["stages"]["late"]["last_seen_age_s"] < 2.0
        # the participant joins during the scheduled pause: mid-session on any machine, however loaded
        _wait_for_status(config, lambda s: s["operator_paused"])
        _late(pipe, "latepart", "--participant")
        _wait_for_status(config, lambda s: "latepart" in s["stages"])
        assert ctl(config, "resume").returncode == 0
        assert ctl(config, "speed", "max").returncode == 0
        codes = pipe.wait()
    finally:
        pipe.kill()
    assert all(c == 0 for c in codes.values()), pipe.all_logs()
    assert "snapshot applied" in pipe.log("late") and "snapshot applied" in pipe.log("latepart")
    assert "LOSS" not in pipe.all_logs()
    results = tmp_path / "results" / "latest"
    _assert_same_replicas(results, "analysis", "late", DAYS)
    _assert_same_replicas(results, "analysis", "latepart", DAYS)
    sig = pq.read_table(results / "late" / "signals.parquet").to_pydict()
    first_bar_clock = min(c for c, r in zip(sig["clock_ns"], sig["reason"]) if r.startswith("on_bar"))
    assert first_bar_clock > 0
    assert "on_symbol_added" not in sig["reason"][:1]  # RIVN was already there: it comes with the snapshot


def test_slow_observer_detects_loss_and_resyncs(tmp_path, sample_store):
    # one step per message (flow.batch 1): enough messages to overflow the observer's 5-message buffers
    # a pause on the last day keeps every publisher alive (beating its last seq) until the observer has
    # found its loss and resynced, however far behind the machine's load leaves it
    config = write_config(tmp_path, sample_store.root, session={"clock": {"speed": 3000}},
                          flow={"window": 8, "batch": 1, "ack_timeout_s": 10, "heartbeat_s": 0.2, "pub_hwm": 20},
                          schedule=[{"date": "2025-07-07", "at": "15:00", "command": "pause"}])
    pipe = Pipeline(tmp_path, config, extra_analysis=[["--name", "slow", "--observer", "--hwm", "5",
                                                       "--strategy", "support.recording:Slow"]])
    try:  # full speed only once the slow observer is in: it then falls behind, however loaded the machine
        _wait_for_status(config, lambda s: "slow" in s["stages"])
        assert ctl(config, "speed", "max").returncode == 0
        _wait_for_status(config, lambda s: s["operator_paused"] and "resyncing from a fresh snapshot" in
                         pipe.log("extra0") and pipe.log("extra0").count("snapshot applied") >= 2)
        assert ctl(config, "resume").returncode == 0
        codes = pipe.wait()
    finally:
        pipe.kill()
    assert codes["coordinator"] == 0 and codes["analysis"] == 0, pipe.all_logs()
    slow = pipe.log("extra0")
    assert "resyncing from a fresh snapshot" in slow and "snapshot applied" in slow, slow
    assert "LOSS" not in pipe.log("analysis")
