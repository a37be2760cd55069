"""Session config: a typed loader for configs/*.json whose errors name the JSON path and the problem.

Example error: ``session.symbols[2]: 'aa pl' is not a ticker``. See configs/example.json for every key.
Relative paths (data_root, results_dir) are taken relative to the current directory, where honcho runs.
Environment overrides: SESSION_DATA_ROOT, SESSION_RESULTS_DIR, SESSION_KEYS_DIR and SESSION_ENDPOINT_<NAME>
per endpoint.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from common.domain.interval import Interval
from common.domain.timeconv import parse_date, parse_wall_time

TICKER_RE = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")
STAGE_NAMES = ("processor", "quality", "analysis", "broker")
DEFAULT_STAGES = ("processor", "quality", "analysis")  # the broker runs when the config lists it
DEFAULT_ENDPOINTS = {
    "coordinator_pub": "tcp://127.0.0.1:5550",
    "coordinator_router": "tcp://127.0.0.1:5551",
    "coordinator_pull": "tcp://127.0.0.1:5552",
    "processor_pub": "tcp://127.0.0.1:5553",
    "quality_pub": "tcp://127.0.0.1:5554",
}


class ConfigError(ValueError):
    """A config problem; the message starts with the JSON path."""


def check_ticker(value, where: str) -> str:
    if not isinstance(value, str) or not TICKER_RE.match(value.strip().upper()) or " " in value.strip():
        raise ConfigError(f"{where}: {value!r} is not a ticker")
    return value.strip().upper()


@dataclass(frozen=True)
class HistoricalEntry:
    trailing_days: int
    intervals: tuple[str, ...]
    apply_to: tuple[str, ...] | None  # None = all symbols


@dataclass(frozen=True)
class StrategyEntry:
    target: object  # "module:Class" (a config file); the Python API may give a class or an instance
    params: dict
    name: str
    on_error: str  # "disable" | "stop"


@dataclass(frozen=True)
class ScheduledCommand:
    date: dt.date | None  # None = the first session (a dated entry must be a session of the backtest)
    time: dt.time
    command: str
    symbols: tuple[str, ...]


@dataclass(frozen=True)
class BrokerConfig:
    """Simulated execution (config `broker`): money, costs and rules every account trades under."""
    starting_cash: float = 100_000.0
    commission: tuple[str, float] = ("none", 0.0)   # (per_share | per_order | bps | none, rate)
    commission_minimum: float = 0.0                 # per fill, with per_share
    slippage: tuple[str, float] = ("none", 0.0)     # (fixed | bps | none, amount)
    volume_cap: float | None = None                 # most a fill may take of its bar's volume (0..1]
    margin: bool = False                            # buys beyond cash allowed
    shorting: bool = False                          # sells beyond the position allowed
    flatten_at_close: bool = False                  # close every position at each session's last bar
    on_remove: str = "flatten"                      # a removed symbol's position: flatten | keep


@dataclass(frozen=True)
class SessionConfig:
    path: str
    mode: str
    start_date: dt.date
    end_date: dt.date
    symbols: tuple[str, ...]
    streams: tuple[str, ...]
    clock_speed: float | None  # None = max
    missing_data: str  # "error" | "drop"
    historical: tuple[HistoricalEntry, ...]
    indicators: tuple[dict, ...]
    strategies: tuple[StrategyEntry, ...]
    schedule: tuple[ScheduledCommand, ...]
    stages: tuple[str, ...]
    flow_window: int
    pub_hwm: int
    ack_timeout_s: float
    heartbeat_s: float
    lost_after_s: float = 30.0        # a participant not seen this long is lost
    on_stage_loss: str = "abort"     # abort (exit 1) | wait (for a replacement under the same name)
    max_observers: int = 32
    flow_batch: int = 1               # clock max: at most this many consecutive steps per STEPS message
    progress_s: float = 10.0          # the coordinator logs a progress line this often (0: never)
    endpoints: dict = field(default_factory=dict)
    keys_dir: Path | None = None      # CURVE keys (common/security.py), loaded when an endpoint is tcp
    data_root: Path = Path("data/store")
    results_dir: Path = Path("results")
    calendar: str = "XNYS"
    dump_replica: bool = False
    broker: BrokerConfig = field(default_factory=BrokerConfig)
    raw: dict = field(default_factory=dict)

    def derived_intervals(self) -> list[Interval]:
        """N-minute intervals the processor generates (every stream except 1m, plus indicator ones)."""
        wanted = {Interval.parse(i) for i in set(self.streams) | {e["interval"] for e in self.indicators}}
        return sorted(i for i in wanted if not i.daily and i.minutes > 1)

    def derived_minutes(self) -> list[int]:
        return [i.minutes for i in self.derived_intervals()]

    def session_intervals(self) -> list[str]:
        """Every intraday interval a session has bars of: 1m and the derived ones."""
        return ["1m"] + [i.name for i in self.derived_intervals()]

    def declared_indicators(self, entries, where: str) -> list[dict]:
        """Indicator entries a strategy declared (from a strategy or a message: not trusted), validated
        like config entries and on the session's intervals; ValueError names `where` and the problem."""
        from common.domain.indicators import validate_indicator

        if not isinstance(entries, list):
            raise ValueError(f"{where}: expected a list of indicator entries")
        out = []
        for i, entry in enumerate(entries):
            checked = validate_indicator(entry, f"{where}[{i}]")
            if checked["interval"] not in self.session_intervals():
                raise ValueError(f"{where}[{i}].interval: {checked['interval']} is not an interval of this session "
                                 f"({', '.join(self.session_intervals())}); add it to session.streams")
            out.append(checked)
        return out

    def session_indicators(self, declared: list[dict]) -> list[dict]:
        """The config's indicators, then the declared ones not among them (one entry per interval and key)."""
        from common.domain.indicators import indicator_key

        out, seen = [], set()
        for entry in list(self.indicators) + list(declared):
            key = (entry["interval"], indicator_key(entry["name"], entry["params"]))
            if key not in seen:
                seen.add(key)
                out.append(entry)
        return out

    def history_days(self, symbol: str) -> int:
        """Trailing days of 1m history this symbol gets (max over the entries that apply to it)."""
        days = [h.trailing_days for h in self.historical if h.apply_to is None or symbol in h.apply_to]
        return max(days, default=0)


