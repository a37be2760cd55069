"""The contract between the stage runtime (sockets, ordering, acks) and a stage's own logic.

The runtime calls these methods and nothing else; every stage's handler implements all of them, so
the contract is read here, not discovered with getattr.
"""
from __future__ import annotations

from typing import Protocol

from common import progress
from common.wire.protocol import Message


class StageHandler(Protocol):
    def handle(self, msg: Message, answers: dict[str, Message]) -> list[Message]:
        """One coordinator message, in order, with the answers of the upstream stages it listens to
        (stage name -> message). Returns the messages to publish (stages with a PUB socket only)."""

    def replay(self, journal: list[Message]) -> list[tuple[Message, list[Message]]]:
        """Rebuild the session state from the coordinator's journal (a snapshot join), calling no
        user code on the way; returns (journal message, its answers) for a stage that publishes answers
        (a restarted processor republishes them, so consumers waiting for one get it)."""

    def take_commands(self) -> list[tuple[str, dict]]:
        """Commands (name, args) the stage's logic asked to send to the coordinator since last asked."""

    def wanted_indicators(self) -> list[dict]:
        """Indicator entries ({name, interval, params}) the stage's logic reads: HELLO carries them, and the
        coordinator has them computed from the next session start on."""

    def stop_wanted(self) -> bool:
        """True once the stage's logic wants the whole run stopped (a strategy with on_error=stop)."""

    def trades(self) -> bool:
        """True when the stage's strategies place orders: HELLO says so, and its step acks carry them."""

    def ack_fields(self) -> dict:
        """Fields added to the next step ack (a trading stage: `actions` placed since the last ack and
        `orders_through`, the last coordinator seq it handled)."""

    def status(self) -> dict | None:
        """What the stage shows in `ctl status` (sent with its alive acks; the broker: its accounts)."""

    def flush(self) -> None:
        """Write results, once, at the end of the run or on a signal."""


class AnswerOnly:
    """Defaults for a stage that only answers messages: no commands, never stops the run, nothing to
    flush; a replay runs the journal through handle() and drops the answers."""

    def handle(self, msg: Message, answers: dict[str, Message]) -> list[Message]:
        raise NotImplementedError

    def replay(self, journal: list[Message]) -> list[tuple[Message, list[Message]]]:
        out = []
        for msg in journal:
            progress.tick()
            out.append((msg, self.handle(msg, {})))
        return out

    def take_commands(self) -> list[tuple[str, dict]]:
        return []

    def wanted_indicators(self) -> list[dict]:
        return []

    def stop_wanted(self) -> bool:
        return False

    def trades(self) -> bool:
        return False

    def ack_fields(self) -> dict:
        return {}

    def status(self) -> dict | None:
        return None

    def flush(self) -> None:
        return None
