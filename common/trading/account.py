"""One strategy's book: cash, positions (signed shares), average costs, realized P&L, orders."""
from __future__ import annotations

from dataclasses import dataclass, field

from common.domain.orders import Fill, Order


@dataclass(slots=True)
class Position:
    qty: float = 0.0
    avg_cost: float = 0.0   # average price of the open shares (signed position, unsigned price)


@dataclass(slots=True)
class Account:
    name: str
    cash: float
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)   # every order, by id
    open_ids: dict[int, None] = field(default_factory=dict)  # open orders, in placing order
    next_id: int = 1
    realized: float = 0.0
    commissions: float = 0.0
    held_cash: float = 0.0                                    # what open buys hold back (remaining x reserve price)
    held_shares: dict[str, float] = field(default_factory=dict)  # what open sells hold back, per symbol

    def qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.qty if pos else 0.0

    def open_orders(self) -> list[Order]:
        return [self.orders[i] for i in self.open_ids]

    def hold(self, order: Order, shares: float) -> None:
        """An open order holds back cash (a buy, at its reserve price) or shares (a sell); negative
        `shares` release what it held (filled, cancelled, expired)."""
        if order.request.qty > 0:
            self.held_cash += shares * order.reserve_price
        else:
            self.held_shares[order.symbol] = self.held_shares.get(order.symbol, 0.0) + shares

    def apply_fill(self, fill: Fill) -> float:
        """Cash, position and average cost after a fill; returns the P&L it realized (before commission)."""
        self.cash -= fill.qty * fill.price
        self.cash -= fill.commission
        self.commissions += fill.commission
        pos = self.positions.setdefault(fill.symbol, Position())
        realized = 0.0
        if pos.qty == 0 or (pos.qty > 0) == (fill.qty > 0):
            total = pos.qty + fill.qty
            pos.avg_cost = (pos.avg_cost * abs(pos.qty) + fill.price * abs(fill.qty)) / abs(total)
            pos.qty = total
        else:
            closed = min(abs(fill.qty), abs(pos.qty))
            direction = 1.0 if pos.qty > 0 else -1.0
            realized = closed * (fill.price - pos.avg_cost) * direction
            pos.qty += fill.qty
            if abs(pos.qty) < 1e-12:
                pos.qty, pos.avg_cost = 0.0, 0.0
            elif (pos.qty > 0) != (direction > 0):  # flipped: the rest opens at the fill price
                pos.avg_cost = fill.price
        if pos.qty == 0.0:
            del self.positions[fill.symbol]
        self.realized += realized
        return realized

    def close_order(self, order: Order) -> None:
        self.open_ids.pop(order.id, None)
