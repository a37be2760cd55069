"""Result files of an analysis process: signals, per-day summary, replica dumps (Parquet, atomic)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from common.store import atomic_write_table


def write_rows(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    """A list of dicts -> one Parquet file with a fixed schema (same rows -> same bytes)."""
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    atomic_write_table(pa.Table.from_pydict(columns, schema=schema), path)


def write_replica_dump(path: Path, export: dict[str, np.ndarray]) -> None:
    """A replica export as rows (key, ints, floats): integer arrays kept exact, floats as float64."""
    keys, ints, floats = [], [], []
    for key in sorted(export):
        arr = export[key]
        keys.append(key)
        if arr.dtype.kind in "iu":
            ints.append(arr.astype(np.int64).tolist())
            floats.append(None)
        else:
            ints.append(None)
            floats.append(arr.astype(np.float64).tolist())
    table = pa.table({"key": pa.array(keys, pa.string()),
                      "ints": pa.array(ints, pa.list_(pa.int64())),
                      "floats": pa.array(floats, pa.list_(pa.float64()))})
    atomic_write_table(table, path)


def read_replica_dump(path: Path) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pydict()
    out = {}
    for key, ints, floats in zip(table["key"], table["ints"], table["floats"]):
        out[key] = np.array(ints, dtype=np.int64) if ints is not None else np.array(floats, dtype=np.float64)
    return out
