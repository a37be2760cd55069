"""Internal state of the streaming kernels as plain dicts, to compare a seeded kernel with a streamed
one bit for bit and to hand a kernel's state to a fresh one (test-only: the engine rebuilds state by
replaying messages, never by copying it)."""
from __future__ import annotations

import numpy as np

from common.domain.aggregate import _VALUE_FIELDS, WindowAggregator
from common.domain.quality import QualityTracker


def aggregator_state(agg: WindowAggregator) -> dict:
    """Values of empty slots are written as NaN so that equal states compare equal."""
    empty = agg._count == 0
    state = {"minutes": agg.minutes, "open_ns": agg.open_ns, "close_ns": agg.close_ns,
             "clock_ns": agg.clock_ns, "count": agg._count.copy()}
    for field in _VALUE_FIELDS:
        state[field] = np.where(empty, np.nan, agg._values[field])
    return state


def aggregator_from_state(state: dict) -> WindowAggregator:
    agg = WindowAggregator(int(state["minutes"]))
    agg._count = np.array(state["count"], np.int64)
    for field in _VALUE_FIELDS:
        agg._values[field] = np.array(state[field], np.float64)
    agg.open_ns, agg.close_ns, agg.clock_ns = state["open_ns"], state["close_ns"], state["clock_ns"]
    if agg.clock_ns is not None:
        agg.open_ns, agg.close_ns, agg.clock_ns = int(agg.open_ns), int(agg.close_ns), int(agg.clock_ns)
        agg._set_window(agg._window_start_after(agg.clock_ns))
    return agg


def tracker_state(tracker: QualityTracker) -> dict:
    """Closed gaps flattened into (slot, first, last) columns."""
    gap_slot = np.repeat(np.arange(tracker.n_slots, dtype=np.int64), [len(g) for g in tracker._gaps])
    flat = np.array([gap for gaps in tracker._gaps for gap in gaps], np.int64).reshape(-1, 2)
    return {
        "minutes": tracker.minutes, "open_ns": tracker.open_ns, "close_ns": tracker.close_ns,
        "clock_ns": tracker.clock_ns, "closed": tracker._closed, "window_end": tracker._window_end,
        "active": tracker._active.copy(), "in_window": tracker._in_window.copy(),
        "present": tracker._present.copy(), "last_present": tracker._last_present.copy(),
        "completeness_sum": tracker._completeness_sum.copy(),
        "reported_pct": tracker._reported_pct.copy(),
        "reported_completeness": tracker._reported_completeness.copy(),
        "gap_slot": gap_slot, "gap_first": flat[:, 0].copy(), "gap_last": flat[:, 1].copy(),
    }


def tracker_from_state(state: dict) -> QualityTracker:
    tracker = QualityTracker(len(state["active"]), int(state["minutes"]))
    for key in ("open_ns", "close_ns", "clock_ns"):
        setattr(tracker, key, None if state[key] is None else int(state[key]))
    tracker._closed, tracker._window_end = int(state["closed"]), int(state["window_end"])
    tracker._active = np.array(state["active"], bool)
    for key in ("in_window", "present", "last_present"):
        setattr(tracker, f"_{key}", np.array(state[key], np.int64))
    for key in ("completeness_sum", "reported_pct", "reported_completeness"):
        setattr(tracker, f"_{key}", np.array(state[key], np.float64))
    for slot, first, last in zip(*(np.asarray(state[k]).tolist() for k in ("gap_slot", "gap_first", "gap_last"))):
        tracker._gaps[slot].append((first, last))
    tracker._n_closed_gaps = np.array([len(g) for g in tracker._gaps], np.int64)
    return tracker
