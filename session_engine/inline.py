"""A whole session in one process: the coordinator's engine and every stage's handler, no sockets.

The handlers are the very objects the processes run (services/*/handler.py); what the processes add
around them (sockets, ordering by seq, answers joined to the message they answer, acks) is done here by
direct calls, in the order the processes guarantee: each coordinator message goes to the processor and
the quality monitor first, then to the analysis stage with their answers, then to the broker. Stages ack
each message as it is handled (lockstep), through the same AckBatcher the stage runtime uses, so the
coordinator relays a trading stage's orders exactly as it does for a process. Every coordinator message
is encoded and decoded by the real codec, as on the wire.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import math
import time

from common.config import ConfigError, SessionConfig
from common.data.store import BarStore, StoreError
from common.domain.calendar import TradingCalendar
from common.stage.acks import AckBatcher
from common.wire import protocol as P
from services.analysis.handler import AnalysisHandler
from services.broker.handler import BrokerHandler
from services.coordinator.engine import SessionEngine, State
from services.coordinator.runrecord import RunRecord
from services.processor.handler import ProcessorHandler
from services.quality.handler import QualityHandler

ANSWERING = ("processor", "quality")  # their answers go with each coordinator message to the analysis stage
MAX_IDLE_TURNS = 3  # turns in a row that publish nothing and end nothing: the run is stuck (a bug), not slow


class InlineError(RuntimeError):
    """The inline run could not go on (the engine waits for something no stage in this process sends)."""


class Wire:
    """Stands in for the coordinator's PUB socket: keeps what was published, decoded back from its frames."""

    def __init__(self):
        self.messages: list[P.Message] = []

    def send_multipart(self, frames, copy=False):
        self.messages.append(P.decode([bytes(f) for f in frames]))

    def take(self) -> list[P.Message]:
        out, self.messages = self.messages, []
        return out


@dataclasses.dataclass
class InlineStage:
    """One stage's handler and its acks, as the stage runtime would send them."""

    name: str
    handler: object
    acks: AckBatcher
    snapshot_join: bool


