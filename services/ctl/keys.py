"""`ctl keys generate`: the CURVE key pairs that tcp endpoints require (common/security.py has the layout)."""
from __future__ import annotations

from pathlib import Path

import click

from common.security import KeysError, default_keys_dir, generate_keys


@click.group("keys")
def keys_group() -> None:
    """CURVE keys for sessions on tcp endpoints (ipc endpoints need none)."""


@keys_group.command("generate")
@click.option("--dir", "folder", default=None,
              help="Keys folder (default: $SESSION_KEYS_DIR, else ~/.config/session-engine/keys).")
@click.option("--force", is_flag=True, help="Replace the keys of an existing folder.")
def generate(folder: str | None, force: bool) -> None:
    """Write a server and a client key pair into a folder only you can open (0700, secrets 0600).

    Copy the folder without server.key_secret to a machine that runs only analysis processes or ctl."""
    target = Path(folder) if folder else default_keys_dir()
    try:
        written = generate_keys(target, force=force)
    except (KeysError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {len(written)} files into {target}:")
    for path in written:
        click.echo(f"  {path.relative_to(target)}")
