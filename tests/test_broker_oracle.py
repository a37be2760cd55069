"""Oracle: backtrader runs the same SMA-cross strategy on the same bars; fills and final equity must match.

Rules both engines share here: an order placed on bar t is decided on bar t+1 (the next bar the feed
has, so a missing minute is skipped the same way); a market order fills at that bar's open; a buy limit
fills at the open when the bar opens at or below the limit, else at the limit when the low reaches it
(sells mirrored); commission per share, no slippage, no volume cap. Differences outside these cases are
listed in docs/architecture.md ("Orders and fills").
"""
from __future__ import annotations

import datetime as dt

import pyarrow.parquet as pq
import pytest

from conftest import SHARED_REAL, Pipeline, write_config
from support.realdata import one_day_copy

bt = pytest.importorskip("backtrader")

CASH, PER_SHARE, QTY, FAST, SLOW, OFFSET = 100_000.0, 0.005, 10, 5, 20, 0.05
REAL_DAY = "2025-07-02"


def sma(values, n):
    return sum(values[-n:]) / n


class BtSmaCross(bt.Strategy):
    """strategies.trading:SmaCrossTrader, written for backtrader."""
    params = dict(order_type="market")

    def __init__(self):
        self.closes, self.pending, self.fills = [], None, []

    def notify_order(self, order):
        if order.status == order.Completed:
            when = bt.num2date(order.executed.dt).replace(tzinfo=dt.timezone.utc)
            self.fills.append((round(when.timestamp()) * 10**9, order.executed.price, order.executed.size))
        if order.status in (order.Completed, order.Canceled, order.Margin, order.Rejected, order.Expired):
            self.pending = None

    def next(self):
        closes = self.closes
        closes.append(self.data.close[0])
        if len(closes) <= SLOW or self.pending is not None:
            return
        before = closes[:-1]
        up = sma(before, FAST) <= sma(before, SLOW) and sma(closes, FAST) > sma(closes, SLOW)
        down = sma(before, FAST) >= sma(before, SLOW) and sma(closes, FAST) < sma(closes, SLOW)
        held = self.position.size
        close = self.data.close[0]
        if up and held == 0:
            self.pending = self._send(self.buy, QTY, close - OFFSET)
        elif down and held > 0:
            self.pending = self._send(self.sell, held, close + OFFSET)

    def _send(self, side, size, limit):
        if self.p.order_type == "limit":
            return side(size=size, exectype=bt.Order.Limit, price=round(limit, 2))
        return side(size=size)


def backtrader_run(store, calendar, symbol, start, end, order_type):
    import pandas as pd

    frames = []
    for day in calendar.sessions(start, end):
        open_ns, close_ns = calendar.open_close_ns(day)
        bars, _ = store.read_session(symbol, day, open_ns, close_ns)
        frames.append(pd.DataFrame({"open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close,
                                    "volume": bars.volume}, index=pd.to_datetime(bars.ts, unit="ns")))
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(bt.feeds.PandasData(dataname=pd.concat(frames), openinterest=None))
    cerebro.addstrategy(BtSmaCross, order_type=order_type)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=PER_SHARE, commtype=bt.CommInfoBase.COMM_FIXED, stocklike=True)
    strategy = cerebro.run()[0]
    return strategy.fills, cerebro.broker.getvalue()


def engine_run(tmp, store, symbol, start, end, order_type):
    trader = {"class": "strategies.trading:SmaCrossTrader", "name": "sma",
              "params": {"fast": FAST, "slow": SLOW, "qty": QTY, "order_type": order_type, "offset": OFFSET,
                         "tif": "gtc"}}
    config = write_config(tmp, store.root, session={"start_date": start, "end_date": end, "symbols": [symbol]},
                          historical=[], strategies=[trader], stages=["processor", "quality", "analysis", "broker"],
                          broker={"starting_cash": CASH, "commission": {"per_share": PER_SHARE}})
    pipe = Pipeline(tmp, config)
    codes = pipe.wait(timeout=180)
    assert set(codes.values()) == {0}, pipe.all_logs()
    folder = tmp / "results" / "latest" / "broker"
    fills = [(f["ts_ns"], f["price"], f["qty"]) for f in pq.read_table(folder / "fills.parquet").to_pylist()]
    return fills, pq.read_table(folder / "equity.parquet").to_pylist()[-1]["equity"]


def assert_same(ours, theirs):
    (fills, equity), (bt_fills, bt_equity) = ours, theirs
    assert len(fills) >= 4, "the case should trade"
    # backtrader reports a fill's price as a running average (price * size / size): equal to 1e-9
    assert [(t, q) for t, _, q in fills] == [(t, q) for t, _, q in bt_fills]
    assert [p for _, p, _ in fills] == pytest.approx([p for _, p, _ in bt_fills], abs=1e-9)
    assert equity == pytest.approx(bt_equity, abs=1e-9)


@pytest.fixture(scope="module")
def real_store(tmp_path_factory):
    if not SHARED_REAL.exists():
        pytest.skip("../shared/data/real not present")
    from common.data.store import BarStore
    from services.ctl.csvimport import import_csv

    store = BarStore(tmp_path_factory.mktemp("oracle-real"))
    csv = one_day_copy(SHARED_REAL / "AAPL_2025-07-02_1m_extended.csv", REAL_DAY, tmp_path_factory.mktemp("csv"))
    import_csv(store, csv, symbol="AAPL")
    return store


@pytest.mark.parametrize("order_type", ["market", "limit"])
def test_real_aapl_day_matches_backtrader(tmp_path, real_store, calendar, order_type):
    ours = engine_run(tmp_path, real_store, "AAPL", REAL_DAY, REAL_DAY, order_type)
    assert_same(ours, backtrader_run(real_store, calendar, "AAPL", REAL_DAY, REAL_DAY, order_type))


@pytest.mark.parametrize("order_type", ["market", "limit"])
def test_generated_days_match_backtrader(tmp_path, sample_store, calendar, order_type):
    start, end = "2025-06-30", "2025-07-07"
    ours = engine_run(tmp_path, sample_store, "MSFT", start, end, order_type)
    assert_same(ours, backtrader_run(sample_store, calendar, "MSFT", start, end, order_type))
