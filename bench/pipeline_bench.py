"""End-to-end pipeline benchmark: the four real processes on generated data, ipc sockets.

Prints, per scenario: run phase (first step to last ack) in bars/s, steps/s, start-up time (process
launch to first step) and per-stage busy time per step. Usage: python bench/pipeline_bench.py [--quick]
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.domain.calendar import TradingCalendar  # noqa: E402
from common.data.generate import generate  # noqa: E402
from common.data.store import BarStore  # noqa: E402

DAYS = {1: ("2025-07-02", "2025-07-02"), 5: ("2025-06-25", "2025-07-02")}
INDICATORS = json.loads((ROOT / "configs" / "default.json").read_text())["indicators"]


def run(tmp: Path, store: BarStore, symbols: list[str], days: int, window: int, indicators: bool,
        slow_observer: bool = False) -> dict:
    ipc = tmp / "ipc"
    ipc.mkdir(exist_ok=True)
    start, end = DAYS[days]
    cfg = {"session": {"start_date": start, "end_date": end, "symbols": symbols, "streams": ["1m", "5m", "15m"]},
           "indicators": INDICATORS if indicators else [],
           "flow": {"window": window},
           "endpoints": {n: f"ipc://{ipc}/{n}" for n in ("coordinator_pub", "coordinator_router", "coordinator_pull",
                                                         "processor_pub", "quality_pub")},
           "data_root": str(store.root), "results_dir": str(tmp / "results")}
    path = tmp / "bench.json"
    path.write_text(json.dumps(cfg))
    launched = time.monotonic()
    procs = {name: subprocess.Popen([sys.executable, "-m", f"services.{name}", "--config", str(path)], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name in ("coordinator", "processor", "quality", "analysis")}
    if slow_observer:  # a deliberately slow observer (10 ms per step) with small buffers
        procs["observer"] = subprocess.Popen(
            [sys.executable, "-m", "services.analysis", "--config", str(path), "--name", "slow", "--observer",
             "--hwm", "5", "--strategy", "support.recording:Slow"], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    out = {name: p.communicate(timeout=600)[0] for name, p in procs.items()}
    match = re.search(r"performance json: (\{.*\})", out["coordinator"])
    if not match or any(p.returncode for n, p in procs.items() if n != "observer"):
        raise RuntimeError("run failed:\n" + "\n".join(out.values()))
    report = json.loads(match.group(1))
    report["startup_s"] = report["first_step_monotonic"] - launched
    return report


def main() -> None:
    quick = "--quick" in sys.argv
    if "--slow-observer" in sys.argv:
        return observer_effect()
    calendar = TradingCalendar()
    scenarios = [(10, 5), (100, 5), (500, 1)] if not quick else [(10, 1), (100, 1)]
    with tempfile.TemporaryDirectory() as d:
        store = BarStore(Path(d) / "store")
        symbols = [f"S{i:03d}" for i in range(500)]
        generate(store, calendar, symbols[:100], *DAYS[5])
        generate(store, calendar, symbols[100:], *DAYS[1])
        print(f"{'symbols':>7} {'days':>4} {'window':>6} {'ind':>4} {'bars':>8} {'run s':>7} {'bars/s':>9} "
              f"{'steps/s':>8} {'startup s':>9}  busy us/step (mean) processor/quality/analysis")
        for n, days in scenarios:
            for window in (1, 16):
                for indicators in (False, True):
                    with tempfile.TemporaryDirectory() as t:
                        r = run(Path(t), store, symbols[:n], days, window, indicators)
                    busy = "/".join(f"{r['stages'][s]['busy_us']['mean']:.0f}" for s in ("processor", "quality", "analysis"))
                    print(f"{n:>7} {days:>4} {window:>6} {'on' if indicators else 'off':>4} {r['bars']:>8} "
                          f"{r['wall_s']:>7.2f} {r['bars_per_s']:>9.0f} {r['steps'] / r['wall_s']:>8.0f} "
                          f"{r['startup_s']:>9.2f}  {busy}", flush=True)


def observer_effect() -> None:
    """Run phase with and without a slow observer attached (3 runs each), 100 symbols x 1 day."""
    calendar = TradingCalendar()
    with tempfile.TemporaryDirectory() as d:
        store = BarStore(Path(d) / "store")
        symbols = [f"S{i:03d}" for i in range(100)]
        generate(store, calendar, symbols, *DAYS[1])
        for slow in (False, True, False, True, False, True):
            with tempfile.TemporaryDirectory() as t:
                r = run(Path(t), store, symbols, 1, 8, True, slow_observer=slow)
            print(f"slow observer {'on ' if slow else 'off'}: {r['bars_per_s']:>9.0f} bars/s", flush=True)


if __name__ == "__main__":
    main()
