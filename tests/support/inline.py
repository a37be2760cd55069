"""The coordinator engine and the three stage handlers in one process, wired by hand: the real
codec on every coordinator message (encoded and decoded), lockstep acks. For tests of what strategies
see, without sockets or subprocesses."""
from __future__ import annotations

import logging

from common.config import parse_config
from common.wire import protocol as P
from services.analysis.handler import AnalysisHandler
from services.coordinator.engine import SessionEngine, State
from services.processor.handler import ProcessorHandler
from services.quality.handler import QualityHandler

STAGES = ("processor", "quality", "analysis")


class Wire:
    """Stands in for the PUB socket: keeps every message, decoded back from its frames."""

    def __init__(self):
        self.publisher = P.Publisher(self, "coordinator")
        self.messages: list[P.Message] = []

    def send_multipart(self, frames, copy=False):
        self.messages.append(P.decode([bytes(f) for f in frames]))

    def types(self) -> list[str]:
        return [m.type for m in self.messages]


def run_inline(config: dict, store, calendar, results_dir, log: logging.Logger | None = None) -> AnalysisHandler:
    """Run the whole backtest; returns the analysis handler (its replica, signals, contexts)."""
    log = log or logging.getLogger("inline")
    cfg = parse_config({"stages": list(STAGES), **config, "results_dir": str(results_dir)})
    wire = Wire()
    engine = SessionEngine(cfg, calendar, store, wire.publisher.send, run_id="20250101-000000-inline")
    processor, quality = ProcessorHandler(cfg, log), QualityHandler(cfg, log)
    analysis = AnalysisHandler(cfg, log, results_dir=results_dir)
    for pid, stage in enumerate(STAGES):
        engine.on_hello(stage, "participant", pid=pid + 1,
                        indicators=analysis.wanted_indicators() if stage == "analysis" else None)
    done = 0
    for _ in range(100_000):
        engine.advance(0.0)
        for msg in wire.messages[done:]:
            answers = {name: out[0] for name, handler in (("processor", processor), ("quality", quality))
                       for out in [handler.handle(msg, {})] if out}
            analysis.handle(msg, answers)
        done = len(wire.messages)
        for stage in STAGES:
            engine.on_ack({"stage": stage, "kind": "step", "ref": engine.global_step})
            engine.on_ack({"stage": stage, "kind": "snapshot", "ref": engine.catchup.snapshot_id})
        if engine.state is State.ENDING:
            analysis.flush()
            return analysis
    raise AssertionError("the engine did not end")