class InlineSession:
    """Runs one backtest in this process; `run()` returns the run's exit code (0 completed, 3 stopped,
    1 aborted), and the run folder holds the same record and result files as a run of processes."""

    def __init__(self, config: SessionConfig, run_id: str, log: logging.Logger | None = None,
                 strategies=None):
        pauses = [f"schedule[{i}]" for i, cmd in enumerate(config.schedule) if cmd.command == "pause"]
        if pauses:  # a scheduled pause holds the clock until `ctl resume`
            raise ConfigError(f"{pauses[0]}: a scheduled pause waits for an operator's `ctl resume`, and an "
                              f"inline run has none: remove it, or run with mode='processes'")
        # one process: nothing can be lost or silent, and there is no wall clock to pace against
        self.config = dataclasses.replace(config, clock_speed=None, lost_after_s=math.inf, ack_timeout_s=math.inf)
        self.log = log or logging.getLogger("session_engine.inline")
        self.wire = P.Publisher(Wire(), "coordinator")
        self.store = BarStore(config.data_root, record_reads=True)
        self.record = RunRecord(self.config, run_id)
        self.engine = SessionEngine(self.config, TradingCalendar(config.calendar), self.store, self.wire.send,
                                    run_id=run_id)
        self.request_ids = itertools.count(1)
        self.stages = self._make_stages(strategies)

    def _make_stages(self, strategies) -> dict[str, InlineStage]:
        config, log = self.config, self.log
        makers = {
            "processor": lambda: ProcessorHandler(config, log.getChild("processor")),
            "quality": lambda: QualityHandler(config, log.getChild("quality")),
            "analysis": lambda: AnalysisHandler(config, log.getChild("analysis"), strategies=strategies),
            "broker": lambda: BrokerHandler(config, log.getChild("broker")),
        }
        stages = {}
        for name in [s for s in ("processor", "quality", "analysis", "broker") if s in config.stages]:
            handler = makers[name]()
            acks = AckBatcher(name, self._ack, handler.ack_fields)
            stages[name] = InlineStage(name, handler, acks, snapshot_join=name in ("analysis", "broker"))
        return stages

    def run(self) -> int:
        self.record.start()
        for pid, stage in enumerate(self.stages.values(), start=1):
            self.engine.on_hello(stage.name, "participant", pid=pid, indicators=stage.handler.wanted_indicators(),
                                 trades=stage.handler.trades())
            if stage.snapshot_join:  # as a process does: its (empty) snapshot starts its strategies
                stage.handler.replay([])
        try:
            self._loop()
        except KeyboardInterrupt:  # Ctrl-C in a notebook: stopped at the next boundary, results written
            self.engine.request_stop(by="an interrupt (KeyboardInterrupt)")
            self._loop()
            self.record.finish(self.engine, self.store.reads)
            raise
        except Exception as exc:  # noqa: BLE001  (whatever ended it, the run's record must say it did not complete)
            self._abort(exc)
            if not isinstance(exc, (StoreError, ValueError)):  # a data error is the run's outcome; else a bug
                self.record.finish(self.engine, self.store.reads)
                raise
        return self.record.finish(self.engine, self.store.reads)

    def _abort(self, exc: Exception) -> None:
        """As the coordinator process on a store or data error: BACKTEST_END "error", every stage flushes."""
        if self.engine.state is not State.ENDING:
            self.engine.abort(exc)
        try:
            self._deliver(self.wire.socket.take())
        except Exception:  # noqa: BLE001  (a stage that broke may break again on the end: the record still says why)
            self.log.exception("flushing after %s failed", type(exc).__name__)

    def _loop(self) -> None:
        idle = 0
        while self.engine.state is not State.ENDING or not self.engine.stages.all_flushed():
            self.engine.advance(time.monotonic())
            messages = self.wire.socket.take()
            if not messages and self.engine.state is not State.ENDING:
                idle += 1
                if idle >= MAX_IDLE_TURNS:
                    raise InlineError(f"the engine waits in state {self.engine.state} at step "
                                      f"{self.engine.global_step} and no stage has anything to send")
                continue
            idle = 0
            self._deliver(messages)

    def _deliver(self, messages: list[P.Message]) -> None:
        """Each message to every stage in the order the processes guarantee; acks after each message."""
        for msg in messages:
            answers = {}
            for name in ANSWERING:
                if name in self.stages:
                    out = self._handle(self.stages[name], msg, {})
                    if out:
                        answers[name] = out[0]
            for name in ("analysis", "broker"):
                if name in self.stages:
                    self._handle(self.stages[name], msg, answers if name == "analysis" else {})
            for stage in self.stages.values():
                stage.acks.flush()

    def _handle(self, stage: InlineStage, msg: P.Message, answers: dict) -> list[P.Message]:
        started = time.perf_counter_ns()
        outgoing = stage.handler.handle(msg, answers) or []
        for out in outgoing:  # as the stage runtime stamps the answers it publishes
            out.body.setdefault("ref", msg.seq)
            out.step, out.clock = msg.step, msg.clock
        for name, args in stage.handler.take_commands():
            reply = self.engine.command(name, args, f"inline-{next(self.request_ids)}")
            if not reply.get("ok"):
                self.log.error("%s: strategy command %s refused: %s", stage.name, name, reply.get("error"))
        if stage.handler.stop_wanted() and not self.engine.stop_requested:
            self.engine.command("stop", {"by": f"a strategy of {stage.name} (on_error stop)"},
                                f"inline-{next(self.request_ids)}")
        if msg.type == P.SHUTDOWN:
            return outgoing
        stage.acks.handled(msg, time.perf_counter_ns() - started)
        if msg.type == P.BACKTEST_END:
            stage.handler.flush()
            stage.acks.results_flushed()
        return outgoing

    def _ack(self, msg: P.Message) -> None:
        self.engine.on_ack(msg.body)
