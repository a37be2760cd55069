"""A run's config from what the caller gives: a config file, a dict or a parsed config, dotted overrides,
and strategies as `module:Class` strings, classes or instances.

Overrides name a place in the config's JSON with dots (or `__`, handy as a keyword argument): a list of
objects with names is indexed by name (`strategies.sma_cross.params.fast`), any list by position
(`historical.0.trailing_days`), and `session` keys may be given without the `session.` prefix
(`end_date="2025-07-02"`). The config as run (the manifest's record) holds strings only: a strategy given
as an object is recorded as its `module:Class`.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import os
from pathlib import Path

from common.config import ConfigError, SessionConfig, parse_config
from services.analysis.strategies import with_objects

SESSION_KEYS = {"mode", "start_date", "end_date", "symbols", "streams", "clock", "missing_data", "calendar"}


def read_config(config) -> tuple[dict, str]:
    """(raw config object, path it came from): a file path, a dict, or a SessionConfig."""
    if isinstance(config, SessionConfig):
        return copy.deepcopy(config.raw), config.path
    if isinstance(config, dict):
        return copy.deepcopy(config), "<dict>"
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        try:
            return json.loads(path.read_text()), str(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    raise ConfigError(f"config must be a file path, a dict or a SessionConfig, not {type(config).__name__}")


def split_key(key: str) -> list[str]:
    parts = key.replace("__", ".").split(".")
    if not all(parts):
        raise ConfigError(f"override {key!r}: empty part in the path")
    if parts[0] in SESSION_KEYS:
        parts = ["session"] + parts
    return parts


def _child(node, part: str, key: str):
    """The list item or object key `part` of `node` names (a list item by position or by its `name`)."""
    if isinstance(node, dict):
        return part
    if isinstance(node, list):
        if part.isdigit() and int(part) < len(node):
            return int(part)
        named = [i for i, item in enumerate(node) if isinstance(item, dict) and _entry_name(item) == part]
        if named:
            return named[0]
        names = [_entry_name(item) for item in node if isinstance(item, dict)]
        raise ConfigError(f"override {key!r}: no entry {part!r} (entries: {', '.join(map(str, names)) or 'none'})")
    raise ConfigError(f"override {key!r}: {part!r} is below a {type(node).__name__}, not an object or a list")


def _entry_name(item: dict):
    """A list entry's name: its `name`, else (strategies) the class part of `module:Class`."""
    if "name" in item:
        return item["name"]
    target = item.get("class")
    return target.split(":")[-1] if isinstance(target, str) else getattr(target, "__name__", None)


def apply_override(raw: dict, key: str, value) -> None:
    """Set the place `key` names (created when it is an object key that is missing)."""
    parts = split_key(key)
    node = raw
    for part in parts[:-1]:
        index = _child(node, part, key)
        if isinstance(node, dict) and index not in node:
            node[index] = {}
        node = node[index]
    node[_child(node, parts[-1], key)] = copy.deepcopy(value)


def strategy_text(target) -> str:
    """`module:Class` of a strategy given as a class or an instance (for the record; a class defined in a
    function or another class is recorded by its own name)."""
    cls = target if isinstance(target, type) else type(target)
    return f"{cls.__module__}:{cls.__name__}"


def strategy_entries(strategies) -> list[dict]:
    """The caller's `strategies` list as config entries; a class or an instance stays an object under
    "class" (replaced by its text in the record)."""
    out = []
    for item in strategies:
        entry = dict(item) if isinstance(item, dict) else {"class": item}
        target = entry.get("class")
        if type(target).__module__ == "builtins" and not isinstance(target, (str, type)) or target is None:
            raise ConfigError(f"strategies[{len(out)}]: {item!r} is not a strategy (a 'module:Class' string, a "
                              f"class, an instance of one, or a config entry with \"class\")")
        if not isinstance(target, str):
            entry.setdefault("name", (target if isinstance(target, type) else type(target)).__name__)
            if not isinstance(target, type) and entry.get("params"):
                raise ConfigError(f"strategy {entry['name']}: params go with a class, not with an instance")
        out.append(entry)
    return out


def build(config, overrides: dict | None = None, strategies=None) -> SessionConfig:
    """Parse the config with the overrides applied; strategy objects are kept in the parsed entries."""
    raw, path = read_config(config)
    if strategies is None and isinstance(config, SessionConfig) and any(
            not isinstance(e.target, str) for e in config.strategies):  # a prepared config keeps its objects
        strategies = [{"class": e.target, "name": e.name, "params": e.params, "on_error": e.on_error}
                      for e in config.strategies]
    if strategies is not None:
        raw["strategies"] = strategy_entries(strategies)
    for key, value in (overrides or {}).items():
        apply_override(raw, key, value)
    objects = {}
    for i, entry in enumerate(raw.get("strategies") or []):
        if isinstance(entry, dict) and entry.get("class") is not None and not isinstance(entry["class"], str):
            objects[i] = entry["class"]
            entry["class"] = strategy_text(entry["class"])
    parsed = parse_config(raw, path)
    if not Path(parsed.data_root).is_dir():
        raise ConfigError(f"data_root: {parsed.data_root} is not a folder (fill a store with `ctl data import` or "
                          f"`ctl data generate`, or the sample set with session_engine.sample_store(path))")
    if objects:
        by_name = {parsed.strategies[i].name: target for i, target in objects.items()}
        parsed = dataclasses.replace(parsed, strategies=tuple(with_objects(parsed.strategies, by_name)))
    return parsed
