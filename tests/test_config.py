"""Session config loader: the shipped configs load; every bad input names its JSON path and the problem."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from common.config import ConfigError, load_config, parse_config
from common.sessions import runtime_root

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"session": {"start_date": "2025-07-01", "end_date": "2025-07-07", "symbols": ["AAPL", "MSFT"]}}


@pytest.fixture(autouse=True)
def no_keys(tmp_path, monkeypatch):
    """No CURVE keys unless a test makes them: the developer's own keys never change an outcome."""
    monkeypatch.setenv("SESSION_KEYS_DIR", str(tmp_path / "no-keys"))


@pytest.fixture
def keys(tmp_path, monkeypatch):
    from common.security import generate_keys

    generate_keys(tmp_path / "keys")
    monkeypatch.setenv("SESSION_KEYS_DIR", str(tmp_path / "keys"))
    return tmp_path / "keys"


@pytest.mark.parametrize("name", ["default.json", "default-slow.json", "example.json", "trading.json"])
def test_shipped_configs_load(name, keys):
    config = load_config(ROOT / "configs" / name)
    assert config.mode == "backtest" and config.symbols and "1m" in config.streams
    private = f"ipc://{runtime_root() / config.raw['name']}/"
    assert all(addr.startswith(("tcp://127.0.0.1:", private)) for addr in config.endpoints.values())


def test_defaults_and_derived_intervals():
    config = parse_config({**MINIMAL, "session": {**MINIMAL["session"], "streams": ["1m", "15m", "5m"]},
                           "indicators": [{"name": "sma", "interval": "30m", "params": {"period": 5}}],
                           "historical": [{"trailing_days": 3, "apply_to": ["AAPL"]},
                                          {"trailing_days": 1, "intervals": ["1m", "1d"]}]})
    assert config.clock_speed is None and config.flow_window == 16 and config.stages == ("processor", "quality", "analysis")
    assert config.derived_minutes() == [5, 15, 30]
    assert config.history_days("AAPL") == 3 and config.history_days("MSFT") == 1
    assert config.indicators[0]["params"] == {"period": 5}


def _with(path: str, value):
    cfg = copy.deepcopy(MINIMAL)
    target = cfg
    keys = path.split(".")
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value
    return cfg


@pytest.mark.parametrize("path, value, message", [
    ("session.symbols", ["AAPL", "MSFT", "aa pl"], "session.symbols[2]: 'aa pl' is not a ticker"),
    ("session.symbols", ["AAPL", "AAPL"], "session.symbols: AAPL is listed twice"),
    ("session.symbols", [], "session.symbols: at least one symbol is needed"),
    ("session.start_date", "2025-13-01", "session.start_date: '2025-13-01' is not a date"),
    ("session.end_date", "2025-06-01", "session.end_date: 2025-06-01 is before start_date"),
    ("session.mode", "live", "session.mode: 'live' is not supported"),
    ("session.clock", {"speed": -1}, "session.clock.speed: must be > 0"),
    ("session.clock", "fast", "session.clock: expected \"max\" or {\"speed\": N}"),
    ("session.streams", ["5m"], "session.streams: must include '1m'"),
    ("session.streams", ["1m", "7x"], "session.streams[1]: '7x' is not an interval"),
    ("session.colour", "red", "session.colour: unknown key"),
    ("historical", [{"trailing_days": 0}], "historical[0].trailing_days: 0 is out of range"),
    ("historical", [{"trailing_days": 2, "intervals": ["2d"]}], "historical[0].intervals[0]"),
    ("indicators", [{"name": "sma", "interval": "5m", "params": {"period": 20}}, {"name": "foo"}],
     "indicators[1].name: unknown indicator 'foo'"),
    ("indicators", [{"name": "rsi", "params": {"period": 0}}], "indicators[0].params.period"),
    ("indicators", [{"name": "ema", "interval": "1d"}], "indicators[0].interval"),
    ("strategies", [{"class": "no_colon"}], "strategies[0].class: 'no_colon' is not 'module:Class'"),
    ("strategies", [{"class": "a:B", "on_error": "ignore"}], "strategies[0].on_error"),
    ("strategies", [{"class": "a:B"}, {"class": "c:B"}], "strategies[1].name: 'B' is used twice"),
    ("schedule", [{"at": "25:00", "command": "add-symbol", "symbols": ["X"]}], "schedule[0].at"),
    ("schedule", [{"at": "12:00", "command": "jump"}], "schedule[0].command"),
    ("stages", ["processor", "router"], "stages[1]: 'router' is not one of"),
    ("flow.window", 0, "flow.window: 0 is out of range"),
    ("flow.progress_s", -1, "flow.progress_s: -1 must be between 0 (off) and a day"),
    ("endpoints.coordinator_pub", "tcp://*:5550", "endpoints.coordinator_pub: tcp://*:5550 is a tcp endpoint, "
                                                  "which needs CURVE authentication"),
    ("endpoints.coordinator_pub", "http://x", "endpoints.coordinator_pub: 'http://x' is not"),
    ("dump_replica", "yes", "dump_replica: expected true or false"),
    ("colour", 1, "colour: unknown key"),
])
def test_errors_name_the_json_path(path, value, message):
    with pytest.raises(ConfigError) as err:
        parse_config(_with(path, value))
    assert message in str(err.value)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"session": {"start_date": "2025-07-01",\n  oops}')
    with pytest.raises(ConfigError, match=r"bad.json: invalid JSON at line 2"):
        load_config(bad)
    with pytest.raises(ConfigError, match=r"missing.json: cannot read"):
        load_config(tmp_path / "missing.json")
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(_with("session.symbols", ["aa pl"])))
    with pytest.raises(ConfigError, match=r"wrong.json: session.symbols\[0\]: 'aa pl' is not a ticker"):
        load_config(wrong)


