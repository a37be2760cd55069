"""Analysis process: runs user strategies on a local replica of the session data.

Sockets: SUB coordinator + processor + quality, DEALER registration and acks.
Run: python -m services.analysis --config configs/default.json [--strategy mypkg.mod:MyStrategy --param fast=10]
"""
import dataclasses
import json
import os
import re
import sys

import click

from common.config import StrategyEntry, check_stage_name
from common.logsetup import log_level_option, set_level_from_option
from common.security import checked_keys_dir
from common.stage.runtime import stage_main
from services.analysis.handler import AnalysisHandler
from services.analysis.strategies import OBJECTS_ENV, strategy_objects, with_objects


def remote_endpoints(endpoints: dict, connect: str) -> dict:
    """`--connect tcp://HOST[:PORT]`: every tcp endpoint moves to HOST (ports from the config); a PORT
    names the coordinator's command port."""
    match = re.match(r"^tcp://([^:/]+)(?::(\d+))?/?$", connect)
    if not match:
        raise click.BadParameter(f"{connect!r} is not tcp://host or tcp://host:port", param_hint="--connect")
    host, port = match.groups()
    out = {k: f"tcp://{host}:{v.rsplit(':', 1)[1]}" for k, v in endpoints.items() if v.startswith("tcp://")}
    if port:
        out["coordinator_router"] = f"tcp://{host}:{port}"
    return {**endpoints, **out}


def _param(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not key=value")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


@click.command()
@log_level_option
@click.option("--config", "config_path", default="configs/default.json", show_default=True)
@click.option("--name", default=None,
              help="Stage name, unique per session (results go to results/<name>); default: 'analysis', "
                   "'analysis-<strategy classes>' with --strategy, 'observer' with --observer.")
@click.option("--strategy", "targets", multiple=True, help="module:Class to run instead of the config's strategies.")
@click.option("--param", "params", multiple=True, help="key=value parameter for --strategy (JSON values).")
@click.option("--observer", "role", flag_value="observer", help="Attach without joining the credit window.")
@click.option("--participant", "role", flag_value="participant", default=True, help="Join the credit window (default).")
@click.option("--connect", default=None,
              help="Attach to a session on another host: tcp://HOST[:PORT] (ports from the config; PORT = commands).")
@click.option("--hwm", default=0, show_default=True, help="Receive high-water mark per SUB socket (0 = none).")
def main(config_path, name, targets, params, role, connect, hwm, log_level) -> None:
    """Run an analysis process."""
    set_level_from_option(log_level)
    parsed = dict(_param(p) for p in params)
    if connect:
        remote_endpoints({}, connect)  # a bad --connect is a usage error before anything starts
    if name is None:
        if targets:
            name = "analysis-" + "-".join(t.split(":")[-1].lower() for t in targets)
        else:
            name = "observer" if role == "observer" else "analysis"
    try:
        check_stage_name(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--name") from None
    strategies = [StrategyEntry(t, parsed, t.split(":")[-1], "disable") for t in targets] or None

    def make_handler(config, log):
        chosen = strategies
        if chosen is None and os.environ.get(OBJECTS_ENV):  # strategies the Python API handed over as objects
            chosen = with_objects(config.strategies, strategy_objects(os.environ[OBJECTS_ENV]))
        return AnalysisHandler(config, log, name=name, strategies=chosen, observer=role == "observer")

    def overrides(config):
        if not connect:
            return config
        checked_keys_dir(config.keys_dir)  # tcp to another host: CURVE keys needed, checked before start
        return dataclasses.replace(config, endpoints=remote_endpoints(config.endpoints, connect))

    sys.exit(stage_main(name, make_handler, config_path, role=role, listen_to=("processor", "quality"),
                        overrides=overrides, snapshot_join=True, rcvhwm=hwm))


if __name__ == "__main__":
    main()
