"""`ctl report [RUN]`: an HTML report of a run that opens offline.

Small runs (at most SINGLE_FILE_MAX symbol-days) get one self-contained file, `<run>/report.html`,
with plotly.js inlined once. Larger runs get a folder `<run>/report/`: `index.html` (the run's record,
the broker's tables and curves, a link per symbol) and one page per symbol (`<SYMBOL>.html`, its days),
all loading the one `plotly.min.js` beside them. Either way every chart's figure sits in the page as
JSON and is drawn when it scrolls into view (or when `reportRender(id)` is called), so a page with many
days opens at once.
"""
from __future__ import annotations

import html
import json
import time
from pathlib import Path

import click

from common.domain.calendar import TradingCalendar
from services.ctl import figures
from services.ctl.rundata import RunRecord, day_view, file_size, load_run, resolve_run, run_store

SINGLE_FILE_MAX = 40
PLOTLY_FILE = "plotly.min.js"
RECORD_KEYS = ("run_id", "config_name", "status", "exit_reason", "start_date", "end_date", "symbols", "dynamic",
               "sessions_run", "sessions_planned", "data_fingerprint", "config_hash", "code_version",
               "started_at", "ended_at")
STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0;display:block;overflow-x:auto;max-width:100%}
td,th{border:1px solid #ccc;padding:2px 8px;font-size:13px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}.chart{min-height:300px}pre{background:#f7f7f7;padding:.5em;overflow:auto;max-height:30em}
nav a{margin-right:1em}"""
RENDER_JS = """function reportRender(id){var el=document.getElementById(id);if(el.dataset.done)return Promise.resolve(el);
el.dataset.done='1';var fig=JSON.parse(document.getElementById(el.dataset.fig).textContent);
return Plotly.newPlot(el,fig.data,fig.layout,{responsive:true,displaylogo:false});}
function reportRenderAll(){return Promise.all(Array.from(document.querySelectorAll('.chart')).map(e=>reportRender(e.id)));}
var reportObserver=new IntersectionObserver(function(es){es.forEach(function(e){if(e.isIntersecting){
reportObserver.unobserve(e.target);reportRender(e.target.id);}});},{rootMargin:'300px'});
document.querySelectorAll('.chart').forEach(function(el){reportObserver.observe(el);});"""


def esc(value) -> str:
    return html.escape(str(value))


def chart_id(*parts: str) -> str:
    return "chart-" + "-".join(p.replace("/", "_") for p in parts)


def chart_html(div_id: str, figure: dict) -> str:
    """A div drawn later from the figure's JSON in a script tag beside it."""
    text = json.dumps(figure, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return (f'<div class="chart" id="{div_id}" data-fig="{div_id}-fig"></div>\n'
            f'<script type="application/json" id="{div_id}-fig">{text}</script>\n')


def table_html(rows: list[dict], columns: list[str], limit: int | None = None) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.6g}"
        return esc("" if v is None else v)
    shown = rows if limit is None else rows[:limit]
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in shown)
    more = f"<p>{len(rows) - len(shown)} more rows in the Parquet file.</p>" if len(shown) < len(rows) else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def record_html(record: RunRecord) -> str:
    m = {**record.manifest, "run_id": record.run_id}
    rows = "".join(f'<tr><th class="l">{esc(k)}</th><td class="l">'
                   f'{esc(", ".join(m[k]) if isinstance(m.get(k), list) else m.get(k, "-"))}</td></tr>'
                   for k in RECORD_KEYS)
    perf = json.dumps(m.get("performance", {}), indent=1, sort_keys=True)
    config = json.dumps(m.get("config", {}), indent=1, sort_keys=True)
    return (f"<h2>Run</h2><table>{rows}</table>"
            f"<details><summary>performance</summary><pre>{esc(perf)}</pre></details>"
            f"<details><summary>config</summary><pre>{esc(config)}</pre></details>")


def broker_html(record: RunRecord) -> str:
    """Per strategy account: the metrics table, equity and drawdown, the trades."""
    if not record.has_broker:
        return "<h2>Strategies</h2><p>This run had no broker: no orders, fills or equity.</p>"
    metrics = record.broker["metrics"]
    out = ["<h2>Strategies</h2>", table_html(metrics, list(metrics[0]) if metrics else ["account"])]
    accounts = [m["account"] for m in metrics] or sorted({r["account"] for r in record.broker["equity"]})
    for account in accounts:
        out.append(f"<h3>{esc(account)}</h3>")
        out.append(chart_html(chart_id("equity", account), figures.equity_figure(account, record.broker["equity"])))
        trades = [t for t in record.broker["trades"] if t["account"] == account]
        cols = ["symbol", "side", "entry", "exit", "qty", "entry_price", "exit_price", "pnl_gross", "commission", "pnl"]
        out.append(f"<details><summary>{len(trades)} trades</summary>{table_html(trades, cols, 2000)}</details>")
    return "\n".join(out)


