"""A progress bar for long ctl commands, drawn only on a terminal (quiet in pipes, logs and tests)."""
from __future__ import annotations

import contextlib
import sys

import click


@contextlib.contextmanager
def bar(total: int, label: str, stream=None):
    """Yields `advance()`; on a terminal a click progress bar of `total` steps, else nothing is drawn."""
    stream = stream or sys.stderr
    if not stream.isatty() or total <= 1:
        yield lambda n=1: None
        return
    with click.progressbar(length=total, label=label, file=stream, show_eta=True, show_pos=True) as progress:
        yield lambda n=1: progress.update(n)
