"""`ctl top`: a live terminal view of a running session, one frame a second from `status` and `session`:
clock, day n of N, steps/s, stages with their lag, symbols with bars and quality, dynamic symbols, the
broker's accounts. Ends when the session ends (or on Ctrl-C); `--frames N` stops after N frames."""
from __future__ import annotations

import time

import click

MAX_SYMBOL_ROWS = 20


def stage_lines(status: dict) -> list[str]:
    out = []
    for name, s in sorted(status["stages"].items()):
        lag = "-" if s["role"] == "observer" else f"{max(0, status['steps_done'] - s['last_ack_step'])} steps"
        state = "STALLED" if s["stalled"] else ("live" if s["live"] else f"silent {s['last_seen_age_s']:.0f} s")
        out.append(f"  {name:<16} {s['role']:<11} lag {lag:<10} {state}")
    out += [f"  {lost['stage']:<16} LOST at step {lost['lost_step']} ({lost['silent_s']:.0f} s ago)"
            for lost in status.get("lost", [])]
    return out


def symbol_lines(rows: list[dict]) -> list[str]:
    out = [f"  {'symbol':<8} {'1m bars':>7} {'last':>6} {'quality':>8} {'gaps':>5}  dynamic"]
    for r in rows[:MAX_SYMBOL_ROWS]:
        out.append(f"  {r['symbol']:<8} {r['bars_1m']:>7} {r['last'] or '-':>6} {r['quality_pct']:>7.2f}% "
                   f"{r['gaps']:>5}  {'yes' if r['dynamic'] else ''}")
    if len(rows) > MAX_SYMBOL_ROWS:
        out.append(f"  ... and {len(rows) - MAX_SYMBOL_ROWS} more symbols")
    return out


def account_lines(book: dict | None) -> list[str]:
    if not book:
        return []
    out = [f"accounts (booked to {book['booked']})"]
    for name, a in book["accounts"].items():
        held = " ".join(f"{s} {q:g}" for s, q in a["positions"].items()) or "flat"
        out.append(f"  {name:<28} equity {a['equity']:>14,.2f}  cash {a['cash']:>14,.2f}  {held}")
    return out


def frame(status: dict, rows: list[dict], steps_per_s: float | None) -> list[str]:
    """One screen of `ctl top` from a status and a session table."""
    rate = "-" if steps_per_s is None else f"{steps_per_s:,.0f}"
    paused = " (operator pause)" if status.get("operator_paused") else ""
    lines = [f"session {status['session_date'] or '-'}  day {status['day']} of {status['n_days']}  "
             f"clock {status['clock'] or '-'}  state {status['state']}{paused}  speed {status['speed']}",
             f"steps {status['steps_done']} ({status['session_step']} this session)  steps/s {rate}  "
             f"window {status['window']}", "stages"]
    return lines + stage_lines(status) + ["symbols"] + symbol_lines(rows) + account_lines(status.get("accounts"))


@click.command("top")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between frames.")
@click.option("--frames", default=0, help="Stop after this many frames (0: until the session ends).")
def top_cmd(interval: float, frames: int) -> None:
    """A live view of the running session, refreshed every --interval seconds."""
    from services.ctl.cli import CoordinatorUnavailable, call

    shown, last = 0, None
    while frames <= 0 or shown < frames:
        try:
            status, rows = call("status")["status"], call("session")["session"]
        except CoordinatorUnavailable:
            if shown:
                click.echo("session ended")
                return
            raise
        now = time.monotonic()
        rate = None if last is None else (status["steps_done"] - last[1]) / max(now - last[0], 1e-9)
        last = (now, status["steps_done"])
        if click.get_text_stream("stdout").isatty():
            click.clear()
        click.echo("\n".join(frame(status, rows, rate)))
        shown += 1
        if frames <= 0 or shown < frames:
            time.sleep(interval)  # the refresh period of a display, not a synchronisation
