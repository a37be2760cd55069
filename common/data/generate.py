"""Deterministic synthetic 1-minute bars for demos, tests and benchmarks.

Every symbol-day is generated from its own random stream seeded by (seed, crc32(symbol), date), so a
symbol-day never depends on which other symbols or dates are generated in the same call, and the same
seed gives byte-identical Parquet files.

Prices: each calendar date has an *anchor* price, a deterministic slow wander (a few sinusoids with
symbol-derived phases around a symbol-derived base price). A day's regular session is a random walk
with U-shaped volatility, pinned (Brownian bridge) from that day's anchor to the next date's anchor,
so prices continue from day to day without days depending on each other. Volume is U-shaped over the
session. A few pre-market (open - 5h30) and post-market (close + 4h) bars are added, and about 0.5 %
of regular minutes are left out, as in real feeds. Nothing is generated on non-sessions; an early
close simply has fewer minutes (the calendar's close).
"""
from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from common.data.datacheck import normalise_symbol
from common.domain.bars import Bars
from common.domain.timeconv import NS_PER_MIN

DEFAULT_SEED = 7
MISSING_FRACTION = 0.005
PRE_MARKET_MINUTES = 330          # 04:00-09:30 ET
POST_MARKET_MINUTES = 240         # 16:00-20:00 ET (13:00-17:00 on an early close)
MEAN_PRE_BARS = 12
MEAN_POST_BARS = 10
_ANCHOR_PERIODS = np.array([397.0, 131.0, 43.0, 11.0])     # days
_ANCHOR_AMPLITUDES = np.array([0.15, 0.07, 0.03, 0.012])   # log-price


@dataclass(frozen=True)
class SymbolProfile:
    """Per-symbol constants derived from (symbol, seed): price level, volatility, volume level."""

    key: int
    base_price: float
    daily_vol: float
    minute_volume: float
    phases: np.ndarray


@dataclass(frozen=True)
class GenerateReport:
    symbols: int
    sessions: int
    bars: int
    files: int


def symbol_key(symbol: str) -> int:
    """Stable 32-bit key of a symbol (zlib.crc32; Python's hash() is salted per process)."""
    return zlib.crc32(symbol.encode("utf-8"))


def symbol_profile(symbol: str, seed: int) -> SymbolProfile:
    key = symbol_key(symbol)
    rng = np.random.default_rng([seed, key, 0])
    return SymbolProfile(
        key=key,
        base_price=float(np.exp(rng.uniform(np.log(8.0), np.log(600.0)))),
        daily_vol=float(rng.uniform(0.008, 0.03)),
        minute_volume=float(np.exp(rng.uniform(np.log(2e3), np.log(2e5)))),
        phases=rng.uniform(0.0, 2 * np.pi, size=len(_ANCHOR_PERIODS)),
    )


def anchor_price(profile: SymbolProfile, seed: int, day: dt.date) -> float:
    """Deterministic price level of a symbol on a calendar date (slow wander + a little daily noise)."""
    ordinal = day.toordinal()
    wander = np.sum(_ANCHOR_AMPLITUDES * np.sin(2 * np.pi * ordinal / _ANCHOR_PERIODS + profile.phases))
    noise = np.random.default_rng([seed, profile.key, ordinal, 1]).normal(0.0, 0.25 * profile.daily_vol)
    return float(profile.base_price * np.exp(wander + noise))


def _u_shape(n: int) -> np.ndarray:
    """Intraday profile, high at the open and close, ~1 at midday, mean about 1.4."""
    x = (np.arange(n) + 0.5) / n
    return 0.7 + 2.0 * (2 * x - 1) ** 2 + 1.5 * np.exp(-x * n / 15.0)


def _round_price(values: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(values, 2), 0.01)


def _ohlc_from_path(rng, start: float, log_path: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, ...]:
    """Open/high/low/close arrays from a log-price path of closes; open = previous close."""
    close = start * np.exp(log_path)
    open_ = np.concatenate(([start], close[:-1])) * np.exp(rng.normal(0.0, 0.1, len(close)) * sigma)
    open_, close = _round_price(open_), _round_price(close)
    wick = np.abs(rng.normal(0.0, 0.6, (2, len(close)))) * sigma
    high = np.maximum(_round_price(np.maximum(open_, close) * np.exp(wick[0])), np.maximum(open_, close))
    low = np.minimum(_round_price(np.minimum(open_, close) * np.exp(-wick[1])), np.minimum(open_, close))
    return open_, high, low, close


