"""The broker's order of booking: every coordinator message once every trader's orders before it are in.

A trading analysis process decides its fills at once, with no round trip; its actions (tagged with the
coordinator seq it was handling) ride its next step ack, and the coordinator relays them as ORDERS. So
the broker sees the orders placed at message q only later in the stream. The coordinator stamps every
message it publishes with `orders_through`: every trading stage has sent the actions it placed up to that
seq. The broker queues coordinator messages and books message q (actions placed before q first, then
the message itself) once a stamp covers the message before q (a STEPS batch is booked step by step, the
actions placed at its step k before its step k+1): the same inputs in the same order as in
the analysis process, so the same fills, however the processes were scheduled. BACKTEST_END books the
rest: nothing placed after the last step could fill.
"""
from __future__ import annotations

import logging
from collections import deque
from typing import Callable

from common.domain.orders import Action, OrderError, decode_action
from common.wire import protocol as P

Book = Callable[[P.Message, list[tuple[str, Action]]], None]


class Booking:
    def __init__(self, book: Book, log: logging.Logger):
        self.book = book
        self.log = log
        # (one-step message, its place (seq, part), the stamp it waits for)
        self.queue: deque[tuple[P.Message, tuple[int, int], int]] = deque()
        self.pending: dict[str, deque[Action]] = {}          # per trading stage, in placing order
        self.prev_seq = 0
        self.through = 0
        self.bad_actions = 0

    def receive(self, msg: P.Message) -> None:
        if msg.type == P.ORDERS:
            self._take_actions(msg.body["stage"], msg.body["actions"])
        elif msg.type == P.STEPS:
            # step k > 0 of a batch follows the actions placed at its steps before k, which ride the ack of
            # the whole batch: it waits for a stamp covering the batch itself
            for part, step in enumerate(P.split_batch(msg)):
                self.queue.append((step, (msg.seq, part), self.prev_seq if part == 0 else msg.seq))
            self.prev_seq = msg.seq
        else:
            self.queue.append((msg, (msg.seq, 0), self.prev_seq))
            self.prev_seq = msg.seq
        stamp = msg.body.get("orders_through")
        # no stamp: no trading stage registered, nothing can be missing
        self.through = max(self.through, stamp if isinstance(stamp, int) else msg.seq)
        self._book_ready(final=msg.type == P.BACKTEST_END)

    def _take_actions(self, stage: str, actions: list) -> None:
        queue = self.pending.setdefault(stage, deque())
        for item in actions:
            try:
                queue.append(decode_action(item))
            except OrderError as exc:
                self.bad_actions += 1
                self.log.error("ORDERS from %s: bad action dropped: %s", stage, exc)

    def _book_ready(self, final: bool) -> None:
        while self.queue and (final or self.queue[0][2] <= self.through):
            msg, at, _ = self.queue.popleft()
            self.book(msg, self._actions_before(at))

    def _actions_before(self, at: tuple[int, int]) -> list[tuple[str, Action]]:
        out = []
        for stage in sorted(self.pending):
            queue = self.pending[stage]
            while queue and queue[0].at < at:
                out.append((stage, queue.popleft()))
        return out

    def lag(self) -> int:
        """Coordinator messages received and not booked yet."""
        return len(self.queue)
