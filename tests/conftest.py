"""Fixtures for integration tests: a generated store, configs with ipc endpoints, real processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_REAL = ROOT.parent / "shared" / "data" / "real"
STAGE_MODULES = {"coordinator": "services.coordinator", "processor": "services.processor",
                 "quality": "services.quality", "analysis": "services.analysis"}


def proc_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    for key in list(env):
        if key.startswith("SESSION_"):
            del env[key]
    return env


@pytest.fixture(scope="session")
def calendar():
    from common.domain.calendar import TradingCalendar
    return TradingCalendar()


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory, calendar):
    """AAPL, MSFT, RIVN generated 2025-06-23..2025-07-08 (covers the July 4th week and history)."""
    from common.data.generate import generate
    from common.data.store import BarStore

    root = tmp_path_factory.mktemp("store")
    store = BarStore(root)
    generate(store, calendar, ["AAPL", "MSFT", "RIVN"], "2025-06-23", "2025-07-08", seed=7)
    return store


def write_config(tmp: Path, store_root: Path, **overrides) -> Path:
    """A config with ipc endpoints inside `tmp`; `overrides` replace top-level or session keys."""
    ipc = tmp / "ipc"
    ipc.mkdir(exist_ok=True)
    session = {"mode": "backtest", "start_date": "2025-07-02", "end_date": "2025-07-07",
               "symbols": ["AAPL", "MSFT"], "streams": ["1m", "5m", "15m"], "clock": "max"}
    session.update(overrides.pop("session", {}))
    cfg = {
        "session": session,
        "historical": [{"trailing_days": 2, "intervals": ["1m"], "apply_to": "all"}],
        "stages": ["processor", "quality", "analysis"],
        "flow": {"window": 4, "ack_timeout_s": 10, "heartbeat_s": 0.2},
        "endpoints": {name: f"ipc://{ipc}/{name}" for name in
                      ("coordinator_pub", "coordinator_router", "coordinator_pull", "processor_pub", "quality_pub")},
        "data_root": str(store_root),
        "results_dir": str(tmp / "results"),
        "dump_replica": True,
    }
    cfg.update(overrides)
    path = tmp / "config.json"
    path.write_text(json.dumps(cfg, indent=1))
    return path


class Pipeline:
    """The four processes started as subprocesses on one config; logs go to files in tmp."""

    def __init__(self, tmp: Path, config: Path, extra_analysis: list[list[str]] = (), env: dict | None = None,
                 prefix: str = ""):
        self.tmp, self.config, self.env, self.prefix = tmp, config, env, prefix
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        stages = json.loads(Path(config).read_text()).get("stages", [])
        for name, module in STAGE_MODULES.items():
            self.start(prefix + name, [sys.executable, "-m", module, "--config", str(config)])
        if "broker" in stages:
            self.start(prefix + "broker", [sys.executable, "-m", "services.broker", "--config", str(config)])
        for i, args in enumerate(extra_analysis):
            self.start(f"extra{i}", [sys.executable, "-m", "services.analysis", "--config", str(config)] + args)

    def start(self, name: str, cmd: list[str]) -> None:
        log = self.tmp / f"{name}.log"
        self.logs[name] = log
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env={**proc_env(), **(self.env or {})},
                                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 120) -> dict[str, int]:
        codes = {}
        try:
            for name, proc in self.procs.items():
                codes[name] = proc.wait(timeout=timeout)
        finally:
            self.kill()
        return codes

    def kill(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def log(self, name: str) -> str:
        return self.logs[name].read_text()

    def all_logs(self) -> str:
        return "\n".join(f"--- {n}\n{self.log(n)}" for n in self.logs)


def ctl(config: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.ctl", "--config", str(config), *args],
                          cwd=ROOT, env=proc_env(), capture_output=True, text=True, timeout=timeout)
