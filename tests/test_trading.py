"""The shared exchange without processes: fill rules, costs, buying power, the close, removed symbols."""
from __future__ import annotations

import numpy as np
import pytest

from common.config import BrokerConfig, ConfigError, parse_config
from common.domain.bars import Bars
from common.domain.orders import OrderError, OrderStatus, decode_action, order_request, Action
from common.trading.exchange import Exchange

T0 = 1_751_463_000_000_000_000  # 2025-07-02 09:30 ET
MIN = 60 * 10**9


def bars(*rows, volume=1_000_000.0):
    """rows of (open, high, low, close), one symbol each (slot = position)."""
    arr = np.array(rows, dtype=np.float64)
    n = len(rows)
    return Bars(np.full(n, T0, np.int64), arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy(),
                np.full(n, volume))


def exchange(**config):
    ex = Exchange(BrokerConfig(**config), ["s"])
    ex.new_session(["AAPL", "MSFT"], T0)
    ex.on_bars(T0, np.array([0, 1]), bars((100, 101, 99, 100), (50, 51, 49, 50)))  # prices known
    ex.take_events()
    return ex


def step(ex, row, slot=0, volume=1_000_000.0):
    ex.on_bars(T0 + MIN, np.array([slot]), bars(row, volume=volume))
    return [e for e in ex.take_events() if e[0] == "fill"]


def place(ex, qty, **kw):
    return ex.place("s", order_request("AAPL", qty, **kw), T0)


@pytest.mark.parametrize("kw, row, price", [
    ({}, (101, 102, 100, 101), 101.0),                                        # market: the open
    ({"type": "limit", "limit": 100.5}, (101, 102, 100, 101), 100.5),         # limit reached intrabar
    ({"type": "limit", "limit": 100.5}, (99, 102, 98, 101), 99.0),            # gap through: the open
    ({"type": "limit", "limit": 99.5}, (101, 102, 100, 101), None),           # never reached: waits
    ({"type": "stop", "stop": 101.5}, (101, 102, 100, 101), 101.5),           # stop reached intrabar
    ({"type": "stop", "stop": 101.5}, (103, 104, 102, 103), 103.0),           # gap through the stop
    ({"type": "stop", "stop": 105.0}, (101, 102, 100, 101), None),
    ({"type": "stop_limit", "stop": 101.5, "limit": 102.0}, (101, 102, 100, 101), 101.5),
    ({"type": "stop_limit", "stop": 101.5, "limit": 101.0}, (101, 102, 100.5, 101), 101.0),
    ({"type": "stop_limit", "stop": 101.5, "limit": 101.0}, (103, 104, 102, 103), None),  # gap above the limit
])
def test_buy_fill_rules(kw, row, price):
    ex = exchange()
    place(ex, 10, **kw)
    fills = step(ex, row)
    assert [f[1].price for f in fills] == ([] if price is None else [price])


@pytest.mark.parametrize("kw, row, price", [
    ({"type": "limit", "limit": 101.5}, (101, 102, 100, 101), 101.5),
    ({"type": "limit", "limit": 101.5}, (103, 104, 102, 103), 103.0),
    ({"type": "stop", "stop": 99.5}, (101, 102, 99, 101), 99.5),
    ({"type": "stop", "stop": 99.5}, (98, 99, 97, 98), 98.0),
])
def test_sell_fill_rules(kw, row, price):
    ex = exchange(shorting=True)
    place(ex, -10, **kw)
    assert [f[1].price for f in step(ex, row)] == [price]


def test_an_order_waits_while_its_symbol_has_no_bar():
    ex = exchange()
    place(ex, 10)
    assert step(ex, (50, 51, 49, 50), slot=1) == []
    assert [f[1].price for f in step(ex, (102, 103, 101, 102))] == [102.0]


