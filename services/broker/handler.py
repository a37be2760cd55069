"""The broker stage: the book of record of every trading stage's accounts.

It hears the coordinator's stream only (bars, session events, relayed ORDERS), books it in the order
`booking.Booking` allows, runs the shared exchange (`common.trading.exchange`) on it and writes the
results. It publishes nothing: the trading stages decide their own fills with the same exchange; what
the broker adds is the record (result files, metrics), the check that every stage's order ids match,
and the accounts `ctl status` shows (sent with its alive acks).
"""
from __future__ import annotations

import math
from pathlib import Path

from common.domain.orders import Action
from common.domain.timeconv import fmt_exchange
from common.runs import is_run_id
from common.stage.handler import AnswerOnly
from common.trading import checkpoint
from common.trading.exchange import Exchange, apply_market_message
from common.wire import protocol as P
from services.broker.booking import Booking
from services.broker.ledger import Ledger
from services.broker.metrics import account_metrics
from services.broker.results import write_table

STATUS_ACCOUNTS = 20  # accounts (and positions per account) `ctl status` shows


class BrokerHandler(AnswerOnly):
    def __init__(self, config, log, name: str = "broker", write_files: bool = True):
        self.config = config
        self.log = log
        self.name = name
        self.exchange = Exchange(config.broker)
        self.ledger = Ledger()
        self.booking = Booking(self._book, log)
        self.results_root = Path(config.results_dir)
        self.run_id: str | None = None
        self.date = ""
        self.booked_clock = 0
        self.diverged = 0
        self.write_files = write_files
        self.day_index = 0
        self.fresh = True  # nothing received yet: a first SESSION_START of a later day restores a checkpoint

    def handle(self, msg: P.Message, answers: dict) -> list:
        if msg.type in (P.SESSION_START, P.BACKTEST_END) and is_run_id(msg.body.get("run_id")):
            self.run_id = msg.body["run_id"]
        if self.fresh and msg.type == P.SESSION_START and msg.body.get("day_index", 0) > 0:
            self._restore(msg.body["day_index"])
        self.fresh = False
        self.booking.receive(msg)
        return []

    # ---- the book across sessions: a checkpoint per session end (a delta), read back by a restart ----
    def _checkpoint_path(self, day_index: int) -> Path:
        return self.results_dir / ".checkpoint" / f"{day_index:05d}.msgpack"

    def _save(self, msg: P.Message) -> None:
        """After booking a session's end: the exchange's state and the ledger's records since the last one."""
        if not self.write_files or self.run_id is None or msg.body.get("last"):
            return
        checkpoint.write(self._checkpoint_path(self.day_index), {
            "day_index": self.day_index, "seq": msg.seq, "exchange": checkpoint.exchange_state(self.exchange),
            "ledger": self.ledger.delta(), "booked_clock": self.booked_clock, "diverged": self.diverged,
            "date": self.date})

    def _restore(self, day_index: int) -> None:
        """Joined on a later day (a restart): the book as it was after the last session's end, from the
        checkpoints of sessions 0 .. day_index - 1 (the journal replay then brings the current session)."""
        states = [checkpoint.read(self._checkpoint_path(i)) for i in range(day_index)] if self.run_id else []
        if not states or any(s is None for s in states):
            self.log.warning("no checkpoint of the sessions before this one in %s: the book starts from the "
                             "starting cash (positions and orders of earlier sessions are missing)",
                             self.results_dir / ".checkpoint")
            return
        opened = checkpoint.restore_exchange(self.exchange, states[-1]["exchange"])
        for state in states:
            self.ledger.add_delta(state["ledger"], opened)
        self.booked_clock, self.diverged, self.date = (states[-1][k] for k in ("booked_clock", "diverged", "date"))
        self.booking.prev_seq = states[-1]["seq"]  # the orders placed after that session's end come first
        self.log.info("book of the %d earlier session(s) restored from %s: %d account(s), %d open order(s)",
                      day_index, self.results_dir / ".checkpoint", len(self.exchange.accounts), len(opened))

    def _book(self, msg: P.Message, actions: list[tuple[str, Action]]) -> None:
        for stage, action in actions:
            self._apply(stage, action)
        if actions:
            self.ledger.record(self.exchange.take_events(), self.date)
        if msg.type == P.SESSION_START:
            self.date, self.day_index = msg.body["date"], msg.body.get("day_index", 0)
        apply_market_message(self.exchange, msg)
        self.ledger.record(self.exchange.take_events(), self.date)
        if msg.type == P.STEP:
            self.ledger.mark_step(msg.clock, self.exchange)
            self.booked_clock = msg.clock
        elif msg.type == P.SESSION_END:
            self.ledger.close_day(msg.body["date"], self.exchange)
            self._save(msg)

    def _apply(self, stage: str, action: Action) -> None:
        account = f"{stage}/{action.account}"
        if action.kind == "cancel":
            if not self.exchange.cancel(account, action.order_id, self.exchange.clock):
                self._diverged(stage, f"cancel of order {action.order_id} that is not open here")
        else:
            order = self.exchange.place(account, action.request, self.exchange.clock)
            if order.id != action.order_id:
                self._diverged(stage, f"order id {action.order_id} booked as {order.id}")

    def _diverged(self, stage: str, what: str) -> None:
        self.diverged += 1
        self.log.error("book of %s differs from the stage's own: %s", stage, what)

    def status(self) -> dict | None:
        """Equity, cash and open positions per account, as of the last booked step."""
        accounts = {}
        for name in list(self.exchange.accounts)[:STATUS_ACCOUNTS]:
            acct = self.exchange.accounts[name]
            positions = {s: p.qty for s, p in sorted(acct.positions.items())[:STATUS_ACCOUNTS]}
            accounts[name] = {"equity": round(self.exchange.equity(name), 2), "cash": round(acct.cash, 2),
                              "positions": positions, "open_orders": len(acct.open_ids)}
        return {"booked": fmt_exchange(self.booked_clock, with_date=True) if self.booked_clock else "-",
                "accounts": accounts}

    @property
    def results_dir(self) -> Path:
        return (self.results_root / self.run_id if self.run_id else self.results_root) / self.name

    def flush(self) -> None:
        if not self.write_files:
            self.log.info("the config's stages do not list the broker: no trading, no result files")
            return
        folder = self.results_dir
        folder.mkdir(parents=True, exist_ok=True)
        by_key = self.ledger.orders
        tables = {"orders": [by_key[k] for k in sorted(by_key)], "fills": self.ledger.fills,
                  "positions": self.ledger.positions, "equity": self.ledger.equity, "trades": self.ledger.trades}
        metrics = [account_metrics(n, self.config.broker.starting_cash, self.ledger.day_end_equity, tables)
                   for n in self.exchange.accounts]
        for name, rows in {**tables, "metrics": metrics}.items():
            write_table(folder, name, rows)
        self.log.info("results written to %s: %d order(s), %d fill(s), %d trade(s); %d booking difference(s)",
                      folder, len(tables["orders"]), len(tables["fills"]), len(tables["trades"]), self.diverged)
        for m in metrics:
            self.log.info("  %s  equity %.2f  return %s  sharpe %s  max drawdown %s  trades %d  commissions %.2f",
                          m["account"], m["final_equity"], _pct(m["total_return"]), _num(m["sharpe"]),
                          _pct(m["max_drawdown"]), m["trades"], m["commissions"])


def _pct(x: float) -> str:
    return "-" if math.isnan(x) else f"{100 * x:.2f}%"


def _num(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"
