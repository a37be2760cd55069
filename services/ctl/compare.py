"""`ctl compare RUN RUN`: two runs' key metrics side by side (text), and their equity curves on one chart
(`--html FILE`, offline like `ctl report`). Key metrics come from each run's broker/metrics.parquet."""
from __future__ import annotations

import json
from pathlib import Path

import click

from services.ctl import report
from services.ctl.rundata import RunRecord, load_run, read_rows, resolve_run

KEY_METRICS = ("total_return", "sharpe", "sortino", "max_drawdown", "trades", "win_rate", "profit_factor",
               "exposure", "turnover", "commissions", "final_equity")
PERCENT = {"total_return", "max_drawdown", "win_rate", "exposure"}
MONEY = {"final_equity", "commissions"}


def run_metrics(folder: Path) -> list[dict]:
    """The broker's metrics rows of a run (one per strategy account); [] for a run without the broker."""
    return read_rows(folder / "broker" / "metrics.parquet")


def fmt_metric(key: str, value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN: undefined (e.g. Sharpe of a flat equity)
            return "n/a"
        if key in MONEY:
            return f"{value:,.2f}"
        return f"{value:.2%}" if key in PERCENT else f"{value:,.4g}"
    return str(value)


def columns(records: list[RunRecord]) -> list[tuple[str, dict]]:
    """(header, metrics row) per run and account, in the order given."""
    out = []
    for i, record in enumerate(records):
        rows = record.broker.get("metrics") or [{"account": "(no broker)"}]
        out += [(f"{'AB'[i]}:{row['account']}", row) for row in rows]
    return out


def comparison_lines(records: list[RunRecord]) -> list[str]:
    cols = columns(records)
    width = max([14] + [len(h) for h, _ in cols]) + 2
    lines = [f"A = {records[0].run_id} ({records[0].manifest.get('status')})",
             f"B = {records[1].run_id} ({records[1].manifest.get('status')})",
             f"{'metric':<16}" + "".join(f"{h:>{width}}" for h, _ in cols)]
    lines += [f"{key:<16}" + "".join(f"{fmt_metric(key, row.get(key)):>{width}}" for _, row in cols)
              for key in KEY_METRICS]
    return lines


def equity_overlay(records: list[RunRecord]) -> dict:
    """Every account's equity of both runs on one time axis (x = exchange time of each step)."""
    data = []
    for i, record in enumerate(records):
        rows = record.broker.get("equity") or []
        for account in sorted({r["account"] for r in rows}):
            mine = [r for r in rows if r["account"] == account]
            data.append({"type": "scatter", "mode": "lines", "name": f"{'AB'[i]}:{account}",
                         "x": [r["time"] for r in mine], "y": [r["equity"] for r in mine]})
    layout = {"title": {"text": "equity, A vs B"}, "height": 460, "hovermode": "x",
              "xaxis": {"type": "category", "nticks": 12}, "yaxis": {"title": {"text": "equity"}}}
    return {"data": data, "layout": layout}


def comparison_html(records: list[RunRecord]) -> str:
    import plotly.offline

    cols = columns(records)
    rows = [{"metric": key, **{h: fmt_metric(key, row.get(key)) for h, row in cols}} for key in KEY_METRICS]
    body = (f"<h1>Compare {report.esc(records[0].run_id)} (A) and {report.esc(records[1].run_id)} (B)</h1>"
            + report.table_html(rows, ["metric"] + [h for h, _ in cols])
            + report.chart_html("chart-compare-equity", equity_overlay(records)))
    return report.page("compare runs", body, plotly.offline.get_plotlyjs(), None)


@click.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--results", "results", default=None, help="Results folder (default: the config's results_dir).")
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write an offline HTML page with the table and both runs' equity curves.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@click.pass_context
def compare_cmd(ctx: click.Context, run_a: str, run_b: str, results: str | None, html_path: Path | None,
                as_json: bool) -> None:
    """Key metrics of RUN_A and RUN_B side by side (run ids, `latest`, or run folders)."""
    from services.ctl.runs import results_root

    root = results_root(ctx, results)
    records = [load_run(resolve_run(root, run)) for run in (run_a, run_b)]
    if as_json:
        click.echo(json.dumps({r.run_id: r.broker.get("metrics") or [] for r in records}, indent=2,
                              sort_keys=True, default=str))
    else:
        for line in comparison_lines(records):
            click.echo(line)
    if html_path is not None:
        tmp = html_path.with_name(f".{html_path.name}.tmp")
        tmp.write_text(comparison_html(records))
        tmp.replace(html_path)
        click.echo(f"wrote {html_path}")
