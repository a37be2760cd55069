"""Scale benchmark: a year of 10 symbols, and a whole market (5,000 symbols x 1 day), with the real processes.

    python bench/scale_bench.py year   [--store DIR] [--project CHECKOUT]
    python bench/scale_bench.py market [--data $BENCH_DIR/data] [--symbols 5000] [--history-days 0]
                                       [--add-at 12:06] [--project CHECKOUT]

`year`: configs/default.json (13 indicators, the two example strategies, streams 1m/5m/15m, 5 trailing
days) over 2024-07-01..2025-07-03 on 10 generated symbols (generated once into --store).
`market`: the peer benchmark's bars (../shared/peer-bench/make_data.py --symbols 5000 --days 5 --start
2025-07-07 --out $BENCH_DIR/data), copied once into the store layout; the default indicators, an on_step
strategy; the last of the symbols is not configured but added at --add-at (the add-symbol catch-up at
the full universe). Prints one JSON line: bars/s of the run phase (first step published -> last step
acked), start-up (launch -> first step), peak RSS per process (VmHWM), the catch-up pause, and wall time.
$BENCH_LOGDIR keeps every process's log. `--project` runs another checkout (before/after in one interleaved session) with this Python.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROCESSES = ("coordinator", "processor", "quality", "analysis")
DEFAULT = json.loads((ROOT / "configs" / "default.json").read_text())
STEP_STRATEGY = '''
class CountStep:
    """One vectorised callback per step; counts the bars it is given."""
    def __init__(self):
        self.bars = 0
    def on_step(self, ctx, step):
        self.bars += sum(len(part["symbols"]) for part in step.values())
'''


class PeakRss:
    """Polls /proc/<pid>/status VmHWM (the process's peak resident set) until the processes exit."""

    def __init__(self, procs: dict[str, subprocess.Popen]):
        self.procs = procs
        self.peak_mb: dict[str, float] = {}
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while any(p.poll() is None for p in self.procs.values()):
            for name, p in self.procs.items():
                try:
                    text = Path(f"/proc/{p.pid}/status").read_text()
                except OSError:
                    continue
                match = re.search(r"VmHWM:\s+(\d+) kB", text)
                if match:
                    self.peak_mb[name] = max(self.peak_mb.get(name, 0.0), int(match.group(1)) / 1024)
            time.sleep(0.05)


def run_session(cfg: dict, tmp: Path, project: Path, extra_path: str = "") -> dict:
    """Run the four processes on `cfg` (ipc sockets in tmp); the coordinator's report plus our figures."""
    ipc = tmp / "ipc"
    ipc.mkdir(exist_ok=True)
    cfg = {**cfg, "endpoints": {n: f"ipc://{ipc}/{n}" for n in ("coordinator_pub", "coordinator_router",
                                                                "coordinator_pull", "processor_pub", "quality_pub")},
           "results_dir": str(tmp / "results")}
    path = tmp / "bench.json"
    path.write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (extra_path, str(project)) if p)}
    # logs go to files: a pipe that nobody reads while another process is waited for fills up and blocks
    # its writer (a year of per-symbol quality lines is more than a pipe holds)
    files = {n: open(tmp / f"{n}.log", "w+") for n in PROCESSES}
    launched = time.monotonic()
    procs = {n: subprocess.Popen([sys.executable, "-m", f"services.{n}", "--config", str(path)], cwd=project,
                                 env=env, stdout=files[n], stderr=subprocess.STDOUT, text=True)
             for n in PROCESSES}
    rss = PeakRss(procs)
    for p in procs.values():
        p.wait(timeout=3600)
    wall = time.monotonic() - launched
    rss.thread.join()
    logs = {n: (tmp / f"{n}.log").read_text() for n in PROCESSES}
    if os.environ.get("BENCH_LOGDIR"):  # keep every process's whole log
        os.makedirs(os.environ["BENCH_LOGDIR"], exist_ok=True)
        for n, text in logs.items():
            Path(os.environ["BENCH_LOGDIR"], f"{n}.log").write_text(text)
    match = re.search(r"performance json: (\{.*\})", logs["coordinator"])
    if not match or any(p.returncode for p in procs.values()):
        sys.exit("run failed:\n" + "\n".join(f"--- {n} (exit {procs[n].returncode})\n{text[-4000:]}"
                                             for n, text in logs.items()))
    report = json.loads(match.group(1))
    pause = re.search(r"Resuming streaming at \S+ \(pause ([\d.]+) ms", logs["coordinator"])
    return {"bars": report["bars"], "steps": report["steps"], "step_batches": report.get("step_batches"),
            "run_s": report["wall_s"], "bars_per_s": round(report["bars"] / report["wall_s"]),
            "steps_per_s": round(report["steps"] / report["wall_s"]),
            "startup_s": round(report["first_step_monotonic"] - launched, 2), "total_wall_s": round(wall, 2),
            "catchup_pause_ms": float(pause.group(1)) if pause else None,
            "peak_rss_mb": {n: round(v) for n, v in rss.peak_mb.items()},
            "log_lines": {n: text.count("\n") for n, text in logs.items()}}


def year(args) -> dict:
    from common.data.generate import generate
    from common.data.store import BarStore
    from common.domain.calendar import TradingCalendar

    symbols = [f"Y{i:02d}" for i in range(10)]
    store = BarStore(Path(args.store))
    if not store.has_day(symbols[-1], dt.date(2025, 7, 3)):
        generate(store, TradingCalendar(), symbols, "2024-06-20", "2025-07-03", seed=11)
    cfg = json.loads(json.dumps(DEFAULT))
    cfg["session"].update(start_date="2024-07-01", end_date="2025-07-03", symbols=symbols)
    cfg.update(schedule=[], data_root=str(store.root), name="bench-year")
    with tempfile.TemporaryDirectory() as tmp:
        return {"bench": "year-10", **run_session(cfg, Path(tmp), Path(args.project))}


def market(args) -> dict:
    from benchdata import peer_store

    symbols, day = peer_store(Path(args.data), args.symbols, args.history_days)
    cfg = json.loads(json.dumps(DEFAULT))
    cfg["session"].update(start_date=day, end_date=day, symbols=symbols[:-1])
    cfg["historical"] = ([{"trailing_days": args.history_days, "intervals": ["1m", "5m", "1d"], "apply_to": "all"}]
                         if args.history_days else [])
    cfg["strategies"] = [{"class": "benchstep:CountStep", "name": "count"}]
    cfg["schedule"] = [{"at": args.add_at, "command": "add-symbol", "symbols": [symbols[-1]]}]
    cfg.update(data_root=str(Path(args.data) / "session_store"), name="bench-market")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "benchstep.py").write_text(STEP_STRATEGY)
        return {"bench": f"market-{args.symbols}x1", **run_session(cfg, Path(tmp), Path(args.project), tmp)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("year", "market"))
    ap.add_argument("--project", default=str(ROOT), help="the checkout to run (default: this one)")
    ap.add_argument("--store", default=os.path.join(tempfile.gettempdir(), "scale-bench-year"))
    ap.add_argument("--data", default=os.path.join(os.environ.get("BENCH_DIR", tempfile.gettempdir() + "/bench"),
                                                   "data"))
    ap.add_argument("--symbols", type=int, default=5000)
    ap.add_argument("--history-days", type=int, default=0)
    ap.add_argument("--add-at", default="12:06")
    args = ap.parse_args()
    print(json.dumps(year(args) if args.what == "year" else market(args)), flush=True)


if __name__ == "__main__":
    main()
