"""A process's trading desk: its strategies' accounts on the shared exchange, and the actions for the broker.

Orders are decided here, at once, by the same `common.trading.exchange.Exchange` the broker runs: a
strategy sees its fills in the step that decided them (on_fill before on_bar), and never waits for
another process. Every action (place, cancel) is tagged with the coordinator seq being handled and
rides the next step ack to the coordinator, which relays it to the broker (ORDERS); the broker, the
book of record, replays them in the same order against the same bars (docs/architecture.md).
"""
from __future__ import annotations

import dataclasses
from collections import deque
from pathlib import Path

from common.domain.orders import Action, Order, OrderError, decode_action, encode_new, order_request
from common.trading import checkpoint
from common.trading.exchange import Exchange, apply_market_message
from common.wire import protocol as P


AFTER_END = "placed after the backtest's last bar: no bar is left to fill it"


class TradingDesk:
    def __init__(self, config, accounts: list[str], observer: bool = False):
        self.enabled = "broker" in config.stages and not observer
        self.refusal = ("an observer does not trade (its orders would reach no broker): start it with --participant"
                        if observer else "trading needs the broker: add \"broker\" to the config's stages")
        self.exchange = Exchange(config.broker, accounts)
        self.actions: list[list] = []   # encoded actions not yet acked
        self.seq = 0                    # the coordinator message being handled
        self.part = 0                   # its step, in a STEPS batch
        self.placed = 0
        self.replaying: deque[Action] = deque()  # own actions to book again (a replay), in placing order
        self.replay_differ = 0
        self.checkpoint: Path | None = None  # where the book is saved at each session's end
        self.day_index = 0
        self.ended = False              # past the backtest's last bar: orders are rejected (see `order`)
        self.after_end = 0              # orders rejected for that

    def on_message(self, msg, part: int = 0) -> None:
        """The market side of a coordinator message (step `part` of a batch), before any strategy hears of
        it; replaying a journal, then the actions this stage placed there the first time."""
        self.seq, self.part = msg.seq, part
        at = (msg.seq, part)
        if self.replaying:  # placed before this message (after the last session's end: not in the journal)
            self._rebook_while(lambda a: a.at < at)
        apply_market_message(self.exchange, msg)
        if msg.type == P.SESSION_START:
            self.day_index = msg.body.get("day_index", 0)
        elif msg.type == P.SESSION_END:
            self.ended = bool(msg.body.get("last"))
            if self.checkpoint is not None and not self.ended:
                checkpoint.write(self.checkpoint, {"day_index": self.day_index,
                                                   "exchange": checkpoint.exchange_state(self.exchange)})
        elif msg.type == P.BACKTEST_END:
            self.ended = True
        if self.replaying:
            self._rebook_while(lambda a: a.at == at)

    def _rebook_while(self, placed_there) -> None:
        actions = []
        while self.replaying and placed_there(self.replaying[0]):
            actions.append(self.replaying.popleft())
        self.replay_differ += self.rebook(actions)

    def restore(self, day_index: int, log) -> bool:
        """Joined on session `day_index` > 0 (a restart): the book as it was after the last session's end,
        from this stage's checkpoint (the journal replay then brings the current session); False when
        there is none for that session."""
        state = checkpoint.read(self.checkpoint) if self.checkpoint is not None else None
        if state is None or state["day_index"] != day_index - 1:
            log.warning("no checkpoint of session %d at %s: the book starts from the starting cash (positions "
                        "and orders of earlier sessions are missing)", day_index - 1, self.checkpoint)
            return False
        checkpoint.restore_exchange(self.exchange, state["exchange"])
        log.info("book of the %d earlier session(s) restored from %s", day_index, self.checkpoint)
        return True

    def order(self, account: str, symbol, qty, type="market", limit=None, stop=None, tif="day") -> int:
        if not self.enabled:
            raise OrderError(self.refusal)
        request = order_request(symbol, qty, type, limit, stop, tif)
        if self.ended:
            # after the last session's close (its on_session_end, on_stop) no bar is left to decide an order:
            # rejected here, with the reason; nothing goes to the broker (docs/architecture.md)
            self.after_end += 1
            return self.exchange.refuse(account, request, self.exchange.clock, AFTER_END).id
        order = self.exchange.place(account, request, self.exchange.clock)
        self.actions.append(encode_new(self.seq, self.part, account, order.id, request))
        self.placed += 1
        return order.id

    def cancel(self, account: str, order_id) -> bool:
        if isinstance(order_id, bool) or not isinstance(order_id, int):
            raise OrderError(f"order_id: {order_id!r} is not an order id (ctx.order returns one)")
        if self.ended:
            return False  # nothing changes after the last bar: the order stays as the broker has it
        done = self.exchange.cancel(account, order_id, self.exchange.clock)
        if done:
            self.actions.append(Action(self.seq, account, "cancel", order_id, part=self.part).encode())
        return done

    def position(self, account: str, symbol: str) -> float:
        acct = self.exchange.accounts.get(account) or self.exchange.open_account(account)
        pos = acct.positions.get(symbol) or acct.positions.get(str(symbol).upper())
        return pos.qty if pos else 0.0

    def open_orders(self, account: str) -> list[Order]:
        return [dataclasses.replace(o) for o in self.exchange.open_account(account).open_orders()]

    def cash(self, account: str) -> float:
        return self.exchange.open_account(account).cash

    def equity(self, account: str) -> float:
        self.exchange.open_account(account)
        return self.exchange.equity(account)

    def start_replay(self, journal: list, stage: str) -> int:
        """A restarted stage replays a snapshot's journal: the actions it placed earlier in the session
        (relayed ORDERS there) are booked again at the message (step) they were placed at. Returns how
        many there are."""
        own = [decode_action(item) for msg in journal if msg.type == P.ORDERS and msg.body.get("stage") == stage
               for item in msg.body["actions"]]
        self.replaying, self.replay_differ = deque(own), 0
        return len(own)

    def end_replay(self) -> int:
        """How many rebooked ids differed from the first time (0: the book was rebuilt faithfully)."""
        self.replaying.clear()
        return self.replay_differ

    def rebook(self, actions: list[Action]) -> int:
        """Book again what this stage placed at one message (a replay: nothing is sent, no callback runs);
        returns how many ids differ from the first time (0 when the book was rebuilt faithfully)."""
        differ = 0
        for action in actions:
            if action.kind == "cancel":
                self.exchange.cancel(action.account, action.order_id, self.exchange.clock)
            elif self.exchange.place(action.account, action.request, self.exchange.clock).id != action.order_id:
                differ += 1
        self.exchange.take_events()
        return differ

    def take_events(self) -> list[tuple]:
        return self.exchange.take_events() if self.exchange.events else []

    def ack_fields(self) -> dict:
        """The step ack's trading fields: every action since the last ack and the seq handled so far."""
        if not self.enabled:
            return {}
        out = {"orders_through": self.seq}
        if self.actions:
            out["actions"], self.actions = self.actions, []
        return out
