"""A session run by the real processes, as `honcho start` runs them, on private ipc endpoints.

Each run gets its own folder (0700, removed afterwards) holding the config file, the ipc sockets (the
endpoints reach the processes through SESSION_ENDPOINT_*, so the recorded config is the caller's) and
the processes' logs. The processes import the caller's modules through PYTHONPATH (its sys.path);
strategies given as classes or instances reach the analysis process by value (cloudpickle, in that
folder), so a strategy written in a notebook runs in the processes as it does inline.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import cloudpickle

from common.config import DEFAULT_ENDPOINTS, SessionConfig
from services.analysis.strategies import OBJECTS_ENV

STOP_GRACE_S = 10.0   # after the coordinator exits, the stages have this long to exit on their own
LOG_TAIL_LINES = 12


def _endpoint_env(folder: Path) -> dict[str, str]:
    return {f"SESSION_ENDPOINT_{key.upper()}": f"ipc://{folder}/{key}.sock" for key in DEFAULT_ENDPOINTS}


def _python_path() -> str:
    """The caller's import path, so a strategy module next to a notebook imports in the processes too."""
    paths = [os.path.abspath(p or os.getcwd()) for p in sys.path]
    return os.pathsep.join(dict.fromkeys(p for p in paths if os.path.isdir(p)))


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ProcessRun:
    """Starts the coordinator and the config's stages, waits for the run to end, and says how it ended."""

    def __init__(self, config: SessionConfig, run_id: str, log_level: str = "WARNING"):
        self.config = config
        self.run_id = run_id
        self.log_level = log_level
        self.folder = Path(tempfile.mkdtemp(prefix="session-engine-"))
        self.procs: dict[str, subprocess.Popen] = {}

    def _command(self, name: str, config_file: Path) -> list[str]:
        command = [sys.executable, "-m", f"services.{name}", "--config", str(config_file),
                   "--log-level", self.log_level]
        return command + (["--run-id", self.run_id] if name == "coordinator" else [])

    def start(self) -> None:
        config_file = self.folder / "config.json"
        config_file.write_text(json.dumps(self.config.raw, indent=1))
        env = {**os.environ, **_endpoint_env(self.folder), "PYTHONPATH": _python_path(), "PYTHONUNBUFFERED": "1"}
        env.pop("SESSION_CONFIG", None)
        objects = {e.name: e.target for e in self.config.strategies if not isinstance(e.target, str)}
        if objects:  # classes and instances go by value (cloudpickle: a notebook's class too)
            path = self.folder / "strategies.pkl"
            path.write_bytes(cloudpickle.dumps(objects))
            env[OBJECTS_ENV] = str(path)
        for name in ("coordinator",) + tuple(self.config.stages):
            with open(self.folder / f"{name}.log", "wb") as out:
                self.procs[name] = subprocess.Popen(self._command(name, config_file), stdout=out,
                                                    stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())

    def wait(self, timeout_s: float | None = None) -> int:
        """The coordinator's exit code (the run's status); the stages are stopped if they linger."""
        coordinator = self.procs["coordinator"]
        try:
            coordinator.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.stop()
            raise TimeoutError(f"the run did not end within {timeout_s:g} s (its processes were stopped)") from None
        self._reap()
        return coordinator.returncode

    def stop(self) -> None:
        """SIGTERM to every process (each flushes and exits), then SIGKILL to what still runs."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        self._reap()

    def _reap(self) -> None:
        """Wait for every process to exit, STOP_GRACE_S at most each; kill what is still running then."""
        for proc in self.procs.values():
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def failures(self) -> str:
        """What the processes that exited non-zero logged last (for the error a failed run raises)."""
        parts = []
        for name, proc in self.procs.items():
            if proc.returncode not in (0, None):
                parts.append(f"--- {name} (exit {proc.returncode}):\n{log_tail(self.folder / f'{name}.log')}")
        return "\n".join(parts)

    def cleanup(self) -> None:
        for path in self.folder.iterdir():
            path.unlink()
        self.folder.rmdir()
