"""Processor process: derived N-minute bars and incremental indicators for every symbol.

Sockets: SUB coordinator, PUB derived (one answer per STEP/HISTORY/CATCHUP_SNAPSHOT), PUSH acks.
Run: python -m services.processor --config configs/default.json
"""
import sys

import click

from common.stage.runtime import stage_main
from services.processor.handler import ProcessorHandler


@click.command()
@click.option("--config", "config_path", default="configs/default.json", show_default=True)
def main(config_path: str) -> None:
    """Run the processor."""
    sys.exit(stage_main("processor", ProcessorHandler, config_path, publishes=True))


if __name__ == "__main__":
    main()
