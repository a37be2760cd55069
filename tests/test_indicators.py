"""Indicators: equal to TA-Lib (values and warm-up), batch path bit-identical to the step path.

TA-Lib is the oracle for every indicator except VWAP, whose oracle is a pandas groupby-cumsum.
Tolerance: rtol 1e-9, plus atol 1e-12 x the series' magnitude for values that sit near zero
(MACD histogram, %R near 0); NaN positions must be identical.
"""
from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.domain.indicators import (INDICATORS, MAX_PERIOD, describe_indicators, indicator_key, make_indicator,
                                      validate_indicator)

talib = pytest.importorskip("talib")

REAL_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "indicators.md"

PARAM_SETS = {
    "sma": [{}, {"period": 1}, {"period": 7}],
    "ema": [{}, {"period": 1}, {"period": 2}, {"period": 9}],
    "wma": [{}, {"period": 1}, {"period": 2}, {"period": 11}],
    "rsi": [{}, {"period": 2}, {"period": 30}],
    "macd": [{}, {"fast": 5, "slow": 13, "signal": 4}, {"fast": 26, "slow": 12, "signal": 1},
             {"fast": 3, "slow": 3, "signal": 2}],
    "bbands": [{}, {"period": 5, "nbdevup": 1.5, "nbdevdn": 2.5}, {"period": 2, "nbdevup": 1, "nbdevdn": 1}],
    "atr": [{}, {"period": 1}, {"period": 5}],
    "stoch": [{}, {"fastk_period": 14, "slowk_period": 1, "slowd_period": 5},
              {"fastk_period": 1, "slowk_period": 2, "slowd_period": 1}],
    "cci": [{}, {"period": 2}, {"period": 20}],
    "willr": [{}, {"period": 2}, {"period": 30}],
    "obv": [{}],
    "vwap": [{}],
}
CASES = [(name, params) for name, sets in PARAM_SETS.items() for params in sets]
CASE_IDS = [indicator_key(name, params) for name, params in CASES]


# ------------------------------------------------------------------------------------------------
# Data and oracles
# ------------------------------------------------------------------------------------------------

def seed_of(*parts) -> int:
    return zlib.crc32(repr(parts).encode())


def random_bars(rng: np.random.Generator, n: int, price: float = 100.0, flat_prefix: int = 0):
    """Random-walk OHLCV on a 0.01 tick (ties, flat windows), some zero volumes."""
    tick = 0.01
    close = np.round((price + np.cumsum(rng.normal(0, price * 0.002, n))) / tick) * tick
    close = np.maximum(close, tick)
    open_ = np.r_[close[:1], close[:-1]]
    wicks = np.round(np.abs(rng.normal(0, price * 0.001, (2, n))) / tick) * tick
    high = np.maximum(open_, close) + wicks[0]
    low = np.maximum(np.minimum(open_, close) - wicks[1], tick / 2)
    volume = rng.integers(0, 5000, n).astype(np.float64)
    volume[rng.random(n) < 0.05] = 0.0
    if flat_prefix:                       # a dead market: every price equal, no volume
        k = min(flat_prefix, n)
        open_[:k] = high[:k] = low[:k] = close[:k] = close[k - 1] if k else price
        volume[:k] = 0.0
    return open_, high, low, close, volume


def vwap_oracle(high, low, close, volume, session_starts):
    session = np.cumsum(np.asarray(session_starts, dtype=np.int64))
    frame = pd.DataFrame({"pv": (high + low + close) / 3 * volume, "v": volume, "session": session})
    cum = frame.groupby("session")[["pv", "v"]].cumsum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cum["v"] > 0, cum["pv"] / cum["v"], np.nan)


