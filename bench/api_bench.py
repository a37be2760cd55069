"""The Python API's figures: inline mode beside the real processes on the peer workload, and sweep throughput.

1. The peer benchmark's workload (../shared/peer-bench: 1m -> 5m -> SMA(20), RSI(14), one on_bar call per
   bar), S symbols x D days, run by `session_engine.run` with mode="processes" and mode="inline", in turn,
   on the same machine: bars/s over the coordinator's run phase (first step -> last ack) and wall time of
   the whole call (start-up and result files included). Same checksum in both (the result files are
   byte-identical).
2. Sweep throughput: the same grid of sessions with 1 and with 2 Dask workers (private LocalCluster),
   sessions per minute, with and without the cluster's start-up.

  python bench/api_bench.py [--data DIR] [--sizes 10x5,100x5] [--reps 2] [--combos 8]

--data: the peer data (make_data.py output; made with this Python when missing, 100 symbols x 5 days).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import session_engine as se

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peer-bench"
sys.path.insert(0, str(ROOT / "bench"))
from benchdata import peer_store  # noqa: E402
from broker_bench import STRATEGY  # noqa: E402  (CountBar: the peers' strategy, one callback per bar)


def peer_data(data: Path) -> Path:
    if not (data / "manifest.json").exists():
        subprocess.run([sys.executable, str(PEER / "make_data.py"), "--symbols", "100", "--days", "5",
                        "--start", "2025-07-07", "--out", str(data)], check=True)
    return data


def peer_config(data: Path, symbols: int, days: int, results: Path) -> dict:
    names, last = peer_store(data, symbols, days - 1)
    manifest = json.loads((data / "manifest.json").read_text())
    return {"session": {"start_date": manifest["dates"][0], "end_date": last, "symbols": names,
                        "streams": ["1m", "5m"], "clock": "max"},
            "indicators": [{"name": "sma", "interval": "5m", "params": {"period": 20}},
                           {"name": "rsi", "interval": "5m", "params": {"period": 14}}],
            "strategies": [{"class": "benchcount:CountBar", "name": "count"}],
            "flow": {"window": 16}, "data_root": str(data / "session_store"), "results_dir": str(results)}


def one_run(config: dict, mode: str) -> dict:
    started = time.perf_counter()
    run = se.run(config, mode=mode)
    wall = time.perf_counter() - started
    perf = run.record["performance"]
    return {"mode": mode, "bars": perf["bars"], "run_s": perf["wall_s"], "bars_per_s": perf["bars"] / perf["wall_s"],
            "call_s": wall, "files": run.files()}


def modes(args, data: Path, tmp: Path) -> None:
    print("| S x D | mode | bars/s (run phase) median | call wall s median | files equal |")
    print("|---|---|---:|---:|---|")
    for size in args.sizes.split(","):
        symbols, days = map(int, size.split("x"))
        config = peer_config(data, symbols, days, tmp / "results")
        got = {"processes": [], "inline": []}
        for _ in range(args.reps):
            for mode in ("processes", "inline"):
                got[mode].append(one_run(config, mode))
        same = got["processes"][0]["files"] == got["inline"][0]["files"]
        for mode, rows in got.items():
            print(f"| {size} | {mode} | {statistics.median(r['bars_per_s'] for r in rows):,.0f} | "
                  f"{statistics.median(r['call_s'] for r in rows):.2f} | {same} |")


def sweeps(args, tmp: Path) -> None:
    store = se.sample_store(tmp / "store")
    config = json.loads((ROOT / "configs" / "trading.json").read_text())
    config["session"].update(start_date="2025-07-01", end_date="2025-07-03")  # RIVN added on 07-02 at 12:06
    config.update(data_root=str(store), results_dir=str(tmp / "sweeps"))
    grid = {"strategies.sma_market.params.fast": list(range(3, 3 + args.combos))}
    single = time.perf_counter()
    se.run(config, results_dir=str(tmp / "single"))
    single_s = time.perf_counter() - single
    print(f"\none inline session (configs/trading.json, 3 days, 2 accounts): {single_s:.2f} s")
    print("| workers | sessions | wall s (incl. cluster start) | sessions/min | sessions/min after the first result |")
    print("|---:|---:|---:|---:|---:|")
    for workers in (1, 2):
        done = []
        started = time.perf_counter()
        table = se.sweep(config, grid, workers=workers, progress=lambda d, t, r: done.append(time.perf_counter()))
        wall = time.perf_counter() - started
        assert set(table["status"]) == {"completed"}, table
        steady = (len(done) - 1) / (done[-1] - done[0]) * 60 if len(done) > 1 else float("nan")
        print(f"| {workers} | {len(table)} | {wall:.1f} | {len(table) / wall * 60:.1f} | {steady:.1f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("BENCH_DIR", "/tmp/bench")) / "data")
    ap.add_argument("--sizes", default="10x5,100x5")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--combos", type=int, default=8)
    ap.add_argument("--skip-modes", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="api-bench-") as tmp:
        (Path(tmp) / "benchcount.py").write_text(STRATEGY)
        sys.path.insert(0, tmp)
        if not args.skip_modes:
            modes(args, peer_data(args.data), Path(tmp))
        sweeps(args, Path(tmp))


if __name__ == "__main__":
    main()
