"""Structured logs: one line per event, `time process level message`, to stderr.

The level comes from `--log-level` of each process (which sets SESSION_LOG_LEVEL, so processes a command
starts inherit it) or from SESSION_LOG_LEVEL itself; INFO by default.
"""
from __future__ import annotations

import logging
import os
import sys

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_LEVEL_ENV = "SESSION_LOG_LEVEL"


def set_level_from_option(value: str | None) -> None:
    """`--log-level` of a process: checked, then handed to setup_logging through the environment."""
    if value:
        os.environ[LOG_LEVEL_ENV] = value.upper()


def setup_logging(process: str, level: str | None = None) -> logging.Logger:
    level = (level or os.environ.get(LOG_LEVEL_ENV) or "INFO").upper()
    if level not in LEVELS:
        level = "INFO"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    return logging.getLogger(process)


def log_level_option(command):
    """The `--log-level` option every process takes (click decorator); the value goes to set_level_from_option."""
    import click

    return click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default=None,
                        help="DEBUG, INFO (default), WARNING or ERROR (also SESSION_LOG_LEVEL).")(command)



PER_SYMBOL_LINES_UP_TO = 20  # more symbols than this: one summary line instead of a line per symbol


def log_per_symbol(log: logging.Logger, level: int, lines: list[str], summary: str) -> None:
    """One line per symbol for a few symbols; for a whole market, one line: `summary`, the count and the
    first five (a 5,000-symbol session must not print 5,000 lines per event)."""
    if len(lines) <= PER_SYMBOL_LINES_UP_TO:
        for line in lines:
            log.log(level, "%s", line)
        return
    log.log(level, "%s: %d symbols (first five: %s)", summary, len(lines), "; ".join(lines[:5]))
