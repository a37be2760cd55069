"""Faults with real processes: a stage killed with -9 is declared lost; the run aborts (non-zero, in
bounded time) or waits for a restarted stage under the same name, as flow.on_stage_loss says."""
from __future__ import annotations

import json
import signal
import sys
import time

import numpy as np

from conftest import Pipeline, ctl, write_config
from services.analysis.results import read_replica_dump
from test_pipeline import _wait_for_status

FLOW = {"window": 4, "ack_timeout_s": 1.0, "heartbeat_s": 0.2, "lost_after_s": 2.0}


def test_a_killed_processor_aborts_the_run_within_lost_after_s(tmp_path, sample_store):
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02", "clock": {"speed": 3000}},
                          flow={**FLOW, "on_stage_loss": "abort"})
    pipe = Pipeline(tmp_path, config)
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] > 5)
        killed = time.monotonic()
        pipe.procs["processor"].send_signal(signal.SIGKILL)
        coordinator_code = pipe.procs["coordinator"].wait(timeout=30)
        detected = time.monotonic() - killed
        codes = pipe.wait(timeout=30)
    finally:
        pipe.kill()
    assert coordinator_code == 1 and detected < FLOW["lost_after_s"] + 2.0 + 4.0, detected  # + the stop grace
    assert codes["quality"] == 1 and codes["analysis"] == 1, pipe.all_logs()
    log = pipe.log("coordinator")
    assert "stage processor lost at step" in log and "no sign of life for" in log
    manifest = json.loads((tmp_path / "results" / "latest" / "manifest.json").read_text())
    assert manifest["status"] == "aborted" and "stage processor lost at step" in manifest["exit_reason"]


def test_a_restarted_analysis_rejoins_and_the_run_completes(tmp_path, sample_store):
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02", "clock": {"speed": 3000}},
                          flow={**FLOW, "on_stage_loss": "wait"})
    pipe = Pipeline(tmp_path, config)
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] > 5)
        pipe.procs["analysis"].send_signal(signal.SIGKILL)
        pipe.procs["analysis"].wait()
        waiting = _wait_for_status(config, lambda s: s["lost"])
        assert waiting["state"] == "waiting-for-stage" and waiting["lost"][0]["stage"] == "analysis"
        text = ctl(config, "status").stdout
        assert "waiting    for analysis (lost at step" in text
        pipe.start("analysis2", [sys.executable, "-m", "services.analysis", "--config", str(config),
                                 "--name", "analysis"])
        assert ctl(config, "speed", "max").returncode == 0 or True  # may race the end: either is fine
        codes = pipe.wait(timeout=60)
    finally:
        pipe.kill()
    del codes["analysis"]  # the killed one
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis2": 0}, pipe.all_logs()
    assert "stage analysis replaced by pid" in pipe.log("coordinator")
    assert "snapshot applied" in pipe.log("analysis2")
    dump = read_replica_dump(tmp_path / "results" / "latest" / "analysis" / "replica_2025-07-02.parquet")
    calm_dir = tmp_path / "calm"
    calm_dir.mkdir()
    calm = Pipeline(calm_dir, write_config(calm_dir, sample_store.root, session={"end_date": "2025-07-02"}, flow=FLOW))
    assert set(calm.wait().values()) == {0}
    undisturbed = read_replica_dump(calm_dir / "results" / "latest" / "analysis" / "replica_2025-07-02.parquet")
    assert sorted(dump) == sorted(undisturbed)  # the rejoined replica equals an undisturbed run's, bit for bit
    assert all(np.array_equal(dump[k], undisturbed[k], equal_nan=True) for k in dump)
