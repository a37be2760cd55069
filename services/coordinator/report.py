"""What the coordinator tells about a run: `ctl status`, `ctl session`, `ctl list-dynamic`, and the
performance report (in status, in BACKTEST_END, and as log lines at exit). Functions reading the engine."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from common.domain.quality import missing_runs
from common.domain.timeconv import NS_PER_MIN, fmt_exchange
from services.coordinator.symbol_ops import due_clock

if TYPE_CHECKING:
    from services.coordinator.engine import SessionEngine


STATUS_SYMBOLS = 20  # symbols named in a status; more are counted


@dataclass
class RunFigures:
    """Throughput of the run, from its first step to BACKTEST_END (monotonic seconds)."""
    first_step_wall: float | None = None
    end_wall: float | None = None
    bars: int = 0
    steps: int = 0
    batches: int = 0  # STEPS messages (several steps each)


def status(engine: SessionEngine) -> dict:
    now = engine.clock()
    started = engine.day_index >= 0
    lost = [{"stage": s.name, "lost_step": s.lost_step, "silent_s": round(now - s.last_seen_wall, 1)}
            for s in engine.stages.participants() if s.lost_step is not None]
    return {
        # never "running" while a lost stage holds the clock: the state says what it waits for
        "state": "waiting-for-stage" if lost and engine.state.value == "running" else engine.state.value,
        "lost": lost, "mode": engine.config.mode,
        "clock": fmt_exchange(engine.clock_ns, with_date=True) if started else None,
        "clock_ns": engine.clock_ns,
        "session_date": engine.session.day.isoformat() if started else None,
        "day": engine.day_index + 1, "n_days": len(engine.sessions),
        "speed": engine.pacer.speed or "max", "operator_paused": engine.operator_paused,
        "catchup": engine.catchup.active,
        # a whole market stays one screen: the first STATUS_SYMBOLS symbols and the count (`ctl session` has all)
        "symbols": engine.session.active_symbols()[:STATUS_SYMBOLS],
        "n_symbols": int(engine.session.active.sum()),
        "steps_done": engine.global_step, "session_step": engine.step_row,
        "window": engine.config.flow_window,
        "stages": {s.name: {"role": s.role, "last_ack_step": s.last_step_ack,
                            "last_ack_age_s": round(now - s.last_ack_wall, 3), "stalled": s.stalled,
                            "last_seen_age_s": round(now - s.last_seen_wall, 3),
                            "live": now - s.last_seen_wall <= max(2.0, 3 * engine.config.heartbeat_s)}
                   for s in engine.stages},
        "waiting_for": engine.stages.missing(engine.config.stages),
        "accounts": next((s.status for s in engine.stages if s.status and "accounts" in s.status), None),
        "report": performance_report(engine),
    }


def session_table(engine: SessionEngine) -> list[dict]:
    """Per active symbol: 1m bars published so far (catch-up included), first/last, span, quality, gaps."""
    if engine.day_index < 0:
        return []
    session, row = engine.session, engine.step_row
    per_slot = session.published_by_slot(row)
    rows = []
    for slot, symbol in enumerate(session.symbols):
        if not session.active[slot]:
            continue
        ts = per_slot.get(slot, np.empty(0, np.int64))
        gaps = missing_runs(np.unique((ts - session.open_ns) // NS_PER_MIN), row)
        rows.append({
            "symbol": symbol, "bars_1m": int(len(ts)),
            "first": fmt_exchange(int(ts[0])) if len(ts) else None,
            "last": fmt_exchange(int(ts[-1])) if len(ts) else None,
            "span_min": int((ts[-1] - ts[0]) // NS_PER_MIN + 1) if len(ts) else 0,
            "quality_pct": round(100.0 * len(ts) / row, 2) if row else 100.0,
            "gaps": len(gaps), "dynamic": symbol in engine.dynamic,
        })
    return rows


def dynamic_table(engine: SessionEngine) -> list[dict]:
    """The symbols added at run time (when, bars caught up, history days, status), then the adds still
    queued (status 'queued', with when they are due)."""
    rows = [vars(d) | {"added_at": fmt_exchange(d.added_clock, with_date=True)} for d in engine.dynamic.values()]
    day = engine.session.day
    for op in engine.pending:
        if op.command != "add-symbol":
            continue
        due = due_clock(op, day) if day is not None else None
        when = (op.session_date.isoformat() + " " if op.session_date else "") + (
            op.wall_time.strftime("%H:%M") if op.wall_time else fmt_exchange(due) if due else "next step")
        rows += [{"symbol": s, "status": "queued", "due": when, "request_id": op.request_id} for s in op.symbols]
    return rows


class ProgressLine:
    """`progress: day n of N (date), clock, steps done of planned, steps/s, ETA`, logged every
    flow.progress_s seconds of a running backtest; the rate is taken over the last interval."""

    def __init__(self, engine: SessionEngine, every_s: float):
        self.engine, self.every_s = engine, every_s
        self.planned = sum(_session_minutes(engine, day) for day in engine.sessions)
        self.last: tuple[float, int] | None = None

    def due(self, now: float) -> bool:
        return self.every_s > 0 and (self.last is None or now - self.last[0] >= self.every_s)

    def line(self, now: float) -> str | None:
        """The line, or None the first time (it only starts the interval the rate is taken over)."""
        engine, done = self.engine, self.engine.figures.steps
        if self.last is None:
            self.last = (now, done)
            return None
        rate = (done - self.last[1]) / max(now - self.last[0], 1e-9)
        self.last = (now, done)
        eta = "-" if not rate else f"{max(0, self.planned - done) / rate:,.0f} s"
        rate_text = f"{rate:,.0f}"
        return (f"progress: day {engine.day_index + 1} of {len(engine.sessions)} ({engine.session.day}) clock "
                f"{fmt_exchange(engine.clock_ns) if engine.clock_ns else '-'}, {done:,} of ~{self.planned:,} steps, "
                f"{rate_text} steps/s, ETA {eta}")


def _session_minutes(engine: SessionEngine, day) -> int:
    open_ns, close_ns = engine.calendar.open_close_ns(day)
    return (close_ns - open_ns) // NS_PER_MIN


def report_lines(engine: SessionEngine) -> list[str]:
    """The performance report as a few readable log lines (the JSON stays in `ctl status --json`)."""
    rep = performance_report(engine)
    lines = [f"performance: {rep['steps']} steps, {rep['bars']} bars in {rep['wall_s']} s"
             + (f" = {rep['bars_per_s']:,.0f} bars/s" if rep["bars_per_s"] else "")]
    for name, st in sorted(rep["stages"].items()):
        busy = st["busy_us"]
        spent = (f"busy per step min/mean/max {busy['min']:.0f}/{busy['mean']:.0f}/{busy['max']:.0f} us"
                 if busy else "no steps")
        lines.append(f"performance: stage {name} ({st['role']}): {spent}; waited on {st['waited_on']} time(s)")
    return lines


def performance_report(engine: SessionEngine) -> dict:
    figures = engine.figures
    wall = None
    if figures.first_step_wall is not None:
        wall = (figures.end_wall or engine.clock()) - figures.first_step_wall
    stages = {}
    for s in engine.stages:
        busy = np.array(s.busy_ns, dtype=np.float64) / 1e3
        stages[s.name] = {
            "role": s.role, "waited_on": s.waited_on,
            "busy_us": {"min": float(busy.min()), "mean": float(busy.mean()), "max": float(busy.max())}
            if len(busy) else None,
        }
    return {"steps": figures.steps, "bars": figures.bars, "step_batches": figures.batches,
            "first_step_monotonic": figures.first_step_wall,
            "wall_s": round(wall, 4) if wall else None,
            "bars_per_s": round(figures.bars / wall, 1) if wall else None,
            "stages": stages}
