"""Store benchmark: 500 symbols x 20 sessions of synthetic 1-minute bars.

Prints generation time, the median time to load one symbol-day (read_session), the range-read
throughput (read_range over all sessions for every symbol) and the disk size. Target: one symbol-day
in < 5 ms.

    python bench/store_bench.py [ROOT] [--symbols 500] [--days 20] [--json]

ROOT is reused when it already holds the bars (generation is then skipped); by default a temporary
folder is used and removed afterwards.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.domain.calendar import TradingCalendar  # noqa: E402
from common.data.generate import generate  # noqa: E402
from common.data.store import BarStore  # noqa: E402

FIRST_DAY = "2025-06-02"
SEED = 7
SAMPLE_READS = 2000


def bench_symbols(count: int) -> list[str]:
    """'AAA', 'AAB', … : stable ticker-like names."""
    letters = string.ascii_uppercase
    return ["".join(p) for p in itertools.islice(itertools.product(letters, repeat=3), count)]


def disk_mb(root: Path) -> float:
    return sum(p.stat().st_size for p in root.rglob("*.parquet")) / 1e6


def run(root: Path, n_symbols: int, n_days: int) -> dict:
    calendar = TradingCalendar()
    store = BarStore(root)
    symbols = bench_symbols(n_symbols)
    days = calendar.sessions(FIRST_DAY, "2027-01-01")[:n_days]
    generated_s = None
    if not all(store.has_day(s, d) for s in (symbols[0], symbols[-1]) for d in (days[0], days[-1])):
        t0 = time.perf_counter()
        generate(store, calendar, symbols, days[0], days[-1], seed=SEED)
        generated_s = time.perf_counter() - t0

    rng = np.random.default_rng(0)
    bounds = {d: calendar.open_close_ns(d) for d in days}
    timings = []
    for i in range(SAMPLE_READS):
        symbol, day = symbols[rng.integers(n_symbols)], days[rng.integers(n_days)]
        t0 = time.perf_counter()
        store.read_session(symbol, day, *bounds[day])
        timings.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    total_bars = sum(len(store.read_range(s, days[0], days[-1])) for s in symbols)
    range_s = time.perf_counter() - t0
    return {
        "symbols": n_symbols, "sessions": n_days, "first": days[0].isoformat(), "last": days[-1].isoformat(),
        "generate_s": generated_s,
        "symbol_day_median_ms": 1e3 * statistics.median(timings),
        "symbol_day_p95_ms": 1e3 * float(np.percentile(timings, 95)),
        "range_read_bars": total_bars, "range_read_s": range_s,
        "range_read_bars_per_s": total_bars / range_s,
        "disk_mb": disk_mb(root), "files": n_symbols * n_days,
    }


def print_table(r: dict) -> None:
    gen = f"{r['generate_s']:.1f} s" if r["generate_s"] is not None else "reused"
    rows = [
        ("data", f"{r['symbols']} symbols x {r['sessions']} sessions ({r['first']}..{r['last']}), "
                 f"{r['range_read_bars']:,} bars, {r['files']:,} files"),
        ("generation", gen),
        ("one symbol-day (read_session)", f"median {r['symbol_day_median_ms']:.2f} ms, "
                                          f"p95 {r['symbol_day_p95_ms']:.2f} ms (target < 5 ms)"),
        ("range read (all symbols, all days)", f"{r['range_read_bars_per_s']:,.0f} bars/s "
                                               f"({r['range_read_s']:.1f} s)"),
        ("disk", f"{r['disk_mb']:.1f} MB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", help="store folder to (re)use; default: a temporary folder")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.root:
        result = run(Path(args.root), args.symbols, args.days)
    else:
        with tempfile.TemporaryDirectory(prefix="store_bench_") as tmp:
            result = run(Path(tmp), args.symbols, args.days)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"store benchmark on {os.cpu_count()} CPU(s), {time.strftime('%Y-%m-%d')}")
        print_table(result)


if __name__ == "__main__":
    main()