def _regular_bars(rng, profile: SymbolProfile, open_ns: int, n: int, start: float,
                  target: float) -> tuple[Bars, float]:
    """The regular session: a U-shaped-volatility walk bridged from `start` to `target`."""
    shape = _u_shape(n)
    sigma = profile.daily_vol / np.sqrt(n) * np.sqrt(shape / shape.mean())
    steps = rng.normal(0.0, 1.0, n) * sigma
    walk = np.cumsum(steps)
    frac = np.arange(1, n + 1) / n
    log_path = walk - frac * walk[-1] + frac * np.log(target / start)
    open_, high, low, close = _ohlc_from_path(rng, start, log_path, sigma)
    volume = np.round(profile.minute_volume * shape * rng.lognormal(0.0, 0.45, n))
    ts = open_ns + np.arange(n, dtype=np.int64) * NS_PER_MIN
    keep = rng.random(n) >= MISSING_FRACTION
    bars = Bars(ts, open_, high, low, close, volume).take(keep)
    return bars, float(close[-1])


def _extended_bars(rng, profile: SymbolProfile, first_ns: int, window: int, mean_count: int,
                   price: float) -> Bars:
    """A few sparse, thin bars at random minutes of an extended-hours window."""
    count = int(min(window, rng.poisson(mean_count)))
    if count == 0:
        return Bars.empty()
    minutes = np.sort(rng.choice(window, size=count, replace=False))
    sigma = np.full(count, profile.daily_vol / np.sqrt(390) * 2.0)
    log_path = np.cumsum(rng.normal(0.0, 1.0, count) * sigma)
    open_, high, low, close = _ohlc_from_path(rng, price, log_path, sigma)
    volume = np.round(profile.minute_volume * 0.03 * rng.lognormal(0.0, 0.8, count))
    return Bars(first_ns + minutes.astype(np.int64) * NS_PER_MIN, open_, high, low, close, volume)


def generate_day(symbol: str, day: dt.date, open_ns: int, close_ns: int, seed: int = DEFAULT_SEED,
                 profile: SymbolProfile | None = None) -> Bars:
    """All bars (pre, regular, post) of one symbol on one session; depends only on its arguments."""
    profile = profile or symbol_profile(symbol, seed)
    rng = np.random.default_rng([seed, profile.key, day.toordinal(), 2])
    n = int((close_ns - open_ns) // NS_PER_MIN)
    start = anchor_price(profile, seed, day)
    target = anchor_price(profile, seed, day + dt.timedelta(days=1))
    pre_start = start * float(np.exp(rng.normal(0.0, 0.2 * profile.daily_vol)))
    pre = _extended_bars(rng, profile, open_ns - PRE_MARKET_MINUTES * NS_PER_MIN,
                         PRE_MARKET_MINUTES, MEAN_PRE_BARS, pre_start)
    regular, last_close = _regular_bars(rng, profile, open_ns, n, start, target)
    post = _extended_bars(rng, profile, close_ns, POST_MARKET_MINUTES, MEAN_POST_BARS, last_close)
    return Bars.concat([pre, regular, post])


def generated_source(seed: int) -> str:
    """The store's source label of generated days (one label per seed)."""
    return f"generated (seed {int(seed)})"


def generate(store, calendar, symbols: Iterable[str], start: dt.date | str, end: dt.date | str,
             seed: int = DEFAULT_SEED, progress: Callable[[int], None] | None = None) -> GenerateReport:
    """Write synthetic bars for every symbol and trading session in [start, end] into `store`.

    `progress`, if given, is called with 1 after each symbol-day.
    """
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    seed = int(seed)
    names = list(dict.fromkeys(normalise_symbol(s) for s in symbols))   # unique, in order
    if not names:
        raise ValueError("no symbols given")
    days = calendar.sessions(start, end)
    bounds = [calendar.open_close_ns(day) for day in days]
    total = files = 0
    for symbol in names:
        profile = symbol_profile(symbol, seed)
        for day, (open_ns, close_ns) in zip(days, bounds):
            bars = generate_day(symbol, day, open_ns, close_ns, seed, profile)
            files += store.write_bars(symbol, bars, source=generated_source(seed)).days
            total += len(bars)
            if progress is not None:
                progress(1)
    return GenerateReport(symbols=len(names), sessions=len(days), bars=total, files=files)
