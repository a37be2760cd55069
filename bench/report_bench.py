"""`ctl report` on generated runs: generation time and size at 3×5, 10×5, 100×5 and 500×1 symbols × days.

    .venv/bin/python bench/report_bench.py              # temp folder, removed afterwards
    .venv/bin/python bench/report_bench.py 10x5 500x1   # only these
    .venv/bin/python bench/report_bench.py 500x20       # the issue's scale (≈ 10 min, ≈ 1 GB of temp files)

Each case is a run folder with a manifest whose config is configs/trading.json's (13 indicators,
5 trailing days of history) over generated data; no pipeline is run, so there are no broker files:
the charts (bars read, 5m/15m aggregated, indicators over history + session, JSON) are the cost.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import runs  # noqa: E402
from common.data.generate import generate  # noqa: E402
from common.data.store import BarStore  # noqa: E402
from common.domain.calendar import TradingCalendar  # noqa: E402
from services.ctl.report import ReportWriter, report_size  # noqa: E402
from services.ctl.rundata import load_run  # noqa: E402

CASES = {"3x5": (3, 5), "10x5": (10, 5), "100x5": (100, 5), "500x1": (500, 1), "500x20": (500, 20)}
DEFAULT = ("3x5", "10x5", "100x5", "500x1")  # 500x20 (≈ 10 min, 1 GB) only when named
LAST_DAY = "2025-07-02"  # a full session (07-03 closes at 13:00)


def make_run(tmp: Path, n_symbols: int, n_days: int) -> Path:
    calendar = TradingCalendar()
    config = json.loads((ROOT / "configs" / "trading.json").read_text())
    history = max(h["trailing_days"] for h in config["historical"])
    days = calendar.sessions_before(LAST_DAY, n_days + history - 1) + calendar.sessions(LAST_DAY, LAST_DAY)
    symbols = [f"S{i:03d}" for i in range(n_symbols)]
    store = BarStore(tmp / "store")
    generate(store, calendar, symbols, days[0], days[-1], seed=11)
    start = days[-n_days].isoformat()
    config["session"].update(start_date=start, end_date=LAST_DAY, symbols=symbols)
    config.update(data_root=str(store.root), results_dir=str(tmp / "results"), schedule=[])
    run_id = runs.new_run_id(tmp / "results", f"bench-{n_symbols}x{n_days}")
    folder = tmp / "results" / run_id
    runs.write_manifest(folder, {"run_id": run_id, "config": config, "config_name": "bench", "status": "completed",
                                 "start_date": start, "end_date": LAST_DAY, "symbols": symbols, "dynamic": []})
    return folder


def measure(tmp: Path, name: str) -> dict:
    n_symbols, n_days = CASES[name]
    folder = make_run(tmp / name, n_symbols, n_days)
    started = time.perf_counter()
    path = ReportWriter(load_run(folder)).write()
    seconds = time.perf_counter() - started
    pages = sorted(path.parent.glob("*.html")) if path.name == "index.html" else [path]
    biggest = max(p.stat().st_size for p in pages)
    return {"case": name, "symbol_days": n_symbols * n_days, "layout": "folder" if path.name == "index.html" else
            "one file", "seconds": round(seconds, 1), "ms_per_symbol_day": round(1000 * seconds / (n_symbols * n_days)),
            "total_mb": round(report_size(path) / 1e6, 1), "pages": len(pages), "largest_page_mb": round(biggest / 1e6, 2)}


def main(argv: list[str]) -> int:
    names = [a for a in argv if a in CASES] or list(DEFAULT)
    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        for name in names:
            print(json.dumps(measure(Path(tmp), name)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
