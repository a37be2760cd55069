"""Cost of trading: the peers' workload with and without a strategy that trades on every 5m bar.

The peers' workload (../shared/peer-bench): 1m bars -> 5m bars -> SMA(20), RSI(14) on 5m, one on_bar
call per 1m and 5m bar. "off": that strategy, no broker. "on": the same strategy that also trades on
every 5m bar of every symbol (buys 1 share when flat, sells it when long: an order per symbol per 5m
bar, all filled), with the broker process in the run. Generated data, 5 full sessions
(2025-07-07..2025-07-11), the four (five) real processes on ipc sockets, clock max, window 16. Runs are
interleaved (off, on, off, on, ...) and the ratio is taken per repetition; the median is reported.

  python bench/broker_bench.py [--reps 3] [--sizes 10,100] [--workload every|rsi]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.data.generate import generate  # noqa: E402
from common.data.store import BarStore  # noqa: E402
from common.domain.calendar import TradingCalendar  # noqa: E402

START, END = "2025-07-07", "2025-07-11"
STRATEGY = '''
class CountBar:
    """The peers' strategy: one callback per 1m and 5m bar."""
    intervals = ("1m", "5m")
    def __init__(self):
        self.n1 = self.n5 = 0
    def on_bar(self, ctx, symbol, interval, bar):
        if interval == "1m":
            self.n1 += 1
        else:
            self.n5 += 1

class CountBarRsi(CountBar):
    """The same, reading RSI(14) of 5m on every 5m bar; with `trade` it buys 1 share below 30 when flat
    and sells it above 70 (a mean-reversion strategy's order rate)."""
    def __init__(self, trade=False):
        super().__init__()
        self.trade = trade
    def on_bar(self, ctx, symbol, interval, bar):
        if interval == "1m":
            self.n1 += 1
            return
        self.n5 += 1
        rsi = ctx.indicator(symbol, "5m", "rsi(14)")[-1]
        if not self.trade or rsi != rsi:
            return
        held = ctx.position(symbol)
        if rsi < 30 and held == 0:
            ctx.buy(symbol, 1)
        elif rsi > 70 and held > 0:
            ctx.sell(symbol, held)

class CountBarTrade(CountBar):
    """The same, trading on every 5m bar."""
    def on_bar(self, ctx, symbol, interval, bar):
        if interval == "1m":
            self.n1 += 1
            return
        self.n5 += 1
        held = ctx.position(symbol)
        if held > 0:
            ctx.sell(symbol, held)
        else:
            ctx.buy(symbol, 1)
'''


def run(tmp: Path, store: BarStore, symbols: list[str], trading: bool, workload: str = "every") -> dict:
    ipc = tmp / "ipc"
    ipc.mkdir(exist_ok=True)
    (tmp / "benchstrat.py").write_text(STRATEGY)
    stages = ["processor", "quality", "analysis"] + (["broker"] if trading else [])
    cfg = {"session": {"start_date": START, "end_date": END, "symbols": symbols, "streams": ["1m", "5m"]},
           "historical": [],
           "indicators": [{"name": "sma", "interval": "5m", "params": {"period": 20}},
                          {"name": "rsi", "interval": "5m", "params": {"period": 14}}],
           "strategies": [_strategy(workload, trading)],
           "stages": stages, "flow": {"window": 16},
           "broker": {"commission": {"per_share": 0.005, "minimum": 1.0}},
           "endpoints": {n: f"ipc://{ipc}/{n}" for n in ("coordinator_pub", "coordinator_router", "coordinator_pull",
                                                         "processor_pub", "quality_pub")},
           "data_root": str(store.root), "results_dir": str(tmp / "results")}
    path = tmp / "bench.json"
    path.write_text(json.dumps(cfg))
    env = {"PYTHONPATH": f"{tmp}:{ROOT}", "PATH": str(Path(sys.executable).parent)}
    procs = {name: subprocess.Popen([sys.executable, "-m", f"services.{name}", "--config", str(path)], cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
             for name in ["coordinator"] + stages}
    out = {name: p.communicate(timeout=900)[0] for name, p in procs.items()}
    match = re.search(r"performance json: (\{.*\})", out["coordinator"])
    if not match or any(p.returncode for p in procs.values()):
        raise RuntimeError("run failed:\n" + "\n".join(f"--- {n}\n{o[-3000:]}" for n, o in out.items()))
    report = json.loads(match.group(1))
    if trading:
        fills = re.search(r"(\d+) fill\(s\)", out["broker"])
        report["fills"] = int(fills.group(1)) if fills else 0
    return report


def _strategy(workload: str, trading: bool) -> dict:
    if workload == "rsi":
        return {"class": "benchstrat:CountBarRsi", "name": "count", "params": {"trade": trading}}
    return {"class": f"benchstrat:CountBar{'Trade' if trading else ''}", "name": "count"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sizes", default="10,100")
    ap.add_argument("--workload", choices=("every", "rsi"), default="every",
                    help="every: an order on every 5m bar of every symbol; rsi: RSI(14) < 30 / > 70 on 5m")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    calendar = TradingCalendar()
    with tempfile.TemporaryDirectory() as d:
        store = BarStore(Path(d) / "store")
        symbols = [f"S{i:03d}" for i in range(max(sizes))]
        t0 = time.perf_counter()
        generate(store, calendar, symbols, START, END)
        print(f"generated {len(symbols)} symbols x 5 days in {time.perf_counter() - t0:.1f} s", flush=True)
        for n in sizes:
            off, on, ratios, fills = [], [], [], 0
            for _ in range(a.reps):
                pair = {}
                for trading in (False, True):
                    with tempfile.TemporaryDirectory() as t:
                        pair[trading] = run(Path(t), store, symbols[:n], trading, a.workload)
                off.append(pair[False]["bars_per_s"])
                on.append(pair[True]["bars_per_s"])
                ratios.append(on[-1] / off[-1])
                fills = pair[True]["fills"]
                busy = " ".join(f"{s}:{pair[t]['stages'][s]['busy_us']['mean']:.0f}" for t in (False, True)
                                for s in sorted(pair[t]["stages"]))
                print(f"{n:>4} x 5  off {off[-1]:>9,.0f} bars/s   on {on[-1]:>9,.0f} bars/s   "
                      f"ratio {ratios[-1]:.2f}   fills {fills}   busy us/step off|on {busy}", flush=True)
            print(f"{n:>4} x 5  MEDIAN off {statistics.median(off):,.0f}  on {statistics.median(on):,.0f}  "
                  f"on/off {statistics.median(ratios):.2f}  ({fills} fills per run)", flush=True)


if __name__ == "__main__":
    main()