def reference(name, params, o, h, l, c, v, session_starts) -> dict[str, np.ndarray]:
    """TA-Lib's (or the pandas oracle's) answer for one symbol's whole series."""
    p = INDICATORS[name]
    full = {q.name: params.get(q.name, q.default) for q in p.params}
    if name == "vwap":
        return {"value": vwap_oracle(h, l, c, v, session_starts)}
    calls = {
        "sma": lambda: talib.SMA(c, full["period"]),
        "ema": lambda: talib.EMA(c, full["period"]),
        "wma": lambda: talib.WMA(c, full["period"]),
        "rsi": lambda: talib.RSI(c, full["period"]),
        "macd": lambda: talib.MACD(c, full["fast"], full["slow"], full["signal"]),
        "bbands": lambda: talib.BBANDS(c, full["period"], full["nbdevup"], full["nbdevdn"], 0),
        "atr": lambda: talib.ATR(h, l, c, full["period"]),
        "stoch": lambda: talib.STOCH(h, l, c, full["fastk_period"], full["slowk_period"], 0,
                                     full["slowd_period"], 0),
        "cci": lambda: talib.CCI(h, l, c, full["period"]),
        "willr": lambda: talib.WILLR(h, l, c, full["period"]),
        "obv": lambda: talib.OBV(c, v),
    }
    result = calls[name]()
    arrays = result if isinstance(result, tuple) else (result,)
    return dict(zip(p.outputs, arrays))


def assert_matches_reference(got: dict, expected: dict, close: np.ndarray, label: str) -> None:
    assert set(got) == set(expected), label
    for output, want in expected.items():
        have = np.asarray(got[output])
        where = f"{label} {output}"
        np.testing.assert_array_equal(np.isnan(have), np.isnan(want), err_msg=f"{where}: NaN positions")
        finite = want[~np.isnan(want)]
        magnitude = max(np.abs(close).max(initial=1.0), np.abs(finite).max(initial=1.0))
        np.testing.assert_allclose(have, want, rtol=1e-9, atol=1e-12 * magnitude, equal_nan=True,
                                   err_msg=where)


def assert_bit_identical(a: dict, b: dict, label: str) -> None:
    assert set(a) == set(b), label
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        assert (x.dtype, x.shape) == (y.dtype, y.shape), f"{label} {key}: {x.dtype}{x.shape} vs {y.dtype}{y.shape}"
        assert x.tobytes() == y.tobytes(), f"{label} {key}: not bit-identical"


def feed_one_by_one(ind, slot, bars, session_starts=None) -> dict[str, np.ndarray]:
    """The step path for a single slot; returns the output series."""
    o, h, l, c, v = bars
    series = {name: [] for name in ind.outputs}
    for i in range(len(c)):
        if session_starts is not None and session_starts[i]:
            ind.new_session([slot])
        out = ind.update([slot], o[i:i + 1], h[i:i + 1], l[i:i + 1], c[i:i + 1], v[i:i + 1])
        for name in ind.outputs:
            series[name].append(out[name][0])
    return {name: np.asarray(values, dtype=np.float64) for name, values in series.items()}


def cut(bars, start, stop=None):
    return tuple(a[start:stop] for a in bars)


# ------------------------------------------------------------------------------------------------
# Equal to TA-Lib through update(), several slots at once
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_update_matches_talib_across_slots(name, params):
    """Four symbols, random subsets per step in random order; slot 3 joins late, so it warms up
    while the others are steady. Each slot equals TA-Lib on its own series, and equals
    run_series bit for bit."""
    rng = np.random.default_rng(seed_of(name, params))
    prices = (100.0, 3000.0, 5.0, 250.0)
    length = 240
    series = [random_bars(rng, length, price, flat_prefix=40 if s == 2 else 0)
              for s, price in enumerate(prices)]
    ind = make_indicator(name, params, len(prices))
    got = [{o: [] for o in ind.outputs} for _ in prices]
    starts = [[] for _ in prices]
    pending_start = [False] * len(prices)
    position = [0] * len(prices)
    step = 0
    while min(position) < length:
        if step % 70 == 0:                            # a session boundary for everyone
            ind.new_session(np.arange(len(prices)))
            pending_start = [True] * len(prices)
        waiting = [s for s in range(len(prices)) if position[s] < length and (s != 3 or step >= 150)]
        present = [s for s in waiting if rng.random() < 0.75] or waiting[:1]
        slots = rng.permutation(np.array(present, dtype=np.int64))
        bar = [np.array([series[s][k][position[s]] for s in slots]) for k in range(5)]
        out = ind.update(slots, *bar)
        for j, s in enumerate(slots):
            for o in ind.outputs:
                got[s][o].append(out[o][j])
            starts[s].append(pending_start[s])
            pending_start[s] = False
            position[s] += 1
        step += 1
    for s, bars in enumerate(series):
        want = reference(name, params, *bars, starts[s])
        assert_matches_reference(got[s], want, bars[3], f"{ind.key} slot {s}")
        batch = make_indicator(name, params, 1).run_series(0, *bars, session_starts=starts[s])
        assert_bit_identical({o: np.asarray(x) for o, x in got[s].items()}, batch, f"{ind.key} slot {s}")


