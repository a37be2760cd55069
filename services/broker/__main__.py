"""Broker process: the book of record of simulated execution (orders, fills, positions, P&L).

Sockets: SUB coordinator (bars, session events, relayed ORDERS), DEALER registration and acks.
Run: python -m services.broker --config configs/trading.json
"""
import sys

import click

from common.config import ConfigError, load_config
from common.logsetup import log_level_option, set_level_from_option
from common.stage.runtime import stage_main
from services.broker.handler import BrokerHandler


@click.command(help="Run the broker.")
@log_level_option
@click.option("--config", "config_path", default="configs/default.json", show_default=True)
def main(config_path: str, log_level: str | None) -> None:
    set_level_from_option(log_level)
    # a config without "broker" in its stages does not trade: the broker (started by the Procfile all the
    # same) takes part like any late participant, so the run ends with it, and writes no files
    try:
        trading = "broker" in load_config(config_path).stages
    except ConfigError:
        trading = True  # stage_main says what is wrong with the config
    sys.exit(stage_main("broker", lambda config, log: BrokerHandler(config, log, write_files=trading), config_path,
                        snapshot_join=True))


if __name__ == "__main__":
    main()
