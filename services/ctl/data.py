"""`ctl data …` and `ctl calendar …`: store maintenance and calendar look-ups, no running session needed.

`data_group` and `calendar_group` are plain click groups meant to be mounted on the main `ctl` group.
Every failure on bad input (bad date, unknown symbol, missing file, corrupt Parquet) ends with a single
`Error: …` line and a non-zero exit, never a traceback; usage errors are folded into one line too.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sys
from pathlib import Path

import click

from common.data.datacheck import JUMP_PCT, DayCheck, check_symbol, normalise_symbol
from common.data.generate import DEFAULT_SEED, generate
from common.data.store import BarStore, StoreError
from common.domain.calendar import CalendarError, TradingCalendar
from common.domain.timeconv import UTC, datetime_from_ns, fmt_exchange, parse_date
from services.ctl.csvimport import CsvImportError, import_csv

DATA_ROOT_ENV = "SESSION_DATA_ROOT"
DEFAULT_DATA_ROOT = "data/store"
MAX_ROWS_LISTED = 50      # bad rows printed per file
MAX_GAPS_LISTED = 5       # gaps printed per day in text mode
_ROOT_KEY = "ctl_data.data_root"
CONFIG_DATA_ROOT_KEY = "ctl.config_data_root"  # set by `ctl --config FILE`


# ---- one-line errors ------------------------------------------------------------------------------
def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _as_one_line_error(ctx: click.Context, exc: click.UsageError) -> click.ClickException:
    return click.ClickException(_one_line(f"{ctx.command_path}: {exc.format_message()} (see --help)"))


class _OneLineUsage:
    """Mixin: usage errors (bad option value, missing argument) become one `Error:` line."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            raise _as_one_line_error(ctx, exc) from None


class OneLineCommand(_OneLineUsage, click.Command):
    pass


class OneLineGroup(_OneLineUsage, click.Group):
    command_class = OneLineCommand

    def resolve_command(self, ctx, args):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            raise _as_one_line_error(ctx, exc) from None


