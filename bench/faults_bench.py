"""Crash and flood figures with the four real processes on ipc sockets (issue 11's note figures).

Per stage (processor, quality, analysis): kill -9 mid-session with `on_stage_loss: wait`, then restart it
under the same name. Prints the time from the kill until `status` reports the stage lost, the time from
the restart until the clock moves again, and whether the run then completed. Then a flood against a
running coordinator (2,000 observer HELLOs, 20,000 unknown commands, 60 oversized acks) with its RSS
before and after. Usage: python bench/faults_bench.py
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zmq  # noqa: E402

from common.data.generate import generate  # noqa: E402
from common.data.store import BarStore  # noqa: E402
from common.domain.calendar import TradingCalendar  # noqa: E402
from common.wire import protocol as P  # noqa: E402
from services.ctl.cli import request  # noqa: E402

MODULES = ("coordinator", "processor", "quality", "analysis")
FLOW = {"window": 4, "ack_timeout_s": 1.0, "heartbeat_s": 0.2, "lost_after_s": 2.0, "on_stage_loss": "wait"}


def config(tmp: Path, store: BarStore, on_loss: str = "wait") -> Path:
    ipc = tmp / "ipc"
    ipc.mkdir()
    cfg = {"session": {"start_date": "2025-07-02", "end_date": "2025-07-02", "symbols": ["AAPL", "MSFT"],
                       "clock": {"speed": 1500}},
           "flow": {**FLOW, "on_stage_loss": on_loss}, "data_root": str(store.root), "results_dir": str(tmp / "results"),
           "endpoints": {n: f"ipc://{ipc}/{n}" for n in ("coordinator_pub", "coordinator_router", "processor_pub",
                                                         "quality_pub")}}
    path = tmp / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def start(path: Path, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", f"services.{name}", "--config", str(path)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def status(endpoint: str) -> dict:
    return request(endpoint, "status", attempts=20)["status"]


def until(endpoint: str, predicate) -> tuple[float, dict]:
    began = time.monotonic()
    while True:
        st = status(endpoint)
        if predicate(st):
            return time.monotonic() - began, st
        time.sleep(0.02)  # polling interval of a measurement, not a synchronisation


def crash_and_rejoin(tmp: Path, store: BarStore, victim: str) -> dict:
    path = config(tmp, store)
    endpoint = json.loads(path.read_text())["endpoints"]["coordinator_router"]
    procs = {name: start(path, name) for name in MODULES}
    until(endpoint, lambda s: s["session_step"] > 20)
    procs[victim].send_signal(signal.SIGKILL)
    procs[victim].wait()
    detect_s, st = until(endpoint, lambda s: s["lost"])
    lost_step = st["lost"][0]["lost_step"]
    procs[victim + "-restarted"] = start(path, victim)
    rejoin_s, _ = until(endpoint, lambda s: not s["lost"] and s["session_step"] > lost_step + 1)
    codes = {name: p.wait(timeout=300) for name, p in procs.items() if name != victim}
    return {"stage": victim, "detect_s": round(detect_s, 2), "rejoin_s": round(rejoin_s, 2),
            "exit_codes": sorted(set(codes.values()))}


def crash_and_abort(tmp: Path, store: BarStore, victim: str) -> dict:
    """With `on_stage_loss: abort`: kill -9 to the coordinator's exit, and every exit code."""
    path = config(tmp, store, on_loss="abort")
    endpoint = json.loads(path.read_text())["endpoints"]["coordinator_router"]
    procs = {name: start(path, name) for name in MODULES}
    until(endpoint, lambda s: s["session_step"] > 20)
    killed = time.monotonic()
    procs[victim].send_signal(signal.SIGKILL)
    code = procs["coordinator"].wait(timeout=60)
    exit_s = time.monotonic() - killed
    codes = {name: p.wait(timeout=60) for name, p in procs.items()}
    return {"stage": victim, "on_stage_loss": "abort", "coordinator_exit": code, "kill_to_exit_s": round(exit_s, 2),
            "exit_codes": codes}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def flood(tmp: Path, store: BarStore) -> dict:
    path = config(tmp, store)
    endpoint = json.loads(path.read_text())["endpoints"]["coordinator_router"]
    procs = {name: start(path, name) for name in MODULES}
    until(endpoint, lambda s: s["session_step"] > 5)
    before = rss_mb(procs["coordinator"].pid)
    ctx = zmq.Context.instance()
    evil = ctx.socket(zmq.DEALER)
    evil.setsockopt(zmq.LINGER, 0)
    evil.connect(endpoint)
    for i in range(2_000):
        evil.send_multipart(P.encode(P.Message(P.HELLO, {"stage": f"obs{i}", "role": "observer", "pid": 1})))
    for i in range(20_000):
        evil.send_multipart(P.encode(P.Message(P.COMMAND, {"name": f"x{i}", "args": {}, "request_id": f"r{i}"})))
    big = P.ack("evil", "step", 1)
    big.body["busy_list"] = [1] * 800_000
    for _ in range(60):
        evil.send_multipart(P.encode(big))
    _, st = until(endpoint, lambda s: True)
    after = rss_mb(procs["coordinator"].pid)
    codes = {name: p.wait(timeout=300) for name, p in procs.items()}
    evil.close(0)
    return {"rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1), "stages_listed": len(st["stages"]),
            "exit_codes": sorted(set(codes.values()))}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = BarStore(Path(tmp) / "store")
        generate(store, TradingCalendar(), ["AAPL", "MSFT"], "2025-06-27", "2025-07-02", seed=7)
        print(f"lost_after_s {FLOW['lost_after_s']}, heartbeat_s {FLOW['heartbeat_s']}, clock 1500x")
        for victim in ("processor", "quality", "analysis"):
            folder = Path(tmp) / victim
            folder.mkdir()
            print(json.dumps(crash_and_rejoin(folder, store, victim)))
            (folder / "abort").mkdir()
            print(json.dumps(crash_and_abort(folder / "abort", store, victim)))
        folder = Path(tmp) / "flood"
        folder.mkdir()
        print(json.dumps(flood(folder, store)))


if __name__ == "__main__":
    main()