def _expect(value, types, where: str, what: str):
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise ConfigError(f"{where}: expected {what}, got {json.dumps(value)}")
    return value


def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def _only_keys(obj: dict, allowed: set, where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (allowed: {', '.join(sorted(allowed))})")


def _interval(value, where: str, allow_daily: bool = False) -> str:
    _expect(value, str, where, "an interval like '5m'")
    try:
        interval = Interval.parse(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if interval.daily and not allow_daily:
        raise ConfigError(f"{where}: '1d' is only allowed in historical intervals")
    return value


def _date(value, where: str) -> dt.date:
    try:
        return parse_date(_expect(value, str, where, "a date like '2025-07-02'"))
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _positive_int(value, where: str, maximum: int = 10**6) -> int:
    _expect(value, int, where, "a positive integer")
    if not 1 <= value <= maximum:
        raise ConfigError(f"{where}: {value} is out of range 1..{maximum}")
    return value


def _symbols(value, where: str, allow_empty: bool = False) -> tuple[str, ...]:
    _expect(value, list, where, "a list of tickers")
    if not value and not allow_empty:
        raise ConfigError(f"{where}: at least one symbol is needed")
    out = [check_ticker(v, f"{where}[{i}]") for i, v in enumerate(value)]
    dupes = sorted({s for s in out if out.count(s) > 1})
    if dupes:
        raise ConfigError(f"{where}: {dupes[0]} is listed twice")
    return tuple(out)


def _parse_session(obj, where: str = "session") -> dict:
    _expect(obj, dict, where, "an object")
    _only_keys(obj, {"mode", "start_date", "end_date", "symbols", "streams", "clock", "missing_data",
                     "calendar"}, where)
    for key in ("start_date", "end_date", "symbols"):
        if key not in obj:
            raise ConfigError(f"{where}.{key}: required")
    mode = obj.get("mode", "backtest")
    if mode != "backtest":
        raise ConfigError(f"{where}.mode: {mode!r} is not supported (only 'backtest')")
    start, end = _date(obj["start_date"], f"{where}.start_date"), _date(obj["end_date"], f"{where}.end_date")
    if end < start:
        raise ConfigError(f"{where}.end_date: {end} is before start_date {start}")
    streams = obj.get("streams", ["1m"])
    _expect(streams, list, f"{where}.streams", "a list of intervals")
    streams = tuple(_interval(s, f"{where}.streams[{i}]") for i, s in enumerate(streams))
    if "1m" not in streams:
        raise ConfigError(f"{where}.streams: must include '1m' (the base interval)")
    clock = obj.get("clock", "max")
    if clock == "max" or clock == {"mode": "max"}:
        speed = None
    elif isinstance(clock, dict) and set(clock) == {"speed"}:
        speed = _expect(clock["speed"], (int, float), f"{where}.clock.speed", "a number")
        if not speed > 0:
            raise ConfigError(f"{where}.clock.speed: must be > 0")
        speed = float(speed)
    else:
        raise ConfigError(f"{where}.clock: expected \"max\" or {{\"speed\": N}}, got {json.dumps(clock)}")
    missing = obj.get("missing_data", "error")
    if missing not in ("error", "drop"):
        raise ConfigError(f"{where}.missing_data: expected 'error' or 'drop', got {missing!r}")
    return {"mode": mode, "start_date": start, "end_date": end,
            "symbols": _symbols(obj["symbols"], f"{where}.symbols"), "streams": streams,
            "clock_speed": speed, "missing_data": missing,
            "calendar": _expect(obj.get("calendar", "XNYS"), str, f"{where}.calendar", "a calendar name")}


def _objects(value, where: str, keys: set | None = None):
    """(json path, entry) for each object of a list, checked to be an object with only `keys`."""
    _expect(value, list, where, "a list")
    for i, entry in enumerate(value):
        w = f"{where}[{i}]"
        _expect(entry, dict, w, "an object")
        if keys is not None:
            _only_keys(entry, keys, w)
        yield w, entry


def _parse_historical(value, where: str = "historical") -> tuple[HistoricalEntry, ...]:
    out = []
    for w, entry in _objects(value, where, {"trailing_days", "intervals", "apply_to"}):
        days = _positive_int(entry.get("trailing_days"), f"{w}.trailing_days", 260)
        intervals = entry.get("intervals", ["1m"])
        _expect(intervals, list, f"{w}.intervals", "a list of intervals")
        intervals = tuple(_interval(x, f"{w}.intervals[{j}]", allow_daily=True) for j, x in enumerate(intervals))
        apply_to = entry.get("apply_to", "all")
        apply = None if apply_to == "all" else _symbols(apply_to, f"{w}.apply_to")
        out.append(HistoricalEntry(days, intervals, apply))
    return tuple(out)


def _parse_indicators(value, where: str = "indicators") -> tuple[dict, ...]:
    _expect(value, list, where, "a list")
    if not value:
        return ()
    from common.domain.indicators import validate_indicator

    out = []
    for w, entry in _objects(value, where):
        if "interval" in entry:
            _interval(entry["interval"], f"{w}.interval")
        try:
            out.append(validate_indicator(entry, w))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return tuple(out)


def _parse_strategies(value, where: str = "strategies") -> tuple[StrategyEntry, ...]:
    out = []
    for w, entry in _objects(value, where, {"class", "params", "name", "on_error"}):
        target = _expect(entry.get("class"), str, f"{w}.class", "'module:Class'")
        if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", target):
            raise ConfigError(f"{w}.class: {target!r} is not 'module:Class'")
        params = _expect(entry.get("params", {}), dict, f"{w}.params", "an object")
        name = _expect(entry.get("name", target.split(":")[1]), str, f"{w}.name", "a string")
        on_error = entry.get("on_error", "disable")
        if on_error not in ("disable", "stop"):
            raise ConfigError(f"{w}.on_error: expected 'disable' or 'stop', got {on_error!r}")
        out.append(StrategyEntry(target, params, name, on_error))
    names = [s.name for s in out]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{where}[{i}].name: {name!r} is used twice")
    return tuple(out)


def _parse_schedule(value, where: str = "schedule") -> tuple[ScheduledCommand, ...]:
    out = []
    for w, entry in _objects(value, where, {"at", "command", "symbols", "date"}):
        command = entry.get("command")
        if command not in ("add-symbol", "remove-symbol", "pause"):
            raise ConfigError(f"{w}.command: expected add-symbol, remove-symbol or pause, got {command!r}")
        at = _expect(entry.get("at"), str, f"{w}.at", "an exchange time like '12:06'")
        try:
            wall = parse_wall_time(at)
        except ValueError as exc:
            raise ConfigError(f"{w}.at: {exc}") from None
        day = _date(entry["date"], f"{w}.date") if "date" in entry else None
        symbols = _symbols(entry.get("symbols", []), f"{w}.symbols", allow_empty=command == "pause")
        out.append(ScheduledCommand(day, wall, command, symbols))
    return tuple(out)


def _parse_endpoints(value, session_name: str, where: str = "endpoints") -> dict:
    """The config's endpoints; any it leaves out are private ipc sockets of the session (common/sessions.py)."""
    from common.sessions import SessionError, ipc_endpoints

    _expect(value, dict, where, "an object")
    _only_keys(value, set(DEFAULT_ENDPOINTS), where)
    try:
        out = ipc_endpoints(session_name)
    except (SessionError, OSError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
    for key, addr in value.items():
        out[key] = _expect(addr, str, f"{where}.{key}", "an endpoint like tcp://127.0.0.1:5550")
    for key in out:
        env = os.environ.get(f"SESSION_ENDPOINT_{key.upper()}")
        if env:
            out[key] = env
    for key, addr in out.items():
        if not re.match(r"^(tcp://([^:\[\]]+|\[[0-9A-Fa-f:.]+\]):\d+|ipc://.+|inproc://.+)$", addr):
            raise ConfigError(f"{where}.{key}: {addr!r} is not a tcp://host:port or ipc:// endpoint")
    return out


def _parse_keys_dir(security, endpoints: dict) -> Path:
    """The CURVE keys folder (every tcp socket authenticates; common/security.py); when an endpoint is tcp
    it is checked now, so a missing or open key fails at start with the endpoint and the folder named."""
    from common.security import KeysError, checked_keys_dir, default_keys_dir

    _expect(security, dict, "security", "an object")
    _only_keys(security, {"keys_dir"}, "security")
    tcp = [key for key, addr in endpoints.items() if addr.startswith("tcp://")]
    folder = os.environ.get("SESSION_KEYS_DIR") or security.get("keys_dir")
    folder = Path(_expect(folder, str, "security.keys_dir", "a folder path")).expanduser() if folder \
        else default_keys_dir()
    if not tcp:
        return folder
    try:
        return checked_keys_dir(folder)
    except KeysError as exc:
        raise ConfigError(f"endpoints.{tcp[0]}: {endpoints[tcp[0]]} is a tcp endpoint, which needs CURVE "
                          f"authentication: {exc}") from None


def is_loopback(host: str) -> bool:
    """True only when `host` surely means this machine: 127/8 or ::1 in any spelling the C library accepts
    ('0', '0x0' and '00.0.0.0' are 0.0.0.0, every interface: not loopback), or a name that resolves to
    loopback addresses only. '*', interface names and anything unresolvable are not."""
    import ipaddress
    import socket

    host = host.strip("[]")
    if not host or host == "*":
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host)).is_loopback  # '0x7f.1', '0177.0.0.1', '0'
    except OSError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def parse_config(obj: dict, path: str = "<config>") -> SessionConfig:
    """Validate a config object; raises ConfigError('<json path>: <problem>')."""
    _expect(obj, dict, "(top level)", "an object")
    _only_keys(obj, {"name", "session", "historical", "indicators", "strategies", "schedule", "stages",
                     "flow", "endpoints", "security", "data_root", "results_dir", "dump_replica",
                     "description", "broker"}, "")
    if "session" not in obj:
        raise ConfigError("session: required")
    data_root = os.environ.get("SESSION_DATA_ROOT") or _expect(
        obj.get("data_root", "data/store"), str, "data_root", "a folder path")
    results_dir = os.environ.get("SESSION_RESULTS_DIR") or _expect(
        obj.get("results_dir", "results"), str, "results_dir", "a folder path")
    endpoints = _parse_endpoints(obj.get("endpoints", {}), session_name(obj, path))
    return SessionConfig(
        path=path,
        historical=_parse_historical(obj.get("historical", [])),
        indicators=_parse_indicators(obj.get("indicators", [])),
        strategies=_parse_strategies(obj.get("strategies", [])),
        schedule=_parse_schedule(obj.get("schedule", [])),
        stages=_parse_stages(obj.get("stages", list(DEFAULT_STAGES))),
        endpoints=endpoints,
        keys_dir=_parse_keys_dir(obj.get("security", {}), endpoints),
        data_root=Path(data_root),
        results_dir=Path(results_dir),
        dump_replica=_expect(obj.get("dump_replica", False), bool, "dump_replica", "true or false"),
        broker=_parse_broker(obj.get("broker", {})),
        raw=obj,
        **_parse_flow(obj.get("flow", {})),
        **_parse_session(obj["session"]),
    )


def _parse_flow(flow) -> dict:
    _expect(flow, dict, "flow", "an object")
    _only_keys(flow, {"window", "ack_timeout_s", "heartbeat_s", "pub_hwm", "lost_after_s", "on_stage_loss",
                      "max_observers", "batch", "progress_s"}, "flow")
    pub_hwm = _positive_int(flow.get("pub_hwm", 10_000), "flow.pub_hwm", 10_000_000)
    window = _positive_int(flow.get("window", 16), "flow.window", 10_000)
    ack_timeout = float(_expect(flow.get("ack_timeout_s", 10.0), (int, float), "flow.ack_timeout_s", "seconds"))
    heartbeat = float(_expect(flow.get("heartbeat_s", 0.5), (int, float), "flow.heartbeat_s", "seconds"))
    if ack_timeout <= 0 or heartbeat <= 0:
        raise ConfigError("flow: ack_timeout_s and heartbeat_s must be > 0")
    lost_after = float(_expect(flow.get("lost_after_s", 30.0), (int, float), "flow.lost_after_s", "seconds"))
    if not 3 * heartbeat <= lost_after <= 86_400:
        raise ConfigError(f"flow.lost_after_s: {lost_after} must be at least 3 heartbeats ({3 * heartbeat} s) "
                          f"and at most a day")
    on_loss = flow.get("on_stage_loss", "abort")
    if on_loss not in ("abort", "wait"):
        raise ConfigError(f"flow.on_stage_loss: {json.dumps(on_loss)} is not 'abort' or 'wait'")
    return {"flow_window": window, "pub_hwm": pub_hwm, "ack_timeout_s": ack_timeout, "heartbeat_s": heartbeat,
            "lost_after_s": lost_after, "on_stage_loss": on_loss,
            "max_observers": _positive_int(flow.get("max_observers", 32), "flow.max_observers", 10_000),
            "flow_batch": min(window, _positive_int(flow.get("batch", max(1, window // 2)), "flow.batch", 10_000)),
            "progress_s": _progress_s(flow.get("progress_s", 10.0))}


def _progress_s(value) -> float:
    seconds = float(_expect(value, (int, float), "flow.progress_s", "seconds (0: no progress lines)"))
    if not 0 <= seconds <= 86_400:
        raise ConfigError(f"flow.progress_s: {value} must be between 0 (off) and a day")
    return seconds


def _one_model(value, models: tuple[str, ...], where: str, extra: tuple[str, ...] = ()) -> tuple[str, float]:
    """`{"<model>": rate}` with exactly one of `models` (plus the `extra` keys): (model, rate)."""
    if value is None:
        return ("none", 0.0)
    _expect(value, dict, where, f"an object with one of {', '.join(models)}")
    _only_keys(value, set(models) | set(extra), where)
    chosen = [m for m in models if m in value]
    if len(chosen) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(models)}")
    rate = _expect(value[chosen[0]], (int, float), f"{where}.{chosen[0]}", "a number >= 0")
    if not 0 <= rate < 1e6:
        raise ConfigError(f"{where}.{chosen[0]}: {rate} must be >= 0")
    return (chosen[0], float(rate))


def _flag(obj: dict, key: str, default: bool = False) -> bool:
    return _expect(obj.get(key, default), bool, f"broker.{key}", "true or false")


def _parse_broker(obj) -> BrokerConfig:
    _expect(obj, dict, "broker", "an object")
    _only_keys(obj, {"starting_cash", "commission", "slippage", "volume_cap", "margin", "shorting",
                     "flatten_at_close", "on_remove"}, "broker")
    cash = _expect(obj.get("starting_cash", 100_000.0), (int, float), "broker.starting_cash", "an amount")
    if not 0 < cash < 1e15:
        raise ConfigError(f"broker.starting_cash: {cash} must be > 0")
    commission = obj.get("commission")
    minimum = 0.0
    if isinstance(commission, dict) and "minimum" in commission:
        minimum = float(_expect(commission["minimum"], (int, float), "broker.commission.minimum", "an amount"))
        if minimum < 0:
            raise ConfigError(f"broker.commission.minimum: {minimum} must be >= 0")
    cap = obj.get("volume_cap")
    if cap is not None:
        _expect(cap, (int, float), "broker.volume_cap", "a share of the bar's volume in (0, 1]")
        if not 0 < cap <= 1:
            raise ConfigError(f"broker.volume_cap: {cap} is not in (0, 1]")
    on_remove = obj.get("on_remove", "flatten")
    if on_remove not in ("flatten", "keep"):
        raise ConfigError(f"broker.on_remove: expected 'flatten' or 'keep', got {on_remove!r}")
    return BrokerConfig(float(cash), _one_model(commission, ("per_share", "per_order", "bps"),
                                                "broker.commission", ("minimum",)), minimum,
                        _one_model(obj.get("slippage"), ("fixed", "bps"), "broker.slippage"),
                        None if cap is None else float(cap), _flag(obj, "margin"), _flag(obj, "shorting"),
                        _flag(obj, "flatten_at_close"), on_remove)


def _parse_stages(stages) -> tuple[str, ...]:
    _expect(stages, list, "stages", "a list of stage names")
    for i, stage in enumerate(stages):
        if stage not in STAGE_NAMES:
            raise ConfigError(f"stages[{i}]: {stage!r} is not one of {', '.join(STAGE_NAMES)}")
    return tuple(stages)


def load_config(path: str | os.PathLike) -> SessionConfig:
    """Read and validate a JSON config file; errors name the file and the JSON path."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    try:
        return parse_config(obj, str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


_STAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_stage_name(name) -> str:
    """A stage name is a folder under the run's results: letters, digits, '_', '.', '-' (no path)."""
    if not isinstance(name, str) or not _STAGE_NAME.match(name) or ".." in name:
        raise ValueError(f"stage name {name!r} must be 1-64 letters, digits, '_', '.' or '-' (it names a "
                         f"results folder)")
    return name


def session_name(obj: dict, path: str) -> str:
    """The config's `name`, else its file name: names the session's private socket folder and its runs."""
    from common.runs import config_name

    return config_name(obj, path)

