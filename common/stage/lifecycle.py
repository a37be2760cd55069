"""The stage runtime's states and the only place they change.

A stage used to track its progress in a handful of booleans (registered, synced, resync pending,
flushed, finished); which combinations were possible was implicit. Here every state is named, every
allowed move is listed in TRANSITIONS, and a move outside the table raises, so a wrong move shows
up in a unit test instead of as a stage that hangs.
"""
from __future__ import annotations

import enum
import logging

RESYNC_BACKOFF_S = 0.5
RESYNC_BACKOFF_MAX_S = 8.0


class State(enum.Enum):
    CONNECTING = "connecting"    # waiting for a heartbeat from every publisher (subscriptions in place)
    SYNCING = "syncing"          # snapshot joiner: HELLO sent, waiting for the snapshot and its parts
    RESYNC_WAIT = "resync-wait"  # snapshot joiner lost its place: backing off before asking again
    LIVE = "live"                # handling coordinator messages in order
    FLUSHED = "flushed"          # participant: results written and confirmed, waiting for SHUTDOWN
    FINISHED = "finished"        # the loop ends


TRANSITIONS: dict[State, frozenset[State]] = {
    State.CONNECTING: frozenset({State.SYNCING, State.LIVE, State.FINISHED}),
    State.SYNCING: frozenset({State.LIVE, State.RESYNC_WAIT, State.FINISHED}),
    State.RESYNC_WAIT: frozenset({State.SYNCING, State.FINISHED}),
    State.LIVE: frozenset({State.RESYNC_WAIT, State.FLUSHED, State.FINISHED}),
    State.FLUSHED: frozenset({State.FINISHED}),
    State.FINISHED: frozenset(),
}


class TransitionError(RuntimeError):
    """A move the runtime's state machine does not have: a bug in the runtime, not a runtime condition."""


def resync_delay(resyncs: int) -> float:
    """Back-off before the n-th resync: the first is immediate, repeated ones double up to a cap,
    since each replays the whole session and an observer too slow to keep up must not eat the CPU."""
    if resyncs <= 1:
        return 0.0
    return min(RESYNC_BACKOFF_MAX_S, RESYNC_BACKOFF_S * 2 ** (resyncs - 1))


class Lifecycle:
    """Current state of one stage, its moves, and the questions the runtime asks about it."""

    def __init__(self, snapshot_join: bool, log: logging.Logger):
        self.snapshot_join = snapshot_join
        self.log = log
        self.state = State.CONNECTING
        self.resyncs = 0
        self.resync_at: float | None = None

    def _move(self, new: State, why: str) -> None:
        if new not in TRANSITIONS[self.state]:
            raise TransitionError(f"{self.state.name} -> {new.name} ({why})")
        self.log.debug("state %s -> %s: %s", self.state.name, new.name, why)
        self.state = new

    # ---- moves ---------------------------------------------------------------------------------
    def hello_sent(self, sources: list[str], role: str) -> None:
        """HELLO sent: a snapshot joiner waits for its snapshot, any other stage is live at once."""
        self._move(State.SYNCING if self.snapshot_join else State.LIVE, "HELLO sent")
        self.resync_at = None
        self.log.info("subscriptions in place (%s); registered as %s", ", ".join(sorted(sources)), role)

    def snapshot_applied(self, parts: int, seq: int) -> None:
        if self.state is not State.SYNCING:  # CONNECTING -> LIVE is a plain stage's HELLO, not this
            raise TransitionError(f"{self.state.name} -> LIVE (a snapshot nobody asked for)")
        self._move(State.LIVE, "snapshot applied")
        self.log.info("snapshot applied: %d message(s) up to seq %d; live from seq %d", parts, seq, seq + 1)

    def resync(self, reason: str, now: float) -> float:
        """Give up the current place in the stream; returns the back-off before the next HELLO."""
        self.resyncs += 1
        delay = resync_delay(self.resyncs)
        self.log.error("%s: resyncing from a fresh snapshot in %.1f s (resync #%d)", reason, delay, self.resyncs)
        self._move(State.RESYNC_WAIT, reason)
        self.resync_at = now + delay
        return delay

    def results_written(self, final: bool) -> None:
        """After a flush: a participant waits for SHUTDOWN unless `final` (signal, observer, silence)."""
        target = State.FINISHED if final else State.FLUSHED
        if self.state is not target:
            self._move(target, "results written")

    def finish(self, why: str) -> None:
        if self.state is not State.FINISHED:
            self._move(State.FINISHED, why)

    # ---- questions -----------------------------------------------------------------------------
    @property
    def registered(self) -> bool:
        """A HELLO went out: the coordinator knows this stage (acks, silence, slower heartbeats)."""
        return self.state is not State.CONNECTING

    @property
    def handling(self) -> bool:
        """Coordinator messages are handled only from a known place in the stream."""
        return self.state in (State.LIVE, State.FLUSHED)

    @property
    def snapshot_covers_intake(self) -> bool:
        """A snapshot joiner that has yet to send its HELLO drops what it receives: everything
        received before the HELLO was published before the snapshot the HELLO asks for."""
        return self.snapshot_join and self.state in (State.CONNECTING, State.RESYNC_WAIT)

    @property
    def resync_on_restart(self) -> bool:
        """A publisher restarted: worth a fresh snapshot only when one is held or awaited."""
        return self.snapshot_join and self.state in (State.SYNCING, State.LIVE)

    @property
    def resync_on_loss(self) -> bool:
        """Lost messages (or an overdue answer) break a live replica; results already written do not
        change any more, and a stage still waiting for its snapshot only logs the loss (as before)."""
        return self.snapshot_join and self.state is State.LIVE

    def hello_due(self, heard_all: bool, now: float) -> bool:
        """CONNECTING: once every publisher was heard; RESYNC_WAIT: once the back-off is over."""
        if self.state is State.CONNECTING:
            return heard_all
        return self.state is State.RESYNC_WAIT and self.resync_at is not None and now >= self.resync_at