def page(title: str, body: str, plotly_js: str | None, plotly_src: str | None) -> str:
    script = f"<script>{plotly_js}</script>" if plotly_js is not None else f'<script src="{plotly_src}"></script>'
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style>{script}</head><body>\n{body}\n<script>{RENDER_JS}</script></body></html>\n")


class ReportWriter:
    """Writes the report of one run; `tick` is called once per symbol-day (for a progress bar)."""

    def __init__(self, record: RunRecord, data_root: str | None = None, tick=None):
        self.record = record
        self.calendar = TradingCalendar(record.config.calendar)
        self.store = run_store(record, data_root)
        self.tick = tick or (lambda: None)

    def symbol_days(self) -> list[tuple[str, str]]:
        days = self.record.days(self.calendar)
        return [(s, d) for s in self.record.symbols() for d in days if self.store.has_day(s, _date(d))]

    def day_sections(self, symbol: str, days: list[str]) -> str:
        out = []
        for day in days:
            view = day_view(self.record, self.store, self.calendar, symbol, day)
            gaps = sum(g[2] for g in view.gaps)
            out.append(f'<h3 id="{esc(symbol)}-{day}">{esc(symbol)} {day}</h3><p>{len(view.bars["1m"])} bars, '
                       f"{gaps} missing minutes in {len(view.gaps)} gaps, {len(view.fills)} fills</p>")
            out.append(chart_html(chart_id(symbol, day), figures.day_figure(view)))
            self.tick()
        return "\n".join(out)

    def header(self) -> str:
        return f"<h1>Run {esc(self.record.run_id)}</h1>" + record_html(self.record) + broker_html(self.record)

    def write(self) -> Path:
        pairs = self.symbol_days()
        if len(pairs) <= SINGLE_FILE_MAX:
            return self.write_single(pairs)
        return self.write_pages(pairs)

    def write_single(self, pairs: list[tuple[str, str]]) -> Path:
        from plotly.offline import get_plotlyjs

        by_symbol = _group(pairs)
        nav = "<nav>" + "".join(f'<a href="#{esc(s)}-{d[0]}">{esc(s)}</a>' for s, d in by_symbol.items()) + "</nav>"
        charts = "\n".join(f"<h2>{esc(s)}</h2>" + self.day_sections(s, days) for s, days in by_symbol.items())
        path = self.record.folder / "report.html"
        _write(path, page(f"run {self.record.run_id}", self.header() + "<h2>Symbols</h2>" + nav + charts,
                          get_plotlyjs(), None))
        return path

    def write_pages(self, pairs: list[tuple[str, str]]) -> Path:
        from plotly.offline import get_plotlyjs

        folder = self.record.folder / "report"
        folder.mkdir(exist_ok=True)
        _write(folder / PLOTLY_FILE, get_plotlyjs())
        by_symbol = _group(pairs)
        links = "".join(f'<tr><td class="l"><a href="{esc(s)}.html">{esc(s)}</a></td><td>{len(d)}</td></tr>'
                        for s, d in by_symbol.items())
        for symbol, days in by_symbol.items():
            body = f'<p><a href="index.html">run {esc(self.record.run_id)}</a></p><h1>{esc(symbol)}</h1>'
            _write(folder / f"{symbol}.html", page(f"{symbol} in run {self.record.run_id}",
                                                   body + self.day_sections(symbol, days), None, PLOTLY_FILE))
        index = self.header() + f"<h2>Symbols</h2><table><tr><th>symbol</th><th>days</th></tr>{links}</table>"
        _write(folder / "index.html", page(f"run {self.record.run_id}", index, None, PLOTLY_FILE))
        return folder / "index.html"


def _date(day: str):
    import datetime as dt
    return dt.date.fromisoformat(day)


def _group(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for symbol, day in pairs:
        out.setdefault(symbol, []).append(day)
    return out


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def report_size(path: Path) -> int:
    """Bytes of the report: the file, or every file of the report folder."""
    if path.name == "index.html":
        return sum(file_size(p) for p in path.parent.iterdir())
    return file_size(path)


@click.command("report")
@click.argument("run", required=False)
@click.option("--results", "results", default=None, help="Results folder (default: the config's results_dir).")
@click.option("--data-root", default=None, help="Store the run read (default: the run's config data_root).")
@click.pass_context
def report_cmd(ctx: click.Context, run: str | None, results: str | None, data_root: str | None) -> None:
    """Write an HTML report of RUN (default: the latest run) into its folder."""
    from services.ctl.progressbar import bar
    from services.ctl.runs import results_root

    started = time.perf_counter()
    record = load_run(resolve_run(results_root(ctx, results), run))
    writer = ReportWriter(record, data_root)
    with bar(len(writer.symbol_days()), "report") as advance:
        writer.tick = advance
        path = writer.write()
    click.echo(f"{path} ({report_size(path) / 1e6:.1f} MB, {time.perf_counter() - started:.1f} s)")