def test_slippage_and_commission_models():
    ex = exchange(slippage=("fixed", 0.02), commission=("per_share", 0.005), commission_minimum=1.0)
    place(ex, 10)
    (fill,) = [f[1] for f in step(ex, (101, 102, 100, 101))]
    assert fill.price == pytest.approx(101.02) and fill.commission == 1.0  # 10 x 0.005 < the minimum
    ex = exchange(slippage=("bps", 10), commission=("bps", 1.0))
    place(ex, 100)
    (fill,) = [f[1] for f in step(ex, (100, 102, 99, 101))]
    assert fill.price == pytest.approx(100.1) and fill.commission == pytest.approx(100 * 100.1 * 1e-4)
    ex = exchange(commission=("per_order", 1.5), volume_cap=0.001)
    place(ex, 10)
    first = [f[1].commission for f in step(ex, (100, 102, 99, 101), volume=6000)]
    second = [f[1].commission for f in step(ex, (100, 102, 99, 101), volume=6000)]
    assert first == [1.5] and second == [0.0]  # per order: charged on the first fill only


def test_volume_cap_gives_partial_fills_until_done():
    ex = exchange(volume_cap=0.1)
    order = place(ex, 250)
    sizes = [f[1].qty for _ in range(3) for f in step(ex, (100, 101, 99, 100), volume=1000)]
    assert sizes == [100.0, 100.0, 50.0]
    assert order.status is OrderStatus.FILLED and ex.accounts["s"].qty("AAPL") == 250


def test_buying_power_and_short_selling():
    ex = exchange()
    assert place(ex, 2000).status is OrderStatus.REJECTED  # 2000 x 100 > 100,000
    assert "insufficient buying power" in ex.accounts["s"].orders[1].reason
    assert place(ex, -1).status is OrderStatus.REJECTED     # nothing held, shorting off
    assert place(ex, 2000, type="limit", limit=49.99).status is OrderStatus.ACCEPTED
    assert place(ex, 10).status is OrderStatus.REJECTED     # the limit order holds the cash back
    ex = exchange(margin=True, shorting=True)
    assert place(ex, 2000).status is OrderStatus.ACCEPTED and place(ex, -5000).status is OrderStatus.ACCEPTED


def test_day_orders_expire_at_the_close_gtc_orders_stay_and_flatten_at_close():
    ex = exchange(flatten_at_close=True)
    day = place(ex, 10, type="limit", limit=50)
    gtc = place(ex, 10, type="limit", limit=50, tif="gtc")
    place(ex, 5)
    step(ex, (100, 101, 99, 100.5))
    ex.end_session(T0 + 390 * MIN)
    events = ex.take_events()
    assert day.status is OrderStatus.EXPIRED and gtc.status is OrderStatus.ACCEPTED
    flat = [e[1] for e in events if e[0] == "fill"]
    assert [(f.qty, f.price) for f in flat] == [(-5.0, 100.5)]
    assert ex.accounts["s"].positions == {}
    assert ex.equity("s") == pytest.approx(100_000 + 5 * (100.5 - 100))


def test_a_removed_symbol_cancels_its_orders_and_is_flattened():
    ex = exchange()
    place(ex, 5)
    step(ex, (100, 101, 99, 102))
    pending = place(ex, 1, type="limit", limit=90)
    ex.remove_symbol("AAPL", T0 + 2 * MIN)
    assert pending.status is OrderStatus.CANCELLED and ex.accounts["s"].qty("AAPL") == 0
    assert place(ex, 1).status is OrderStatus.REJECTED  # no longer in the session


def test_realized_pnl_and_average_cost_through_a_flip():
    ex = exchange(shorting=True)
    place(ex, 10)
    step(ex, (100, 101, 99, 100))
    place(ex, -15)
    step(ex, (110, 111, 109, 110))
    acct = ex.accounts["s"]
    assert acct.realized == pytest.approx(100.0) and acct.qty("AAPL") == -5
    assert acct.positions["AAPL"].avg_cost == 110.0