def test_flat_market_rules_match_talib():
    """Dead market: RSI, %K, %R, CCI and ATR 0, bands on the middle band, VWAP NaN - as TA-Lib."""
    bars = random_bars(np.random.default_rng(7), 60, 100.0, flat_prefix=60)
    starts = np.r_[True, np.zeros(59, bool)]
    got = {}
    for name in ("rsi", "stoch", "willr", "cci", "bbands", "atr", "vwap"):
        got[name] = make_indicator(name, {}, 1).run_series(0, *bars, session_starts=starts)
        assert_matches_reference(got[name], reference(name, {}, *bars, starts), bars[3], name)
    for name in ("rsi", "willr", "cci", "atr"):
        assert (got[name]["value"][40:] == 0.0).all(), name
    assert (got["stoch"]["slowk"][40:] == 0.0).all() and (got["stoch"]["slowd"][40:] == 0.0).all()
    bands = got["bbands"]
    for band in ("upper", "lower"):
        assert (bands[band][40:] == bands["middle"][40:]).all(), band
    assert np.isnan(got["vwap"]["value"]).all()


# ------------------------------------------------------------------------------------------------
# run_series == update(), bit for bit, results and state
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_run_series_is_bit_identical_to_update(name, params):
    rng = np.random.default_rng(seed_of("batch", name, params))
    bars = random_bars(rng, 180, 42.0, flat_prefix=12)
    more = random_bars(rng, 60, 43.0)
    starts = rng.random(180) < 0.05
    starts[0] = True
    stepped = make_indicator(name, params, 3)
    batched = make_indicator(name, params, 3)
    # Other slots get unrelated traffic in the same update() calls: slots must not leak.
    noise = random_bars(rng, 180, 7.0)
    series = {k: [] for k in stepped.outputs}
    for i in range(len(bars[3])):
        if starts[i]:
            stepped.new_session([1])
        slots = [2, 1, 0] if i % 2 else [1, 0]
        cols = [np.array([main[i] if s == 1 else other[i] for s in slots])
                for main, other in zip(bars, noise)]
        out = stepped.update(slots, *cols)
        for k in stepped.outputs:
            series[k].append(out[k][slots.index(1)])
    got_step = {k: np.asarray(vals) for k, vals in series.items()}
    got_batch = batched.run_series(1, *bars, session_starts=starts)
    assert_bit_identical(got_step, got_batch, f"{stepped.key} outputs")
    assert_bit_identical(stepped.state([1]), batched.state([1]), f"{stepped.key} state")

    # Both continue identically, whichever path continues them.
    assert_bit_identical(feed_one_by_one(stepped, 1, more), batched.run_series(1, *more),
                         f"{stepped.key} continued")
    assert_bit_identical(stepped.state([1]), batched.state([1]), f"{stepped.key} state after")


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_catch_up_then_stream_equals_streaming_from_the_start(name):
    """History via run_series, then live bars via update == everything via update."""
    bars = random_bars(np.random.default_rng(seed_of("catchup", name)), 150, 80.0)
    starts = np.zeros(150, bool)
    starts[[0, 60, 120]] = True
    live = make_indicator(name, {}, 2)
    late = make_indicator(name, {}, 2)
    want = feed_one_by_one(live, 0, bars, starts)
    head = late.run_series(1, *cut(bars, 0, 100), session_starts=starts[:100])
    tail = feed_one_by_one(late, 1, cut(bars, 100), starts[100:])
    got = {k: np.concatenate([head[k], tail[k]]) for k in want}
    assert_bit_identical(want, got, name)
    assert_bit_identical(live.state([0]), late.state([1]), f"{name} state")


