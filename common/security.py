"""CURVE authentication for TCP endpoints (ZeroMQ's CurveZMQ with a ZAP handler, pyzmq's `zmq.auth`).

ipc:// endpoints live in a folder only the user can open (common/sessions.py): the file system is their
guard. A tcp:// endpoint can be reached by other users and other machines, so every socket on one
encrypts and authenticates: the processes that bind (coordinator, processor, quality) are CURVE servers
that accept only the client public keys in `authorized/`; every process that connects (stages, observers,
ctl) is a CURVE client that knows the server's public key. A peer without an authorized key completes no
handshake and gets nothing: no data, no snapshot, no command reply.

The keys folder (`ctl keys generate` writes it, mode 0700; secret files 0600):

    server.key, server.key_secret    the servers' key pair (the secret stays on the session's machine)
    client.key, client.key_secret    the client key pair every stage, observer and ctl presents
    authorized/<name>.key            public keys the servers accept (client.key is one of them)

Its place: the config's `security.keys_dir`, else $SESSION_KEYS_DIR, else ~/.config/session-engine/keys.
A machine that only runs an analysis process needs server.key and the client pair, not server.key_secret.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

ZAP_DOMAIN = "session-engine"
CLIENT = "client"
SERVER = "server"


class KeysError(ValueError):
    """Keys missing, unreadable or not private; the message names the file and says how to fix it."""


def default_keys_dir() -> Path:
    if os.environ.get("SESSION_KEYS_DIR"):
        return Path(os.environ["SESSION_KEYS_DIR"])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "session-engine" / "keys"


def checked_keys_dir(folder: Path | None) -> Path:
    """`folder` (default: default_keys_dir()) once it holds loadable, private keys; else KeysError."""
    folder = Path(folder) if folder is not None else default_keys_dir()
    CurveKeys.load(folder)
    return folder


def is_tcp(endpoint: str) -> bool:
    return endpoint.startswith("tcp://")


def generate_keys(folder: Path, force: bool = False) -> list[Path]:
    """Write a server and a client key pair and authorize the client; all or nothing (a temp folder
    renamed into place). An existing folder is kept unless `force`: keys already handed out stay valid."""
    folder = Path(folder)
    if folder.exists() and not force:
        raise KeysError(f"{folder} exists already; pass --force to replace its keys "
                        f"(every machine that holds the old client keys must then get the new ones)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".keys-", dir=folder.parent))  # mkdtemp: mode 0700
    try:
        zmq.auth.create_certificates(tmp, SERVER)
        zmq.auth.create_certificates(tmp, CLIENT)
        (tmp / "authorized").mkdir(mode=0o700)
        shutil.copy(tmp / f"{CLIENT}.key", tmp / "authorized" / f"{CLIENT}.key")
        for path in tmp.glob("*.key_secret"):
            path.chmod(0o600)
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(p for p in folder.rglob("*") if p.is_file())


def _private(path: Path, what: str) -> None:
    info = path.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise KeysError(f"{path}: {what} must belong to you and be private (mode 0700 for the folder, 0600 "
                        f"for a secret key); fix with chmod, or run `ctl keys generate --force`")


def _load_pair(folder: Path, name: str, secret: bool) -> tuple[bytes, bytes | None]:
    path = folder / (f"{name}.key_secret" if secret else f"{name}.key")
    if not path.exists():
        raise KeysError(f"{path} is missing: tcp endpoints need CURVE keys; run `ctl keys generate` "
                        f"(or copy the keys folder from the session's machine)")
    if secret:
        _private(path, "a secret key")
    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeysError(f"{path}: not a CURVE key file ({exc})") from None


@dataclass(frozen=True)
class CurveKeys:
    folder: Path
    server_public: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def load(cls, folder: Path) -> "CurveKeys":
        """The keys every process needs (server public, client pair); the server secret is read by
        `server_secret()` only in processes that bind a tcp endpoint."""
        folder = Path(folder)
        if not folder.is_dir():
            raise KeysError(f"{folder} does not exist: tcp endpoints need CURVE keys; run `ctl keys generate`")
        _private(folder, "the keys folder")
        server_public, _ = _load_pair(folder, SERVER, secret=False)
        client_public, client_secret = _load_pair(folder, CLIENT, secret=True)
        return cls(folder, server_public, client_public, client_secret)

    def server_secret(self) -> bytes:
        _, secret = _load_pair(self.folder, SERVER, secret=True)
        return secret

    @property
    def authorized_dir(self) -> Path:
        return self.folder / "authorized"


class SocketSecurity:
    """Applies CURVE to the sockets of one process that sit on tcp endpoints; ipc sockets are left as
    they are. The first server socket starts the process's ZAP authenticator (a thread of pyzmq's)."""

    def __init__(self, ctx: zmq.Context, keys: CurveKeys | None):
        self.ctx = ctx
        self.keys = keys
        self.authenticator = None

    @classmethod
    def for_endpoints(cls, ctx: zmq.Context, endpoints: dict, keys_dir: Path | None) -> "SocketSecurity":
        """Keys loaded from `keys_dir` when any of the process's endpoints is tcp."""
        tcp = any(is_tcp(e) for e in endpoints.values())
        return cls(ctx, CurveKeys.load(keys_dir or default_keys_dir()) if tcp else None)

    def _keys(self, endpoint: str) -> CurveKeys:
        if self.keys is None:
            raise KeysError(f"{endpoint}: a tcp endpoint needs CURVE keys and none were loaded")
        return self.keys

    def server(self, sock: zmq.Socket, endpoint: str) -> zmq.Socket:
        """Make `sock` (about to bind `endpoint`) a CURVE server that accepts authorized clients only."""
        if not is_tcp(endpoint):
            return sock
        keys = self._keys(endpoint)
        if self.authenticator is None:
            from zmq.auth.thread import ThreadAuthenticator

            self.authenticator = ThreadAuthenticator(self.ctx)
            self.authenticator.start()
            self.authenticator.configure_curve(domain=ZAP_DOMAIN, location=str(keys.authorized_dir))
        sock.zap_domain = ZAP_DOMAIN.encode()
        sock.curve_secretkey = keys.server_secret()
        sock.curve_publickey = keys.server_public
        sock.curve_server = True
        return sock

    def client(self, sock: zmq.Socket, endpoint: str) -> zmq.Socket:
        """Make `sock` (about to connect to `endpoint`) a CURVE client of the session's servers."""
        if not is_tcp(endpoint):
            return sock
        keys = self._keys(endpoint)
        sock.curve_serverkey = keys.server_public
        sock.curve_publickey = keys.client_public
        sock.curve_secretkey = keys.client_secret
        return sock

    def close(self) -> None:
        if self.authenticator is not None:
            self.authenticator.stop()
            self.authenticator = None
