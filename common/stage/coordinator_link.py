"""A stage's requests to the coordinator over its DEALER: HELLO, strategy commands, the stop request."""
from __future__ import annotations

import logging
import os
import time
import uuid

import zmq

from common.wire import protocol as P

COMMAND_TIMEOUT_MS = 5000


def new_request_id() -> str:
    return uuid.uuid4().hex[:12]


class CoordinatorLink:
    """Sends on the stage's DEALER; replies to HELLO (and the snapshot) are read by the runtime."""

    def __init__(self, dealer: zmq.Socket, stage: str, role: str, flow_window: int, log: logging.Logger):
        self.dealer = dealer
        self.stage = stage
        self.role = role
        self.flow_window = flow_window
        self.log = log
        self.stop_sent = False
        self.warned_window = False
        self.on_other = lambda msg: None  # the runtime hands other DEALER messages to the machine

    def hello(self, snapshot: bool, indicators: list | None = None, trades: bool = False) -> None:
        """Register; `indicators` are the entries the stage's strategies declared (computed for them);
        `trades`: its step acks carry order actions (relayed to the broker)."""
        hello = P.Message(P.HELLO, {"stage": self.stage, "role": self.role, "pid": os.getpid(),
                                    "snapshot": snapshot, "indicators": list(indicators or []),
                                    "trades": trades})
        self.dealer.send_multipart(P.encode(hello))

    def command(self, name: str, args: dict) -> None:
        """A strategy's command, sent and answered before the step is acknowledged (lockstep with
        flow.window 1, hence reproducible); the reply is logged, refused commands change nothing."""
        if self.flow_window > 1 and not self.warned_window:
            self.warned_window = True
            self.log.warning("strategy commands with flow.window %d land at a boundary that depends on timing; "
                             "use window 1 for reproducible runs", self.flow_window)
        request_id = new_request_id()
        self.dealer.send_multipart(P.encode(P.Message(P.COMMAND, {"name": name, "args": args,
                                                                  "request_id": request_id})))
        reply = self._reply_to(request_id)
        if reply is None:
            self.log.error("strategy command %s %s: no reply from the coordinator", name, args)
            return
        if reply.body.get("ok"):
            self.log.info("[DYNAMIC] strategy asked to %s %s: queued", name, " ".join(args.get("symbols", [])))
        else:
            self.log.error("strategy command %s refused: %s", name, reply.body.get("error"))

    def _reply_to(self, request_id: str):
        """The REPLY that names `request_id`; anything else read meanwhile (an earlier request's reply,
        snapshot parts) goes to `on_other`, so nothing is taken for the wrong reply or lost."""
        deadline = time.monotonic() + COMMAND_TIMEOUT_MS / 1000
        while (left := deadline - time.monotonic()) > 0:
            if not self.dealer.poll(int(left * 1000) + 1):
                return None
            try:
                msg = P.decode(self.dealer.recv_multipart())
            except P.ProtocolError as exc:
                self.log.error("bad reply from coordinator: %s", exc)
                continue
            if msg.type == P.REPLY and msg.body.get("request_id") == request_id:
                return msg
            self.on_other(msg)
        return None

    def ask_stop(self) -> None:
        """The stage's logic wants the whole run stopped: asked once; the reply is read with the others."""
        if self.stop_sent:
            return
        self.stop_sent = True
        self.log.error("asking the coordinator to stop the run")
        command = P.Message(P.COMMAND, {"name": "stop", "args": {"by": f"a strategy of {self.stage} (on_error stop)"},
                                        "request_id": new_request_id()})
        self.dealer.send_multipart(P.encode(command))
