"""Coordinator process: the clock, the calendar, the bar queues; a poller loop around SessionEngine.

Sockets: PUB (session events and bars), ROUTER (ctl commands; stage registrations and acks, tied to the connection).
Run: python -m services.coordinator --config configs/default.json
"""
from __future__ import annotations

import json
import signal
import sys
import time

import click
import zmq

from common import progress
from common.config import ConfigError, is_loopback, load_config, session_name
from common.data.store import BarStore, StoreError
from common.domain.calendar import TradingCalendar
from common.logsetup import log_level_option, set_level_from_option, setup_logging
from common.security import KeysError, SocketSecurity
from common.runs import is_run_id
from common.sessions import SessionError, SessionLock
from common.stage.runtime import ignore_termination
from common.wire import protocol as P
from services.coordinator import report
from services.coordinator.engine import SessionEngine, State
from services.coordinator.errors import CommandError
from services.coordinator.runrecord import RunRecord

STOP_GRACE_S = 4.0


def _reply_frames(envelope: list, body: dict) -> list:
    return envelope + P.encode(P.Message(P.REPLY, body))


def _split_envelope(frames: list) -> tuple[list, list]:
    """ROUTER frames -> (routing envelope incl. the empty delimiter if REQ, payload frames)."""
    for i, frame in enumerate(frames):
        if len(frame) == 0:
            return frames[: i + 1], frames[i + 1:]
    return frames[:1], frames[1:]


def serve(config_path: str, run_id: str | None = None) -> int:
    log = setup_logging("coordinator")
    try:
        config = load_config(config_path)
        calendar = TradingCalendar(config.calendar)
    except (ConfigError, ValueError) as exc:
        log.error("config error: %s", exc)
        return 2
    lock = _session_lock(config, log)  # held until the process exits
    if lock is None:
        return 2
    ctx = zmq.Context.instance()
    security = SocketSecurity.for_endpoints(ctx, config.endpoints, config.keys_dir)
    sockets = _bind_sockets(security, config, log)
    if sockets is None:
        return 2
    pub, router = sockets
    publisher = P.Publisher(pub, "coordinator")
    record = RunRecord(config, run_id)
    store = BarStore(config.data_root, record_reads=True)
    engine = SessionEngine(config, calendar, store, publisher.send, run_id=record.run_id)
    record.start()
    # long loads (a whole market's files) beat from inside: stages see a busy coordinator, not a silent one
    progress.install(lambda: publisher.heartbeat(clock=engine.clock_ns, step=engine.global_step), config.heartbeat_s)
    stop_signal = []
    signal.signal(signal.SIGTERM, lambda *_: stop_signal.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop_signal.append(1))
    log.info("listening: pub %s, commands and acks %s; waiting for stages %s; %d session(s) %s..%s",
             config.endpoints["coordinator_pub"], config.endpoints["coordinator_router"],
             ", ".join(config.stages), len(engine.sessions), engine.sessions[0], engine.sessions[-1])
    _poll_loop(engine, publisher, router, stop_signal, log)
    ignore_termination()
    for line in report.report_lines(engine):
        log.info("%s", line)
    log.info("performance json: %s", json.dumps(report.performance_report(engine)))
    exit_code = record.finish(engine, store.reads)
    for closable in (pub, router, security):
        closable.close()
    ctx.term()
    return exit_code


def _session_lock(config, log) -> SessionLock | bool | None:
    """One coordinator per session name when it uses the session's private sockets (they would be taken
    over otherwise); a config that names all its endpoints runs unlocked (True). None: refused."""
    lock = SessionLock(session_name(config.raw, config.path))
    if not any(ep.startswith(f"ipc://{lock.path.parent}/") for ep in config.endpoints.values()):
        return True
    try:
        lock.acquire()
    except (SessionError, OSError) as exc:
        log.error("%s", exc)
        return None
    return lock


def _bind_sockets(security: SocketSecurity, config, log):
    """(PUB, ROUTER) bound to the config's endpoints (CURVE servers on tcp), or None (logged) when one
    cannot be bound."""
    pub = security.ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, config.pub_hwm)
    pub.setsockopt(zmq.LINGER, 1000)
    router = security.ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.MAXMSGSIZE, P.MAX_REQUEST_BYTES)
    try:
        for sock, key in ((pub, "coordinator_pub"), (router, "coordinator_router")):
            endpoint = config.endpoints[key]
            security.server(sock, endpoint).bind(endpoint)
            if endpoint.startswith("tcp://") and not is_loopback(endpoint[6:].rsplit(":", 1)[0]):
                log.info("%s %s is reachable from other machines: CURVE-authenticated clients only", key, endpoint)
    except (zmq.ZMQError, KeysError) as exc:
        log.error("cannot bind endpoints %s: %s", config.endpoints, exc)
        security.close()
        return None
    return pub, router


