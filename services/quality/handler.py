"""The quality stage: publishes per-symbol quality figures and gap lists (common/answers/quality.py)."""
from __future__ import annotations

from common.answers.quality import QualityAnswers
from common.logsetup import PER_SYMBOL_LINES_UP_TO
from common.stage.handler import AnswerOnly
from common.wire import protocol as P

_ANSWER = {P.STEP: P.QUALITY, P.STEPS: P.QUALITY_STEPS}  # every other answer is a QUALITY_SNAPSHOT


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
        return [P.Message.of(_ANSWER.get(msg.type, P.QUALITY_SNAPSHOT), payload)]

    def _log_session(self, date: str, table: dict) -> None:
        """One line per symbol for a few symbols; for many, one summary line with the worst ones."""
        if len(table) > PER_SYMBOL_LINES_UP_TO:
            rows = sorted(table.items(), key=lambda kv: (kv[1]["1m"]["pct"], kv[0]))
            pct = [row["1m"]["pct"] for _, row in rows]
            worst = ", ".join(f"{s} {row['1m']['pct']:.2f}%" for s, row in rows[:5])
            self.log.info("quality %s: %d symbols, 1m mean %.2f%%, %d at 100%%, %d gap(s) in all; lowest: %s", date,
                          len(rows), sum(pct) / len(pct), sum(p >= 100.0 for p in pct),
                          sum(row["1m"]["gaps"] for _, row in rows), worst)
            return
        for symbol, row in table.items():
            q = row["1m"]
            self.log.info("quality %s %s: 1m %.2f%% (%d/%d), %d gap(s)", date, symbol, q["pct"],
                          q["present"], q["expected"], q["gaps"])
