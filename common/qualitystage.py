"""Quality-stage logic: keeps the replica and answers each step with the quality values that changed."""
from __future__ import annotations

from common import protocol as P
from common.replica import SessionReplica, apply_coordinator_message


class QualityHandler:
    def __init__(self, config, log):
        self.config = config
        self.log = log
        self.replica = SessionReplica()

    def handle(self, msg: P.Message, answers: dict) -> list[P.Message]:
        apply_coordinator_message(self.replica, msg)
        if msg.type == P.STEP:
            return [P.Message(P.QUALITY, {})]
        if msg.type in (P.HISTORY, P.CATCHUP_SNAPSHOT, P.SESSION_END):
            scope = {P.HISTORY: "history", P.CATCHUP_SNAPSHOT: "catchup", P.SESSION_END: "session_end"}[msg.type]
            return [P.Message(P.QUALITY_SNAPSHOT, {"scope": scope})]
        return []
