"""`ctl runs`: the run folders under the results directory, from their manifests."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click
import pyarrow.parquet as pq

from common import runs
from common.config import ConfigError, load_config

CONFIG_RESULTS_KEY = "results_dir"
RUN_METRICS = ("account", "total_return", "sharpe", "max_drawdown", "trades", "final_equity")


def results_root(ctx: click.Context, given: str | None) -> Path:
    """--results, else the --config's results_dir, else SESSION_RESULTS_DIR, else configs/default.json's."""
    if given:
        return Path(given)
    from_config = ctx.find_root().meta.get(CONFIG_RESULTS_KEY)
    if from_config:
        return Path(from_config)
    if os.environ.get("SESSION_RESULTS_DIR"):
        return Path(os.environ["SESSION_RESULTS_DIR"])
    default = Path("configs/default.json")
    if default.exists():
        try:
            return load_config(default).results_dir
        except ConfigError:
            pass
    return Path("results")


def signal_count(folder: Path) -> int:
    """Signals of every analysis process of a run (from the Parquet footers: no data read)."""
    total = 0
    for path in folder.glob("*/signals.parquet"):
        try:
            total += pq.ParquetFile(path).metadata.num_rows
        except OSError:
            continue
    return total


def account_metrics(folder: Path) -> list[dict]:
    """Key metrics per strategy account from the run's broker/metrics.parquet ([] without the broker)."""
    path = folder / "broker" / "metrics.parquet"
    if not path.exists():
        return []
    try:
        rows = pq.read_table(path, columns=list(RUN_METRICS)).to_pylist()
    except (OSError, KeyError, ValueError):
        return []
    return rows


def run_rows(root: Path) -> list[dict]:
    rows = []
    for m in runs.list_runs(root):
        rows.append({"run_id": m["run_id"], "config": m.get("config_name"), "status": m.get("status"),
                     "dates": f"{m.get('start_date')}..{m.get('end_date')}", "symbols": m.get("symbols", []),
                     "sessions": f"{m.get('sessions_run', '?')}/{m.get('sessions_planned', '?')}",
                     "signals": signal_count(Path(m["folder"])), "exit_reason": m.get("exit_reason"),
                     "started_at": m.get("started_at"), "metrics": account_metrics(Path(m["folder"]))})
    return rows


@click.command("runs")
@click.option("--results", "results", default=None, help="Results folder (default: the config's results_dir).")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
def runs_cmd(ctx: click.Context, results: str | None, as_json: bool) -> None:
    """List the runs (id, config, dates, symbols, status, signals, key metrics per account), oldest first."""
    root = results_root(ctx, results)
    rows = run_rows(root)
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo(f"no runs under {root}")
        return
    latest = os.path.realpath(root / runs.LATEST) if (root / runs.LATEST).exists() else None
    click.echo(f"{'run id':<36} {'status':<10} {'dates':<22} {'sessions':>8} {'signals':>8}  symbols")
    for r in rows:
        mark = " *" if latest and os.path.realpath(root / r["run_id"]) == latest else ""
        click.echo(f"{r['run_id']:<36} {r['status']:<10} {r['dates']:<22} {r['sessions']:>8} {r['signals']:>8}  "
                   f"{','.join(r['symbols'])}{mark}")
        if r["status"] not in ("completed", "running") and r["exit_reason"]:
            click.echo(f"{'':<36} {r['exit_reason']}")
        for m in r["metrics"]:
            click.echo(f"{'':<36} {m['account']}: return {_pct(m['total_return'])}  sharpe {_num(m['sharpe'])}  "
                       f"max drawdown {_pct(m['max_drawdown'])}  trades {m['trades']}  equity {_num(m['final_equity'])}")


def _pct(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.2%}"


def _num(value) -> str:
    return "n/a" if value is None or value != value else f"{value:,.2f}"
