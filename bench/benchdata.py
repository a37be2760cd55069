"""The peer benchmark's generated bars (../shared/peer-bench/make_data.py) in the project's store layout."""
from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def peer_store(data: Path, n_symbols: int, history_days: int) -> tuple[list[str], str]:
    """Copy (once) the first `n_symbols` symbols' first 1 + `history_days` days into data/session_store
    (<root>/1m/<SYM>/<YYYY>/<date>.parquet); returns (symbols, the session day: the last of those days)."""
    manifest = json.loads((data / "manifest.json").read_text())
    symbols, dates = manifest["symbols"][:n_symbols], manifest["dates"][:history_days + 1]
    if len(symbols) < n_symbols or len(dates) < history_days + 1:
        raise SystemExit(f"{data} has {len(manifest['symbols'])} symbols x {len(manifest['dates'])} days: "
                         f"rerun make_data.py with more")
    root = data / "session_store"
    for symbol in symbols:
        for day in dates:
            dst = root / "1m" / symbol / day[:4] / f"{day}.parquet"
            if dst.exists():
                continue
            t = pq.read_table(data / "bars" / "1m" / f"symbol={symbol}" / f"date={day}.parquet")
            t = pa.table({"ts": t["ts"].cast(pa.timestamp("ns", tz="UTC")),
                          **{c: t[c].cast(pa.float64()) for c in ("open", "high", "low", "close", "volume")}})
            dst.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(t, dst)
    return symbols, dates[-1]
