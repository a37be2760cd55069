"""Private per-session endpoints: `ipc://` sockets in a folder only the user can open, named by the session.

A config without endpoints gets `<runtime dir>/<session name>/<endpoint>` for each of them, where the
runtime dir is $SESSION_RUNTIME_DIR, else $XDG_RUNTIME_DIR/session-engine, else /tmp/session-engine-<uid>,
created with mode 0700 (and refused when another user owns it or others may enter it). The session name
is the config's `name` (else its file name), so two sessions on one machine never collide; a coordinator on
these private sockets holds `coordinator.lock` in the folder while it runs, so a second session under the
same name is refused instead of stealing the sockets, and `ctl` finds the running sessions by their locks
(a config that names all its endpoints is the user's own arrangement: no lock).
"""
from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

ENDPOINT_NAMES = ("coordinator_pub", "coordinator_router", "coordinator_pull", "processor_pub", "quality_pub")
LOCK = "coordinator.lock"


class SessionError(RuntimeError):
    """A session folder that is not private, or a session name already in use."""


def runtime_root() -> Path:
    if os.environ.get("SESSION_RUNTIME_DIR"):
        return Path(os.environ["SESSION_RUNTIME_DIR"])
    if os.environ.get("XDG_RUNTIME_DIR"):
        return Path(os.environ["XDG_RUNTIME_DIR"]) / "session-engine"
    return Path(f"/tmp/session-engine-{os.getuid()}")


def private_dir(path: Path) -> Path:
    """`path` (and its parent runtime root) as folders only this user can open."""
    for folder in (path.parent, path):
        folder.mkdir(mode=0o700, exist_ok=True)
        info = folder.stat()
        if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
            raise SessionError(f"{folder} must belong to you with mode 0700 (it holds a session's sockets)")
    return path


def session_dir(name: str) -> Path:
    return private_dir(runtime_root() / name)


def ipc_endpoints(name: str) -> dict[str, str]:
    folder = session_dir(name)
    return {key: f"ipc://{folder / key}" for key in ENDPOINT_NAMES}


class SessionLock:
    """Held by the coordinator while it runs: one session per name."""

    def __init__(self, name: str):
        self.name = name
        self.path = session_dir(name) / LOCK
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise SessionError(f"a session named {self.name!r} is running already (coordinator pid {holder}); "
                               f"give this config another \"name\"") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def running_sessions() -> list[str]:
    """Names of the sessions whose coordinator holds its lock now."""
    root = runtime_root()
    if not root.is_dir():
        return []
    out = []
    for lock in sorted(root.glob(f"*/{LOCK}")):
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            out.append(lock.parent.name)
        finally:
            os.close(fd)
    return out
