"""The session engine's Python API: run sessions from Python and notebooks, sweep parameters on Dask.

    import session_engine as se
    run = se.run("configs/trading.json", **{"strategies.sma_market.params.fast": 10})
    run.metrics, run.fills, run.equity, run.bars("AAPL", "5m")
    table = se.sweep("configs/trading.json", grid={"strategies.sma_market.params.fast": [5, 10, 20]})

This package is the composition root of the project: the only code that wires several services together
(the inline mode runs every stage's handler in one process); services never import it.
"""
from session_engine.api import MODES, prepare, run, sample_store
from session_engine.results import Run, RunError, runs_table
from session_engine.sweep import expand_grid, sweep

__all__ = ["MODES", "Run", "RunError", "expand_grid", "prepare", "run", "runs_table", "sample_store", "sweep"]
