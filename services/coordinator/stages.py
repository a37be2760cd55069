"""The stages the coordinator waits for: registration (HELLO), acks, the credit window, stall detection.

Participants ack every step (cumulatively) and every catch-up snapshot; the coordinator keeps at most
`flow.window` steps unacknowledged. Observers register too but are never waited for.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from common.config import check_stage_name
from common.wire import protocol as P
from services.coordinator.errors import CommandError

log = logging.getLogger("coordinator")


@dataclass
class StageInfo:
    """One registered stage process and how far it has acknowledged."""
    name: str
    role: str
    pid: int
    last_step_ack: int = 0
    last_ack_wall: float = 0.0
    stalled: bool = False
    busy_ns: list = field(default_factory=list)  # time spent per step, for the performance report
    waited_on: int = 0   # steps the window held back with this stage the furthest behind
    flushed: bool = False
    snapshot_ack: int = 0
    indicators: list = field(default_factory=list)  # indicator entries its strategies declared
    last_seen_wall: float = 0.0  # any ack, `alive` included: the process is there
    lost_step: int | None = None  # the step at which it was declared lost (not seen for lost_after_s)
    peer: bytes | None = None     # the ROUTER identity of the connection that registered it: acks must come on it
    owing_since: float = 0.0      # when it last began to owe a step ack (it had acked everything before)
    status: dict | None = None    # what the stage reports with its alive acks (the broker: accounts)
    trader: bool = False          # its strategies trade: its acks carry order actions, relayed as ORDERS
    orders_through: int = 0       # it has sent every order placed up to this coordinator seq


class StageRegistry:
    """Registered stages by name, and the flow-control questions asked of them."""

    def __init__(self, flow_window: int, ack_timeout_s: float, clock, lost_after_s: float = 30.0,
                 max_observers: int = 32):
        self.flow_window = flow_window
        self.ack_timeout_s = ack_timeout_s
        self.lost_after_s = lost_after_s
        self.max_observers = max_observers
        self.clock = clock
        self.by_name: dict[str, StageInfo] = {}
        self.waited_counted = -1  # the step whose credit wait was already charged to a stage
        self.ignored_acks = 0     # acks from connections that did not register the stage they name

    def __iter__(self):
        return iter(self.by_name.values())

    def register(self, stage: str, role: str, pid: int, step: int, snapshot_id: int,
                 indicators: list | None = None, peer: bytes | None = None,
                 trader: tuple[bool, int] = (False, 0)) -> None:
        """Register a stage. A name held by another live connection is refused (two processes under one
        name would merge their acks and overwrite each other's results); the same connection may
        re-register (resync), and a stalled or lost holder may be replaced (a restarted stage)."""
        try:
            check_stage_name(stage)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if role not in P.STAGE_ROLES:
            raise CommandError(f"role {role!r} is not one of {', '.join(P.STAGE_ROLES)}")
        info = self.by_name.get(stage)
        same = info is not None and info.pid == pid and (peer is None or info.peer in (None, peer))
        if info is not None and not same and not (info.stalled or info.lost_step is not None):
            raise CommandError(f"stage name {stage!r} is taken by pid {info.pid}; start this one with --name")
        observers = sum(1 for s in self.by_name.values() if s.role == "observer" and s.name != stage)
        if role == "observer" and observers >= self.max_observers:
            raise CommandError(f"{observers} observers are attached, the most this session takes "
                               f"(flow.max_observers)")
        if info is None or info.role != role or not same:
            if info is not None and info.lost_step is not None:
                log.info("stage %s replaced by pid %d (lost at step %d)", stage, pid, info.lost_step)
            info = self.by_name[stage] = StageInfo(stage, role, pid, peer=peer)
        info.last_step_ack = step
        info.snapshot_ack = snapshot_id  # a joiner's snapshot (the journal) includes every catch-up so far
        info.last_ack_wall = info.last_seen_wall = self.clock()
        info.indicators = list(indicators or [])
        info.trader = trader[0] and role == "participant"
        info.orders_through = max(info.orders_through, trader[1])  # a joiner places nothing before its snapshot
        log.info("stage registered: %s (%s, pid %d%s)", stage, role, pid, ", trades" if info.trader else "")

    def orders_stamp(self) -> dict:
        """{"orders_through": seq}: every trading stage has sent the orders it placed up to that coordinator
        seq ({} without a trading stage)."""
        values = [s.orders_through for s in self.participants() if s.trader]
        return {"orders_through": min(values)} if values else {}

    def answer_listeners(self) -> int:
        """Stages that subscribe to the processor's and quality's answers (analysis processes)."""
        return sum(1 for s in self.by_name.values() if s.name not in ("processor", "quality", "broker"))

    def declared_indicators(self) -> list[dict]:
        """Indicator entries declared by the registered stages, in stage-name order."""
        return [entry for name in sorted(self.by_name) for entry in self.by_name[name].indicators]

    def on_ack(self, body: dict, peer: bytes | None = None) -> StageInfo | None:
        """An ack counts only from the connection that registered the stage it names (returned, else None)."""
        info = self.by_name.get(body["stage"])
        if info is None or (peer is not None and info.peer is not None and peer != info.peer):
            self.ignored_acks += 1
            if self.ignored_acks <= 10 or self.ignored_acks % 10_000 == 0:
                log.warning("ack for stage %s from %s ignored (%d so far)", body["stage"],
                            "a connection that did not register it" if info else "an unregistered stage",
                            self.ignored_acks)
            return None
        now = self.clock()
        info.last_seen_wall = now
        kind, ref = body["kind"], body["ref"]
        through = body.get("orders_through")
        if info.trader and isinstance(through, int) and not isinstance(through, bool):
            info.orders_through = max(info.orders_through, through)
        if kind == "alive":
            if isinstance(body.get("status"), dict):
                info.status = body["status"]
            if not body.get("busy"):  # seen, no progress: stall detection goes by the others
                return info  # (an `alive` marked busy is a progress signal from inside a long computation)
        if info.stalled:
            log.info("stage %s acknowledges again after a stall", info.name)
            info.stalled = False
        info.last_ack_wall = now
        if kind == "step":
            if ref > info.last_step_ack:
                info.last_step_ack = ref
            info.busy_ns.extend(_busy_times(body, self.flow_window))
        elif kind == "snapshot":
            info.snapshot_ack = max(info.snapshot_ack, ref)
        elif kind == "flushed":
            info.flushed = True
        return info

    def participants(self) -> list[StageInfo]:
        return [s for s in self.by_name.values() if s.role == "participant"]

    def missing(self, expected) -> list[str]:
        """The stages of `expected` (the config's) that have not said HELLO yet."""
        return [s for s in expected if s not in self.by_name]

    def has_credit(self, step: int) -> bool:
        """Another step may go out: fewer than `flow_window` steps up to `step` are unacked."""
        parts = self.participants()
        if not parts:
            return True
        return step - min(s.last_step_ack for s in parts) < self.flow_window

    def credits(self, step: int) -> int:
        """How many more steps may go out now (the window's free places)."""
        parts = self.participants()
        if not parts:
            return self.flow_window
        return max(0, self.flow_window - (step - min(s.last_step_ack for s in parts)))

    def all_acked(self, step: int) -> bool:
        return all(s.last_step_ack >= step for s in self.participants())

    def snapshot_acked(self, snapshot_id: int) -> bool:
        """Every participant has taken in the catch-up snapshots up to `snapshot_id` (acks are cumulative)."""
        return all(s.snapshot_ack >= snapshot_id for s in self.participants())

    def lost(self) -> list[StageInfo]:
        return [s for s in self.participants() if s.lost_step is not None]

    def all_flushed(self) -> bool:
        """Every participant that is still alive flushed (a lost one never will: not waited for)."""
        return all(s.flushed for s in self.participants() if s.lost_step is None)

    def count_waited_on(self, step: int) -> None:
        """Once per step held back by the window: charge the stage with the oldest ack."""
        parts = self.participants()
        if parts and self.waited_counted != step:
            self.waited_counted = step
            min(parts, key=lambda s: s.last_step_ack).waited_on += 1

    def configured_lost(self, now: float, step: int, configured) -> list[StageInfo]:
        """The lost stages the config waits for. A lost participant it does not wait for (a late joiner,
        or a forged HELLO) is dropped: it no longer holds the clock, and a restarted one registers again."""
        lost = self.lost_check(now, step)
        for info in [s for s in lost if s.name not in configured]:
            self.drop(info.name, f"lost at step {info.lost_step}: dropped, the run goes on")
        return [s for s in lost if s.name in configured]

    def drop(self, name: str, why: str) -> None:
        log.warning("stage %s %s", name, why)
        self.by_name.pop(name, None)

    def lost_check(self, now: float, step: int) -> list[StageInfo]:
        """Participants not seen (no ack of any kind, `alive` included) for `lost_after_s` are lost (logged
        once; listed as long as no replacement registered); observers not seen that long are forgotten."""
        for info in [s for s in self.by_name.values() if s.role == "observer"]:
            if now - info.last_seen_wall > self.lost_after_s:
                log.warning("observer %s not seen for %.0f s: registration dropped", info.name, now - info.last_seen_wall)
                del self.by_name[info.name]
        lost = []
        for info in self.participants():
            if info.lost_step is None and now - info.last_seen_wall > self.lost_after_s:
                info.lost_step = step
                log.error("stage %s lost at step %d: no sign of life for %.1f s", info.name, step,
                          now - info.last_seen_wall)
            if info.lost_step is not None:
                lost.append(info)
        return lost

    def owing_from(self, step: int, now: float) -> None:
        """Steps after `step` are about to go out: a participant that has acked everything up to it starts
        owing now (an idle stage is not stalled because the coordinator spent long loading a session)."""
        for info in self.participants():
            if info.last_step_ack >= step:
                info.owing_since = now

    def stall_check(self, now: float, step: int, awaiting_snapshot: int | None) -> None:
        """Flag (and log once) each participant that owes an ack and has been silent for `ack_timeout_s`."""
        for info in self.participants():
            behind = step > info.last_step_ack or (
                awaiting_snapshot is not None and info.snapshot_ack < awaiting_snapshot)
            if behind and not info.stalled and now - max(info.last_ack_wall, info.owing_since) > self.ack_timeout_s:
                info.stalled = True
                log.error("stage %s has not acknowledged for %.1f s (last ack step %d, published %d)",
                          info.name, now - info.last_ack_wall, info.last_step_ack, step)


def relayable_actions(info: StageInfo | None, body: dict) -> list | None:
    """The order actions an accepted ack carries, to relay as ORDERS (None: none, or not from a trader)."""
    actions = body.get("actions")
    if info is None or not actions:
        return None
    if not info.trader or not isinstance(actions, list):
        log.warning("ack from %s: order actions dropped (%s)", info.name,
                    "not a list" if info.trader else "it did not register as a trading stage")
        return None
    return actions


def _busy_times(body: dict, flow_window: int) -> list[int]:
    """Busy times a step ack reports: at most one per step a window can hold (a longer or malformed list
    is a client's mistake, or an attack: it is dropped, the ack still counts)."""
    busy = body.get("busy_list")
    if isinstance(busy, list):
        if len(busy) > max(64, 4 * flow_window) or not all(isinstance(b, int) and b >= 0 for b in busy):
            log.warning("ack from %s: busy_list of %d item(s) dropped", body.get("stage"), len(busy))
            return []
        return busy
    value = body.get("busy_ns")
    return [value] if isinstance(value, int) and value > 0 else []

