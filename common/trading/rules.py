"""Fill rules and costs: at what price and for how many shares an order trades on one bar, and what it costs.

No look-ahead: an order placed while the clock is T is decided on the bar that opens at T, the first bar
its strategy has not seen (STEP T+1 carries it). On that bar:

- market: at the open, plus slippage;
- limit: when the bar trades through the limit: at the open when it opens through it (a gap), else at
  the limit (buy: low <= limit; sell: high >= limit); no slippage;
- stop: triggered when the bar trades through the stop (at the open on a gap, else at the stop), then it
  fills at that price plus slippage, like a market order;
- stop-limit: triggered like a stop; then a limit order from the trigger price on: it fills at the
  trigger price when that is within the limit, else at the limit when the bar reaches it after the
  trigger (buy: low <= limit). A triggered stop-limit that did not fill stays a limit order;
- `volume_cap`: a fill takes at most floor(cap x bar volume) shares; the rest waits for the next bar.

A symbol without a bar in a minute trades nothing: its orders wait.
"""
from __future__ import annotations

import math

from common.config import BrokerConfig
from common.domain.orders import Order, OrderType


def _through_limit(buy: bool, limit: float, o: float, h: float, low: float) -> float | None:
    if buy:
        return o if o <= limit else (limit if low <= limit else None)
    return o if o >= limit else (limit if h >= limit else None)


def _trigger(buy: bool, stop: float, o: float, h: float, low: float) -> float | None:
    if buy:
        return o if o >= stop else (stop if h >= stop else None)
    return o if o <= stop else (stop if low <= stop else None)


def bar_price(order: Order, o: float, h: float, low: float) -> tuple[float | None, bool]:
    """(price the order trades at on this bar or None, whether slippage applies); marks a stop triggered."""
    r = order.request
    buy = r.qty > 0
    if r.type is OrderType.MARKET:
        return o, True
    if r.type is OrderType.LIMIT:
        return _through_limit(buy, r.limit, o, h, low), False
    if order.triggered:
        trigger = o  # triggered on an earlier bar: live from this bar's open
    else:
        trigger = _trigger(buy, r.stop, o, h, low)
        if trigger is None:
            return None, False
        order.triggered = True
    if r.type is OrderType.STOP:
        return trigger, True
    within = trigger <= r.limit if buy else trigger >= r.limit
    if within:
        return trigger, False
    reaches = low <= r.limit if buy else h >= r.limit
    return (r.limit if reaches else None), False


def slipped(config: BrokerConfig, price: float, buy: bool) -> float:
    """The price after slippage, always against the trader."""
    model, amount = config.slippage
    if model == "fixed":
        return price + amount if buy else price - amount
    if model == "bps":
        return price * (1 + amount / 1e4) if buy else price * (1 - amount / 1e4)
    return price


def fillable(config: BrokerConfig, remaining: float, volume: float) -> float:
    """Shares an order may take on a bar of `volume` (the volume cap), at most `remaining`."""
    if config.volume_cap is None:
        return remaining
    return min(remaining, float(math.floor(config.volume_cap * volume)))


def commission(config: BrokerConfig, shares: float, price: float, first_fill: bool) -> float:
    """Commission of one fill: per share (with a minimum per fill), per order (on its first fill) or basis
    points of the notional (with the minimum)."""
    model, rate = config.commission
    if model == "per_share":
        return max(shares * rate, config.commission_minimum)
    if model == "per_order":
        return rate if first_fill else 0.0
    if model == "bps":
        return max(shares * price * rate / 1e4, config.commission_minimum)
    return 0.0


def reference_price(order_type: OrderType, limit: float | None, stop: float | None, last: float) -> float:
    """The price a buying-power check assumes: the limit, else the stop, else the last close."""
    if limit is not None:
        return limit
    return stop if stop is not None else last
