"""The broker's records: every order's last state, every fill, positions at each close, equity at each
step, and round-trip trades (flat -> position -> flat; a fill through zero closes one and opens the next)."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from common.domain.orders import Fill, Order
from common.domain.timeconv import fmt_exchange
from common.trading import checkpoint
from common.trading.exchange import Exchange


@dataclass(slots=True)
class Trip:
    """One round trip of one account in one symbol."""
    account: str
    symbol: str
    direction: float          # +1 long, -1 short
    entry_ts: int
    qty: float = 0.0          # open shares (signed)
    bought: float = 0.0       # shares and value bought / sold over the trip
    bought_value: float = 0.0
    sold: float = 0.0
    sold_value: float = 0.0
    commission: float = 0.0

    def row(self, exit_ts: int) -> dict:
        entry_qty = self.bought if self.direction > 0 else self.sold
        entry_value = self.bought_value if self.direction > 0 else self.sold_value
        exit_value = self.sold_value if self.direction > 0 else self.bought_value
        gross = self.sold_value - self.bought_value
        return {"account": self.account, "symbol": self.symbol, "side": "long" if self.direction > 0 else "short",
                "entry_ts_ns": self.entry_ts, "exit_ts_ns": exit_ts, "qty": entry_qty,
                "entry_price": entry_value / entry_qty, "exit_price": exit_value / entry_qty,
                "pnl_gross": gross, "commission": self.commission, "pnl": gross - self.commission}


class Ledger:
    """Rows are built when asked for (orders keep changing until they close; formatting times costs)."""

    def __init__(self):
        self._orders: dict[tuple[str, int], tuple[Order, str]] = {}   # the order itself, its session date
        self._fills: list[tuple[Fill, str]] = []
        self.positions: list[dict] = []
        self._equity: list[tuple] = []
        self._trades: list[dict] = []
        self.open_trips: dict[tuple[str, str], Trip] = {}
        self.day_end_equity: dict[str, list[tuple[str, float]]] = {}
        self._saved = (0, 0, 0, 0)        # fills, equity, trades, positions already in a checkpoint
        self._fresh: list[tuple[str, int]] = []       # orders recorded since the last checkpoint
        self._still_open: list[tuple[str, int]] = []  # orders open at the last checkpoint (they may change)

    # ---- checkpoints: what a broker restarted on a later day reads back (services/broker/handler.py) ---
    def delta(self) -> dict:
        """The records since the last delta, as plain values; orders: the new ones and those open then."""
        f, e, t, p = self._saved
        orders, still_open = [], []
        for key in self._still_open + self._fresh:
            order, date = self._orders[key]
            orders.append([checkpoint.order_values(order), date])
            if order.status.open:
                still_open.append(key)
        self._still_open, self._fresh = still_open, []
        out = {"orders": orders, "fills": [[*fill, date] for fill, date in self._fills[f:]],
               "equity": self._equity[e:], "trades": self._trades[t:], "positions": self.positions[p:],
               "day_end_equity": self.day_end_equity,
               "open_trips": [dataclasses.astuple(trip) for trip in self.open_trips.values()]}
        self._saved = (len(self._fills), len(self._equity), len(self._trades), len(self.positions))
        return out

    def add_delta(self, delta: dict, open_orders: dict) -> None:
        """Records of a checkpoint, in order; an open order is the exchange's own object (`open_orders`)."""
        for values, date in delta["orders"]:
            key = (values[1], values[0])
            self._orders[key] = (open_orders.get(key) or checkpoint.order_from(values), date)
        self._still_open = [key for key, (order, _) in self._orders.items() if order.status.open]
        self._fills += [(Fill(*v[:8]), v[8]) for v in delta["fills"]]
        self._equity += [tuple(row) for row in delta["equity"]]
        self._trades += delta["trades"]
        self.positions += delta["positions"]
        self.day_end_equity = {name: [tuple(x) for x in rows] for name, rows in delta["day_end_equity"].items()}
        self.open_trips = {(v[0], v[1]): Trip(*v) for v in delta["open_trips"]}
        self._saved = (len(self._fills), len(self._equity), len(self._trades), len(self.positions))

    def record(self, events: list[tuple], session_date: str) -> None:
        for event in events:
            if event[0] == "order":
                key = (event[1].account, event[1].id)
                if key not in self._orders:
                    self._orders[key] = (event[1], session_date)
                    self._fresh.append(key)
            else:
                self._fills.append((event[1], session_date))
                self._trip(event[1])

    @property
    def orders(self) -> dict[tuple[str, int], dict]:
        return {key: {**order.as_row(), "session_date": date} for key, (order, date) in self._orders.items()}

    @property
    def fills(self) -> list[dict]:
        return [{**fill.as_row(), "time": fmt_exchange(fill.ts, with_date=True), "session_date": date}
                for fill, date in self._fills]

    @property
    def trades(self) -> list[dict]:
        return [{**t, "entry": fmt_exchange(t["entry_ts_ns"], with_date=True),
                 "exit": fmt_exchange(t["exit_ts_ns"], with_date=True)} for t in self._trades]

    @property
    def equity(self) -> list[dict]:
        return [{"clock_ns": clock, "time": fmt_exchange(clock, with_date=True), "account": name, "cash": cash,
                 "position_value": value, "equity": cash + value, "exposed": exposed}
                for clock, name, cash, value, exposed in self._equity]

    def _trip(self, fill: Fill) -> None:
        key = (fill.account, fill.symbol)
        left, fee, price = fill.qty, fill.commission, fill.price
        trips = self.open_trips
        while abs(left) > 1e-12:
            trip = trips.get(key)
            if trip is None:
                trip = trips[key] = Trip(fill.account, fill.symbol, 1.0 if left > 0 else -1.0, fill.ts)
            held = trip.qty
            # closing: as much of the fill as the trip holds (the rest opens the next trip)
            part = math.copysign(min(abs(left), abs(held)), left) if held and (held > 0) != (left > 0) else left
            share = fee * abs(part) / abs(fill.qty)
            if part > 0:
                trip.bought, trip.bought_value = trip.bought + part, trip.bought_value + part * price
            else:
                trip.sold, trip.sold_value = trip.sold - part, trip.sold_value - part * price
            trip.commission += share
            trip.qty += part
            left -= part
            if abs(trip.qty) < 1e-12:
                self._trades.append(trip.row(fill.ts))
                del trips[key]

    def mark_step(self, clock: int, exchange: Exchange) -> None:
        prices = exchange.last.tolist()
        for name, acct in exchange.accounts.items():
            value = exchange.position_value(name, prices) if acct.positions else 0.0
            self._equity.append((clock, name, acct.cash, value, bool(acct.positions)))

    def close_day(self, date: str, exchange: Exchange) -> None:
        for name, acct in exchange.accounts.items():
            for symbol in sorted(acct.positions):
                pos, price = acct.positions[symbol], exchange.price(symbol)
                self.positions.append({"session_date": date, "account": name, "symbol": symbol, "qty": pos.qty,
                                       "avg_cost": pos.avg_cost, "last_price": price,
                                       "market_value": pos.qty * price,
                                       "unrealized": pos.qty * (price - pos.avg_cost)})
            self.day_end_equity.setdefault(name, []).append((date, exchange.equity(name)))
