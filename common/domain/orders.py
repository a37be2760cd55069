"""Orders and fills: the value types analysis (ctx.order) and the broker share, and their wire form.

An order's life is a state machine (`OrderStatus`, `TRANSITIONS`): accepted -> partially filled ->
filled, or accepted -> cancelled / expired; a rejected order never opens. Quantities are signed
(`qty` > 0 buys, < 0 sells); every price is a float in the bar's currency; every time is int64 UTC ns.

On the wire (an ACK's `actions`, relayed by the coordinator as ORDERS) an action is a list:
`[seq, part, account, "new", id, symbol, qty, type, limit, stop, tif]` or `[seq, part, account, "cancel", id]`,
where `seq` is the coordinator message the strategy was handling when it acted and `part` the step of
it (0, ..., n-1 in a STEPS batch of n steps; 0 for any other message): (seq, part) orders the actions
among the steps, so a batch books like the single steps it carries.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import NamedTuple


class OrderError(ValueError):
    """An order request with a bad field; the message names the field."""


class OrderType(enum.Enum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


class TimeInForce(enum.Enum):
    DAY = "day"   # expires at the session's close
    GTC = "gtc"   # good till cancelled


class OrderStatus(enum.Enum):
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def open(self) -> bool:
        return self in (OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED)


_S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED, _S.REJECTED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELLED, _S.EXPIRED, _S.REJECTED}),
    _S.FILLED: frozenset(), _S.CANCELLED: frozenset(), _S.EXPIRED: frozenset(), _S.REJECTED: frozenset(),
}


class OrderRequest(NamedTuple):
    """A validated order request (what ctx.order builds and the broker decodes)."""
    symbol: str
    qty: float
    type: OrderType = OrderType.MARKET
    limit: float | None = None
    stop: float | None = None
    tif: TimeInForce = TimeInForce.DAY

    @property
    def side(self) -> str:
        return "buy" if self.qty > 0 else "sell"


def _price(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise OrderError(f"{name}: {value!r} is not a positive price")
    return float(value)


_BY_VALUE = {kind: {m.value: m for m in kind} | {m: m for m in kind} for kind in (OrderType, TimeInForce)}


def _enum(enum_type, value, name: str):
    try:
        return _BY_VALUE[enum_type][value]
    except (KeyError, TypeError):
        allowed = ", ".join(repr(m.value) for m in enum_type)
        raise OrderError(f"{name}: {value!r} is not one of {allowed}") from None


_TIFS = {"day": TimeInForce.DAY, "gtc": TimeInForce.GTC}


def order_request(symbol, qty, type="market", limit=None, stop=None, tif="day") -> OrderRequest:
    """Validate the fields of an order; OrderError names the first bad one."""
    if type == "market" and limit is None and stop is None and tif in _TIFS and isinstance(symbol, str) \
            and symbol.isupper() and qty.__class__ in (int, float) and qty == qty and qty != 0 and abs(qty) != math.inf:
        return OrderRequest(symbol, float(qty), OrderType.MARKET, None, None, _TIFS[tif])  # the common case, fast
    if not isinstance(symbol, str) or not symbol.strip():
        raise OrderError(f"symbol: {symbol!r} is not a ticker")
    if isinstance(qty, bool) or not isinstance(qty, (int, float)) or not math.isfinite(qty) or qty == 0:
        raise OrderError(f"qty: {qty!r} is not a non-zero number of shares (> 0 buys, < 0 sells)")
    kind = _enum(OrderType, type, "type")
    needs_limit = kind in (OrderType.LIMIT, OrderType.STOP_LIMIT)
    needs_stop = kind in (OrderType.STOP, OrderType.STOP_LIMIT)
    for name, value, needed in (("limit", limit, needs_limit), ("stop", stop, needs_stop)):
        if needed and value is None:
            raise OrderError(f"{name}: required for a {kind.value} order")
        if not needed and value is not None:
            raise OrderError(f"{name}: not allowed for a {kind.value} order")
    return OrderRequest(symbol.strip().upper(), float(qty), kind,
                        _price(limit, "limit") if needs_limit else None,
                        _price(stop, "stop") if needs_stop else None, _enum(TimeInForce, tif, "tif"))


@dataclass(slots=True)
class Order:
    """One order of one account and where it stands."""
    id: int
    account: str
    request: OrderRequest
    placed_clock: int
    status: OrderStatus = OrderStatus.ACCEPTED
    filled: float = 0.0          # shares filled so far (unsigned)
    avg_price: float = 0.0
    triggered: bool = False      # a stop (stop-limit) order whose stop was reached
    reason: str = ""
    updated_clock: int = 0
    commission: float = 0.0
    reserve_price: float = 0.0   # a buy's price for the buying-power check (limit, stop or last close)

    @property
    def symbol(self) -> str:
        return self.request.symbol

    @property
    def remaining(self) -> float:
        return abs(self.request.qty) - self.filled

    @property
    def side(self) -> str:
        return self.request.side

    @property
    def qty(self) -> float:
        return self.request.qty

    @property
    def type(self) -> str:
        return self.request.type.value

    def move(self, status: OrderStatus, clock: int, reason: str = "") -> None:
        """Change status along TRANSITIONS (a wrong move is a bug: it raises)."""
        if status not in TRANSITIONS[self.status]:
            raise RuntimeError(f"order {self.account}#{self.id}: {self.status.value} -> {status.value} is not allowed")
        self.status, self.updated_clock = status, clock
        if reason:
            self.reason = reason

    def as_row(self) -> dict:
        r = self.request
        return {"account": self.account, "order_id": self.id, "symbol": r.symbol, "side": r.side,
                "qty": r.qty, "type": r.type.value, "limit": r.limit, "stop": r.stop, "tif": r.tif.value,
                "placed_clock_ns": self.placed_clock, "status": self.status.value, "filled": self.filled,
                "avg_price": self.avg_price, "commission": self.commission, "reason": self.reason,
                "updated_clock_ns": self.updated_clock}


class Fill(NamedTuple):
    """Shares of one order traded on one bar: `ts` is the bar's open time (the fill's time), `clock`
    the step that delivered the bar; `qty` is signed like the order."""
    account: str
    order_id: int
    symbol: str
    qty: float
    price: float
    commission: float
    ts: int
    clock: int

    @property
    def side(self) -> str:
        return "buy" if self.qty > 0 else "sell"

    def as_row(self) -> dict:
        return {"account": self.account, "order_id": self.order_id, "symbol": self.symbol, "side": self.side,
                "qty": self.qty, "price": self.price, "commission": self.commission, "ts_ns": self.ts,
                "clock_ns": self.clock}


@dataclass
class Action:
    """A strategy's order action as sent to the broker: place (`request`, `order_id`) or cancel."""
    seq: int
    account: str
    kind: str                      # "new" | "cancel"
    order_id: int
    request: OrderRequest | None = field(default=None)
    part: int = 0                  # the step of a STEPS batch it was placed at (0: any other message)

    @property
    def at(self) -> tuple[int, int]:
        """Where in the coordinator's stream it was placed: actions are booked in this order."""
        return self.seq, self.part

    def encode(self) -> list:
        if self.kind == "cancel":
            return [self.seq, self.part, self.account, "cancel", self.order_id]
        return encode_new(self.seq, self.part, self.account, self.order_id, self.request)


def encode_new(seq: int, part: int, account: str, order_id: int, r: OrderRequest) -> list:
    return [seq, part, account, "new", order_id, r.symbol, r.qty, r.type.value, r.limit, r.stop, r.tif.value]


def decode_action(item) -> Action:
    """An action from the wire; OrderError says what is wrong with it."""
    if not isinstance(item, list) or len(item) < 5:
        raise OrderError(f"action {item!r} is not [seq, part, account, kind, id, ...]")
    seq, part, account, kind, order_id = item[:5]
    if not (seq.__class__ is int and part.__class__ is int and order_id.__class__ is int) \
            or account.__class__ is not str or part < 0:
        raise OrderError(f"action {item!r}: seq, part and id must be integers (part >= 0), account a string")
    if kind == "cancel" and len(item) == 5:
        return Action(seq, account, "cancel", order_id, part=part)
    if kind == "new" and len(item) == 11:
        return Action(seq, account, "new", order_id, order_request(*item[5:11]), part)
    raise OrderError(f"action {item!r}: kind must be 'new' (11 fields) or 'cancel' (5 fields)")
