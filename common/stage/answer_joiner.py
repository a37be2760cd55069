"""Coordinator messages in order, each released together with the answers of processor/quality.

Processor and quality answer some coordinator messages (P.ANSWERS) with one message each, tagged with
the coordinator's seq as body["ref"]. The three streams arrive on three sockets in any interleaving;
a strategy must see a step only with its derived bars and quality, so coordinator message n waits
here until every answer to n is in hand.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from common.wire import protocol as P

ANSWER_TIMEOUT_S = 2.0


@dataclass
class Ready:
    """The next coordinator message and the answers it needed (stage -> message)."""
    msg: P.Message
    answers: dict[str, P.Message] = field(default_factory=dict)


@dataclass(frozen=True)
class Overdue:
    """An answer still missing after ANSWER_TIMEOUT_S while later coordinator messages pile up: it
    was lost at the tail of its publisher's stream, where no later message shows the gap."""
    stage: str
    seq: int

    def reason(self) -> str:
        return f"answer of {self.stage} to seq {self.seq} overdue"


class AnswerJoiner:
    """Holds the coordinator's messages in order and the answers keyed by the seq they answer."""

    def __init__(self, listen_to: tuple[str, ...], timeout_s: float = ANSWER_TIMEOUT_S):
        self.listen_to = tuple(listen_to)
        self.timeout_s = timeout_s
        self.queue: deque[P.Message] = deque()
        self.answers: dict[str, dict[int, P.Message]] = {s: {} for s in self.listen_to}
        self.waiting_for: tuple[str, int] | None = None
        self.waiting_since: float | None = None
        self.handled_seq = 0  # coordinator messages up to this seq were released (or covered by a snapshot)
        self.given_up: set[str] = set()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self.queue)

    def head(self) -> P.Message | None:
        return self.queue[0] if self.queue else None

    def add_coordinator(self, msg: P.Message) -> None:
        self.queue.append(msg)

    def give_up_on(self, stages: set[str]) -> None:
        """These stages were lost and the run is over: a held message missing one of their answers is
        dropped (counted in `dropped`) instead of waited for; messages whose answers are in still go out."""
        self.given_up |= stages & set(self.listen_to)

    def add_answer(self, stage: str, msg: P.Message) -> None:
        """An answer without an integer ref answers nothing and is dropped."""
        ref = msg.body.get("ref")
        if isinstance(ref, int) and ref > self.handled_seq:  # a republished answer to a handled one: dropped
            self.answers[stage][ref] = msg

    def next_ready(self, now: float) -> Ready | Overdue | None:
        """Pops the head when all its answers are in; None while waiting, Overdue once waited too long."""
        msg = self.head()
        if msg is None:
            return None
        needed = {}
        for stage in self.listen_to:
            if msg.type in P.ANSWERS[stage]:
                answer = self.answers[stage].get(msg.seq)
                if answer is None and stage in self.given_up:
                    self.queue.popleft()
                    self.dropped += 1
                    return self.next_ready(now)
                if answer is None:
                    return self._waiting(stage, msg.seq, now)
                needed[stage] = answer
        self.queue.popleft()
        self.handled_seq = max(self.handled_seq, msg.seq)
        for stage in needed:
            del self.answers[stage][msg.seq]
        return Ready(msg, needed)

    def _waiting(self, stage: str, seq: int, now: float) -> Overdue | None:
        """The wait counts from the first time this very answer was found missing; a lone message
        at the head is not overdue (its answer is likely on its way: nothing later shows a gap)."""
        if self.waiting_for != (stage, seq) or self.waiting_since is None:
            self.waiting_for, self.waiting_since = (stage, seq), now
            return None
        if len(self.queue) > 1 and now - self.waiting_since > self.timeout_s:
            self.waiting_since = None
            return Overdue(stage, seq)
        return None

    def drop_covered(self, seq: int) -> None:
        """A snapshot up to `seq` covers the queued messages and answers up to it."""
        self.handled_seq = max(self.handled_seq, seq)
        while self.queue and self.queue[0].seq <= seq:
            self.queue.popleft()
        for answers in self.answers.values():
            for ref in [r for r in answers if r <= seq]:
                del answers[ref]

    def clear(self) -> None:
        """Forget everything (a resync: the next snapshot replaces it)."""
        self.queue.clear()
        for answers in self.answers.values():
            answers.clear()
        self.waiting_for = self.waiting_since = None
        self.handled_seq = 0
