"""The stage runtime's state machine alone: the moves it has, the ones it refuses, the back-off."""
from __future__ import annotations

import logging

import pytest

from common.stage.lifecycle import (RESYNC_BACKOFF_MAX_S, TRANSITIONS, Lifecycle, State, TransitionError,
                                    resync_delay)

LOG = logging.getLogger("test-stage")


def joiner() -> Lifecycle:
    return Lifecycle(snapshot_join=True, log=LOG)


def test_every_state_has_its_moves_listed_and_finished_is_terminal():
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.FINISHED] == frozenset()
    assert all(State.FINISHED in moves for state, moves in TRANSITIONS.items() if state is not State.FINISHED)


def test_a_stage_from_the_start_is_live_once_it_said_hello(caplog):
    life = Lifecycle(snapshot_join=False, log=LOG)
    assert life.state is State.CONNECTING and not life.registered
    assert not life.hello_due(heard_all=False, now=0.0)
    assert life.hello_due(heard_all=True, now=0.0)
    with caplog.at_level(logging.INFO):
        life.hello_sent(["coordinator"], "participant")
    assert life.state is State.LIVE and life.registered and life.handling
    assert "subscriptions in place (coordinator); registered as participant" in caplog.text
    assert not life.hello_due(heard_all=True, now=0.0)


def test_a_snapshot_joiner_syncs_then_goes_live(caplog):
    life = joiner()
    assert life.snapshot_covers_intake  # before HELLO: the snapshot asked for will cover it
    life.hello_sent(["quality", "coordinator", "processor"], "observer")
    assert life.state is State.SYNCING and not life.handling and not life.snapshot_covers_intake
    with caplog.at_level(logging.INFO):
        life.snapshot_applied(12, 40)
    assert life.state is State.LIVE and life.handling
    assert "snapshot applied: 12 message(s) up to seq 40; live from seq 41" in caplog.text


def test_resync_waits_out_its_back_off_then_asks_again(caplog):
    life = joiner()
    life.hello_sent(["coordinator"], "observer")
    life.snapshot_applied(0, 0)
    with caplog.at_level(logging.ERROR):
        assert life.resync("lost messages from coordinator", now=100.0) == 0.0
    assert "lost messages from coordinator: resyncing from a fresh snapshot in 0.0 s (resync #1)" in caplog.text
    assert life.state is State.RESYNC_WAIT and life.snapshot_covers_intake and life.registered
    assert life.hello_due(heard_all=True, now=100.0)
    life.hello_sent(["coordinator"], "observer")
    assert life.state is State.SYNCING and life.resync_at is None
    assert life.resync("publisher restarted", now=200.0) == 1.0   # the second one backs off
    assert not life.hello_due(heard_all=True, now=200.5)
    assert life.hello_due(heard_all=True, now=201.0)


def test_back_off_doubles_up_to_its_cap():
    assert [resync_delay(n) for n in (1, 2, 3, 4)] == [0.0, 1.0, 2.0, 4.0]
    assert resync_delay(30) == RESYNC_BACKOFF_MAX_S


def test_a_participant_waits_for_shutdown_after_writing_its_results():
    life = Lifecycle(snapshot_join=False, log=LOG)
    life.hello_sent(["coordinator"], "participant")
    life.results_written(final=False)
    assert life.state is State.FLUSHED and life.handling  # SHUTDOWN still has to be handled
    life.results_written(final=False)                     # a second flush is no move
    assert not life.resync_on_loss
    life.finish("SHUTDOWN")
    assert life.state is State.FINISHED and not life.handling
    life.finish("again")
    assert life.state is State.FINISHED


def test_loss_and_restarts_resync_only_a_joiner_with_a_place_to_lose():
    plain = Lifecycle(snapshot_join=False, log=LOG)
    plain.hello_sent(["coordinator"], "participant")
    assert not plain.resync_on_loss and not plain.resync_on_restart
    life = joiner()
    assert not life.resync_on_restart and not life.resync_on_loss          # CONNECTING
    life.hello_sent(["coordinator"], "observer")
    assert life.resync_on_restart and not life.resync_on_loss              # SYNCING
    life.snapshot_applied(0, 0)
    assert life.resync_on_restart and life.resync_on_loss                  # LIVE


@pytest.mark.parametrize("moves", [
    lambda life: life.snapshot_applied(0, 0),                              # CONNECTING -> LIVE by snapshot
    lambda life: life.results_written(final=False),                        # CONNECTING -> FLUSHED
    lambda life: (life.hello_sent([], "observer"), life.results_written(final=False)),  # SYNCING -> FLUSHED
    lambda life: (life.hello_sent([], "observer"), life.hello_sent([], "observer")),    # HELLO twice
])
def test_moves_outside_the_table_raise(moves):
    with pytest.raises(TransitionError):
        moves(joiner())


def test_any_state_can_finish():
    for steps in ([], ["hello"], ["hello", "resync"], ["hello", "synced"], ["hello", "synced", "flushed"]):
        life = joiner()
        for step in steps:
            {"hello": lambda: life.hello_sent([], "participant"), "resync": lambda: life.resync("x", 0.0),
             "synced": lambda: life.snapshot_applied(0, 0),
             "flushed": lambda: life.results_written(final=False)}[step]()
        life.results_written(final=True)
        assert life.state is State.FINISHED
