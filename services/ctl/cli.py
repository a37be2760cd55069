"""ctl: drive a running session (status, session, pause, resume, stop, speed, add/remove symbols) and
manage the store and calendar offline (`ctl data ...`, `ctl calendar ...`).

Runtime commands use a REQ socket with a timeout and retries (the ZeroMQ Guide's Lazy Pirate): a fresh
socket per attempt, so a dead coordinator is reported in under 3 s instead of hanging.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import zmq

from common.config import DEFAULT_ENDPOINTS, ConfigError, load_config
from common.security import KeysError, SocketSecurity
from common.sessions import ipc_endpoints, running_sessions
from common.stage.runtime import new_request_id
from common.wire import protocol as P
from services.ctl.data import CONFIG_DATA_ROOT_KEY, calendar_group, data_group
from services.ctl.keys import keys_group
from services.ctl.chart import chart_cmd
from services.ctl.compare import compare_cmd
from services.ctl.top import top_cmd
from services.ctl.report import report_cmd
from services.ctl.runs import CONFIG_RESULTS_KEY, runs_cmd
from services.ctl.sweep import sweep_cmd

ATTEMPT_TIMEOUT_MS = 900
ATTEMPTS = 3


class CoordinatorUnavailable(click.ClickException):
    pass


def request(endpoint: str, name: str, args: dict | None = None, timeout_ms: int = ATTEMPT_TIMEOUT_MS,
            attempts: int = ATTEMPTS, keys_dir: Path | None = None) -> dict:
    """Send one command; retry with the same request id so the coordinator never applies it twice.
    A tcp endpoint is reached as a CURVE client with the keys in `keys_dir` (common/security.py)."""
    request_id = new_request_id()
    payload = P.encode(P.Message(P.COMMAND, {"name": name, "args": args or {}, "request_id": request_id}))
    try:
        security = SocketSecurity.for_endpoints(zmq.Context.instance(), {"command": endpoint}, keys_dir)
    except KeysError as exc:
        raise click.ClickException(f"{endpoint}: {exc}") from None
    for _ in range(attempts):
        sock = security.client(security.ctx.socket(zmq.REQ), endpoint)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        try:
            sock.send_multipart(payload)
            if sock.poll(timeout_ms, zmq.POLLIN):
                reply = P.decode(sock.recv_multipart())
                return reply.body
        finally:
            sock.close(0)
    raise CoordinatorUnavailable(
        f"no coordinator answering at {endpoint} ({attempts} attempts, {timeout_ms} ms each); is the session running?")


def _endpoint(ctx: click.Context) -> str:
    """--endpoint, else --session's or --config's, else the only running session's, else the default config's."""
    obj = ctx.find_root().obj or {}
    if obj.get("endpoint"):
        return obj["endpoint"]
    running = running_sessions()
    if len(running) > 1:
        raise click.ClickException(f"{len(running)} sessions are running ({', '.join(running)}): "
                                   f"name one with --session NAME")
    if running:
        return ipc_endpoints(running[0])["coordinator_router"]
    path = Path("configs/default.json")
    if path.exists():
        try:
            return load_config(path).endpoints["coordinator_router"]
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    return DEFAULT_ENDPOINTS["coordinator_router"]


def call(name: str, args: dict | None = None) -> dict:
    """One command to the session this ctl drives (see _endpoint); its reply, or a ClickException."""
    return _call(name, args)


def _call(name: str, args: dict | None = None) -> dict:
    ctx = click.get_current_context()
    reply = request(_endpoint(ctx), name, args, keys_dir=(ctx.find_root().obj or {}).get("keys_dir"))
    if not reply.get("ok"):
        raise click.ClickException(reply.get("error", "command failed"))
    return reply


def _echo_json(value) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@click.group()
@click.option("--config", default=None, help="Session config to read endpoints from (default configs/default.json).")
@click.option("--endpoint", default=None, help="Coordinator command endpoint, e.g. tcp://127.0.0.1:5551.")
@click.option("--session", default=None, help="The running session to drive, by name (default: the only one).")
@click.option("--keys", "keys_dir", default=None, type=click.Path(path_type=Path),
              help="CURVE keys folder for a tcp endpoint (default: the config's, $SESSION_KEYS_DIR, "
                   "~/.config/session-engine/keys).")
@click.pass_context
def cli(ctx: click.Context, config: str | None, endpoint: str | None, session: str | None,
        keys_dir: Path | None) -> None:
    """Drive a running session engine and manage its data."""
    ctx.obj = {"config": config, "endpoint": endpoint, "keys_dir": keys_dir}
    if session is not None and endpoint is None:
        if session not in running_sessions():
            raise click.ClickException(f"no session named {session!r} is running "
                                       f"(running: {', '.join(running_sessions()) or 'none'})")
        ctx.obj["endpoint"] = ipc_endpoints(session)["coordinator_router"]
    if config is not None:  # named explicitly: it must exist and be valid
        try:
            loaded = load_config(config)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        ctx.obj["endpoint"] = ctx.obj["endpoint"] or loaded.endpoints["coordinator_router"]
        ctx.obj["keys_dir"] = ctx.obj["keys_dir"] or loaded.keys_dir
        ctx.meta[CONFIG_DATA_ROOT_KEY] = str(loaded.data_root)
        ctx.meta[CONFIG_RESULTS_KEY] = str(loaded.results_dir)


cli.add_command(data_group, "data")
cli.add_command(calendar_group, "calendar")
cli.add_command(runs_cmd, "runs")
cli.add_command(keys_group, "keys")
cli.add_command(report_cmd, "report")
cli.add_command(chart_cmd, "chart")
cli.add_command(compare_cmd, "compare")
cli.add_command(top_cmd, "top")
cli.add_command(sweep_cmd, "sweep")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def status(as_json: bool) -> None:
    """State, clock, session day, symbols, steps and stages."""
    st = _call("status")["status"]
    if as_json:
        _echo_json(st)
        return
    click.echo(f"state      {st['state']}{' (operator pause)' if st['operator_paused'] else ''}   mode {st['mode']}   speed {st['speed']}")
    click.echo(f"clock      {st['clock'] or '-'}   session {st['session_date'] or '-'} (day {st['day']} of {st['n_days']})")
    click.echo(f"steps      {st['steps_done']} ({st['session_step']} this session), window {st['window']}")
    more = st.get("n_symbols", len(st["symbols"])) - len(st["symbols"])
    click.echo(f"symbols    {' '.join(st['symbols']) or '-'}" + (f" and {more} more (ctl session lists them)" if more else ""))
    if st["waiting_for"]:
        click.echo(f"waiting    for stages: {', '.join(st['waiting_for'])}")
    for lost in st.get("lost", []):
        click.echo(f"waiting    for {lost['stage']} (lost at step {lost['lost_step']}, {lost['silent_s']:.0f} s ago): "
                   f"restart it with the same name")
    for name, s in sorted(st["stages"].items()):
        flag = "  STALLED" if s["stalled"] else ""
        seen = f"live (seen {s['last_seen_age_s']:.1f} s ago)" if s["live"] else f"silent for {s['last_seen_age_s']:.1f} s"
        acked = "" if s["role"] == "observer" else f"  last ack step {s['last_ack_step']} ({s['last_ack_age_s']:.1f} s ago)"
        click.echo(f"stage      {name:<12} {s['role']:<11} {seen}{acked}{flag}")
    _echo_accounts(st.get("accounts"))
    rep = st["report"]
    if rep.get("bars_per_s"):
        click.echo(f"throughput {rep['bars']} bars in {rep['wall_s']} s = {rep['bars_per_s']:.0f} bars/s")


def _echo_accounts(book: dict | None) -> None:
    """The broker's accounts (as of its last booked step): equity, cash, open positions and orders."""
    if not book:
        return
    for name, a in book["accounts"].items():
        held = " ".join(f"{s} {q:g}" for s, q in a["positions"].items()) or "flat"
        click.echo(f"account    {name:<24} equity {a['equity']:,.2f}  cash {a['cash']:,.2f}  {held}  "
                   f"open orders {a['open_orders']}  (booked to {book['booked']})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def session(as_json: bool) -> None:
    """Per-symbol table: 1m bars, first/last bar, span, quality, gaps; dynamic symbols marked."""
    rows = _call("session")["session"]
    if as_json:
        _echo_json(rows)
        return
    click.echo(f"{'symbol':<8} {'1m bars':>7} {'first':>6} {'last':>6} {'span':>6} {'quality':>8} {'gaps':>5}  dynamic")
    for r in rows:
        click.echo(f"{r['symbol']:<8} {r['bars_1m']:>7} {r['first'] or '-':>6} {r['last'] or '-':>6} "
                   f"{str(r['span_min']) + 'm':>6} {r['quality_pct']:>7.2f}% {r['gaps']:>5}  {'yes' if r['dynamic'] else ''}")


@cli.command()
def pause() -> None:
    """Freeze the clock at the next step boundary."""
    click.echo(f"paused at {_call('pause')['clock']}")


@cli.command()
def resume() -> None:
    """Resume streaming after an operator pause."""
    click.echo(f"resumed at {_call('resume')['clock']}")


@cli.command()
def stop() -> None:
    """Stop the backtest: every process flushes its results and exits."""
    _call("stop")
    click.echo("stopping")


@cli.command(context_settings={"ignore_unknown_options": True})  # `ctl speed -5` is a value, not an option
@click.argument("speed")
def speed(speed: str) -> None:
    """Set the clock speed: N times real time (0 < N <= 1,000,000), or 'max'."""
    if speed != "max":
        try:
            float(speed)
        except ValueError:
            raise click.ClickException(f"speed {speed!r} is not a number or 'max'") from None
    click.echo(f"speed {_call('speed', {'speed': speed})['speed']}")


@cli.command("add-symbol")
@click.argument("symbols", nargs=-1, required=True)
@click.option("--at", default=None, help="Exchange time (HH:MM) at which to add, e.g. 12:06.")
@click.option("--streams", default="1m", show_default=True, help="Streams for the symbol (1m base; derived per config).")
def add_symbol(symbols: tuple[str, ...], at: str | None, streams: str) -> None:
    """Add one or more symbols to the running session (pause, catch-up snapshot, resume)."""
    reply = _call("add-symbol", {"symbols": [s.upper() for s in symbols], "at": at,
                                 "streams": streams.split(",")})
    click.echo(f"queued add {' '.join(reply['symbols'])} at {reply['at']} (request {reply['request_id']})")


@cli.command("remove-symbol")
@click.argument("symbols", nargs=-1, required=True)
def remove_symbol(symbols: tuple[str, ...]) -> None:
    """Remove symbols at the next step boundary."""
    reply = _call("remove-symbol", {"symbols": [s.upper() for s in symbols]})
    click.echo(f"queued remove {' '.join(reply['symbols'])} (request {reply['request_id']})")


@cli.command("list-dynamic")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_dynamic(as_json: bool) -> None:
    """Symbols added at run time: when, bars caught up, history, status."""
    rows = _call("list-dynamic")["dynamic"]
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no dynamic symbols")
    for r in rows:
        if r["status"] == "queued":
            click.echo(f"{r['symbol']:<8} queued, due {r['due']}  (request {r['request_id']})")
            continue
        click.echo(f"{r['symbol']:<8} added {r['added_at']}  caught up {r['caught_up']} bars  dropped {r['dropped']}  "
                   f"history {r['history_days']}/{r['history_wanted']} days  {r['status']}")


def main() -> None:
    try:
        cli(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except zmq.ZMQError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
