"""The pending add/remove queue without sockets or a store: when an op is due, and the one validation."""
from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from common.config import ConfigError, ScheduledCommand
from common.domain.bars import Bars
from common.domain.calendar import TradingCalendar
from common.domain.timeconv import NS_PER_MIN, exchange_ns
from services.coordinator.day import SessionDay
from services.coordinator.errors import CommandError
from services.coordinator.symbol_ops import (
    LATER_SESSION,
    PendingOp,
    PendingOps,
    check_symbol_op,
    due_clock,
)

DAY = dt.date(2025, 7, 2)
NOON = dt.time(12, 0)


def _ctl(at_clock=None, command="add-symbol", symbols=("AAPL",)) -> PendingOp:
    return PendingOp("r", command, symbols, at_clock, None)


def _scheduled(date, time=NOON, command="add-symbol", symbols=("AAPL",)) -> PendingOp:
    return PendingOp("schedule-0", command, symbols, None, date, time)


def test_due_clock_of_every_kind_of_op():
    assert due_clock(_ctl(), DAY) is None                       # ctl without --at: the next boundary
    assert due_clock(_ctl(at_clock=123), DAY) == 123            # ctl --at: resolved when queued
    assert due_clock(_scheduled(DAY), DAY) == exchange_ns(DAY, NOON)
    assert due_clock(_scheduled(None), DAY) == exchange_ns(DAY, NOON)  # undated: resolved per session
    assert due_clock(_scheduled(DAY), DAY + dt.timedelta(days=1)) is None  # its day is past: at once
    assert due_clock(_scheduled(DAY + dt.timedelta(days=1)), DAY) == LATER_SESSION


def test_due_now_and_due_after_the_next_step():
    noon = exchange_ns(DAY, NOON)
    ops = PendingOps([_scheduled(DAY), _scheduled(DAY + dt.timedelta(days=1))])
    assert not ops.any_due(DAY, noon - NS_PER_MIN)
    assert ops.due_after_next_step(DAY, noon - NS_PER_MIN)      # the step about to go out reaches 12:00
    assert not ops.due_after_next_step(DAY, noon - 2 * NS_PER_MIN)
    assert ops.any_due(DAY, noon) and not ops.due_after_next_step(DAY, noon)
    # a past-day op is due at once, but is no "timed op ahead" to drain for
    late = PendingOps([_scheduled(DAY - dt.timedelta(days=1))])
    assert late.any_due(DAY, 0) and not late.due_after_next_step(DAY, 0)


def test_take_due_keeps_queue_order_and_the_rest():
    noon = exchange_ns(DAY, NOON)
    first, later, second = _ctl(symbols=("A",)), _ctl(at_clock=noon + NS_PER_MIN), _scheduled(DAY, symbols=("B",))
    ops = PendingOps([first, later, second])
    assert ops.take_due(DAY, noon) == [first, second]
    assert list(ops) == [later] and len(ops) == 1


def test_adds_until_leaves_out_later_sessions_and_removes():
    ops = PendingOps([_scheduled(DAY, symbols=("A",)), _scheduled(DAY + dt.timedelta(days=1), symbols=("B",)),
                      _ctl(symbols=("C", "D")), _ctl(command="remove-symbol", symbols=("E",))])
    assert ops.adds_until(DAY) == ["A", "C", "D"]


def test_schedule_date_must_be_a_session():
    sessions = [DAY, DAY + dt.timedelta(days=1)]
    entry = ScheduledCommand(dt.date(2025, 7, 4), NOON, "add-symbol", ("AAPL",))
    with pytest.raises(ConfigError, match=r"schedule\[0\].date: 2025-07-04 is not a trading session"):
        PendingOps.from_schedule((entry,), sessions)
    ops = PendingOps.from_schedule((ScheduledCommand(None, NOON, "pause", ()),), sessions)
    assert [(op.request_id, op.command, op.session_date) for op in ops] == [("schedule-0", "pause", None)]


def _bars(ts: list[int]) -> Bars:
    n = len(ts)
    return Bars(np.array(ts, np.int64), *(np.ones(n) for _ in range(5)))


@pytest.fixture()
def session() -> SessionDay:
    open_ns, close_ns = TradingCalendar().open_close_ns(DAY)
    day = SessionDay(DAY, open_ns, close_ns, ["MSFT", "RIVN"], [(0, _bars([open_ns])), (1, _bars([open_ns]))])
    day.deactivate("RIVN")
    return day


def test_add_is_refused_for_present_queued_or_dataless_symbols(session):
    reads = []

    def read_day(symbol):
        reads.append(symbol)
        return {"AAPL": _bars([session.open_ns + NS_PER_MIN]), "PRE": _bars([session.open_ns - NS_PER_MIN])}.get(symbol)

    with pytest.raises(CommandError, match="MSFT is already in the session"):
        check_symbol_op("add-symbol", "MSFT", session, read_day=read_day)
    with pytest.raises(CommandError, match="AAPL is already queued to be added today"):
        check_symbol_op("add-symbol", "AAPL", session, read_day=read_day, queued_adds={"AAPL"})
    assert reads == []  # refused before any read
    with pytest.raises(CommandError, match="ZZZZ: no data in the store for session 2025-07-02"):
        check_symbol_op("add-symbol", "ZZZZ", session, read_day=read_day)
    with pytest.raises(CommandError, match="PRE: no data"):  # extended hours only
        check_symbol_op("add-symbol", "PRE", session, read_day=read_day)
    check_symbol_op("add-symbol", "AAPL", session, read_day=read_day)
    check_symbol_op("add-symbol", "RIVN", session, read_day=lambda s: _bars([session.open_ns]))  # removed: again


def test_remove_needs_an_active_symbol(session):
    check_symbol_op("remove-symbol", "MSFT", session)
    for symbol in ("RIVN", "AAPL"):
        with pytest.raises(CommandError, match=f"{symbol} is not in the session"):
            check_symbol_op("remove-symbol", symbol, session)
