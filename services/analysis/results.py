"""Result files of an analysis process: signals, per-day summary, replica dumps (Parquet, atomic)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from common.data.store import atomic_write_table

SIGNAL_SCHEMA = pa.schema([
    ("clock_ns", pa.int64()), ("clock", pa.string()), ("session_date", pa.string()), ("strategy", pa.string()),
    ("symbol", pa.string()), ("side", pa.string()), ("qty", pa.float64()), ("reason", pa.string()),
    ("extra", pa.string()),
])
SUMMARY_SCHEMA = pa.schema([
    ("session_date", pa.string()), ("symbols", pa.string()), ("steps", pa.int64()),
    ("bars_seen", pa.string()), ("signals", pa.string()), ("errors", pa.string()), ("complete", pa.bool_()),
])


def write_rows(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    """A list of dicts -> one Parquet file with a fixed schema (same rows -> same bytes)."""
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    atomic_write_table(pa.Table.from_pydict(columns, schema=schema), path)


def write_replica_dump(path: Path, export: dict[str, np.ndarray]) -> None:
    """A replica export as rows (key, ints, floats): integer arrays kept exact, floats as float64.

    Built from the numpy arrays directly (offsets + one flat values array per column), no Python lists.
    """
    keys = sorted(export)
    columns = {}
    for name, kinds, dtype in (("ints", "iu", np.int64), ("floats", "f", np.float64)):
        mine = [export[k].astype(dtype, copy=False) if export[k].dtype.kind in kinds else None for k in keys]
        lengths = np.array([0 if a is None else len(a) for a in mine], dtype=np.int32)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
        values = np.concatenate([a for a in mine if a is not None] or [np.empty(0, dtype)])
        mask = pa.array([a is None for a in mine], pa.bool_())
        columns[name] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), mask=mask)
    table = pa.table({"key": pa.array(keys, pa.string()), **columns})
    atomic_write_table(table, path)


def read_replica_dump(path: Path) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pydict()
    out = {}
    for key, ints, floats in zip(table["key"], table["ints"], table["floats"]):
        out[key] = np.array(ints, dtype=np.int64) if ints is not None else np.array(floats, dtype=np.float64)
    return out
