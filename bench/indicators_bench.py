"""Cost of the indicator kernels: update() per step across N slots, run_series() per bar.

Run: .venv/bin/python bench/indicators_bench.py [--steps 400] [--slots 10,100,500] [--present 0.95]
The "default set" is every indicator with TA-Lib's default parameters. Each step a random
`present` fraction of the slots has a bar, passed in random order (as the processor may).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common.domain.indicators import INDICATORS, make_indicator


def random_bars(rng, steps: int, slots: int):
    close = 100 + np.cumsum(rng.normal(0, 0.2, (steps, slots)), axis=0)
    high = close + np.abs(rng.normal(0, 0.1, (steps, slots)))
    low = close - np.abs(rng.normal(0, 0.1, (steps, slots)))
    volume = rng.integers(0, 5000, (steps, slots)).astype(np.float64)
    return close, high, low, close, volume


def bench_update(slots: int, steps: int, present: float, rng) -> dict[str, float]:
    """Mean µs per step for each indicator."""
    bars = random_bars(rng, steps, slots)
    picks = [rng.permutation(slots)[: max(1, round(present * slots))] for _ in range(steps)]
    inputs = [(rows, *(b[t, rows] for b in bars)) for t, rows in enumerate(picks)]
    result = {}
    for name in INDICATORS:
        ind = make_indicator(name, {}, slots)
        start = time.perf_counter()
        for args in inputs:
            ind.update(*args)
        result[ind.key] = (time.perf_counter() - start) / steps * 1e6
    return result


def bench_run_series(length: int, rng) -> dict[str, float]:
    """µs per bar of run_series for one slot."""
    o, h, l, c, v = (b[:, 0] for b in random_bars(rng, length, 1))
    starts = np.zeros(length, bool)
    starts[::390] = True
    result = {}
    for name in INDICATORS:
        ind = make_indicator(name, {}, 1)
        start = time.perf_counter()
        ind.run_series(0, o, h, l, c, v, session_starts=starts)
        result[ind.key] = (time.perf_counter() - start) / length * 1e6
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--slots", default="10,100,500")
    parser.add_argument("--present", type=float, default=0.95, help="fraction of slots with a bar")
    parser.add_argument("--series", type=int, default=5000, help="bars for run_series")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sizes = [int(s) for s in args.slots.split(",")]
    tables = {n: bench_update(n, args.steps, args.present, rng) for n in sizes}
    batch = bench_run_series(args.series, rng)
    keys = list(batch)
    print(f"{'indicator':<16}" + "".join(f"{f'{n} slots':>12}" for n in sizes) + f"{'run_series':>14}")
    print(f"{'':<16}" + "".join(f"{'µs/step':>12}" for _ in sizes) + f"{'µs/bar':>14}")
    for key in keys:
        print(f"{key:<16}" + "".join(f"{tables[n][key]:>12.1f}" for n in sizes) + f"{batch[key]:>14.2f}")
    print(f"{'TOTAL':<16}" + "".join(f"{sum(tables[n].values()):>12.1f}" for n in sizes)
          + f"{sum(batch.values()):>14.2f}")
    for n in sizes:
        total = sum(tables[n].values())
        bars = round(args.present * n)
        print(f"{n} slots: {total:.0f} µs/step for the default set = {bars / total * 1e6:,.0f} bars/s")


if __name__ == "__main__":
    main()
