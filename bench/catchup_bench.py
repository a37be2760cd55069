"""Add-symbol catch-up benchmark: time from the add (at its step boundary) to RESUME.

For 1, 10, 100 and 500 symbols in the session, window 1 (lockstep) and 16 (default) (default indicators on, 2 trailing days of history),
5 symbols are added at 10:00, 10:30, 11:00, 11:30 and 12:00; the coordinator's [DYNAMIC] log gives the
split: load + snapshot publish (coordinator) and stages (until every participant acked the snapshot).
Usage: python bench/catchup_bench.py
"""
from __future__ import annotations

import re
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common.domain.calendar import TradingCalendar  # noqa: E402
from common.data.generate import generate  # noqa: E402
from common.data.store import BarStore  # noqa: E402
from pipeline_bench import INDICATORS  # noqa: E402

import json, subprocess, time  # noqa: E402,E401

LINE = re.compile(r"pause ([\d.]+) ms: snapshot ([\d.]+) ms, stages ([\d.]+) ms; "
                  r"before it: in-flight steps drained ([\d.]+) ms, store load ([\d.]+) ms")


def run(tmp: Path, store: BarStore, symbols: list[str], added: list[str], window: int) -> list[tuple]:
    ipc = tmp / "ipc"
    ipc.mkdir()
    schedule = [{"at": at, "command": "add-symbol", "symbols": [s]}
                for at, s in zip(["10:00", "10:30", "11:00", "11:30", "12:00"], added)]
    cfg = {"session": {"start_date": "2025-07-02", "end_date": "2025-07-02", "symbols": symbols,
                       "streams": ["1m", "5m", "15m"]},
           "historical": [{"trailing_days": 2, "intervals": ["1m"]}], "indicators": INDICATORS,
           "schedule": schedule, "flow": {"window": window},
           "endpoints": {n: f"ipc://{ipc}/{n}" for n in ("coordinator_pub", "coordinator_router", "coordinator_pull",
                                                         "processor_pub", "quality_pub")},
           "data_root": str(store.root), "results_dir": str(tmp / "results")}
    (tmp / "c.json").write_text(json.dumps(cfg))
    procs = {n: subprocess.Popen([sys.executable, "-m", f"services.{n}", "--config", str(tmp / "c.json")], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n in ("coordinator", "processor", "quality", "analysis")}
    out = {n: p.communicate(timeout=600)[0] for n, p in procs.items()}
    if any(p.returncode for p in procs.values()):
        raise RuntimeError("\n".join(out.values()))
    return [tuple(float(x) for x in m.groups()) for m in LINE.finditer(out["coordinator"])]


def main() -> None:
    calendar = TradingCalendar()
    with tempfile.TemporaryDirectory() as d:
        store = BarStore(Path(d) / "store")
        names = [f"S{i:03d}" for i in range(505)]
        generate(store, calendar, names, "2025-06-30", "2025-07-02")
        print(f"{'symbols':>7} {'window':>6}  {'pause->resume ms median/max':>27}  {'snapshot ms':>11}  {'stages ms':>10}"
              f"  {'drain ms':>8}  {'store load ms (ahead)':>21}")
        for n in (1, 10, 100, 500):
            for window in (1, 16):
                with tempfile.TemporaryDirectory() as t:
                    rows = run(Path(t), store, names[:n], names[500:505], window)
                total, snap, stages, drain, load = zip(*rows)
                print(f"{n:>7} {window:>6}  {statistics.median(total):>16.2f} / {max(total):>8.2f}  "
                      f"{statistics.median(snap):>11.2f}  {statistics.median(stages):>10.2f}  "
                      f"{statistics.median(drain):>8.2f}  {statistics.median(load):>21.2f}", flush=True)


if __name__ == "__main__":
    main()
