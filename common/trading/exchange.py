"""The simulated exchange of a set of accounts: orders in, fills out, deterministically.

The same class runs inside each analysis process (its strategies' accounts: ctx.position, ctx.cash and
the on_fill callbacks come from it at once, with no round trip) and inside the broker process (the book
of record: every trading stage's accounts, rebuilt from the coordinator's stream). Both feed it the same
inputs in the same order - a session's symbols, each step's 1m bars, the orders placed at each
coordinator message, the session end - so both decide the same fills (docs/architecture.md, "Orders
and fills"). Accounts never compete: each account trades against the whole bar.

Events (`events`): ("order", Order) on every status change, ("fill", Fill, Order) per fill.
"""
from __future__ import annotations

import math

import numpy as np

from common.config import BrokerConfig
from common.domain.bars import Bars
from common.domain.orders import Fill, Order, OrderRequest, OrderStatus, OrderType
from common.trading import rules
from common.trading.account import Account
from common.wire import protocol as P


class Exchange:
    def __init__(self, config: BrokerConfig, accounts=()):
        self.config = config
        self.accounts: dict[str, Account] = {}
        for name in accounts:
            self.open_account(name)
        self.symbols: list[str] = []          # the session's slot table
        self.slot_of: dict[str, int] = {}
        self.active: set[str] = set()
        self.last = np.empty(0)               # last close per slot (NaN before the first bar)
        self.last_known: dict[str, float] = {}  # last close by symbol, carried across sessions
        self.clock = 0
        self.events: list[tuple] = []
        self.working = 0                      # open orders over all accounts (0: a step is only prices)

    def open_account(self, name: str) -> Account:
        if name not in self.accounts:
            self.accounts[name] = Account(name, self.config.starting_cash)
        return self.accounts[name]

    # ---- the session -------------------------------------------------------------------------------
    def new_session(self, symbols: list[str], clock: int) -> None:
        self._remember_prices()
        self.symbols = list(symbols)
        self.slot_of = {s: i for i, s in enumerate(self.symbols)}
        self.active = set(self.symbols)
        self.last = np.array([self.last_known.get(s, math.nan) for s in self.symbols], dtype=np.float64)
        self.clock = clock

    def _remember_prices(self) -> None:
        for symbol, price in zip(self.symbols, self.last.tolist()):
            if not math.isnan(price):
                self.last_known[symbol] = price

    def add_symbol(self, symbol: str, slot: int, bars: Bars) -> None:
        """A symbol caught up mid-session: its last close prices it; its catch-up bars fill nothing."""
        while len(self.symbols) <= slot:
            self.symbols.append("")
        self.symbols[slot] = symbol
        self.slot_of[symbol] = slot
        self.active.add(symbol)
        last = np.full(len(self.symbols), math.nan)
        last[: len(self.last)] = self.last
        last[slot] = float(bars.close[-1]) if len(bars) else self.last_known.get(symbol, math.nan)
        self.last = last

    def price(self, symbol: str) -> float:
        slot = self.slot_of.get(symbol)
        value = float(self.last[slot]) if slot is not None else math.nan
        return self.last_known.get(symbol, math.nan) if math.isnan(value) else value

    # ---- orders ------------------------------------------------------------------------------------
    def place(self, account: str, request: OrderRequest, clock: int) -> Order:
        """Accept or reject an order (buying power, symbol); it is decided from the next bar on."""
        acct = self.accounts.get(account) or self.open_account(account)
        oid = acct.next_id
        acct.next_id = oid + 1
        order = acct.orders[oid] = Order(oid, account, request, clock, updated_clock=clock)
        # the last close is only needed by a buy at market (its buying-power check and what it holds back)
        at_market = request.limit is None and request.stop is None
        last = self.price(request.symbol) if at_market and request.qty > 0 else math.nan
        reference = rules.reference_price(request.type, request.limit, request.stop, last)
        problem = self._refusal(acct, request, reference)
        if problem:
            order.status, order.reason = OrderStatus.REJECTED, problem
        else:
            order.reserve_price = 0.0 if reference != reference else reference
            self._open(acct, order)
        self.events.append(("order", order))
        return order

    def refuse(self, account: str, request: OrderRequest, clock: int, reason: str) -> Order:
        """An order rejected before any check (placed when no bar is left to decide it)."""
        acct = self.accounts.get(account) or self.open_account(account)
        order = acct.orders[acct.next_id] = Order(acct.next_id, account, request, clock, OrderStatus.REJECTED,
                                                  reason=reason, updated_clock=clock)
        acct.next_id += 1
        self.events.append(("order", order))
        return order

    def _open(self, acct: Account, order: Order) -> None:
        acct.open_ids[order.id] = None
        acct.hold(order, abs(order.request.qty))
        self.working += 1

    def _refusal(self, acct: Account, r: OrderRequest, ref: float) -> str:
        if r.symbol not in self.active:
            return f"{r.symbol} is not in the session"
        if r.qty > 0 and not self.config.margin:
            if math.isnan(ref):
                return f"no price known for {r.symbol} yet: a market buy needs one for the buying-power check"
            need = ref * r.qty + rules.commission(self.config, r.qty, ref, True)
            if need > acct.cash - acct.held_cash + 1e-9:
                return f"insufficient buying power: needs {need:.2f}, available {acct.cash - acct.held_cash:.2f}"
        if r.qty < 0 and not self.config.shorting:
            available = acct.qty(r.symbol) - acct.held_shares.get(r.symbol, 0.0)
            if -r.qty > available + 1e-9:
                return f"short selling is off: sells {-r.qty:g} {r.symbol}, holds {available:g} not already for sale"
        return ""

    def cancel(self, account: str, order_id: int, clock: int) -> bool:
        """Cancel an open order; False when there is no such open order."""
        acct = self.accounts.get(account)
        order = acct.orders.get(order_id) if acct else None
        if order is None or not order.status.open:
            return False
        self._close(acct, order, OrderStatus.CANCELLED, clock, "cancelled by the strategy")
        return True

    def _close(self, acct: Account, order: Order, status: OrderStatus, clock: int, reason: str) -> None:
        left = abs(order.request.qty) - order.filled
        if left > 0:
            acct.hold(order, -left)
        order.move(status, clock, reason)
        acct.close_order(order)
        self.working -= 1
        self.events.append(("order", order))

    # ---- bars --------------------------------------------------------------------------------------
    def on_bars(self, clock: int, slots: np.ndarray, bars: Bars) -> None:
        """One step's 1m bars: prices are marked, and the open orders of their symbols are decided."""
        self.clock = clock
        if len(slots):
            self.last[slots] = bars.close
        if not self.working or not len(slots):
            return
        row_of = np.full(len(self.symbols) + 1, -1)   # the bar's row per slot (-1: no bar; last: no slot)
        row_of[slots] = np.arange(len(slots))
        row_of, slot_of, nowhere = row_of.tolist(), self.slot_of, len(self.symbols)
        columns = None  # the bars as lists, made once a step has an order to decide
        for acct in self.accounts.values():
            for order in acct.open_orders():
                i = row_of[slot_of.get(order.request.symbol, nowhere)]
                if i < 0:
                    continue
                if columns is None:
                    columns = (bars.open.tolist(), bars.high.tolist(), bars.low.tolist(), bars.volume.tolist(),
                               bars.ts.tolist())
                self._decide(acct, order, columns, i, clock)

    def _decide(self, acct: Account, order: Order, columns: tuple, i: int, clock: int) -> None:
        opens, highs, lows, volumes, stamps = columns
        if order.request.type is OrderType.MARKET:
            price, slips = opens[i], True
        else:
            price, slips = rules.bar_price(order, opens[i], highs[i], lows[i])
            if price is None:
                return
        config = self.config
        shares = abs(order.request.qty) - order.filled
        if config.volume_cap is not None:
            shares = rules.fillable(config, shares, volumes[i])
            if shares <= 0:
                return
        buy = order.request.qty > 0
        if slips:
            price = rules.slipped(config, price, buy)
        fee = rules.commission(config, shares, price, order.filled == 0)
        if buy and not config.margin and shares * price + fee > acct.cash + 1e-9:
            self._close(acct, order, OrderStatus.REJECTED, clock,
                        f"insufficient cash at the fill: {shares * price + fee:.2f} > {acct.cash:.2f}")
            return
        self._fill(acct, order, shares, price, fee, stamps[i], clock)

    def _fill(self, acct: Account, order: Order, shares: float, price: float, fee: float, ts: int,
              clock: int) -> None:
        signed = shares if order.request.qty > 0 else -shares
        fill = Fill(acct.name, order.id, order.request.symbol, signed, price, fee, ts, clock)
        acct.apply_fill(fill)
        acct.hold(order, -shares)
        filled = order.filled + shares
        order.avg_price = price if not order.filled else (order.avg_price * order.filled + price * shares) / filled
        order.filled = filled
        order.commission += fee
        self.events.append(("fill", fill, order))
        if abs(order.request.qty) - filled <= 1e-12:
            self._close(acct, order, OrderStatus.FILLED, clock, "")
        else:
            order.move(OrderStatus.PARTIALLY_FILLED, clock)
            self.events.append(("order", order))

    # ---- the close and removed symbols -------------------------------------------------------------
    def end_session(self, clock: int) -> None:
        """Day orders expire; with flatten_at_close every position is closed at its last price."""
        for acct in self.accounts.values():
            for order in acct.open_orders():
                if order.request.tif.value == "day":
                    self._close(acct, order, OrderStatus.EXPIRED, clock, "day order expired at the close")
            if self.config.flatten_at_close:
                for symbol in sorted(acct.positions):
                    self._flatten(acct, symbol, clock, "flatten at the close")
        self._remember_prices()

    def remove_symbol(self, symbol: str, clock: int) -> None:
        """A symbol left the session: its open orders are cancelled and (on_remove flatten) its positions
        closed at its last price."""
        self.active.discard(symbol)
        for acct in self.accounts.values():
            for order in acct.open_orders():
                if order.symbol == symbol:
                    self._close(acct, order, OrderStatus.CANCELLED, clock, f"{symbol} was removed from the session")
            if self.config.on_remove == "flatten" and symbol in acct.positions:
                self._flatten(acct, symbol, clock, f"flatten: {symbol} was removed from the session")

    def _flatten(self, acct: Account, symbol: str, clock: int, reason: str) -> None:
        """A market order for the whole position, filled at once at the last price (no slippage)."""
        qty = -acct.qty(symbol)
        price = self.price(symbol)
        order = Order(acct.next_id, acct.name, OrderRequest(symbol, qty, OrderType.MARKET), clock,
                      reason=reason, updated_clock=clock)
        acct.next_id += 1
        acct.orders[order.id] = order
        self._open(acct, order)
        self.events.append(("order", order))
        fee = rules.commission(self.config, abs(qty), price, True)
        self._fill(acct, order, abs(qty), price, fee, clock, clock)

    # ---- what a strategy reads ---------------------------------------------------------------------
    def equity(self, account: str) -> float:
        acct = self.accounts[account]
        return acct.cash + self.position_value(account)

    def position_value(self, account: str, prices: list | None = None) -> float:
        """Positions at their last close; `prices` (self.last as a list) saves the lookups of a whole step."""
        acct = self.accounts[account]
        if prices is None:
            return sum(pos.qty * self.price(symbol) for symbol, pos in acct.positions.items())
        total = 0.0
        for symbol, pos in acct.positions.items():
            slot = self.slot_of.get(symbol)
            price = prices[slot] if slot is not None else math.nan
            total += pos.qty * (self.price(symbol) if price != price else price)
        return total

    def take_events(self) -> list[tuple]:
        out, self.events = self.events, []
        return out


def apply_market_message(exchange: Exchange, msg) -> bool:
    """What a coordinator message does to the market, the same in analysis and broker: a new session's
    symbols, a step's bars (orders decided), an added symbol, a removed one, the close. Returns True
    when the message is one of those (the broker records a step's equity, a session's positions)."""
    kind = msg.type
    if kind == P.STEP:
        batch = msg.payload.batch
        exchange.on_bars(msg.clock, batch.slots, batch.bars)
    elif kind == P.SESSION_START:
        exchange.new_session(list(msg.body["symbols"]), msg.clock)
    elif kind == P.CATCHUP_SNAPSHOT:
        exchange.add_symbol(msg.body["symbol"], int(msg.body["slot"]), msg.payload.session.bars)
    elif kind == P.SYMBOL_REMOVED:
        exchange.remove_symbol(msg.body["symbol"], msg.clock)
    elif kind == P.SESSION_END:
        exchange.end_session(msg.clock)
    else:
        return False
    return True
