"""`run()`: one session from Python, inline (one process) or as the real processes."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from common import runs
from common.config import SessionConfig
from common.data.generate import generate
from common.data.store import BarStore
from common.domain.calendar import TradingCalendar
from session_engine import configure
from session_engine.inline import InlineSession
from session_engine.processes import ProcessRun
from session_engine.results import Run, RunError
from services.demo import SAMPLE_RANGE, SAMPLE_SYMBOLS

MODES = ("inline", "processes")


def sample_store(root="data/store") -> Path:
    """The sample data set `make run` uses (AAPL, MSFT, RIVN, 2025-06-02..2025-07-08, generated and
    deterministic), written into `root` unless it holds data already; returns the folder."""
    root = Path(root)
    store = BarStore(root)
    if not store.symbols():
        generate(store, TradingCalendar(), SAMPLE_SYMBOLS, *SAMPLE_RANGE)
    return root


def prepare(config, overrides: dict | None = None, strategies=None) -> SessionConfig:
    """The config a run would use: `config` (a file path, a dict or a parsed config) with the overrides and
    the strategies applied; a ConfigError names what is wrong before anything starts."""
    return configure.build(config, overrides, strategies)


def run(config, *, mode: str = "inline", strategies=None, run_id: str | None = None, check: bool = True,
        timeout_s: float | None = None, log: logging.Logger | None = None, **overrides) -> Run:
    """Run one session and return it read back from its folder (`Run`).

    `overrides` set places in the config by dotted path (`**{"strategies.sma_cross.params.fast": 5}`,
    `end_date="2025-07-02"`, `results_dir="/tmp/r"`); `strategies` replaces the config's strategies with a
    list of `module:Class` strings, classes, instances or config entries (dicts). `mode="inline"` runs
    the coordinator and every stage in this process; `mode="processes"` starts the real processes on
    private ipc endpoints (strategies given as objects go to the analysis process by value). Both write the same run record
    and the same result files. A run that did not complete raises RunError (with `.run`) unless
    `check=False`.
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    parsed = prepare(config, overrides, strategies)
    run_id = run_id or runs.new_run_id(parsed.results_dir, runs.config_name(parsed.raw, parsed.path))
    if not runs.is_run_id(run_id):
        raise ValueError(f"run_id {run_id!r} is not a run id like 20250701-093000-name")
    if runs.run_dir(parsed.results_dir, run_id).exists():
        raise ValueError(f"run {run_id} exists already in {parsed.results_dir}: give another run_id")
    started = time.perf_counter()
    if mode == "inline":
        code, detail = InlineSession(parsed, run_id, log=log).run(), ""
    else:
        code, detail = _run_processes(parsed, run_id, timeout_s)
    result = Run(runs.run_dir(parsed.results_dir, run_id), mode, time.perf_counter() - started)
    if check and code != 0:
        raise RunError(f"run {run_id} {result.status}: {result.exit_reason or 'exit code ' + str(code)}"
                       + (f"\n{detail}" if detail else ""), result)
    return result


def _run_processes(config: SessionConfig, run_id: str, timeout_s: float | None) -> tuple[int, str]:
    procs = ProcessRun(config, run_id)
    try:
        procs.start()
        code = procs.wait(timeout_s)
        return code, procs.failures()
    except BaseException:
        procs.stop()  # an interrupt (Ctrl-C in a notebook) or a timeout: no process is left behind
        raise
    finally:
        procs.cleanup()