def test_environment_overrides(monkeypatch):
    monkeypatch.setenv("SESSION_DATA_ROOT", "/tmp/elsewhere")
    monkeypatch.setenv("SESSION_ENDPOINT_COORDINATOR_PUB", "ipc:///tmp/x/pub")
    config = parse_config(MINIMAL)
    assert str(config.data_root) == "/tmp/elsewhere" and config.endpoints["coordinator_pub"] == "ipc:///tmp/x/pub"


TCP_HOSTS = ["0", "0x0", "00.0.0.0", "0.0.0.0", "*", "192.168.1.5", "eth0", "[::]", "127.0.0.1", "localhost",
             "127.1", "[::1]"]


@pytest.mark.parametrize("host", TCP_HOSTS)
def test_tcp_endpoints_without_keys_are_refused_in_any_spelling(host):
    cfg = {"session": {"start_date": "2025-07-02", "end_date": "2025-07-02", "symbols": ["AAPL"]},
           "endpoints": {"coordinator_pub": f"tcp://{host}:5550"}}
    with pytest.raises(ConfigError, match=r"is a tcp endpoint, which needs CURVE authentication: .*no-keys does "
                                          r"not exist: .*run `ctl keys generate`"):
        parse_config(cfg)


@pytest.mark.parametrize("host", TCP_HOSTS)
def test_tcp_endpoints_with_keys_are_accepted(host, keys):
    cfg = {"session": {"start_date": "2025-07-02", "end_date": "2025-07-02", "symbols": ["AAPL"]},
           "endpoints": {"coordinator_pub": f"tcp://{host}:5550"}}
    config = parse_config(cfg)
    assert config.endpoints["coordinator_pub"] == f"tcp://{host}:5550" and config.keys_dir == keys


@pytest.mark.parametrize("host, loopback", [("0", False), ("0x0", False), ("00.0.0.0", False), ("0.0.0.0", False),
                                            ("*", False), ("192.168.1.5", False), ("eth0", False), ("[::]", False),
                                            ("127.0.0.1", True), ("localhost", True), ("127.1", True),
                                            ("[::1]", True), ("0x7f.1", True)])
def test_loopback_check_resolves_every_spelling(host, loopback):
    from common.config import is_loopback

    assert is_loopback(host) is loopback


def test_open_keys_are_refused(keys):
    (keys / "client.key_secret").chmod(0o644)
    cfg = {"session": {"start_date": "2025-07-02", "end_date": "2025-07-02", "symbols": ["AAPL"]},
           "endpoints": {"coordinator_pub": "tcp://127.0.0.1:5550"}}
    with pytest.raises(ConfigError, match=r"client.key_secret: a secret key must belong to you and be private"):
        parse_config(cfg)
