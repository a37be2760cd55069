"""`ctl sweep CONFIG --grid PATH=V1,V2 ...`: every combination as an inline session, in parallel on Dask.

The work is done by the Python API (session_engine.sweep); this command parses the grid, shows the
progress (done / total, failures, ETA) and prints the table. Exit 0 when every combination completed,
1 when one or more failed (their rows say why; the table is written all the same).
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import click

SHOWN_METRICS = ("total_return", "sharpe", "max_drawdown", "trades", "final_equity")


def parse_values(text: str) -> list:
    """`5,10,20` or a JSON list `[5, 10, 20]`; each item read as JSON when it parses (numbers, true,
    null, quoted strings), else taken as a string."""
    text = text.strip()
    if text.startswith("["):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"{text!r} is not a JSON list ({exc.msg})", param_hint="--grid") from None
        return values
    return [_value(item.strip()) for item in text.split(",") if item.strip()]


def _value(item: str):
    try:
        return json.loads(item)
    except json.JSONDecodeError:
        return item


def parse_pairs(pairs: tuple[str, ...], option: str, many: bool) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{pair!r} is not PATH=VALUE{'S' if many else ''}", param_hint=option)
        out[key.strip()] = parse_values(value) if many else _value(value.strip())
        if many and not out[key.strip()]:
            raise click.BadParameter(f"{pair!r}: no values", param_hint=option)
    return out


class Progress:
    """One line per finished combination on stderr: done / total, failures, elapsed, ETA."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.failed = 0

    def __call__(self, done: int, total: int, row: dict) -> None:
        self.failed += row.get("status") != "completed"
        elapsed = time.monotonic() - self.started
        eta = elapsed / done * (total - done)
        what = row.get("status") if row.get("status") == "completed" else f"{row.get('status')}: {row.get('error')}"
        click.echo(f"sweep: {done}/{total} done ({self.failed} failed), {elapsed:.0f} s elapsed, ETA {eta:.0f} s"
                   f" - {row.get('run_id')} {what}", file=self.stream)


def shown_columns(table, grid_keys: list[str]) -> list[str]:
    metrics = [c for c in table.columns if c.split(".")[-1] in SHOWN_METRICS or c.endswith(".signals")]
    return list(grid_keys) + ["status"] + metrics


@click.command("sweep")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--grid", "grid", multiple=True, required=True,
              help="PATH=V1,V2,... (or PATH=[JSON list]); repeat for more parameters. PATH is a dotted config "
                   "path, e.g. strategies.sma_cross.params.fast.")
@click.option("--set", "sets", multiple=True, help="PATH=VALUE applied to every combination (e.g. end_date=2025-07-02).")
@click.option("--scheduler", default=None, help="An existing Dask scheduler, e.g. tcp://HOST:8786 (default: a "
                                                 "private LocalCluster over this machine's cores).")
@click.option("--workers", type=click.IntRange(1, 512), default=None, help="LocalCluster workers (default: cores).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the table here (.csv or .parquet).")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON rows.")
def sweep_cmd(config, grid, sets, scheduler, workers, out, as_json) -> None:
    """Run every combination of the grid as an inline session, in parallel on Dask."""
    from common.config import ConfigError
    from session_engine.sweep import sweep

    if out is not None and out.suffix not in (".csv", ".parquet"):
        raise click.BadParameter(f"{out}: write .csv or .parquet", param_hint="--out")
    grid_values, overrides = parse_pairs(grid, "--grid", True), parse_pairs(sets, "--set", False)
    total = math.prod(len(values) for values in grid_values.values())
    click.echo(f"sweep: {total} combination(s) of {', '.join(grid_values)}", err=True)
    try:
        table = sweep(config, grid_values, scheduler=scheduler, workers=workers, progress=Progress(), **overrides)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    _echo_table(table, list(grid_values), as_json)
    click.echo(f"sweep {table.attrs['sweep_id']}: table {table.attrs['folder']}/sweep.parquet", err=True)
    if out is not None:
        _write_out(table, out)
    failed = int((table["status"] != "completed").sum())
    if failed:
        click.echo(f"error: {failed} of {len(table)} combination(s) did not complete", err=True)
        sys.exit(1)


def _echo_table(table, grid_keys: list[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(table.to_dict("records"), default=str, indent=1))
        return
    import pandas as pd

    with pd.option_context("display.max_columns", 50, "display.width", 200, "display.max_colwidth", 60):
        click.echo(table[shown_columns(table, grid_keys)].to_string(index=False))


def _write_out(table, out: Path) -> None:
    from session_engine.sweep import write_table

    if out.suffix == ".csv":
        table.to_csv(out, index=False)
    else:
        write_table(table, out)
    click.echo(f"table written to {out}", err=True)
