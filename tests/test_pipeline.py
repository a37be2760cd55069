"""Integration: the four real processes over ipc sockets on generated data."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from services.analysis.results import read_replica_dump
from conftest import ROOT, Pipeline, ctl, proc_env, write_config

SESSIONS = ["2025-07-02", "2025-07-03", "2025-07-07"]  # 07-04 is a holiday, 07-05/06 a weekend
CLOCK = [{"class": "support.recording:ClockRecorder", "name": "clock"}]


def _run_id(tmp) -> str:
    return os.readlink(tmp / "results" / "latest")


def _signals(results) -> dict:
    return pq.read_table(results / "analysis" / "signals.parquet").to_pydict()


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, sample_store):
    tmp = tmp_path_factory.mktemp("run")
    config = write_config(tmp, sample_store.root, strategies=CLOCK)
    pipe = Pipeline(tmp, config)
    codes = pipe.wait()
    return tmp, pipe, codes


def test_every_process_exits_zero_without_loss(full_run):
    tmp, pipe, codes = full_run
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()
    logs = pipe.all_logs()
    assert "LOSS" not in logs and " ERROR " not in logs, logs


def test_steps_per_session_and_no_holiday(full_run, calendar):
    tmp, _, _ = full_run
    summary = pq.read_table(tmp / "results" / "latest" / "analysis" / "summary.parquet").to_pydict()
    assert summary["session_date"] == SESSIONS
    assert summary["steps"] == [390, 210, 390]
    sig = _signals(tmp / "results" / "latest")
    clocks = np.array(sig["clock_ns"], dtype=np.int64)
    assert np.all(np.diff(clocks) > 0), "clock went backwards or stood still between steps"
    for day, steps in zip(SESSIONS, [390, 210, 390]):
        open_ns, close_ns = calendar.open_close_ns(day)
        in_day = clocks[(clocks > open_ns) & (clocks <= close_ns)]
        assert len(in_day) == steps
        assert np.array_equal(in_day, open_ns + 60_000_000_000 * np.arange(1, steps + 1))
    assert not any(s.startswith("2025-07-04") for s in sig["clock"])


def test_replica_holds_every_regular_hours_bar(full_run, sample_store, calendar):
    tmp, _, _ = full_run
    for day in SESSIONS:
        open_ns, close_ns = calendar.open_close_ns(day)
        dump = read_replica_dump(tmp / "results" / "latest" / "analysis" / f"replica_{day}.parquet")
        for symbol in ("AAPL", "MSFT"):
            expected, _ = sample_store.read_session(symbol, day, open_ns, close_ns)
            assert np.array_equal(dump[f"{symbol}/1m/ts"], expected.ts)
            assert np.array_equal(dump[f"{symbol}/1m/close"], expected.close)
            assert np.array_equal(dump[f"{symbol}/1m/volume"], expected.volume)


def test_ctl_without_coordinator_fails_fast(tmp_path):
    result = subprocess.run([sys.executable, "-m", "services.ctl", "--endpoint", f"ipc://{tmp_path}/none", "status"],
                            cwd=ROOT, env=proc_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "no coordinator answering" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def _wait_for_status(config, predicate, attempts=400):
    """Poll ctl status until predicate(status) holds (each call is a real round trip)."""
    for _ in range(attempts):
        res = ctl(config, "status", "--json")
        if res.returncode == 0:
            status = json.loads(res.stdout)
            if predicate(status):
                return status
    raise AssertionError("status never reached the expected state")


def test_pause_holds_clock_then_resume_and_stop(tmp_path, sample_store):
    config = write_config(tmp_path, sample_store.root, session={"clock": {"speed": 3000}})
    pipe = Pipeline(tmp_path, config)
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] > 3)
        paused = ctl(config, "pause")
        assert paused.returncode == 0, paused.stderr
        first = _wait_for_status(config, lambda s: s["operator_paused"])
        again = [json.loads(ctl(config, "status", "--json").stdout) for _ in range(5)]
        assert all(s["clock_ns"] == first["clock_ns"] and s["steps_done"] == first["steps_done"] for s in again)
        table = ctl(config, "session", "--json")
        rows = json.loads(table.stdout)
        assert {r["symbol"] for r in rows} == {"AAPL", "MSFT"}
        assert all(r["bars_1m"] <= first["session_step"] for r in rows)
        assert ctl(config, "resume").returncode == 0
        _wait_for_status(config, lambda s: s["steps_done"] > first["steps_done"])
        for args, said in ((["resume"], "not paused (clock "),
                           (["speed", "-5"], "speed must be > 0 and at most 1,000,000 (x real time), or 'max'; got -5"),
                           (["speed", "inf"], "got inf"), (["speed", "0"], "got 0"),
                           (["add-symbol", "RIVN", "--at", "15:06:30"], "the clock moves in whole minutes")):
            refused = ctl(config, *args)
            assert refused.returncode != 0 and said in refused.stderr and len(refused.stderr.splitlines()) == 1, args
        assert ctl(config, "speed", "6000").returncode == 0  # not max: the run must still be going for the stop
        stopped = ctl(config, "stop")
        assert stopped.returncode == 0, stopped.stderr
        codes = pipe.wait(timeout=30)
    finally:
        pipe.kill()
    assert codes == {"coordinator": 3, "processor": 3, "quality": 3, "analysis": 3}, pipe.all_logs()  # stopped early: every process says so
    assert (tmp_path / "results" / "latest" / "analysis" / "summary.parquet").exists()
    manifest = json.loads((tmp_path / "results" / "latest" / "manifest.json").read_text())
    assert (manifest["status"], manifest["exit_reason"], manifest["exit_code"]) == ("stopped", "stopped by ctl stop", 3)


def test_sigterm_drains_and_exits(tmp_path, sample_store):
    config = write_config(tmp_path, sample_store.root, session={"clock": {"speed": 3000}})
    pipe = Pipeline(tmp_path, config)
    try:
        _wait_for_status(config, lambda s: s["state"] == "running")
        for proc in pipe.procs.values():
            proc.send_signal(signal.SIGTERM)
        codes = pipe.wait(timeout=10)
    finally:
        pipe.kill()
    assert set(codes.values()) <= {1, 3}, codes  # never 0: the run did not complete
    assert "Traceback" not in pipe.all_logs()


def test_honcho_runs_the_procfile(tmp_path, sample_store):
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-03"})
    env = proc_env()
    env["SESSION_CONFIG"] = str(config)
    honcho = os.path.join(os.path.dirname(sys.executable), "honcho")
    result = subprocess.run([honcho, "start"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "backtest completed after 2 session(s)" in result.stdout
    assert (tmp_path / "results" / "latest" / "analysis" / "summary.parquet").exists()


def test_strategy_error_disables_or_stops(tmp_path, sample_store):
    strategies = [{"class": "support.recording:Raiser", "name": "fragile", "on_error": "disable"},
                  {"class": "support.recording:ClockRecorder", "name": "clock"}]
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02"}, strategies=strategies)
    pipe = Pipeline(tmp_path, config)
    assert pipe.wait() == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()
    log = pipe.log("analysis")
    assert "strategy fragile raised in on_bar (symbol MSFT, clock 2025-07-02 09:35)" in log and "strategy disabled" in log
    assert len(_signals(tmp_path / "results" / "latest")["clock_ns"]) == 390  # the other strategy kept going

    stop_dir = tmp_path / "stop"
    stop_dir.mkdir()
    strategies[0]["on_error"] = "stop"
    config = write_config(stop_dir, sample_store.root, session={"end_date": "2025-07-03"}, strategies=strategies)
    pipe = Pipeline(stop_dir, config)
    assert pipe.wait() == {"coordinator": 3, "processor": 3, "quality": 3, "analysis": 3}, pipe.all_logs()
    assert "backtest stopped" in pipe.log("coordinator")
    assert "run %s stopped: stopped by a strategy of analysis (on_error stop)" % _run_id(stop_dir) in pipe.log("coordinator")
    # halted at the failing step (09:35, the 5th): what came after depends on timing and is not recorded
    assert len(_signals(stop_dir / "results" / "latest")["clock_ns"]) == 5
    summary = pq.read_table(stop_dir / "results" / "latest" / "analysis" / "summary.parquet").to_pydict()
    assert summary["session_date"] == ["2025-07-02"] and summary["steps"] == [5] and summary["complete"] == [False]


def test_stalled_stage_is_reported_by_name(tmp_path, sample_store):
    # paced: the day cannot end before the stop, however fast the pipeline (then `speed max` to the end)
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02", "clock": {"speed": 3000}},
                          flow={"window": 2, "ack_timeout_s": 0.5, "heartbeat_s": 0.1})
    pipe = Pipeline(tmp_path, config)
    try:
        _wait_for_status(config, lambda s: s["state"] == "running")
        pipe.procs["quality"].send_signal(signal.SIGSTOP)
        status = _wait_for_status(config, lambda s: s["stages"]["quality"]["stalled"])
        assert not status["stages"]["processor"]["stalled"]
        pipe.procs["quality"].send_signal(signal.SIGCONT)
        assert ctl(config, "speed", "max").returncode == 0
        codes = pipe.wait(timeout=60)
    finally:
        pipe.procs["quality"].send_signal(signal.SIGCONT)
        pipe.kill()
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()
    log = pipe.log("coordinator")
    assert "stage quality has not acknowledged for" in log and "stage quality acknowledges again" in log


def test_stop_is_not_blocked_by_a_stage_that_never_acks(tmp_path, sample_store):
    """A catch-up waiting on a frozen stage must not make the coordinator unstoppable."""
    config = write_config(tmp_path, sample_store.root, session={"clock": {"speed": 3000}})
    pipe = Pipeline(tmp_path, config)
    processor = pipe.procs["processor"]
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] > 3)
        processor.send_signal(signal.SIGSTOP)
        assert ctl(config, "add-symbol", "RIVN").returncode == 0
        assert ctl(config, "stop").returncode == 0
        assert pipe.procs["coordinator"].wait(timeout=30) == 3
        processor.send_signal(signal.SIGCONT)
        codes = pipe.wait(timeout=60)
    finally:
        processor.send_signal(signal.SIGCONT)
        pipe.kill()
    assert codes == {"coordinator": 3, "processor": 3, "quality": 3, "analysis": 3}, pipe.all_logs()
    assert "backtest stopped" in pipe.log("coordinator")


def test_bad_requests_are_refused_and_the_session_goes_on(tmp_path, sample_store):
    import zmq

    from common.wire import protocol as P

    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02", "clock": {"speed": 3000}})
    pipe = Pipeline(tmp_path, config)
    try:
        _wait_for_status(config, lambda s: s["state"] == "running")
        # a second process under a name that is taken is refused, with the reason
        pipe.start("dup", [sys.executable, "-m", "services.analysis", "--config", str(config), "--name", "analysis"])
        assert pipe.procs["dup"].wait(timeout=30) != 0
        assert "stage name 'analysis' is taken by pid" in pipe.log("dup")
        endpoint = json.loads(config.read_text())["endpoints"]["coordinator_router"]
        ctx = zmq.Context.instance()
        sock = ctx.socket(zmq.REQ)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        for name, args in (("speed", {"speed": [1]}), ("add-symbol", {"symbols": ["AAPL"], "streams": 5}),
                           ("add-symbol", {"symbols": "AAPL"}), ("bogus", {})):
            sock.send_multipart(P.encode(P.Message(P.COMMAND, {"name": name, "args": args, "request_id": name})))
            assert sock.poll(5000)
            reply = P.decode(sock.recv_multipart()).body
            assert reply["ok"] is False and reply["error"], (name, reply)
        sock.send_multipart([b"STEP", b"\x93not a header"])  # malformed: refused, loop survives
        assert sock.poll(5000)
        assert P.decode(sock.recv_multipart()).body["ok"] is False
        sock.close()
        assert ctl(config, "speed", "max").returncode == 0
        codes = pipe.wait(timeout=60)
    finally:
        pipe.kill()
    del codes["dup"]
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()


def test_an_aborted_run_fails_under_honcho_and_its_record_says_why(tmp_path, sample_store):
    """A truncated Parquet file of the second session: every process and honcho exit 1, the manifest says
    aborted with the file's name, and the run that did complete earlier keeps its own folder."""
    import shutil

    root = tmp_path / "store"
    shutil.copytree(sample_store.root, root)
    victim = root / "1m" / "MSFT" / "2025" / "2025-07-03.parquet"
    os.truncate(victim, victim.stat().st_size // 2)
    config = write_config(tmp_path, root, session={"end_date": "2025-07-03"})
    env = {**proc_env(), "SESSION_CONFIG": str(config)}
    honcho = os.path.join(os.path.dirname(sys.executable), "honcho")
    result = subprocess.run([honcho, "start"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"aborted: {victim}: unreadable Parquet file" in result.stdout
    manifest = json.loads((tmp_path / "results" / "latest" / "manifest.json").read_text())
    assert manifest["status"] == "aborted" and manifest["exit_code"] == 1
    assert manifest["exit_reason"].startswith(f"{victim}: unreadable Parquet file")
    assert (manifest["sessions_run"], manifest["sessions_started"], manifest["sessions_planned"]) == (1, 2, 2)


def test_missing_data_names_the_fix_and_runs_get_their_own_folders(tmp_path, sample_store):
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02", "symbols": ["MSFT", "ZZZ"]})
    first = Pipeline(tmp_path, config).wait()
    assert set(first.values()) == {1}, first
    config = write_config(tmp_path, sample_store.root, session={"end_date": "2025-07-02"})
    second = Pipeline(tmp_path, config)
    assert second.wait() == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, second.all_logs()
    runs = sorted(p for p in (tmp_path / "results").iterdir() if not p.is_symlink())
    manifests = [json.loads((p / "manifest.json").read_text()) for p in runs]
    assert [m["status"] for m in manifests] == ["aborted", "completed"]
    assert 'ZZZ: no bars in the store for session 2025-07-02 (import them, or set "session.missing_data": "drop"' \
        in manifests[0]["exit_reason"]
    assert _run_id(tmp_path) == runs[1].name and manifests[1]["data_fingerprint"].startswith("sha256:")
    assert sorted(manifests[1]["data_files"]) == ["1m/AAPL/2025-06-30", "1m/AAPL/2025-07-01", "1m/AAPL/2025-07-02",
                                                  "1m/MSFT/2025-06-30", "1m/MSFT/2025-07-01", "1m/MSFT/2025-07-02"]
    listed = ctl(config, "runs", "--json")
    assert [r["status"] for r in json.loads(listed.stdout)] == ["aborted", "completed"], listed.stderr
