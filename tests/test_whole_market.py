"""What a whole market needs: progress signals instead of guessed timeouts, one log line instead of thousands."""
from __future__ import annotations

import logging
import threading

from common import progress
from common.logsetup import log_per_symbol
from services.coordinator.stages import StageRegistry


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _registry(timeout=5.0):
    clock = Clock()
    reg = StageRegistry(16, timeout, clock, lost_after_s=30.0)
    reg.register("processor", "participant", 1, 0, 0)
    return reg, clock


def test_a_busy_alive_ack_is_progress_and_a_plain_one_is_not():
    for busy, stalled in ((True, False), (False, True)):
        reg, clock = _registry()
        reg.owing_from(0, clock())  # step 1 goes out
        clock.t += 4.0
        reg.on_ack({"stage": "processor", "kind": "alive", "ref": 0, **({"busy": True} if busy else {})})
        clock.t += 4.0  # 8 s owing, 4 s since the (busy) alive
        reg.stall_check(clock(), 1, None)
        assert reg.by_name["processor"].stalled is stalled
        assert reg.lost_check(clock(), 1) == []  # either way it was seen: not lost


def test_a_stage_owes_a_step_from_when_it_went_out_not_from_its_last_ack():
    """The coordinator spent 60 s loading a whole market's session: the idle stages are not stalled."""
    reg, clock = _registry()
    clock.t += 60.0
    reg.owing_from(0, clock())
    clock.t += 1.0
    reg.stall_check(clock(), 1, None)
    assert not reg.by_name["processor"].stalled
    clock.t += 5.0
    reg.stall_check(clock(), 1, None)
    assert reg.by_name["processor"].stalled


def test_progress_ticks_beat_at_most_once_per_interval_and_only_on_the_main_thread():
    beats = []
    try:
        progress.install(lambda: beats.append(1), every_s=3600.0)
        for _ in range(1000):
            progress.tick()
        assert beats == []  # the interval has not passed since install
        progress.install(lambda: beats.append(1), every_s=0.0)
        progress.tick()
        progress.tick()
        assert beats == [1, 1]
        other = threading.Thread(target=progress.tick)
        other.start()
        other.join()
        assert beats == [1, 1]  # the sockets belong to the main thread
    finally:
        progress.install(None, 1.0)
    progress.tick()  # nothing installed: nothing happens


def test_per_symbol_lines_become_one_summary_line_above_twenty_symbols(caplog):
    log = logging.getLogger("test-market")
    with caplog.at_level(logging.WARNING, logger="test-market"):
        log_per_symbol(log, logging.WARNING, [f"S{i}: 3 of 5 trailing days" for i in range(20)], "short history")
    assert len(caplog.records) == 20
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="test-market"):
        log_per_symbol(log, logging.WARNING, [f"S{i}: 3 of 5 trailing days" for i in range(5000)], "short history")
    assert [r.getMessage() for r in caplog.records] == [
        "short history: 5000 symbols (first five: S0: 3 of 5 trailing days; S1: 3 of 5 trailing days; "
        "S2: 3 of 5 trailing days; S3: 3 of 5 trailing days; S4: 3 of 5 trailing days)"]


def test_status_names_twenty_symbols_and_counts_the_rest(tmp_path, calendar):
    from common.config import parse_config
    from common.data.generate import generate
    from common.data.store import BarStore
    from services.coordinator import report
    from services.coordinator.engine import SessionEngine
    from support.inline import Wire

    symbols = [f"M{i:03d}" for i in range(45)]
    store = BarStore(tmp_path / "store")
    generate(store, calendar, symbols, "2025-07-02", "2025-07-02", seed=5)
    cfg = parse_config({"session": {"start_date": "2025-07-02", "end_date": "2025-07-02", "symbols": symbols},
                        "historical": [], "stages": ["processor"]})
    engine = SessionEngine(cfg, calendar, store, Wire().publisher.send)
    engine.on_hello("processor", "participant", pid=1)
    engine.advance(0.0)
    status = report.status(engine)
    assert status["symbols"] == symbols[:20] and status["n_symbols"] == 45
