"""StageRegistry without sockets: registration, acks, the credit window, waited-on accounting, stalls."""
from __future__ import annotations

import logging

import pytest

from services.coordinator.errors import CommandError
from services.coordinator.stages import StageRegistry


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _registry(window=2, timeout=5.0):
    clock = Clock()
    reg = StageRegistry(window, timeout, clock)
    reg.register("processor", "participant", 1, 0, 0)
    reg.register("quality", "participant", 2, 0, 0)
    reg.register("watch", "observer", 3, 0, 0)
    return reg, clock


def _ack(reg, stage, kind, ref, **extra):
    reg.on_ack({"stage": stage, "kind": kind, "ref": ref, **extra})


def test_registration_rules():
    reg, _ = _registry()
    with pytest.raises(CommandError, match="role 'boss' is not one of participant, observer"):
        reg.register("x", "boss", 9, 0, 0)
    with pytest.raises(CommandError, match="'processor' is taken by pid 1"):
        reg.register("processor", "participant", 7, 0, 0)
    reg.register("processor", "participant", 1, 5, 2)  # the same process resyncs
    info = reg.by_name["processor"]
    assert (info.last_step_ack, info.snapshot_ack) == (5, 2)
    info.stalled = True
    reg.register("processor", "participant", 7, 5, 2)  # a stalled holder is replaced
    assert reg.by_name["processor"].pid == 7
    assert reg.missing(["processor", "analysis"]) == ["analysis"]


def test_credit_window_counts_participants_only():
    reg, _ = _registry(window=2)
    assert reg.has_credit(1) and not reg.has_credit(2)
    _ack(reg, "processor", "step", 2)
    assert not reg.has_credit(2)  # quality is still at 0
    _ack(reg, "quality", "step", 1)
    assert reg.has_credit(2) and not reg.all_acked(2)
    _ack(reg, "quality", "step", 2)
    _ack(reg, "quality", "step", 1)  # acks are cumulative: an old one changes nothing
    assert reg.all_acked(2)
    assert StageRegistry(1, 5.0, Clock()).has_credit(99)  # nobody to wait for


def test_waited_on_is_charged_once_per_step_to_the_furthest_behind():
    reg, _ = _registry()
    _ack(reg, "processor", "step", 3)
    for _ in range(3):
        reg.count_waited_on(4)
    reg.count_waited_on(5)
    waited = {s.name: s.waited_on for s in reg}
    assert waited == {"processor": 0, "quality": 2, "watch": 0}


def test_snapshot_and_flush_acks():
    reg, _ = _registry()
    _ack(reg, "processor", "snapshot", 3)
    _ack(reg, "processor", "snapshot", 2)
    assert not reg.snapshot_acked(3)
    _ack(reg, "quality", "snapshot", 3)
    assert reg.snapshot_acked(3)
    assert not reg.all_flushed()
    _ack(reg, "processor", "flushed", 0)
    _ack(reg, "quality", "flushed", 0)
    assert reg.all_flushed()  # the observer is not waited for


def test_busy_figures_from_single_and_burst_acks():
    reg, _ = _registry()
    _ack(reg, "processor", "step", 1, busy_ns=500)
    _ack(reg, "processor", "step", 3, busy_list=[1, 2])
    _ack(reg, "processor", "step", 3, busy_ns=0)
    assert reg.by_name["processor"].busy_ns == [500, 1, 2]


def test_stall_is_flagged_once_and_cleared_by_an_ack(caplog):
    reg, clock = _registry(timeout=5.0)
    _ack(reg, "processor", "step", 4)
    _ack(reg, "quality", "step", 4)
    clock.t += 10
    with caplog.at_level(logging.ERROR, logger="coordinator"):
        reg.stall_check(clock.t, 4, None)  # nobody owes anything
        assert not any(s.stalled for s in reg)
        reg.stall_check(clock.t, 4, awaiting_snapshot=1)  # both owe the snapshot
        reg.stall_check(clock.t, 5, None)
    assert [s.name for s in reg if s.stalled] == ["processor", "quality"]
    assert sum("has not acknowledged for 10.0 s" in r.getMessage() for r in caplog.records) == 2
    _ack(reg, "processor", "snapshot", 1)
    assert not reg.by_name["processor"].stalled


