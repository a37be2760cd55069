"""Processor process: derived N-minute bars and incremental indicators for every symbol.

Sockets: SUB coordinator, PUB derived (one answer per STEP/HISTORY/CATCHUP_SNAPSHOT), PUSH acks.
Run: python -m services.processor --config configs/default.json
"""
import sys

import click

from common.logsetup import LEVELS, set_level_from_option
from common.stage.runtime import stage_main
from services.processor.handler import ProcessorHandler


@click.command()
@click.option("--log-level", type=click.Choice(LEVELS, case_sensitive=False), default=None,
              help="DEBUG, INFO (default), WARNING or ERROR (also SESSION_LOG_LEVEL).")
@click.option("--config", "config_path", default="configs/default.json", show_default=True)
def main(config_path: str, log_level: str | None) -> None:
    set_level_from_option(log_level)
    """Run the processor."""
    sys.exit(stage_main("processor", ProcessorHandler, config_path, publishes=True))


if __name__ == "__main__":
    main()
