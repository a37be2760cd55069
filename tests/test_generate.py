"""Synthetic bars: byte-level determinism, calendar behaviour, realistic shape."""
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from common.domain.calendar import TradingCalendar
from common.data.generate import MISSING_FRACTION, generate, generate_day
from common.data.store import BarStore
from common.domain.timeconv import NS_PER_MIN, exchange_ns

D = dt.date
START, END = "2025-06-27", "2025-07-08"


@pytest.fixture(scope="module")
def cal():
    return TradingCalendar()


@pytest.fixture(scope="module")
def store_a(tmp_path_factory, cal):
    store = BarStore(tmp_path_factory.mktemp("a"))
    generate(store, cal, ["AAPL", "MSFT"], START, END, seed=7)
    return store


def files(root: Path, symbol: str | None = None) -> dict[str, bytes]:
    base = root / "1m" / symbol if symbol else root
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(store_a, tmp_path, cal):
    generate(BarStore(tmp_path), cal, ["AAPL", "MSFT"], START, END, seed=7)
    assert files(tmp_path) == files(store_a.root)
    assert len(files(tmp_path)) == 2 * len(cal.sessions(START, END))


def test_symbol_day_does_not_depend_on_other_symbols_or_dates(store_a, tmp_path, cal):
    generate(BarStore(tmp_path), cal, ["AAPL"], "2025-07-02", "2025-07-03", seed=7)
    alone = files(tmp_path, "AAPL")
    together = files(store_a.root, "AAPL")
    assert alone and all(together[name] == data for name, data in alone.items())


def test_other_seed_gives_other_bars(store_a, cal):
    open_ns, close_ns = cal.open_close_ns("2025-07-02")
    other = generate_day("AAPL", D(2025, 7, 2), open_ns, close_ns, seed=8)
    assert not other.equals(store_a.read_day("AAPL", "2025-07-02"))


def test_only_trading_sessions_are_written(store_a, cal):
    days = store_a.days("AAPL")
    assert days == cal.sessions(START, END)
    assert D(2025, 7, 4) not in days
    assert all(day.weekday() < 5 for day in days)


def test_early_close_has_only_morning_regular_bars(store_a, cal):
    day = D(2025, 7, 3)
    bars = store_a.read_day("AAPL", day)
    open_ns, close_ns = cal.open_close_ns(day)
    assert close_ns == exchange_ns(day, "13:00")
    regular = bars.between(open_ns, close_ns)
    assert 200 <= len(regular) <= 210
    assert regular.ts[-1] <= exchange_ns(day, "12:59")
    after = bars.ts[bars.ts >= close_ns]
    assert len(after) < 30 and (len(after) == 0 or after.max() < exchange_ns(day, "17:00"))


def test_bars_are_consistent(store_a):
    for symbol in ("AAPL", "MSFT"):
        b = store_a.read_range(symbol, START, END)
        assert np.all(np.diff(b.ts) > 0) and np.all(b.ts % NS_PER_MIN == 0)
        assert np.all(b.high >= np.maximum(b.open, b.close))
        assert np.all(b.low <= np.minimum(b.open, b.close))
        assert np.all(b.low > 0) and np.all(b.volume >= 0)


def test_extended_hours_are_sparse_and_inside_0400_2000(store_a, cal):
    for day in cal.sessions(START, END):
        bars = store_a.read_day("AAPL", day)
        open_ns, close_ns = cal.open_close_ns(day)
        pre = np.count_nonzero(bars.ts < open_ns)
        post = np.count_nonzero(bars.ts >= close_ns)
        assert 0 < pre < 40 and 0 < post < 40
        assert bars.ts[0] >= exchange_ns(day, "04:00") and bars.ts[-1] < exchange_ns(day, "20:00")


def sample_days(cal, symbols, start="2025-06-02", end="2025-06-30"):
    for symbol in symbols:
        for day in cal.sessions(start, end):
            open_ns, close_ns = cal.open_close_ns(day)
            yield symbol, day, open_ns, generate_day(symbol, day, open_ns, close_ns, seed=7)


def test_about_half_a_percent_of_regular_minutes_missing(cal):
    present = expected = 0
    for _, day, open_ns, bars in sample_days(cal, [f"S{i}" for i in range(10)]):
        present += len(bars.between(open_ns, open_ns + 390 * NS_PER_MIN))
        expected += 390
    missing = 1 - present / expected
    assert 0.5 * MISSING_FRACTION < missing < 1.6 * MISSING_FRACTION


def test_volume_is_u_shaped(cal):
    profile = np.zeros(390)
    for _, _, open_ns, bars in sample_days(cal, ["AAPL", "MSFT"]):
        regular = bars.between(open_ns, open_ns + 390 * NS_PER_MIN)
        np.add.at(profile, (regular.ts - open_ns) // NS_PER_MIN, regular.volume / regular.volume.mean())
    first, middle, last = profile[:30].mean(), profile[180:210].mean(), profile[-30:].mean()
    assert first > 1.5 * middle and last > 1.5 * middle


def test_prices_continue_from_day_to_day(cal):
    for symbol in ("AAPL", "RIVN", "SPY"):
        days = list(sample_days(cal, [symbol]))
        for (_, _, _, today), (_, _, next_open, tomorrow) in zip(days, days[1:]):
            last_close = today.close[today.ts < next_open][-1]
            first_open = tomorrow.between(next_open, next_open + NS_PER_MIN * 390).open[0]
            assert abs(first_open / last_close - 1) < 0.05


def test_bytes_do_not_depend_on_the_process(store_a, tmp_path):
    """A fresh interpreter with another hash seed writes the same files (no salted hash() anywhere)."""
    import os
    import subprocess
    import sys

    code = ("import sys; from common.data.generate import generate; from common.data.store import BarStore; "
            "from common.domain.calendar import TradingCalendar; "
            f"generate(BarStore(sys.argv[1]), TradingCalendar(), ['MSFT', 'AAPL'], '{START}', '{END}', seed=7)")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=root, env=env)
    assert files(tmp_path) == files(store_a.root)
