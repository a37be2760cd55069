"""The registry: each indicator's parameters (TA-Lib's defaults and limits), display keys, config
validation, the factory, and the reference table behind docs/indicators.md."""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from common.domain.indicators.averages import EMA, SMA, WMA
from common.domain.indicators.base import Indicator
from common.domain.indicators.momentum import CCI, MACD, RSI, STOCH, WILLR
from common.domain.indicators.volatility import ATR, BBANDS
from common.domain.indicators.volume import OBV, VWAP

MAX_PERIOD = 10_000          # ring buffers cost period x slots x 8 bytes


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its type (int or float), default and inclusive range."""
    name: str
    kind: type
    default: int | float
    low: int | float
    high: int | float
    in_key: bool = True          # matype-style switches stay out of the display key


@dataclass(frozen=True)
class IndicatorSpec:
    name: str
    params: tuple[ParamSpec, ...]
    outputs: tuple[str, ...]
    factory: type


def _period(name: str, default: int, low: int = 2) -> ParamSpec:
    return ParamSpec(name, int, default, low, MAX_PERIOD)


def _sma_only(name: str) -> ParamSpec:
    return ParamSpec(name, int, 0, 0, 0, in_key=False)


def _spec(cls: type, *params: ParamSpec) -> IndicatorSpec:
    return IndicatorSpec(cls.name, params, cls.outputs, cls)


# Defaults and minimum periods are TA-Lib 0.8's (talib.abstract, TA_*_Lookback).
INDICATORS: Mapping[str, IndicatorSpec] = MappingProxyType({s.name: s for s in (
    _spec(SMA, _period("period", 30, 1)),
    _spec(EMA, _period("period", 30, 1)),
    _spec(WMA, _period("period", 30, 1)),
    _spec(RSI, _period("period", 14)),
    _spec(MACD, _period("fast", 12), _period("slow", 26), _period("signal", 9, 1)),
    _spec(BBANDS, _period("period", 20), ParamSpec("nbdevup", float, 2.0, 0.0, 100.0),
          ParamSpec("nbdevdn", float, 2.0, 0.0, 100.0), _sma_only("matype")),
    _spec(ATR, _period("period", 14, 1)),
    _spec(STOCH, _period("fastk_period", 5, 1), _period("slowk_period", 3, 1),
          _sma_only("slowk_matype"), _period("slowd_period", 3, 1), _sma_only("slowd_matype")),
    _spec(CCI, _period("period", 14)),
    _spec(WILLR, _period("period", 14)),
    _spec(OBV),
    _spec(VWAP),
)})


def _format_number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def indicator_key(name: str, params: Mapping) -> str:
    """Stable display key: 'sma(20)', 'macd(12,26,9)', 'bbands(20,2,2)', 'obv'."""
    spec = INDICATORS[name]
    shown = [_format_number(params.get(p.name, p.default)) for p in spec.params if p.in_key]
    return f"{name}({','.join(shown)})" if shown else name


def parse_indicator_key(key: str, interval: str, where: str) -> dict:
    """A key as strategies read it ('sma(20)', 'macd(12,26,9)', 'obv') -> a config entry
    {name, interval, params}, validated like one; the entry's own key is `key` again."""
    text = str(key).strip()
    name, _, rest = text.partition("(")
    if name not in INDICATORS:
        raise ValueError(f"{where}: unknown indicator {name!r} in {key!r} (known: {_known()})")
    shown = [p for p in INDICATORS[name].params if p.in_key]
    args = [a.strip() for a in rest[:-1].split(",")] if rest else []
    if (rest and not rest.endswith(")")) or len(args) > len(shown) or any(not a for a in args):
        raise ValueError(f"{where}: {key!r} is not a key like {indicator_key(name, {})}")
    params = {}
    for spec, arg in zip(shown, args):
        try:
            params[spec.name] = spec.kind(float(arg)) if spec.kind is int and float(arg).is_integer() else spec.kind(arg)
        except ValueError:
            raise ValueError(f"{where}: {key!r}: {spec.name} must be a number, got {arg!r}") from None
    entry = validate_indicator({"name": name, "interval": interval, "params": params}, where)
    if indicator_key(name, entry["params"]) != text.replace(" ", ""):
        raise ValueError(f"{where}: {key!r}: that indicator's key is {indicator_key(name, entry['params'])}")
    return entry


