"""Faults with real processes: a stage killed with -9 is declared lost; the run aborts (non-zero, in
bounded time) or waits for a restarted stage under the same name, as flow.on_stage_loss says."""
from __future__ import annotations

import json
import signal
import sys
import time

import numpy as np
import pytest
from conftest import Pipeline, ctl, write_config
from test_pipeline import _wait_for_status

from services.analysis.results import read_replica_dump

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


def test_hostile_clients_leave_the_results_as_an_undisturbed_run(tmp_path, sample_store):
    """A forged participant HELLO (never acks), forged acks from another connection, an ack with a huge
    busy list, a flood of unknown commands and an oversized frame: the run completes with the replica of
    an undisturbed run, and the coordinator's memory stays bounded."""
    import zmq

    from common.wire import protocol as P

    flow = {**FLOW, "lost_after_s": 2.0}
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02", "clock": {"speed": 3000}},
                          flow=flow)
    pipe = Pipeline(tmp_path, config)
    endpoint = json.loads(config.read_text())["endpoints"]["coordinator_router"]
    ctx = zmq.Context.instance()
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] > 5)
        rss_before = _rss_kb(pipe.procs["coordinator"].pid)
        evil = ctx.socket(zmq.DEALER)
        evil.setsockopt(zmq.LINGER, 0)
        evil.connect(endpoint)
        evil.send_multipart(P.encode(P.Message(P.HELLO, {"stage": "evil", "role": "participant", "pid": 1})))
        evil.send_multipart(P.encode(P.ack("analysis", "step", 10**9)))           # forged: another connection
        big = P.ack("evil", "step", 1)
        big.body["busy_list"] = [1] * 800_000                                       # 6 MB: over the size limit
        evil.send_multipart(P.encode(big))
        for i in range(20_000):                                                     # unknown commands, fresh ids
            evil.send_multipart(P.encode(P.Message(P.COMMAND, {"name": "bogus", "args": {}, "request_id": f"f{i}"})))
        evil.send_multipart([b"STEP", b"x" * (2 * 1024 * 1024)])                    # oversized frame
        dropped = _wait_for_status(config, lambda s: "evil" not in s["stages"] and s["steps_done"] > 20)
        rss_after = _rss_kb(pipe.procs["coordinator"].pid)
        assert ctl(config, "speed", "max").returncode == 0
        codes = pipe.wait(timeout=60)
    finally:
        pipe.kill()
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()
    assert dropped["state"] == "running"
    log = pipe.log("coordinator")
    assert "stage evil lost at step" in log and "stage evil lost at step" in log and "dropped, the run goes on" in log
    assert "ack for stage analysis from a connection that did not register it ignored" in log
    print(f"coordinator RSS before the floods {rss_before} kB, after {rss_after} kB")
    assert rss_after - rss_before < 50_000, (rss_before, rss_after)  # kB: the floods left no trace
    calm_dir = tmp_path / "calm"
    calm_dir.mkdir()
    calm = Pipeline(calm_dir, write_config(calm_dir, sample_store.root, session={"end_date": "2025-07-02"}, flow=flow))
    assert set(calm.wait().values()) == {0}
    got = read_replica_dump(tmp_path / "results" / "latest" / "analysis" / "replica_2025-07-02.parquet")
    want = read_replica_dump(calm_dir / "results" / "latest" / "analysis" / "replica_2025-07-02.parquet")
    assert sorted(got) == sorted(want) and all(np.array_equal(got[k], want[k], equal_nan=True) for k in got)


def _rss_kb(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_a_frozen_coordinator_ends_the_run_instead_of_hanging(tmp_path, sample_store):
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02", "clock": {"speed": 3000}},
                          flow=FLOW)
    pipe = Pipeline(tmp_path, config)
    coordinator = pipe.procs["coordinator"]
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] > 5)
        coordinator.send_signal(signal.SIGSTOP)
        stages = [pipe.procs[n].wait(timeout=30) for n in ("processor", "quality", "analysis")]
        coordinator.send_signal(signal.SIGCONT)
        code = coordinator.wait(timeout=30)
    finally:
        coordinator.send_signal(signal.SIGCONT)
        pipe.kill()
    assert stages == [1, 1, 1] and code == 1, pipe.all_logs()
    assert "coordinator silent for" in pipe.log("analysis") and "lost at step" in pipe.log("coordinator")


RECORDER = [{"class": "support.recording:CallbackRecorder", "name": "recorder"}]


