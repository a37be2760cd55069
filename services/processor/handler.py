"""The processor stage: publishes the derived answers (N-minute bars, indicators) of every step."""
from __future__ import annotations

from common.answers.derived import DerivedAnswers
from common.stage.handler import AnswerOnly
from common.wire import protocol as P


class ProcessorHandler(AnswerOnly):
    def __init__(self, config, log):
        self.log = log
        self.answers = DerivedAnswers(config, log)

    def handle(self, msg: P.Message, answers: dict) -> list[P.Message]:
        payload = self.answers.answer(msg)
        if msg.type == P.SESSION_END:
            self.log.info("session %s done: %d steps", msg.body["date"], self.answers.replica.steps)
        if payload is None:
            return []
        if msg.type == P.STEPS:
            return [P.Message.of(P.DERIVED_STEPS, payload)]
        return [P.Message.of(P.DERIVED if payload.scope == "step" else P.DERIVED_SNAPSHOT, payload)]