def _poll_loop(engine: SessionEngine, publisher, router, stop_signal: list, log) -> None:
    """Advance the engine, beat, and serve acks and requests until SHUTDOWN is out."""
    config = engine.config
    poller = zmq.Poller()
    poller.register(router, zmq.POLLIN)
    last_beat = 0.0
    end_deadline = None
    progress_line = report.ProgressLine(engine, config.progress_s)
    while True:
        now = time.monotonic()
        if engine.state is State.RUNNING and progress_line.due(now):
            _log_if(log, progress_line.line(now))
        if stop_signal and not engine.stop_requested:
            log.info("signal received: stopping")
            engine.request_stop(by="a signal")
        try:
            wait = engine.advance(now)
        except (StoreError, ValueError) as exc:
            engine.abort(exc)
            wait = None
        if engine.state is State.ENDING:
            if end_deadline is None:
                end_deadline = now + (STOP_GRACE_S if engine.stop_requested else max(30.0, config.ack_timeout_s))
            if _shut_down_when_flushed(engine, publisher, _flush_overdue(engine, now, end_deadline), log):
                return
        beat_every = config.heartbeat_s if engine.state is not State.WAITING else 0.05
        if now - last_beat >= beat_every:
            publisher.heartbeat(clock=engine.clock_ns, step=engine.global_step)
            last_beat = now
        timeout = beat_every if wait is None else min(wait, beat_every)
        events = dict(poller.poll(timeout=max(0, int(timeout * 1000))))
        if router in events:
            _serve_commands(router, engine, log)


def _log_if(log, line: str | None) -> None:
    if line:
        log.info("%s", line)


def _flush_overdue(engine: SessionEngine, now: float, deadline: float) -> bool:
    """Past the deadline, a stopped run shuts down; a completed one waits as long as every stage still
    flushing shows signs of life (a whole market's results take time to write: no deadline guesses how
    long), and stops waiting once one is lost (not seen for flow.lost_after_s)."""
    if now <= deadline:
        return False
    if engine.stop_requested:
        return True
    unflushed = [s for s in engine.stages.participants() if not s.flushed]
    return any(now - s.last_seen_wall > engine.config.lost_after_s for s in unflushed)


def _shut_down_when_flushed(engine: SessionEngine, publisher, past_deadline: bool, log) -> bool:
    """After BACKTEST_END: SHUTDOWN once every participant flushed, or at the deadline; True when sent."""
    if not (engine.stages.all_flushed() or past_deadline):
        return False
    if not engine.stages.all_flushed():
        log.error("stages did not confirm flush in time: %s",
                  [s.name for s in engine.stages.participants() if not s.flushed])
    # SHUTDOWN either way: a stage that was only slow flushes on BACKTEST_END and then exits
    publisher.send(P.Message(P.SHUTDOWN, step=engine.global_step, clock=engine.clock_ns))
    return True


def _serve_commands(router, engine: SessionEngine, log) -> None:
    while True:
        try:
            frames = router.recv_multipart(flags=zmq.NOBLOCK)
        except zmq.Again:
            return
        envelope, payload = _split_envelope(frames)
        is_hello = False
        try:
            msg = P.decode(payload)
            is_hello = msg.type == P.HELLO
            if msg.type == P.ACK:  # from a stage's DEALER: tied to the connection that registered it
                engine.on_ack(msg.body, peer=envelope[0])
                continue
            if is_hello:
                pid = msg.body.get("pid")
                body = engine.on_hello(msg.body["stage"], msg.body["role"], pid if isinstance(pid, int) else 0,
                                       msg.body.get("indicators"), peer=envelope[0],
                                       trades=msg.body.get("trades") is True)
                if msg.body.get("snapshot"):
                    _send_snapshot(router, envelope, engine, body, log, msg.body["stage"])
                    continue
            elif msg.type == P.COMMAND:
                body = {**engine.command(msg.body["name"], msg.body["args"], msg.body["request_id"]),
                        "request_id": msg.body["request_id"]}  # a stage matches its replies by it
                if not body.get("ok"):
                    log.warning("command %s refused: %s", msg.body["name"], body.get("error"))
            else:
                raise P.ProtocolError(f"expected HELLO, COMMAND or ACK, got {msg.type}")
        except (P.ProtocolError, CommandError, KeyError, TypeError, ValueError) as exc:
            log.error("bad request: %s", exc)
            body = {"ok": False, "error": str(exc), "hello": is_hello}
        router.send_multipart(_reply_frames(envelope, body))


def _send_snapshot(router, envelope: list, engine: SessionEngine, body: dict, log, stage: str) -> None:
    """Clone-pattern snapshot: REPLY {parts, seq}, then the session journal, one message per part."""
    seq, journal = engine.snapshot()
    router.send_multipart(_reply_frames(envelope, {**body, "parts": len(journal), "seq": seq}))
    for frames in journal:
        router.send_multipart(envelope + frames, copy=False)
    log.info("snapshot sent to %s: %d message(s) up to seq %d", stage, len(journal), seq)


@click.command()
@log_level_option
@click.option("--config", "config_path", default="configs/default.json", show_default=True,
              help="Session config (JSON).")
@click.option("--run-id", default=None, callback=lambda ctx, param, value: _checked_run_id(value),
              help="The run's id (its folder under results/); default: UTC start time and config name.")
def main(config_path: str, run_id: str | None, log_level: str | None) -> None:
    """Run the coordinator."""
    set_level_from_option(log_level)
    sys.exit(serve(config_path, run_id))


def _checked_run_id(value: str | None) -> str | None:
    if value is not None and not is_run_id(value):
        raise click.BadParameter(f"{value!r} is not a run id like 20250701-093000-name", param_hint="--run-id")
    return value


if __name__ == "__main__":
    main()
