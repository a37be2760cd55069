"""A participant's acknowledgements to the coordinator (on its DEALER), batched as the wire protocol allows.

Step acks are cumulative: one ACK for the last step handled covers the ones before it, with each
step's busy time listed (`busy_list`), so a burst of steps costs one message instead of one per step.
Any other ack first sends the step ack pending, so the coordinator sees acks in handling order.
"""
from __future__ import annotations

from typing import Callable

from common.wire import protocol as P


class AckBatcher:
    """Collects step acks until `flush`; sends snapshot and flushed acks at once (after the steps)."""

    def __init__(self, stage: str, send: Callable[[P.Message], None], extras: Callable[[], dict] = dict):
        self.stage = stage
        self.send = send
        self.extras = extras  # fields the stage adds to each step ack (a trading stage's order actions)
        self.pending_step: tuple[int, int] | None = None   # (step, clock) of the last step handled
        self.pending_busy: list[int] = []

    def handled(self, msg: P.Message, busy_ns: int) -> None:
        """A coordinator message a participant acknowledges was handled in `busy_ns`."""
        if msg.type in (P.STEP, P.STEPS):  # a batch counts as its last step, its busy time per step
            self.pending_step = (msg.step, msg.clock)
            self.pending_busy.append(busy_ns // (len(msg.payload) if msg.type == P.STEPS else 1))
        elif msg.type == P.CATCHUP_SNAPSHOT:
            self._send_now("snapshot", msg.body["snapshot_id"], busy_ns, msg.clock)

    def results_flushed(self) -> None:
        self._send_now("flushed", 0)

    def flush(self) -> None:
        """Send the cumulative step ack, if a step was handled since the last one."""
        if self.pending_step is None:
            return
        step, clock = self.pending_step
        msg = P.ack(self.stage, "step", step, sum(self.pending_busy), clock)
        msg.body["busy_list"] = self.pending_busy
        msg.body.update(self.extras())
        self.pending_step, self.pending_busy = None, []
        self.send(msg)

    def _send_now(self, kind: str, ref: int, busy_ns: int = 0, clock: int = 0) -> None:
        self.flush()
        self.send(P.ack(self.stage, kind, ref, busy_ns, clock))