def param_strategy(name):
    """Small, valid parameter sets for `name` (periods up to 12)."""
    fields = {}
    for p in INDICATORS[name].params:
        if p.kind is float:
            fields[p.name] = st.sampled_from([0.5, 1.0, 2.0, 2.5])
        else:
            fields[p.name] = st.integers(p.low, max(p.low, min(p.high, 12)))
    return st.fixed_dictionaries(fields)


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_run_series_equals_update_property(data):
    name = data.draw(st.sampled_from(sorted(INDICATORS)), label="name")
    params = data.draw(param_strategy(name), label="params")
    length = data.draw(st.integers(0, 70), label="length")
    split = data.draw(st.integers(0, length), label="split")
    price = data.draw(st.sampled_from([0.5, 100.0, 3000.0]), label="price")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    bars = random_bars(rng, length, price, flat_prefix=data.draw(st.integers(0, 20), label="flat"))
    starts = rng.random(length) < 0.1
    stepped = make_indicator(name, params, 2)
    batched = make_indicator(name, params, 2)
    want = feed_one_by_one(stepped, 0, bars, starts)
    first = batched.run_series(0, *cut(bars, 0, split), session_starts=starts[:split])
    second = batched.run_series(0, *cut(bars, split), session_starts=starts[split:])
    got = {k: np.concatenate([first[k], second[k]]) for k in want}
    assert_bit_identical(want, got, f"{name} {params}")
    assert_bit_identical(stepped.state(), batched.state(), f"{name} {params} state")


# ------------------------------------------------------------------------------------------------
# Real data
# ------------------------------------------------------------------------------------------------

def load_real(file_name: str, columns: dict, time_column: str, time_format: str | None):
    path = REAL_DIR / file_name
    if not path.exists():
        pytest.skip(f"{path} not available")
    frame = pd.read_csv(path, usecols=list(columns)).rename(columns=columns)
    when = pd.to_datetime(frame["time"], format=time_format, utc=time_format is None)
    if time_format is None:
        when = when.dt.tz_convert("America/New_York")
    day = when.dt.date.to_numpy()
    starts = np.r_[True, day[1:] != day[:-1]]
    bars = tuple(frame[k].to_numpy(dtype=np.float64) for k in ("open", "high", "low", "close", "volume"))
    return bars, starts


REAL_FILES = {
    "AAPL": ("AAPL_2025-07-02_1m_extended.csv",
             {"timestamp": "time", "open": "open", "high": "high", "low": "low", "close": "close",
              "volume": "volume"}, "timestamp", None),
    "SPX": ("SPX_2019-11-05_to_08_1m.csv",
            {"Date": "time", "Open": "open", "High": "high", "Low": "low", "Close": "close",
             "Volume": "volume"}, "Date", "%m/%d/%Y %H:%M"),
}


@pytest.fixture(scope="module")
def real_series():
    return {symbol: load_real(*spec) for symbol, spec in REAL_FILES.items()}


def feed_lockstep(ind, data) -> list[dict[str, np.ndarray]]:
    """Several symbols through update() together, bar i of each at step i (shorter ones stop)."""
    lengths = [len(bars[3]) for bars, _ in data]
    outs = [{o: [] for o in ind.outputs} for _ in data]
    for i in range(max(lengths)):
        slots = [s for s, n in enumerate(lengths) if i < n]
        ind.new_session([s for s in slots if data[s][1][i]])
        cols = [np.array([data[s][0][k][i] for s in slots]) for k in range(5)]
        out = ind.update(slots, *cols)
        for j, s in enumerate(slots):
            for o in ind.outputs:
                outs[s][o].append(out[o][j])
    return [{o: np.asarray(v, dtype=np.float64) for o, v in per_slot.items()} for per_slot in outs]


