"""Loading the user's strategy classes and reading what they declare."""
from __future__ import annotations

import importlib


def wanted_intervals(strategy, default: str) -> tuple[str, ...]:
    """A strategy's `intervals` attribute as a tuple ('5m' alone is one interval, not characters)."""
    wanted = getattr(strategy, "intervals", (default,))
    return (wanted,) if isinstance(wanted, str) else tuple(wanted)


def load_strategy(target: str, params: dict):
    """'package.module:Class' -> instance; errors name the target."""
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


