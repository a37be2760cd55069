"""`ctl chart SYMBOL --date D [--interval 5m] [--run RUN] -o file.png`: the report's chart as a static PNG
(mplfinance): candles and volume, the indicators of that interval as overlays, fills as triangles, gaps
shaded and a mid-session add marked (its caught-up span shaded)."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from common.domain.calendar import TradingCalendar
from common.domain.timeconv import NS_PER_MIN
from services.ctl.figures import OVERLAYS
from services.ctl.rundata import CHART_INTERVALS, DayView, day_view, load_run, resolve_run, run_store


def _frame(view: DayView, interval: str):
    import pandas as pd

    bars = view.bars[interval]
    index = pd.to_datetime(bars.ts, utc=True).tz_convert("America/New_York").tz_localize(None)
    return pd.DataFrame({"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
                         "Volume": bars.volume}, index=pd.DatetimeIndex(index, name="Date"))


def _fill_series(view: DayView, interval: str, side: str) -> np.ndarray:
    """Fill prices placed on the bar (of `interval`) that holds each fill; NaN elsewhere."""
    bars = view.bars[interval]
    out = np.full(len(bars), np.nan)
    for fill in view.fills:
        if fill["side"] == side and len(bars):
            out[max(0, int(np.searchsorted(bars.ts, fill["ts_ns"], side="right")) - 1)] = fill["price"]
    return out


def _addplots(view: DayView, interval: str) -> list:
    import mplfinance as mpf

    plots = []
    columns = view.indicators.get(interval, {})
    bars = view.bars[interval]
    for name, column in columns.items():
        if name != "ts" and name.split("(")[0] in OVERLAYS and len(column) == len(bars):
            plots.append(mpf.make_addplot(column, width=0.8, label=name))
    for side, marker, color in (("buy", "^", "#1a9850"), ("sell", "v", "#d73027")):
        series = _fill_series(view, interval, side)
        if np.isfinite(series).any():
            plots.append(mpf.make_addplot(series, type="scatter", marker=marker, markersize=60, color=color))
    return plots


def _spans(view: DayView) -> tuple[list, list]:
    """(gap spans, add lines) in matplotlib date numbers (exchange-local wall time)."""
    import matplotlib.dates as mdates
    import pandas as pd

    def num(ns: int) -> float:
        return float(mdates.date2num(pd.Timestamp(ns, tz="UTC").tz_convert("America/New_York").tz_localize(None)))
    spans = [(num(first), num(last + NS_PER_MIN), "#888") for first, last, _ in view.gaps]
    lines = []
    if view.added_ns is not None:
        spans.append((num(view.open_ns), num(view.added_ns), "#4575b4"))
        lines.append(num(view.added_ns))
    return spans, lines


def write_chart(view: DayView, interval: str, output: Path) -> Path:
    """Time on the x axis (show_nontrading), so that missing minutes keep their width and are shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import mplfinance as mpf

    if not len(view.bars[interval]):
        raise click.ClickException(f"{view.symbol} has no bars on {view.day} in the store")
    fig, axes = mpf.plot(_frame(view, interval), type="candle", volume=True, style="yahoo", returnfig=True,
                         addplot=_addplots(view, interval) or None, figsize=(12, 7), show_nontrading=True,
                         axtitle=f"{view.symbol} {view.day} {interval}", warn_too_much_data=10_000)
    bars = view.bars[interval]
    pad = 0.05 * max(float(bars.high.max() - bars.low.min()), 0.01)
    axes[0].set_ylim(float(bars.low.min()) - pad, float(bars.high.max()) + pad)  # warm-up values may lie far off
    spans, lines = _spans(view)
    for x0, x1, color in spans:
        axes[0].axvspan(x0, x1, color=color, alpha=0.3 if color == "#888" else 0.1, linewidth=0)
    for x in lines:
        axes[0].axvline(x, color="#4575b4", linestyle="--", linewidth=1.2)
    fig.savefig(output, dpi=110, bbox_inches="tight")
    return output


@click.command("chart")
@click.argument("symbol")
@click.option("--date", "day", required=True, help="Session date, YYYY-MM-DD.")
@click.option("--interval", type=click.Choice(CHART_INTERVALS), default="1m", show_default=True)
@click.option("--run", default=None, help="Run id (default: the latest run).")
@click.option("--results", default=None, help="Results folder (default: the config's results_dir).")
@click.option("--data-root", default=None, help="Store the run read (default: the run's config data_root).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="PNG file.")
@click.pass_context
def chart_cmd(ctx, symbol: str, day: str, interval: str, run: str | None, results: str | None,
              data_root: str | None, output: Path) -> None:
    """Write a PNG of SYMBOL's session on --date: candles, indicators, fills, gaps, add time."""
    from services.ctl.runs import results_root

    record = load_run(resolve_run(results_root(ctx, results), run))
    calendar = TradingCalendar(record.config.calendar)
    days = record.days(calendar)
    if day not in days:
        raise click.ClickException(f"--date {day}: not a session of run {record.run_id} ({', '.join(days)})")
    if symbol not in record.symbols():
        raise click.ClickException(f"{symbol}: not in run {record.run_id} ({', '.join(record.symbols())})")
    view = day_view(record, run_store(record, data_root), calendar, symbol, day)
    path = write_chart(view, interval, output)
    click.echo(f"{path} ({path.stat().st_size / 1e3:.0f} kB)")