def test_real_files_all_indicators_match_talib(real_series):
    """AAPL (extended hours, two ET dates) and SPX (4 sessions, zero volume) through both paths."""
    symbols = list(real_series)
    data = [real_series[s] for s in symbols]
    for name, sets in PARAM_SETS.items():
        for params in sets[:2]:
            batched = make_indicator(name, params, len(data))
            stepped = feed_lockstep(make_indicator(name, params, len(data)), data)
            for slot, (bars, starts) in enumerate(data):
                label = f"{batched.key} {symbols[slot]}"
                got = batched.run_series(slot, *bars, session_starts=starts)
                assert_matches_reference(got, reference(name, params, *bars, starts), bars[3], label)
                assert_bit_identical(stepped[slot], got, f"{label} update vs run_series")


def test_real_spx_has_no_volume_so_vwap_is_nan_and_obv_zero(real_series):
    bars, starts = real_series["SPX"]
    assert (bars[4] == 0).all()
    assert np.isnan(make_indicator("vwap", {}, 1).run_series(0, *bars, session_starts=starts)["value"]).all()
    assert (make_indicator("obv", {}, 1).run_series(0, *bars)["value"] == 0).all()


def test_real_aapl_vwap_resets_at_the_session_start(real_series):
    bars, starts = real_series["AAPL"]
    assert starts.sum() == 2                          # 2025-07-01 evening, then 2025-07-02 ET
    value = make_indicator("vwap", {}, 1).run_series(0, *bars, session_starts=starts)["value"]
    first = int(np.flatnonzero(starts)[1])
    typical = (bars[1][first] + bars[2][first] + bars[3][first]) / 3
    assert value[first] == pytest.approx(typical, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# Slots, state, API
# ------------------------------------------------------------------------------------------------

def test_keys_and_outputs():
    assert make_indicator("sma", {"period": 20}, 1).key == "sma(20)"
    assert make_indicator("macd", {}, 1).key == "macd(12,26,9)"
    assert make_indicator("bbands", {}, 1).key == "bbands(20,2,2)"
    assert make_indicator("bbands", {"nbdevup": 2.5, "nbdevdn": 1}, 1).key == "bbands(20,2.5,1)"
    assert make_indicator("stoch", {}, 1).key == "stoch(5,3,3)"
    assert make_indicator("obv", {}, 1).key == "obv"
    assert make_indicator("vwap", None, 1).key == "vwap"
    assert make_indicator("macd", {}, 1).outputs == ("macd", "signal", "hist")
    assert make_indicator("stoch", {}, 1).outputs == ("slowk", "slowd")
    assert make_indicator("bbands", {}, 1).outputs == ("upper", "middle", "lower")
    assert make_indicator("rsi", {}, 1).outputs == ("value",)


@pytest.mark.parametrize("name", sorted(INDICATORS))
def test_resize_reset_and_state_transfer(name):
    bars = random_bars(np.random.default_rng(seed_of("slots", name)), 90, 60.0)
    fresh = feed_one_by_one(make_indicator(name, {}, 1), 0, bars)

    ind = make_indicator(name, {}, 2)
    feed_one_by_one(ind, 1, cut(bars, 0, 50))
    ind.resize(5)                                     # grown mid-session: old state kept
    assert ind.n_slots == 5
    assert_bit_identical(feed_one_by_one(ind, 1, cut(bars, 50)), {k: v[50:] for k, v in fresh.items()},
                         f"{name} after resize")
    assert_bit_identical(feed_one_by_one(ind, 4, bars), fresh, f"{name} new slot")
    ind.reset_slot(1)                                 # removed then re-added: starts over
    assert_bit_identical(feed_one_by_one(ind, 1, bars), fresh, f"{name} after reset")

    # A late joiner takes one slot's state and continues exactly like the owner.
    owner = make_indicator(name, {}, 3)
    feed_one_by_one(owner, 2, cut(bars, 0, 40))
    joiner = make_indicator(name, {}, 1)
    joiner.load_state(owner.state([2]), slots=[0])
    assert_bit_identical(feed_one_by_one(joiner, 0, cut(bars, 40)), feed_one_by_one(owner, 2, cut(bars, 40)),
                         f"{name} transferred slot")
    whole = make_indicator(name, {}, 1)
    whole.load_state(owner.state())
    assert whole.n_slots == 3
    assert_bit_identical(whole.state(), owner.state(), f"{name} whole state")


def test_update_edge_cases():
    ind = make_indicator("sma", {"period": 3}, 2)
    empty = ind.update(np.array([], dtype=np.int64), *([np.array([])] * 5))
    assert empty["value"].shape == (0,)
    with pytest.raises(IndexError):
        ind.update([2], *([np.array([1.0])] * 5))
    with pytest.raises(IndexError):
        ind.update([-1], *([np.array([1.0])] * 5))
    with pytest.raises(ValueError, match="differ in length"):
        ind.update([0, 1], *([np.array([1.0])] * 5))
    with pytest.raises(ValueError, match="shrink"):
        ind.resize(1)
    with pytest.raises(ValueError, match="state fields"):
        ind.load_state({"n": np.zeros(2, np.int64)})
    state = ind.state()
    assert all(isinstance(a, np.ndarray) and a.dtype in (np.float64, np.int64) for a in state.values())


def test_docs_table_lists_what_describe_indicators_gives():
    """docs/indicators.md has one row per indicator, in registry order, with its parameters and
    defaults, key example and outputs exactly as describe_indicators() gives them."""
    rows = {}
    for line in DOCS.read_text().splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            rows[cells[0].strip("`")] = cells[1:4]
    described = describe_indicators()
    assert list(rows) == [d["name"] for d in described]
    for d in described:
        params = ", ".join(f"`{name}={default}`" for name, default in d["params"].items()) or "none"
        outputs = ", ".join(f"`{output}`" for output in d["outputs"])
        assert rows[d["name"]] == [params, f"`{d['key']}`", outputs], d["name"]
        assert d["key"] == make_indicator(d["name"], {}, 1).key


# ------------------------------------------------------------------------------------------------
# Config validation
# ------------------------------------------------------------------------------------------------

def test_validate_fills_defaults_and_normalises():
    assert validate_indicator({"name": "sma", "interval": "5m", "params": {"period": 20}}, "x") == \
        {"name": "sma", "interval": "5m", "params": {"period": 20}}
    assert validate_indicator({"name": "macd"}, "x") == \
        {"name": "macd", "interval": "1m", "params": {"fast": 12, "slow": 26, "signal": 9}}
    entry = validate_indicator({"name": "bbands", "interval": "15m", "params": {"nbdevup": 3}}, "x")
    assert entry["params"] == {"period": 20, "nbdevup": 3.0, "nbdevdn": 2.0, "matype": 0}
    assert isinstance(entry["params"]["nbdevup"], float)
    assert validate_indicator({"name": "stoch", "params": {}}, "x")["params"] == \
        {"fastk_period": 5, "slowk_period": 3, "slowk_matype": 0, "slowd_period": 3, "slowd_matype": 0}
    for name in INDICATORS:                           # every default is itself valid
        defaults = validate_indicator({"name": name}, "x")["params"]
        assert validate_indicator({"name": name, "params": defaults}, "x")["params"] == defaults


@pytest.mark.parametrize("entry,message", [
    ("sma", r"indicators\[0\]: expected an object"),
    ({"name": "smaa"}, r"indicators\[0\]\.name: unknown indicator 'smaa' \(known: atr, bbands, cci, ema, "
                       r"macd, obv, rsi, sma, stoch, vwap, willr, wma\)"),
    ({"params": {}}, r"indicators\[0\]\.name: expected an indicator name"),
    ({"name": "sma", "period": 5}, r"indicators\[0\]\.period: unknown key"),
    ({"name": "sma", "params": [20]}, r"indicators\[0\]\.params: expected an object of parameters"),
    ({"name": "sma", "params": {"length": 5}},
     r"indicators\[0\]\.params\.length: unknown parameter for sma \(allowed: period\)"),
    ({"name": "obv", "params": {"period": 5}},
     r"params\.period: unknown parameter for obv \(allowed: none\)"),
    ({"name": "sma", "params": {"period": 2.5}}, r"params\.period: expected an integer, got 2\.5"),
    ({"name": "sma", "params": {"period": True}}, r"params\.period: expected an integer, got True"),
    ({"name": "sma", "params": {"period": "20"}}, r"params\.period: expected an integer, got '20'"),
    ({"name": "sma", "params": {"period": 0}}, r"params\.period: 0 is out of range \(1\.\.10000\)"),
    ({"name": "rsi", "params": {"period": 1}}, r"params\.period: 1 is out of range \(2\.\.10000\)"),
    ({"name": "cci", "params": {"period": MAX_PERIOD + 1}}, r"params\.period: 10001 is out of range"),
    ({"name": "macd", "params": {"signal": 0}}, r"params\.signal: 0 is out of range \(1\.\.10000\)"),
    ({"name": "bbands", "params": {"matype": 1}}, r"params\.matype: only 0 \(SMA\) is supported"),
    ({"name": "stoch", "params": {"slowd_matype": 3}}, r"params\.slowd_matype: only 0 \(SMA\)"),
    ({"name": "bbands", "params": {"nbdevup": float("nan")}}, r"params\.nbdevup: expected a finite number"),
    ({"name": "bbands", "params": {"nbdevdn": "2"}}, r"params\.nbdevdn: expected a finite number"),
    ({"name": "bbands", "params": {"nbdevdn": -1}},
     r"params\.nbdevdn: -1 is out of range \(0\.0\.\.100\.0\)"),
    ({"name": "sma", "interval": 5}, r"indicators\[0\]\.interval: expected an interval like '5m'"),
    ({"name": "sma", "interval": "5x"}, r"indicators\[0\]\.interval: '5x' is not an interval"),
    ({"name": "sma", "interval": "1d"}, r"indicators\[0\]\.interval: indicators run on intraday intervals"),
])
def test_validate_errors_name_the_entry_and_the_problem(entry, message):
    with pytest.raises(ValueError, match=message):
        validate_indicator(entry, "indicators[0]")


def test_make_indicator_rejects_bad_names_and_params():
    with pytest.raises(ValueError, match="unknown indicator 'foo'"):
        make_indicator("foo", {}, 1)
    with pytest.raises(ValueError, match=r"indicator sma\.period: 0 is out of range"):
        make_indicator("sma", {"period": 0}, 1)


@pytest.mark.parametrize("name,params", CASES, ids=CASE_IDS)
def test_feed_leaves_the_state_run_series_leaves(name, params):
    """feed() (history whose values nobody reads) may take a shortcut, but not to another state."""
    rng = np.random.default_rng(seed_of("feed", name, params))
    for length in (0, 1, 5, 37, 150):
        bars = random_bars(rng, length, 55.0, flat_prefix=3)
        starts = rng.random(length) < 0.05
        ran, fed = make_indicator(name, params, 3), make_indicator(name, params, 3)
        before = random_bars(rng, 7, 50.0)
        for ind in (ran, fed):
            ind.run_series(1, *before)
        ran.run_series(1, *bars, session_starts=starts)
        fed.feed(1, *bars, session_starts=starts)
        assert_bit_identical(ran.state(), fed.state(), f"{ran.key} state after {length} bars")
        more = random_bars(rng, 20, 56.0)
        assert_bit_identical(ran.run_series(1, *more), fed.run_series(1, *more), f"{ran.key} continued")