@pytest.mark.parametrize("victim", ["processor", "quality"])
def test_a_restarted_processor_or_quality_rejoins_and_the_results_are_byte_identical(tmp_path, sample_store, victim):
    """kill -9 mid-session, `wait`, restart under the same name: it rebuilds its state from the journal,
    republishes its answers, and every result file equals an undisturbed run's."""
    import pyarrow.parquet as pq

    session = {"end_date": "2025-07-02", "clock": {"speed": 3000}}
    config = write_config(tmp_path, sample_store.root, session=session, strategies=RECORDER,
                          flow={**FLOW, "on_stage_loss": "wait"})
    pipe = Pipeline(tmp_path, config)
    module = {"processor": "services.processor", "quality": "services.quality"}[victim]
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] > 30)
        pipe.procs[victim].send_signal(signal.SIGKILL)
        pipe.procs[victim].wait()
        lost_seen = time.monotonic()
        _wait_for_status(config, lambda s: s["lost"])
        detect_s = time.monotonic() - lost_seen
        pipe.start(f"{victim}2", [sys.executable, "-m", module, "--config", str(config)])
        _wait_for_status(config, lambda s: not s["lost"] and s["state"] == "running")
        ctl(config, "speed", "max")
        codes = pipe.wait(timeout=60)
    finally:
        pipe.kill()
    del codes[victim]
    assert set(codes.values()) == {0}, pipe.all_logs()
    assert f"stage {victim} replaced by pid" in pipe.log("coordinator") and "snapshot applied" in pipe.log(f"{victim}2")
    assert "resyncing" not in pipe.log("analysis") and "LOSS" not in pipe.log("analysis")
    print(f"{victim}: lost detected {detect_s:.1f} s after the kill (lost_after_s {FLOW['lost_after_s']})")
    calm_dir = tmp_path / "calm"
    calm_dir.mkdir()
    calm = Pipeline(calm_dir, write_config(calm_dir, sample_store.root, session={"end_date": "2025-07-02"},
                                           strategies=RECORDER, flow=FLOW))
    assert set(calm.wait().values()) == {0}
    for name in ("signals.parquet", "summary.parquet", "replica_2025-07-02.parquet"):
        got = pq.read_table(tmp_path / "results" / "latest" / "analysis" / name)
        want = pq.read_table(calm_dir / "results" / "latest" / "analysis" / name)
        assert got.equals(want), name


def test_two_sessions_on_one_machine_never_collide_and_ctl_picks_one(tmp_path, sample_store):
    """No endpoints in the configs: each session gets private ipc sockets in <runtime>/<name>/ (0700)."""
    import os
    import subprocess

    from conftest import ROOT, proc_env

    env = {"SESSION_RUNTIME_DIR": str(tmp_path / "run")}
    pipes = {}
    for name in ("alpha", "beta"):
        cfg = json.loads(write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02",
                                                                             "clock": {"speed": 600}}).read_text())
        del cfg["endpoints"]
        cfg["name"] = name
        cfg["results_dir"] = str(tmp_path / f"results-{name}")
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(cfg))
        pipes[name] = Pipeline(tmp_path, path, env=env, prefix=f"{name}-")

    def ctl_env(*args):
        return subprocess.run([sys.executable, "-m", "services.ctl", *args], cwd=ROOT, env={**proc_env(), **env},
                              capture_output=True, text=True, timeout=30)
    try:
        for _ in range(400):
            if ctl_env("--session", "alpha", "status").returncode == 0 and \
                    ctl_env("--session", "beta", "status").returncode == 0:
                break
        both = ctl_env("status")
        assert both.returncode != 0 and "2 sessions are running (alpha, beta): name one with --session" in both.stderr
        assert "running" in ctl_env("--session", "beta", "status").stdout
        again = subprocess.run([sys.executable, "-m", "services.coordinator", "--config", str(tmp_path / "alpha.json")],
                               cwd=ROOT, env={**proc_env(), **env}, capture_output=True, text=True, timeout=30)
        assert again.returncode == 2 and "a session named 'alpha' is running already" in again.stderr
        assert oct(os.stat(tmp_path / "run" / "alpha").st_mode & 0o777) == "0o700"
        for name in pipes:
            ctl_env("--session", name, "speed", "max")
        codes = {n: p.wait(timeout=60) for n, p in pipes.items()}
    finally:
        for p in pipes.values():
            p.kill()
    assert all(set(c.values()) == {0} for c in codes.values()), codes
    assert (tmp_path / "results-alpha" / "latest" / "analysis" / "summary.parquet").exists()
    assert (tmp_path / "results-beta" / "latest" / "analysis" / "summary.parquet").exists()
