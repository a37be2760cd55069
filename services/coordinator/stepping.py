"""Publishing a session's steps: one STEP per message, or, when the clock runs at `max`, a STEPS batch.

A batch carries consecutive steps when nothing is due in between: it never goes past the session's last
step, nor past the step at which a timed op (schedule entry, `--at`) is due, and it takes at most the
credits the window has left (`flow.batch` steps, half the window by default). An op queued without a time
(ctl, a strategy) and a stop apply at the next step boundary, which is the end of the batch in flight, as
it is the end of the step in flight without batches. A paced clock sends one step per message.
"""
from __future__ import annotations

from common.domain.timeconv import NS_PER_MIN
from common.wire import protocol as P
from common.wire.payloads import BarBatch, StepPayload


class StepPublisher:
    """How many steps the next message may carry, and publishing them (the engine's clock moves)."""

    def __init__(self, engine):  # engine: services.coordinator.engine.SessionEngine
        self.engine = engine

    def batch_size(self) -> int:
        """Steps for the next message; 0: wait for more credit (acks are on their way) to fill a batch."""
        engine = self.engine
        # with the broker too: an order placed at a batch's step k is booked before its step k+1 (the actions'
        # (seq, part), services/broker/booking.py), as it would be between single steps
        limit = engine.config.flow_batch if engine.pacer.speed is None else 1
        if limit <= 1:
            return 1
        wanted = min(limit, engine.session.n_minutes - engine.step_row, self._steps_until_due())
        credits = engine.stages.credits(engine.global_step)
        if credits < wanted and not engine.stages.all_acked(engine.global_step):
            return 0
        return max(1, min(wanted, credits))

    def _steps_until_due(self) -> int:
        """Steps before the one whose clock makes the next timed op due (a large number: none). That last
        step goes out alone, once the stages have drained (the engine's lookahead), so the pause at its
        boundary waits for one step in flight, not for a batch."""
        engine = self.engine
        due = engine.pending.next_due_clock(engine.session.day, engine.clock_ns)
        if due is None:
            return engine.session.n_minutes
        steps = -(-(due - engine.clock_ns) // NS_PER_MIN)
        return max(1, steps - 1)

    def publish(self, n: int, now: float) -> None:
        """Publish the next `n` steps: a STEP, or one STEPS message for n > 1."""
        engine = self.engine
        if engine.figures.first_step_wall is None:
            engine.figures.first_step_wall = now
        engine.stages.owing_from(engine.global_step, engine.clock())
        steps = []
        for _ in range(n):
            slots, bars = engine.session.step(engine.step_row)
            engine.step_row += 1
            engine.global_step += 1
            engine.clock_ns = engine.session.open_ns + engine.step_row * NS_PER_MIN
            steps.append(P.Message(P.STEP, step=engine.global_step, clock=engine.clock_ns,
                                   payload=StepPayload(BarBatch(slots, bars))))
            engine.figures.bars += len(slots)
            engine.figures.steps += 1
        if n == 1:
            steps[0].body, steps[0].arrays = steps[0].payload.encode()
            engine.publish(steps[0])
        else:
            engine.publish(P.step_batch(steps))
            engine.figures.batches += 1
