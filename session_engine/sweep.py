"""Parameter sweeps: every combination of a grid as an inline session, in parallel on Dask distributed.

By default a LocalCluster over this machine's cores (one single-threaded worker process per core, TLS
with temporary credentials, no dashboard: nothing reachable beyond this user); `scheduler="tcp://HOST:8786"`
uses an existing cluster, so a sweep outgrows one machine without new code. Workers read the store and
write the runs at the config's `data_root` and `results_dir`, resolved to absolute paths here: on a
cluster of several machines those must be a shared filesystem every worker reaches at the same path.

A sweep gets a folder `<results_dir>/<sweep id>/` with one run folder per combination and the table
(`sweep.parquet`): a row per combination with its parameters, run id, status, error and metrics. A
combination that fails is reported in its row; the others go on.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import time
from pathlib import Path
from typing import Callable

import pandas as pd

from common import runs
from common.config import ConfigError
from session_engine import configure

TABLE_FILE = "sweep.parquet"
MAX_COMBINATIONS = 100_000  # a grid is materialised (a task and a row each): bounded, said when exceeded


def expand_grid(grid: dict) -> list[dict]:
    """Every combination of the grid's values, in the grid's key order (the last key varies fastest)."""
    if not isinstance(grid, dict) or not grid:
        raise ConfigError("grid: expected a non-empty mapping of config path -> list of values")
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"grid {key!r}: expected a non-empty list of values, got {values!r}")
    keys = list(grid)
    total = math.prod(len(v) for v in grid.values())
    if total > MAX_COMBINATIONS:
        raise ConfigError(f"grid: {total:,} combinations, more than {MAX_COMBINATIONS:,}: split the sweep")
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def metrics_row(result) -> dict:
    """A run's figures for the table: the broker's metrics (prefixed by account when there are several),
    else the count of signals per strategy."""
    metrics = result.metrics
    row = {}
    if len(metrics):
        several = len(metrics) > 1
        for record in metrics.to_dict("records"):
            account = record.pop("account")
            row.update({f"{account}.{k}" if several else k: v for k, v in record.items()})
        return row
    signals = result.signals
    for strategy in sorted(set(signals["strategy"])) if len(signals) else []:
        row[f"{strategy}.signals"] = int((signals["strategy"] == strategy).sum())
    return row


def run_combination(config, combo: dict, overrides: dict, strategies, run_id: str) -> dict:
    """One combination as an inline run (on a Dask worker); never raises: a failure is in the row."""
    from session_engine.api import run

    row = {**combo, "run_id": run_id, "status": "error", "error": None}
    started = time.perf_counter()
    try:
        result = run(config, mode="inline", strategies=strategies, run_id=run_id, check=False,
                     **overrides, **combo)
        row["status"] = result.status
        row["error"] = None if result.completed else result.exit_reason
        row.update(metrics_row(result))
    except Exception as exc:  # noqa: BLE001  (a failed combination is reported, the others go on)
        row["error"] = f"{type(exc).__name__}: {exc}"
    row["elapsed_s"] = round(time.perf_counter() - started, 3)
    return row


def _sweep_folder(results_dir: Path, name: str) -> tuple[str, Path]:
    """A new folder for this sweep (created here, so two sweeps never share one)."""
    while True:
        sweep_id = runs.new_run_id(results_dir, f"{name}-sweep")
        folder = results_dir / sweep_id
        try:
            folder.mkdir(parents=True)
            return sweep_id, folder
        except FileExistsError:
            continue


def _absolute(config, overrides: dict, strategies) -> tuple[object, dict, str]:
    """The config as workers get it (a file path made absolute, data_root and results_dir absolute) and its
    name."""
    base = configure.build(config, overrides, strategies)
    if isinstance(config, (str, os.PathLike)):
        config = os.path.abspath(config)
    paths = {"data_root": str(Path(base.data_root).resolve()), "results_dir": str(Path(base.results_dir).resolve())}
    return config, {**overrides, **paths}, runs.config_name(base.raw, base.path)


def sweep(config, grid: dict, *, strategies=None, scheduler: str | None = None, workers: int | None = None,
          client=None, progress: Callable[[int, int, dict], None] | None = None, **overrides) -> pd.DataFrame:
    """Run every combination of `grid` ({config path: [values]}) and return the table (a row per
    combination, in grid order). `progress(done, total, row)` is called as each combination ends."""
    combos = expand_grid(grid)
    config, overrides, name = _absolute(config, overrides, strategies)
    for combo in combos:  # a bad path or value fails here, before any worker starts
        configure.build(config, {**overrides, **combo}, strategies)
    sweep_id, folder = _sweep_folder(Path(overrides["results_dir"]), name)
    overrides = {**overrides, "results_dir": str(folder)}
    run_ids = [f"{sweep_id}-{k + 1:03d}" for k in range(len(combos))]
    with ClusterClient(client, scheduler, workers, len(combos)) as dask_client:
        futures = [dask_client.submit(run_combination, config, combo, overrides, strategies, run_id,
                                      key=f"{run_id}", pure=False)
                   for combo, run_id in zip(combos, run_ids)]
        rows = _gather(futures, progress)
    table = pd.DataFrame([rows[run_id] for run_id in run_ids])
    table.attrs["sweep_id"], table.attrs["folder"] = sweep_id, str(folder)
    write_table(table, folder / TABLE_FILE)
    return table


def _gather(futures, progress) -> dict[str, dict]:
    from dask.distributed import as_completed

    rows = {}
    for future in as_completed(futures):
        try:
            row = future.result()
        except Exception as exc:  # noqa: BLE001  (a worker lost with its task: that combination failed)
            row = {"run_id": future.key, "status": "error", "error": f"{type(exc).__name__}: {exc}"}
        rows[row["run_id"]] = row
        if progress is not None:
            progress(len(rows), len(futures), row)
    return rows


class ClusterClient:
    """A Dask client: the caller's, one connected to `scheduler`, or a private LocalCluster (closed after)."""

    def __init__(self, client, scheduler: str | None, workers: int | None, tasks: int):
        self.given, self.scheduler, self.tasks = client, scheduler, tasks
        self.workers = workers or min(os.cpu_count() or 1, tasks)
        self.cluster = self.client = None

    def __enter__(self):
        from dask.distributed import Client, LocalCluster

        if self.given is not None:
            return self.given
        if self.scheduler:
            self.client = Client(self.scheduler)
            return self.client
        self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                    dashboard_address=None, security=True, silence_logs=40)
        self.client = Client(self.cluster)
        return self.client

    def __exit__(self, *exc):
        for closable in (self.client, self.cluster):
            if closable is not None:
                closable.close()


def write_table(table: pd.DataFrame, path: Path) -> None:
    """The sweep table as Parquet; values that are not scalars (a list parameter) are stored as JSON."""
    out = table.copy()
    for column in out.columns:
        if out[column].map(lambda v: isinstance(v, (list, tuple, dict))).any():
            out[column] = out[column].map(json.dumps)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    out.to_parquet(tmp, index=False)
    os.replace(tmp, path)
