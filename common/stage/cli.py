"""The command line of a stage that only answers the coordinator (processor, quality): one shape for both."""
from __future__ import annotations

import sys

import click

from common.logsetup import log_level_option, set_level_from_option
from common.stage.runtime import stage_main


def answering_stage_command(name: str, make_handler, help_text: str) -> click.Command:
    """`python -m services.<name> [--config FILE] [--log-level L]`: run the stage with its PUB socket."""

    @click.command(help=help_text)
    @log_level_option
    @click.option("--config", "config_path", default="configs/default.json", show_default=True)
    def main(config_path: str, log_level: str | None) -> None:
        set_level_from_option(log_level)
        # snapshot join: at the start the journal is empty; a restarted stage rebuilds from it and
        # republishes its answers (the run goes on as if it had never stopped)
        sys.exit(stage_main(name, make_handler, config_path, publishes=True, snapshot_join=True))

    return main
