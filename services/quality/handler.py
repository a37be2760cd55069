"""The quality stage: publishes per-symbol quality figures and gap lists (common/answers/quality.py)."""
from __future__ import annotations

from common.answers.quality import QualityAnswers
from common.stage.handler import AnswerOnly
from common.wire import protocol as P


class QualityHandler(AnswerOnly):
    def __init__(self, config, log):
        self.log = log
        self.answers = QualityAnswers(config, log)

    def handle(self, msg: P.Message, answers: dict) -> list[P.Message]:
        payload = self.answers.answer(msg)
        if payload is None:
            return []
        if msg.type == P.SESSION_END:
            self._log_session(msg.body["date"], payload.table)
        return [P.Message.of(P.QUALITY if msg.type == P.STEP else P.QUALITY_SNAPSHOT, payload)]

    def _log_session(self, date: str, table: dict) -> None:
        for symbol, row in table.items():
            q = row["1m"]
            self.log.info("quality %s %s: 1m %.2f%% (%d/%d), %d gap(s)", date, symbol, q["pct"],
                          q["present"], q["expected"], q["gaps"])