def _check_param(p: ParamSpec, value, where: str):
    if p.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    if p.low == p.high and value != p.low:
        raise ValueError(f"{where}: only {p.low} (SMA) is supported, got {value!r}")
    if not p.low <= value <= p.high:
        raise ValueError(f"{where}: {value!r} is out of range ({p.low}..{p.high})")
    return p.kind(value)


def _known() -> str:
    return ", ".join(sorted(INDICATORS))


def normalise_params(name: str, params: Mapping | None, where: str) -> dict:
    """Check params against the spec of `name`; return them complete, defaults filled in."""
    if name not in INDICATORS:
        raise ValueError(f"{where}: unknown indicator {name!r} (known: {_known()})")
    spec = INDICATORS[name]
    params = {} if params is None else params
    if not isinstance(params, Mapping):
        raise ValueError(f"{where}: expected an object of parameters, got {params!r}")
    allowed = [p.name for p in spec.params]
    for key in params:
        if key not in allowed:
            raise ValueError(f"{where}.{key}: unknown parameter for {name} "
                             f"(allowed: {', '.join(allowed) or 'none'})")
    return {p.name: _check_param(p, params[p.name], f"{where}.{p.name}") if p.name in params
            else p.default for p in spec.params}


def validate_indicator(entry, where: str) -> dict:
    """Check one config entry {name, interval, params}; return it normalised.

    Errors are ValueError naming the entry path, e.g. "indicators[2].params.period: 0 is out of
    range (2..10000)". `interval` defaults to '1m'; '1d' is refused (indicators run intraday).
    """
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where}: expected an object like {{'name': 'sma', 'params': {{'period': 20}}}}")
    unknown = sorted(set(entry) - {"name", "interval", "params"})
    if unknown:
        raise ValueError(f"{where}.{unknown[0]}: unknown key (allowed: interval, name, params)")
    name = entry.get("name")
    if not isinstance(name, str):
        raise ValueError(f"{where}.name: expected an indicator name (known: {_known()})")
    if name not in INDICATORS:
        raise ValueError(f"{where}.name: unknown indicator {name!r} (known: {_known()})")
    interval = _check_interval(entry.get("interval", "1m"), f"{where}.interval")
    params = normalise_params(name, entry.get("params", {}), f"{where}.params")
    return {"name": name, "interval": interval, "params": params}


def _check_interval(value, where: str) -> str:
    from common.domain.interval import Interval

    if not isinstance(value, str):
        raise ValueError(f"{where}: expected an interval like '5m', got {value!r}")
    try:
        interval = Interval.parse(value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if interval.daily:
        raise ValueError(f"{where}: indicators run on intraday intervals, not {value!r}")
    return value


def make_indicator(name: str, params: Mapping | None, n_slots: int) -> Indicator:
    """Build one indicator instance over n_slots slots; params are checked, defaults filled."""
    normalised = normalise_params(name, params, f"indicator {name}" if name in INDICATORS else "indicator")
    return INDICATORS[name].factory(normalised, n_slots)


def describe_indicators() -> list[dict]:
    """The reference table, in registry order: for each indicator its name, its parameters with
    their defaults, the key it gets with those defaults (e.g. 'macd(12,26,9)') and its outputs."""
    return [{"name": name,
             "params": {p.name: p.default for p in spec.params},
             "key": indicator_key(name, {}),
             "outputs": spec.outputs}
            for name, spec in INDICATORS.items()]
