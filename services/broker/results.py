"""The broker's result files (Parquet, atomic; same rows -> same bytes) in results/<run id>/broker/."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from common.data.store import atomic_write_table

_F, _I, _S = pa.float64(), pa.int64(), pa.string()
SCHEMAS = {
    "orders": [("account", _S), ("order_id", _I), ("session_date", _S), ("symbol", _S), ("side", _S),
               ("qty", _F), ("type", _S), ("limit", _F), ("stop", _F), ("tif", _S), ("placed_clock_ns", _I),
               ("status", _S), ("filled", _F), ("avg_price", _F), ("commission", _F), ("reason", _S),
               ("updated_clock_ns", _I)],
    "fills": [("account", _S), ("order_id", _I), ("session_date", _S), ("time", _S), ("symbol", _S),
              ("side", _S), ("qty", _F), ("price", _F), ("commission", _F), ("ts_ns", _I), ("clock_ns", _I)],
    "positions": [("session_date", _S), ("account", _S), ("symbol", _S), ("qty", _F), ("avg_cost", _F),
                  ("last_price", _F), ("market_value", _F), ("unrealized", _F)],
    "equity": [("clock_ns", _I), ("time", _S), ("account", _S), ("cash", _F), ("position_value", _F),
               ("equity", _F), ("exposed", pa.bool_())],
    "trades": [("account", _S), ("symbol", _S), ("side", _S), ("entry_ts_ns", _I), ("exit_ts_ns", _I),
               ("entry", _S), ("exit", _S), ("qty", _F), ("entry_price", _F), ("exit_price", _F),
               ("pnl_gross", _F), ("commission", _F), ("pnl", _F)],
    "metrics": [("account", _S), ("start_equity", _F), ("final_equity", _F), ("total_return", _F),
                ("sharpe", _F), ("sortino", _F), ("max_drawdown", _F), ("max_drawdown_peak", _S),
                ("max_drawdown_trough", _S), ("trades", _I), ("win_rate", _F), ("profit_factor", _F),
                ("exposure", _F), ("turnover", _F), ("commissions", _F), ("fills", _I), ("orders", _I)],
}


def write_table(folder: Path, name: str, rows: list[dict]) -> None:
    schema = pa.schema(SCHEMAS[name])
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    atomic_write_table(pa.Table.from_pydict(columns, schema=schema), folder / f"{name}.parquet")