def friendly_errors(func):
    """Turn the expected failures of a command into one `Error:` line (exit 1), no traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ValueError, StoreError, CalendarError, OSError) as exc:
            raise click.ClickException(_one_line(exc)) from None

    return wrapper


class DateType(click.ParamType):
    name = "DATE"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        try:
            return parse_date(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DATE = DateType()


def _emit_json(data) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


# ---- shared objects ---------------------------------------------------------------------------------
def _store(ctx: click.Context) -> BarStore:
    return BarStore(ctx.meta[_ROOT_KEY])


def _calendar() -> TradingCalendar:
    return TradingCalendar()


# ---- data ---------------------------------------------------------------------------------------------
@click.group("data", cls=OneLineGroup)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              show_default=f"${DATA_ROOT_ENV}, else the data_root of `ctl --config FILE`, else {DEFAULT_DATA_ROOT}",
              help="Root folder of the Parquet bar store.")
@click.pass_context
def data_group(ctx: click.Context, data_root: Path | None) -> None:
    """Fill and inspect the 1-minute bar store."""
    if data_root is None:
        data_root = Path(os.environ.get(DATA_ROOT_ENV) or ctx.meta.get(CONFIG_DATA_ROOT_KEY) or DEFAULT_DATA_ROOT)
    ctx.meta[_ROOT_KEY] = data_root


def _symbol_list(text: str) -> list[str]:
    names = [part for part in (p.strip() for p in text.split(",")) if part]
    if not names:
        raise ValueError("--symbols: give at least one symbol, e.g. AAPL,MSFT")
    return [normalise_symbol(n) for n in names]


@data_group.command("generate")
@click.option("--symbols", required=True, help="Comma-separated tickers, e.g. AAPL,MSFT,RIVN.")
@click.option("--start", type=DATE, required=True, help="First date (YYYY-MM-DD).")
@click.option("--end", type=DATE, required=True, help="Last date (YYYY-MM-DD), inclusive.")
@click.option("--seed", type=click.IntRange(min=0), default=DEFAULT_SEED, show_default=True,
              help="Same seed, same bytes.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
@friendly_errors
def generate_cmd(ctx, symbols: str, start: dt.date, end: dt.date, seed: int, as_json: bool) -> None:
    """Write deterministic synthetic 1-minute bars.

    One file per symbol and trading session in [START, END]; the same seed gives the same bytes.
    """
    names = _symbol_list(symbols)
    store, calendar = _store(ctx), _calendar()
    total = len(dict.fromkeys(names)) * len(calendar.sessions(start, end))
    if sys.stdout.isatty() and not as_json:
        with click.progressbar(length=total, label="generating") as bar:
            report = generate(store, calendar, names, start, end, seed=seed, progress=bar.update)
    else:
        report = generate(store, calendar, names, start, end, seed=seed)
    if as_json:
        _emit_json({"root": str(store.root), "seed": seed, "start": start.isoformat(),
                    "end": end.isoformat(), "symbols": report.symbols, "sessions": report.sessions,
                    "bars": report.bars, "files": report.files})
        return
    click.echo(f"generated {report.bars} bars for {report.symbols} symbol(s) x {report.sessions} "
               f"session(s) {start}..{end} (seed {seed}) into {store.root} ({report.files} files)")


@data_group.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--symbol", help="Ticker for every file (default: from the file name, e.g. AAPL_….csv).")
@click.option("--tz", help="Time zone of naive timestamps (default: America/New_York).")
@click.option("--skip-bad", is_flag=True, help="Write the good rows of a file that has bad ones.")
@click.option("--replace", is_flag=True, help="Replace whole days that hold bars from another source.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON report per file.")
@click.pass_context
@friendly_errors
def import_cmd(ctx, files: tuple[Path, ...], symbol: str | None, tz: str | None, skip_bad: bool, replace: bool,
               as_json: bool) -> None:
    """Import vendor CSV files of 1-minute bars.

    All-or-nothing per file: a bad row rejects the file unless --skip-bad. Re-importing a file
    changes nothing. A day that holds bars from another source (another file, generated data) is
    refused, naming the day and both sources, unless --replace, which replaces those whole days.
    """
    from services.ctl.progressbar import bar

    store, calendar = _store(ctx), _calendar()
    results, failures = [], []
    with bar(0 if as_json else len(files), "importing") as advance:
        for path in files:
            _import_one(store, calendar, path, dict(symbol=symbol, tz=tz, skip_bad=skip_bad, replace=replace),
                        as_json, len(files), results, failures)
            advance()
    if as_json:
        _emit_json(results)
    if len(failures) == 1:
        raise click.ClickException(failures[0])
    if failures:
        raise click.ClickException(f"{len(failures)} of {len(files)} files rejected")


def _import_one(store, calendar, path: Path, options: dict, as_json: bool, n_files: int, results: list,
                failures: list) -> None:
    """Import one file; its report (or its rejection) appended to results/failures."""
    try:
        report = import_csv(store, path, calendar=calendar, **options)
    except CsvImportError as exc:
        _list_bad_rows(exc.errors)
        message = (f"{path}: rejected, {len(exc.errors)} bad row(s), nothing written "
                   f"(--skip-bad writes the good rows)") if exc.errors else _one_line(exc)
        if n_files > 1:
            click.echo(f"rejected: {message}", err=True)
        failures.append(message)
        results.append({"path": str(path), "ok": False, "error": message,
                        "errors": [str(e) for e in exc.errors]})
        return
    _list_bad_rows(report.errors)
    results.append({"ok": True, **report.to_dict()})
    if not as_json:
        click.echo(report.summary_line())


def _list_bad_rows(errors) -> None:
    for error in errors[:MAX_ROWS_LISTED]:
        click.echo(str(error), err=True)
    if len(errors) > MAX_ROWS_LISTED:
        click.echo(f"... and {len(errors) - MAX_ROWS_LISTED} more bad row(s)", err=True)


@data_group.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.pass_context
@friendly_errors
def ls_cmd(ctx, as_json: bool) -> None:
    """List stored symbols: first/last date, days, bars."""
    store = _store(ctx)
    rows = [store.summary(symbol) for symbol in store.symbols()]
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo(f"no bars in {store.root}")
        return
    click.echo(f"{'SYMBOL':<10} {'FIRST':<10} {'LAST':<10} {'DAYS':>5} {'BARS':>10}")
    for r in rows:
        flag = f"  CORRUPT: {len(r['corrupt'])} file(s)" if r["corrupt"] else ""
        click.echo(f"{r['symbol']:<10} {r['first_date']:<10} {r['last_date']:<10} "
                   f"{r['days']:>5} {r['bars']:>10}{flag}")
        for problem in r["corrupt"]:
            click.echo(f"  {problem}")


@data_group.command("check")
@click.argument("symbol")
@click.option("--start", type=DATE, help="First date (default: the symbol's first stored day).")
@click.option("--end", type=DATE, help="Last date (default: the symbol's last stored day).")
@click.option("--json", "as_json", is_flag=True, help="Print per-day results as JSON.")
@click.pass_context
@friendly_errors
def check_cmd(ctx, symbol: str, start: dt.date | None, end: dt.date | None, as_json: bool) -> None:
    """Per-day bar counts, gaps and duplicates of SYMBOL.

    Regular-hours bars present vs expected (390, 210 on an early close), extended-hours bars,
    gaps as runs of missing minutes (exchange time), duplicate timestamps.
    """
    store = _store(ctx)
    symbol = normalise_symbol(symbol)
    if symbol not in store.symbols():
        raise click.ClickException(f"unknown symbol {symbol}: no bars in {store.root}")
    checks = check_symbol(store, _calendar(), symbol, start, end)
    if as_json:
        _emit_json({"symbol": symbol, "days": [c.to_dict() for c in checks], "total": _totals(checks)})
        return
    for c in checks:
        click.echo(_check_line(c))
    t = _totals(checks)
    click.echo(f"{symbol}: {t['sessions']} session(s), regular {t['present']}/{t['expected']} "
               f"({t['coverage_pct']:.2f}%), {t['gaps']} gap(s), extended {t['extended']}, "
               f"duplicates {t['duplicates']}, jumps {t['jumps']}"
               + (f", {t['spill_days']} extended-only day(s) not counted" if t["spill_days"] else ""))


def _totals(checks: list[DayCheck]) -> dict:
    counted = [c for c in checks if c.counted]
    expected = sum(c.expected for c in counted)
    present = sum(c.present for c in counted)
    return {
        "sessions": len(counted), "expected": expected, "present": present,
        "spill_days": sum(c.spill for c in checks), "jumps": sum(len(c.jumps) for c in checks),
        "coverage_pct": round(100.0 * present / expected, 4) if expected else 0.0,
        "gaps": sum(len(c.gaps) for c in counted), "extended": sum(c.parts.extended for c in checks),
        "duplicates": sum(c.duplicates for c in checks),
    }


def _check_line(c: DayCheck) -> str:
    if not c.session:
        return f"{c.day}  not a session: {c.parts.closed} bar(s) stored on a closed day"
    if c.spill:
        return (f"{c.day}  extended hours only (pre {c.parts.pre}, post {c.parts.post}): spill-over from a "
                f"neighbouring day's file, not counted as a session")
    early = " early-close" if c.expected < 390 else ""
    line = (f"{c.day}  regular {c.present:>3}/{c.expected}{early}  "
            f"extended {c.parts.extended} (pre {c.parts.pre}, post {c.parts.post})  "
            f"duplicates {c.duplicates}")
    if c.off_grid:
        line += f"  off-grid {c.off_grid}"
    if c.gaps:
        shown = ", ".join(g.label() for g in c.gaps[:MAX_GAPS_LISTED])
        more = f", +{len(c.gaps) - MAX_GAPS_LISTED} more" if len(c.gaps) > MAX_GAPS_LISTED else ""
        line += f"  gaps {len(c.gaps)}: {shown}{more}"
    if c.jumps:
        shown = ", ".join(j.label() for j in c.jumps[:MAX_GAPS_LISTED])
        more = f", +{len(c.jumps) - MAX_GAPS_LISTED} more" if len(c.jumps) > MAX_GAPS_LISTED else ""
        line += f"  jumps >{JUMP_PCT:g}% {len(c.jumps)}: {shown}{more}"
    return line


# ---- calendar -----------------------------------------------------------------------------------------
@click.group("calendar", cls=OneLineGroup)
def calendar_group() -> None:
    """Exchange calendar (XNYS): sessions, holidays, early closes."""


def _utc_iso(ns: int) -> str:
    return datetime_from_ns(ns, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_info(calendar: TradingCalendar, day: dt.date) -> dict:
    open_ns, close_ns = calendar.open_close_ns(day)
    minutes = calendar.session_minutes(day)
    return {
        "date": day.isoformat(), "weekday": day.strftime("%a"), "session": True,
        "open_et": fmt_exchange(open_ns), "close_et": fmt_exchange(close_ns),
        "open_utc": _utc_iso(open_ns), "close_utc": _utc_iso(close_ns),
        "minutes": minutes, "early_close": minutes < 390, "open_ns": open_ns, "close_ns": close_ns,
    }


def _session_row(s: dict) -> str:
    mark = "  early close" if s["early_close"] else ""
    return (f"{s['date']}  {s['weekday']}  {s['open_et']}  {s['close_et']}  "
            f"{s['open_utc'][11:16]}  {s['close_utc'][11:16]}  {s['minutes']:>3}{mark}")


def _check_in_calendar(calendar: TradingCalendar, day: dt.date) -> None:
    if not calendar.first_session <= day <= calendar.last_session:
        raise CalendarError(f"{day} is outside the {calendar.name} calendar "
                            f"({calendar.first_session}..{calendar.last_session})")


@calendar_group.command("sessions")
@click.argument("start", type=DATE)
@click.argument("end", type=DATE)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def sessions_cmd(start: dt.date, end: dt.date, as_json: bool) -> None:
    """List trading sessions in [START, END] (ET and UTC)."""
    calendar = _calendar()
    _check_in_calendar(calendar, start)
    _check_in_calendar(calendar, end)
    rows = [session_info(calendar, day) for day in calendar.sessions(start, end)]
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo(f"no trading sessions in {start}..{end}")
        return
    click.echo("DATE        DAY  OPEN   CLOSE  (ET)  OPEN   CLOSE (UTC)  MIN")
    for s in rows:
        click.echo(_session_row(s))
    click.echo(f"{len(rows)} session(s)")


@calendar_group.command("day")
@click.argument("day", type=DATE)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@friendly_errors
def day_cmd(day: dt.date, as_json: bool) -> None:
    """Show whether DAY is a trading session, and its hours."""
    calendar = _calendar()
    _check_in_calendar(calendar, day)
    if calendar.is_session(day):
        info = session_info(calendar, day)
    else:
        info = closed_day_info(calendar, day)
    if as_json:
        _emit_json(info)
    elif info["session"]:
        early = ", early close" if info["early_close"] else ""
        click.echo(f"{day} ({day.strftime('%A')}) is a trading session{early}: "
                   f"open {info['open_et']} ET ({info['open_utc'][11:16]} UTC), "
                   f"close {info['close_et']} ET ({info['close_utc'][11:16]} UTC), {info['minutes']} minutes")
    else:
        click.echo(f"{day} ({day.strftime('%A')}) is not a trading session ({info['reason']}); "
                   f"previous {info['previous_session'] or '-'}, next {info['next_session'] or '-'}")


def closed_day_info(calendar: TradingCalendar, day: dt.date) -> dict:
    previous = calendar.sessions_before(day, 1)
    following = calendar.sessions(day + dt.timedelta(days=1), day + dt.timedelta(days=15))
    return {
        "date": day.isoformat(), "weekday": day.strftime("%a"), "session": False,
        "reason": "weekend" if day.weekday() >= 5 else "holiday",
        "previous_session": previous[-1].isoformat() if previous else None,
        "next_session": following[0].isoformat() if following else None,
    }


@click.group(cls=OneLineGroup)
def _standalone() -> None:
    """Stand-alone entry point until these groups are mounted on `ctl`."""


_standalone.add_command(data_group)
_standalone.add_command(calendar_group)

if __name__ == "__main__":
    _standalone()
