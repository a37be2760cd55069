"""The state an exchange carries from one session to the next, as plain values (msgpack), so a process
restarted on a later day (a snapshot join replays only the current session's journal) starts that
session with the accounts it had: cash, positions, open orders (GTC), ids, holds, the last prices.

Closed orders are not part of it: nothing reads them again (a cancel of a closed order and of an
unknown one both return False). Floats travel as float64, so the rebuilt book is bit for bit the same.
Files are written atomically (temp file + rename) in the process's own results folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import msgpack
import numpy as np

from common.domain.orders import Order, OrderRequest, OrderStatus, OrderType, TimeInForce
from common.trading.account import Account, Position

FORMAT = 1


def order_values(o: Order) -> list:
    r = o.request  # `_value_`: the enum's value without the descriptor (a broker saves thousands per session)
    return [o.id, o.account, r.symbol, r.qty, r.type._value_, r.limit, r.stop, r.tif._value_, o.placed_clock,
            o.status._value_, o.filled, o.avg_price, o.triggered, o.reason, o.updated_clock, o.commission,
            o.reserve_price]


def order_from(v: list) -> Order:
    request = OrderRequest(v[2], v[3], OrderType(v[4]), v[5], v[6], TimeInForce(v[7]))
    return Order(v[0], v[1], request, v[8], OrderStatus(v[9]), v[10], v[11], v[12], v[13], v[14], v[15], v[16])


def _account_values(a: Account) -> list:
    return [a.name, a.cash, a.next_id, a.realized, a.commissions, a.held_cash, a.held_shares,
            [[s, p.qty, p.avg_cost] for s, p in a.positions.items()], [order_values(a.orders[i]) for i in a.open_ids]]


def exchange_state(exchange) -> dict:
    """What `exchange` (after a session's close) carries into the next session."""
    return {"accounts": [_account_values(a) for a in exchange.accounts.values()],
            "last_known": exchange.last_known, "clock": exchange.clock, "symbols": exchange.symbols,
            "active": [s for s in exchange.symbols if s in exchange.active], "last": exchange.last.tolist()}


def restore_exchange(exchange, state: dict) -> dict[tuple[str, int], Order]:
    """Put `state` into a fresh exchange; returns its open orders by (account, id) (the broker's ledger
    holds the same objects)."""
    opened: dict[tuple[str, int], Order] = {}
    for name, cash, next_id, realized, commissions, held_cash, held_shares, positions, orders in state["accounts"]:
        acct = exchange.open_account(name)
        acct.cash, acct.next_id, acct.realized, acct.commissions = cash, next_id, realized, commissions
        acct.held_cash, acct.held_shares = held_cash, dict(held_shares)
        acct.positions = {s: Position(q, c) for s, q, c in positions}
        for values in orders:
            order = order_from(values)
            acct.orders[order.id] = order
            acct.open_ids[order.id] = None
            opened[(name, order.id)] = order
    exchange.working = len(opened)
    exchange.last_known = dict(state["last_known"])
    # the closed session's market: orders placed after its close are checked against it, as they were
    exchange.clock, exchange.symbols = state["clock"], list(state["symbols"])
    exchange.slot_of = {s: i for i, s in enumerate(exchange.symbols)}
    exchange.active = set(state["active"])
    exchange.last = np.array(state["last"], dtype=np.float64)
    return opened


def write(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(msgpack.packb({"format": FORMAT, **state}, use_bin_type=True))
    os.replace(tmp, path)


def read(path: Path) -> dict | None:
    """The state in `path`, or None when there is none (or it is of another format)."""
    try:
        state = msgpack.unpackb(path.read_bytes(), raw=False, strict_map_key=False)
    except FileNotFoundError:
        return None
    return state if isinstance(state, dict) and state.get("format") == FORMAT else None
