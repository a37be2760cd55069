"""Processor logic: keeps the replica and answers each step with derived bars and indicator values."""
from __future__ import annotations

from common import protocol as P
from common.replica import SessionReplica, apply_coordinator_message


class ProcessorHandler:
    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.replica = SessionReplica()

    def handle(self, msg: P.Message, answers: dict) -> list[P.Message]:
        apply_coordinator_message(self.replica, msg)
        if msg.type == P.STEP:
            return [P.Message(P.DERIVED, {"intervals": [], "indicators": []})]
        if msg.type in (P.HISTORY, P.CATCHUP_SNAPSHOT):
            scope = "history" if msg.type == P.HISTORY else "catchup"
            return [P.Message(P.DERIVED_SNAPSHOT, {"intervals": [], "indicators": [], "scope": scope})]
        if msg.type == P.SESSION_END:
            self.log.info("session %s done: %d steps", msg.body["date"], self.replica.steps)
        return []
