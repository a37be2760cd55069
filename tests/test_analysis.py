"""What strategies see, in process (engine + real handlers): declared indicators, clear errors with a
traceback, history before on_session_start, one time type."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from common.config import StrategyEntry  # noqa: F401  (the strategies below are loaded by module path)
from common.domain.timeconv import NS_PER_MIN
from support.inline import run_inline

DAY = "2025-07-02"


class ReadsUndeclared:
    def on_bar(self, ctx, symbol, interval, bar):
        ctx.indicator(symbol, "5m", "sma(7)")


class DeclaresSma7:
    indicators = {"5m": ["sma(7)"]}

    def __init__(self):
        self.values = {}

    def on_bar(self, ctx, symbol, interval, bar):
        if interval == "5m":
            self.values[bar.ts] = float(ctx.indicator(symbol, "5m", "sma(7)")[-1])


class SeesTime:
    def __init__(self):
        self.seen, self.session_start = [], None

    def on_session_start(self, ctx, date):
        self.session_start = (len(ctx.history("MSFT", "1m")), len(ctx.history("MSFT", "1d")))

    def on_bar(self, ctx, symbol, interval, bar):
        if interval == "1m":
            self.seen.append((ctx.clock, bar.ts, ctx.now().hour, bar.datetime.tzname()))


def _config(name: str, **extra) -> dict:
    return {"session": {"start_date": DAY, "end_date": DAY, "symbols": ["MSFT"], "streams": ["1m", "5m"]},
            "historical": [{"trailing_days": 2, "intervals": ["1m", "1d"]}],
            "strategies": [{"class": f"test_analysis:{name}", "name": name.lower()}], **extra}


def _strategy(analysis, name):
    return next(st for n, st, _ in analysis.strategies if n == name.lower())


def test_reading_an_undeclared_indicator_disables_the_strategy_with_where_to_declare_it(
        sample_store, calendar, tmp_path, caplog):
    with caplog.at_level(logging.ERROR):
        analysis = run_inline(_config("ReadsUndeclared"), sample_store, calendar, tmp_path)
    assert "readsundeclared" in analysis.disabled
    line = next(r.getMessage() for r in caplog.records if "raised in on_bar" in r.getMessage())
    assert "IndicatorNotComputed: indicator 5m sma(7) is not computed in this session" in line
    assert "config's \"indicators\"" in line and "docs/indicators.md" in line
    assert "test_analysis.py:" in line and "in on_bar" in line.split("traceback:")[1]  # file:line of the raise


def test_a_declared_indicator_is_computed_like_a_configured_one(sample_store, calendar, tmp_path):
    declared = _strategy(run_inline(_config("DeclaresSma7"), sample_store, calendar, tmp_path / "a"), "DeclaresSma7")
    configured = _strategy(run_inline(
        _config("DeclaresSma7", indicators=[{"name": "sma", "interval": "5m", "params": {"period": 7}}]),
        sample_store, calendar, tmp_path / "b"), "DeclaresSma7")
    assert len(declared.values) == 78 and declared.values.keys() == configured.values.keys()
    assert np.array_equal(list(declared.values.values()), list(configured.values.values()), equal_nan=True)
    assert not np.isnan(list(declared.values.values())).all()


def test_a_bad_declaration_fails_at_start_naming_the_strategy(sample_store, calendar, tmp_path):
    class Bad:
        indicators = {"30m": ["sma(7)"]}

    import test_analysis
    test_analysis.Bad = Bad
    with pytest.raises(ValueError, match=r"strategy bad: indicators\[0\].interval: 30m is not an interval of this "
                                         r"session \(1m, 5m\); add it to session.streams"):
        run_inline(_config("Bad"), sample_store, calendar, tmp_path)


def test_history_is_in_place_before_on_session_start_and_times_are_int_ns(sample_store, calendar, tmp_path):
    strategy = _strategy(run_inline(_config("SeesTime"), sample_store, calendar, tmp_path), "SeesTime")
    assert strategy.session_start[0] > 0 and strategy.session_start[1] == 2  # 1m history and two 1d bars
    clock, ts, hour, tz = strategy.seen[0]
    assert isinstance(clock, int) and isinstance(ts, int) and clock == ts + NS_PER_MIN
    assert hour == 9 and tz == "EDT"
