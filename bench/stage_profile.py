"""Per-stage cost of the year-of-10 workload, in one process (no sockets, no contention between stages).

    python bench/stage_profile.py [--days 20] [--symbols 10] [--profile processor|quality|analysis|coordinator]

The coordinator engine runs `configs/default.json` (13 indicators, both example strategies, 5 trailing
days) over the first --days sessions of the year bench's generated store (bench/scale_bench.py year) and
its messages are recorded as encoded frames; then each stage handles the decoded frames in order and its
answers are encoded (and decoded for the analysis), as the stage runtime does. Prints each stage's time
per step (CPU time of the thread, best of --reps) and, with --profile STAGE, the cProfile of that stage's pass.
"""
from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.config import parse_config  # noqa: E402
from common.data.generate import generate  # noqa: E402
from common.data.store import BarStore  # noqa: E402
from common.domain.calendar import TradingCalendar  # noqa: E402
from common.wire import protocol as P  # noqa: E402
from services.analysis.handler import AnalysisHandler  # noqa: E402
from services.coordinator.engine import SessionEngine, State  # noqa: E402
from services.processor.handler import ProcessorHandler  # noqa: E402
from services.quality.handler import QualityHandler  # noqa: E402

STAGES = ("processor", "quality", "analysis")
START = dt.date(2024, 7, 1)


class Wire:
    def __init__(self):
        self.publisher = P.Publisher(self, "coordinator")
        self.frames: list[list[bytes]] = []

    def send_multipart(self, frames, copy=False):
        self.frames.append([bytes(f) for f in frames])


def config(store: BarStore, calendar: TradingCalendar, days: int, symbols: list[str], results: str):
    cfg = json.loads((ROOT / "configs" / "default.json").read_text())
    end = calendar.sessions(START, dt.date(2025, 7, 3))[days - 1]
    cfg["session"].update(start_date=START.isoformat(), end_date=end.isoformat(), symbols=symbols)
    cfg.update(schedule=[], data_root=str(store.root), name="stage-profile", results_dir=results)
    return parse_config({"stages": list(STAGES), **cfg})


def record(cfg, calendar, store) -> list[list[bytes]]:
    """The coordinator's messages for the whole run, lockstep acks (batches as in clock max)."""
    wire = Wire()
    engine = SessionEngine(cfg, calendar, store, wire.publisher.send, run_id="20250101-000000-profile")
    for pid, stage in enumerate(STAGES):
        engine.on_hello(stage, "participant", pid=pid + 1, indicators=None)
    for _ in range(10_000_000):
        engine.advance(0.0)
        for stage in STAGES:
            engine.on_ack({"stage": stage, "kind": "step", "ref": engine.global_step})
            engine.on_ack({"stage": stage, "kind": "snapshot", "ref": engine.catchup.snapshot_id})
        if engine.state is State.ENDING:
            return wire.frames
    raise AssertionError("the engine did not end")


def answer_pass(handler, frames, name: str, by_type: dict) -> tuple[float, list]:
    """Decode each coordinator message, handle it, encode the answers; (seconds, answers per message).
    `by_type` collects the seconds per coordinator message type."""
    pub = P.Publisher(Wire(), name)
    out = []
    t0 = time.thread_time()
    for f in frames:
        t = time.thread_time()
        msg = P.decode(f)
        answers = handler.handle(msg, {})
        for a in answers:
            pub.send(a)
        out.append(pub.socket.frames[-1] if answers else None)
        by_type.setdefault(msg.type, []).append(time.thread_time() - t)
    return time.thread_time() - t0, out


def analysis_pass(handler, frames, derived, quality) -> float:
    t0 = time.thread_time()
    for f, d, q in zip(frames, derived, quality):
        msg = P.decode(f)
        answers = {}
        if d is not None:
            answers["processor"] = P.decode(d)
        if q is not None:
            answers["quality"] = P.decode(q)
        handler.handle(msg, answers)
    return time.thread_time() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=20)
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--store", default=os.path.join(tempfile.gettempdir(), "scale-bench-year"))
    ap.add_argument("--profile", choices=STAGES + ("coordinator",))
    args = ap.parse_args()
    log = logging.getLogger("profile")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    calendar, store = TradingCalendar(), BarStore(Path(args.store))
    symbols = [f"Y{i:02d}" for i in range(args.symbols)]
    if not store.has_day(symbols[-1], dt.date(2025, 7, 3)):
        generate(store, calendar, symbols, "2024-06-20", "2025-07-03", seed=11)
    results = tempfile.mkdtemp()
    cfg = config(store, calendar, args.days, symbols, results)
    figures = {s: [] for s in ("coordinator",) + STAGES}
    split = {"processor": {}, "quality": {}}
    for rep in range(args.reps):
        prof = cProfile.Profile() if args.profile and rep == 0 else None
        t0 = time.thread_time()
        with _maybe(prof, args.profile == "coordinator"):
            frames = record(cfg, calendar, store)
        figures["coordinator"].append(time.thread_time() - t0)
        with _maybe(prof, args.profile == "processor"):
            s, derived = answer_pass(ProcessorHandler(cfg, log), frames, "processor", split["processor"])
        figures["processor"].append(s)
        with _maybe(prof, args.profile == "quality"):
            s, quality = answer_pass(QualityHandler(cfg, log), frames, "quality", split["quality"])
        figures["quality"].append(s)
        with _maybe(prof, args.profile == "analysis"):
            figures["analysis"].append(analysis_pass(AnalysisHandler(cfg, log, results_dir=Path(results)),
                                                     frames, derived, quality))
        if prof is not None:
            pstats.Stats(prof).sort_stats("tottime").print_stats(40)
    steps = sum(1 for f in frames for m in [P.decode(f)] if m.type in (P.STEP, P.STEPS)
                for _ in (m.body["steps"] if m.type == P.STEPS else [0]))
    print(json.dumps({"days": args.days, "symbols": args.symbols, "messages": len(frames), "steps": steps,
                      "us_per_step": {k: round(min(v) / steps * 1e6, 1) for k, v in figures.items()},
                      "us_per_step_by_message": {stage: {t: round(_best_pass(v, args.reps) / steps * 1e6, 1) for t, v in types.items()}
                                                 for stage, types in split.items()}}))


def _best_pass(times: list, reps: int) -> float:
    """The lowest of the passes' sums (times holds the passes one after the other)."""
    per = len(times) // reps
    return min(sum(times[i * per:(i + 1) * per]) for i in range(reps))


class _maybe:
    def __init__(self, prof, on):
        self.prof, self.on = prof, on and prof is not None

    def __enter__(self):
        if self.on:
            self.prof.enable()

    def __exit__(self, *exc):
        if self.on:
            self.prof.disable()


if __name__ == "__main__":
    main()
