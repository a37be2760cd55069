"""Replica grids and day batches: the columnar structures every stage relies on."""
from __future__ import annotations

import numpy as np

from common.domain.bars import Bars
from services.coordinator.day import DayBatch, merge_step
from common.stage.replica import SessionReplica
from common.domain.timeconv import NS_PER_MIN

OPEN = 1_751_463_000_000_000_000  # 2025-07-02 09:30 ET
CLOSE = OPEN + 390 * NS_PER_MIN


def bars_at(minutes: list[int], base: float = 100.0) -> Bars:
    ts = OPEN + np.asarray(minutes, np.int64) * NS_PER_MIN
    price = base + np.arange(len(minutes), dtype=np.float64)
    return Bars(ts, price, price + 1, price - 1, price + 0.5, np.full(len(minutes), 10.0))


def test_day_batch_slices_each_minute_for_all_symbols():
    a, b = bars_at([0, 1, 3]), bars_at([1, 2, 3], base=50)
    batch = DayBatch.build([(0, a), (1, b), (2, Bars.empty())], OPEN, 390)
    slots, step1 = batch.minute(1)
    assert slots.tolist() == [0, 1] and step1.close.tolist() == [a.close[1], b.close[0]]
    assert batch.minute(2)[0].tolist() == [1] and len(batch.minute(4)[0]) == 0
    extra = DayBatch.build([(5, bars_at([3], base=7))], OPEN, 390)
    slots, merged = merge_step([batch.minute(3), extra.minute(3)])
    assert slots.tolist() == [0, 1, 5] and merged.close.tolist() == [a.close[2], b.close[2], 7.5]


def test_replica_appends_and_reads_back_columns():
    replica = SessionReplica()
    replica.start_session("2025-07-02", OPEN, CLOSE, ["AAPL", "MSFT"], [5])
    a = bars_at([0, 2])
    replica.append_bars("1m", np.array([0, 0]), a)
    assert replica.bars("AAPL").equals(a) and len(replica.bars("MSFT")) == 0
    slot = replica.add_symbol("RIVN")
    assert slot == 2 and "RIVN" in replica.dynamic
    replica.append_bars("5m", np.array([slot]), Bars(np.array([OPEN]), *(np.array([1.0]) for _ in range(5))),
                        np.array([3]))
    bars, counts = replica.bars_with_counts("RIVN", "5m")
    assert bars.ts.tolist() == [OPEN] and counts.tolist() == [3]


def test_removed_then_readded_symbol_keeps_its_slot_and_starts_clean():
    replica = SessionReplica()
    replica.start_session("2025-07-02", OPEN, CLOSE, ["AAPL"], [])
    replica.append_bars("1m", np.array([0]), bars_at([0]))
    replica.remove_symbol("AAPL")
    assert "AAPL" not in replica.active
    assert replica.add_symbol("AAPL") == 0 and len(replica.bars("AAPL")) == 0


def test_grids_grow_past_their_headroom_without_losing_data():
    replica = SessionReplica()
    replica.start_session("2025-07-02", OPEN, CLOSE, ["S0"], [])
    replica.append_bars("1m", np.array([0]), bars_at([0]))
    for i in range(1, 40):
        slot = replica.add_symbol(f"S{i}")
        replica.append_bars("1m", np.array([slot]), bars_at([i]))
    assert all(replica.bars(f"S{i}").ts.tolist() == [OPEN + i * NS_PER_MIN] for i in range(40))