def test_ack_from_an_unknown_stage_is_ignored(caplog):
    reg, _ = _registry()
    with caplog.at_level(logging.WARNING, logger="coordinator"):
        _ack(reg, "ghost", "step", 1)
    assert "ack for stage ghost from an unregistered stage ignored (1 so far)" in caplog.text


def test_acks_count_only_from_the_connection_that_registered_the_stage():
    reg, _ = _registry()
    reg.register("analysis", "participant", 5, 0, 0, peer=b"conn-a")
    reg.on_ack({"stage": "analysis", "kind": "step", "ref": 1_000_000_000}, peer=b"forged")
    assert reg.by_name["analysis"].last_step_ack == 0 and reg.ignored_acks == 1
    reg.on_ack({"stage": "analysis", "kind": "step", "ref": 3}, peer=b"conn-a")
    assert reg.by_name["analysis"].last_step_ack == 3
    with pytest.raises(CommandError, match="'analysis' is taken by pid 5"):  # same pid, other connection
        reg.register("analysis", "observer", 5, 0, 0, peer=b"forged")
    reg.register("analysis", "participant", 5, 4, 0, peer=b"conn-a")  # the same connection re-registers


# ---- lost stages, bounded registrations and acks (issue 11) ------------------------------------------
def test_a_participant_not_seen_for_lost_after_s_is_lost_and_may_be_replaced(caplog):
    clock = Clock()
    reg = StageRegistry(2, 5.0, clock, lost_after_s=10.0)
    reg.register("processor", "participant", 1, 0, 0)
    reg.register("quality", "participant", 2, 0, 0)
    clock.t += 6.0
    _ack(reg, "quality", "alive", 0)  # alive acks keep it: seen, even with nothing to ack
    clock.t += 5.0
    with caplog.at_level(logging.ERROR):
        lost = reg.lost_check(clock.t, 7)
    assert [(s.name, s.lost_step) for s in lost] == [("processor", 7)]
    assert "stage processor lost at step 7: no sign of life for 11.0 s" in caplog.text
    reg.register("processor", "participant", 99, 9, 0)  # a restarted processor takes the name over
    assert reg.lost_check(clock.t, 9) == [] and reg.by_name["processor"].pid == 99


def test_alive_acks_do_not_count_as_progress():
    reg, clock = _registry(timeout=1.0)
    clock.t += 2.0
    _ack(reg, "processor", "alive", 0)
    reg.stall_check(clock.t, 3, None)
    assert reg.by_name["processor"].stalled  # alive, but owes steps: still flagged


def test_observers_are_capped_and_forgotten_when_silent():
    clock = Clock()
    reg = StageRegistry(2, 5.0, clock, lost_after_s=10.0, max_observers=2)
    reg.register("a", "observer", 1, 0, 0)
    reg.register("b", "observer", 2, 0, 0)
    with pytest.raises(CommandError, match="2 observers are attached, the most this session takes"):
        reg.register("c", "observer", 3, 0, 0)
    clock.t += 11.0
    _ack(reg, "b", "alive", 0)
    reg.lost_check(clock.t, 0)
    assert sorted(reg.by_name) == ["b"]
    reg.register("c", "observer", 3, 0, 0)


@pytest.mark.parametrize("name", ["../../x", "a/b", "", ".hidden", "x" * 65])
def test_stage_names_that_are_not_folder_names_are_refused(name):
    reg, _ = _registry()
    with pytest.raises(CommandError, match="must be 1-64 letters"):
        reg.register(name, "observer", 9, 0, 0)


def test_an_oversized_or_malformed_busy_list_is_dropped_but_the_ack_counts():
    reg, _ = _registry(window=4)
    _ack(reg, "processor", "step", 3, busy_list=list(range(800_000)))
    _ack(reg, "processor", "step", 4, busy_list=["x"])
    info = reg.by_name["processor"]
    assert info.last_step_ack == 4 and info.busy_ns == []
    _ack(reg, "processor", "step", 5, busy_list=[10, 20])
    assert info.busy_ns == [10, 20]