def test_order_fields_are_checked_by_name():
    for kwargs, message in (({"qty": 0}, "qty:"), ({"type": "foo"}, "type:"), ({"type": "limit"}, "limit: required"),
                            ({"limit": 5}, "limit: not allowed"), ({"type": "stop", "stop": -1}, "stop:"),
                            ({"tif": "ioc"}, "tif:")):
        args = {"symbol": "AAPL", "qty": 1, **kwargs}
        with pytest.raises(OrderError, match=message):
            order_request(**args)


def test_actions_round_trip_and_bad_ones_are_named():
    request = order_request("AAPL", -3, type="stop_limit", stop=10, limit=9.5, tif="gtc")
    action = Action(7, "s", "new", 4, request)
    assert decode_action(action.encode()) == action
    assert decode_action(Action(8, "s", "cancel", 4).encode()).kind == "cancel"
    assert decode_action(Action(8, "s", "cancel", 4, part=3).encode()).at == (8, 3)
    for bad in ([1, 0, "s", "new", 1, "AAPL"], "x", [1, 0, "s", "new", 1, "AAPL", 0, "market", None, None, "day"],
                [1, -1, "s", "cancel", 1], [1, "s", "new", 1, "AAPL", 1, "market", None, None, "day"]):
        with pytest.raises(OrderError):
            decode_action(bad)


def test_order_status_moves_only_along_its_transitions():
    ex = exchange()
    order = place(ex, 1)
    step(ex, (100, 101, 99, 100))
    with pytest.raises(RuntimeError, match="filled -> cancelled"):
        order.move(OrderStatus.CANCELLED, 0)
    assert not ex.cancel("s", order.id, 0)


@pytest.mark.parametrize("broker, message", [
    ({"commission": {"per_share": 0.01, "bps": 1}}, "broker.commission: give exactly one"),
    ({"commission": {"per_trade": 1}}, "broker.commission.per_trade: unknown key"),
    ({"slippage": {"fixed": -1}}, "broker.slippage.fixed: -1 must be >= 0"),
    ({"volume_cap": 2}, "broker.volume_cap: 2 is not in"),
    ({"starting_cash": 0}, "broker.starting_cash"),
    ({"margin": "yes"}, "broker.margin: expected true or false"),
    ({"on_remove": "sell"}, "broker.on_remove"),
])
def test_broker_config_errors_name_the_json_path(broker, message):
    cfg = {"session": {"start_date": "2025-07-02", "end_date": "2025-07-02", "symbols": ["AAPL"]}, "broker": broker}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_config(cfg)


def test_the_broker_books_a_message_once_the_orders_before_it_are_in():
    """ORDERS for seq 2 arrive after STEP 3: STEP 3 waits until a stamp says every trader is through 2."""
    import logging

    from common.wire import protocol as P
    from services.broker.booking import Booking

    booked = []
    booking = Booking(lambda msg, actions: booked.append((msg.seq, [a.order_id for _, a in actions])),
                      logging.getLogger("test"))

    def coordinator(seq, kind=P.STEP, stamp=0, **body):
        return P.Message(kind, {**body, "orders_through": stamp}, seq=seq)

    new = Action(2, "s", "new", 1, order_request("AAPL", 1)).encode()
    booking.receive(coordinator(1, P.SESSION_START))
    booking.receive(coordinator(2, stamp=1))
    booking.receive(coordinator(3, stamp=1))          # the trader has not sent what it placed at 2
    assert booked == [(1, []), (2, [])]
    booking.receive(coordinator(4, P.ORDERS, stamp=1, stage="analysis", actions=[new]))
    booking.receive(coordinator(5, stamp=2))
    assert booked == [(1, []), (2, []), (3, [1])]     # 5 waits for what was placed at 3
    booking.receive(coordinator(6, P.BACKTEST_END, stamp=3))
    assert [seq for seq, _ in booked] == [1, 2, 3, 5, 6]
