"""Joining a running session from a snapshot (ZeroMQ guide's Clone pattern).

After HELLO with snapshot=true the coordinator answers on the DEALER with REPLY {parts, seq} and then
`parts` journal messages (every message of the session up to seq). The live messages received
meanwhile are held by the runtime; once the parts are in, the handler replays them and the runtime
drops what the snapshot covers (seq <= the REPLY's seq).
"""
from __future__ import annotations

from common.stage.answer_joiner import AnswerJoiner
from common.stage.handler import StageHandler
from common.wire import protocol as P


class SnapshotJoin:
    """Collects the parts of the snapshot a stage in SYNCING asked for."""

    def __init__(self):
        self.parts: list[P.Message] | None = None
        self.expected = 0
        self.seq = 0
        self.listeners = 0  # stages subscribed to this stage's answers (the REPLY says)

    @property
    def collecting(self) -> bool:
        return self.parts is not None

    def on_reply(self, body: dict) -> None:
        """The REPLY to HELLO: how many parts follow, and the seq the journal goes up to."""
        self.parts = []
        self.expected = int(body.get("parts", 0))
        self.seq = int(body.get("seq", 0))
        listeners = body.get("listeners", 0)
        self.listeners = listeners if isinstance(listeners, int) and 0 <= listeners <= 10_000 else 0

    def on_part(self, msg: P.Message) -> None:
        """A journal message; dropped unless a snapshot is being collected (one abandoned by a resync)."""
        if self.parts is not None:
            self.parts.append(msg)

    def complete(self) -> bool:
        return self.parts is not None and len(self.parts) == self.expected

    def take(self) -> tuple[list[P.Message], int]:
        """The complete snapshot (journal, seq); collecting stops."""
        parts, self.parts = self.parts or [], None
        return parts, self.seq

    def apply(self, handler: StageHandler, joiner: AnswerJoiner) -> tuple[list[P.Message], int, list]:
        """Replay the complete snapshot into the handler, then drop the held live messages and answers
        it covers; returns (journal, seq, the answers the replay produced)."""
        parts, seq = self.take()
        answers = handler.replay(parts) or []
        joiner.drop_covered(seq)
        return parts, seq, answers

    def abandon(self) -> None:
        """A resync: the parts being collected no longer fit the stream; the next HELLO asks again."""
        self.parts = None
