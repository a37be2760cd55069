"""Loading the user's strategy classes and reading what they declare."""
from __future__ import annotations

import dataclasses
import importlib
import os
import pickle
import stat


def wanted_intervals(strategy, default: str) -> tuple[str, ...]:
    """A strategy's `intervals` attribute as a tuple ('5m' alone is one interval, not characters)."""
    wanted = getattr(strategy, "intervals", (default,))
    return (wanted,) if isinstance(wanted, str) else tuple(wanted)


def load_strategy(target, params: dict):
    """'package.module:Class' -> instance; errors name the target. A class (the Python API) is
    instantiated with the params; an instance is used as it is."""
    if not isinstance(target, str):
        return _from_object(target, params)
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"strategy {target}: cannot load ({exc})") from None
    try:
        return cls(**params)
    except TypeError as exc:
        raise ImportError(f"strategy {target}: bad params {params} ({exc})") from None


def _from_object(target, params: dict):
    if not isinstance(target, type):
        return target
    try:
        return target(**params)
    except TypeError as exc:
        raise ImportError(f"strategy {target.__qualname__}: bad params {params} ({exc})") from None


def declared_indicators(strategies: list[tuple], config) -> list[dict]:
    """Indicator entries the strategies declare in an `indicators` attribute, {interval: [key, ...]}
    (e.g. {"5m": ["sma(20)", "macd(12,26,9)"]}); a bad declaration is a ValueError naming the strategy."""
    from common.domain.indicators import parse_indicator_key

    out = []
    for name, strategy, _ in strategies:
        declared = getattr(strategy, "indicators", None)
        if declared is None:
            continue
        where = f"strategy {name}: indicators"
        if not isinstance(declared, dict) or not all(isinstance(v, (list, tuple)) for v in declared.values()):
            raise ValueError(f"{where} must map an interval to a list of keys, like {{'5m': ['sma(20)']}}")
        entries = [parse_indicator_key(key, interval, f"{where}[{interval!r}]")
                   for interval, keys in declared.items() for key in keys]
        out += config.declared_indicators(entries, where)
    return out


OBJECTS_ENV = "SESSION_STRATEGY_OBJECTS"


def strategy_objects(path: str) -> dict:
    """{strategy name: class or instance} that the Python API pickled for this run (a strategy written
    in a notebook runs in the processes too). Loaded only from a file of this user that nobody else can
    write: unpickling runs code, like importing a module."""
    try:
        info = os.stat(path)
        if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ImportError(f"{OBJECTS_ENV}={path}: not this user's file, or writable by others: not loaded")
        with open(path, "rb") as f:
            objects = pickle.load(f)
    except (OSError, EOFError, AttributeError, pickle.UnpicklingError) as exc:
        raise ImportError(f"{OBJECTS_ENV}={path}: cannot load the strategies ({exc})") from None
    if not isinstance(objects, dict):
        raise ImportError(f"{OBJECTS_ENV}={path}: holds {type(objects).__name__}, not {{name: strategy}}")
    return objects


def with_objects(entries, objects: dict) -> list:
    """The config's strategy entries, those named in `objects` taking their object as target."""
    return [dataclasses.replace(e, target=objects[e.name]) if e.name in objects else e for e in entries]
