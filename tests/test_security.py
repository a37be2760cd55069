"""CURVE on tcp endpoints, with real processes on loopback: a session whose sockets are tcp runs with the
keys `ctl keys generate` wrote, and a peer without an authorized key gets nothing (no data, no snapshot,
no command applied), while the run ends as an undisturbed one over ipc."""
from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import zmq
from conftest import ROOT, Pipeline, ctl, proc_env, write_config
from support.identity import results_hashes
from test_pipeline import _wait_for_status
from zmq.utils.monitor import recv_monitor_message

from common.security import CurveKeys, generate_keys
from common.wire import protocol as P

HANDSHAKE_EVENTS = {zmq.EVENT_HANDSHAKE_SUCCEEDED: "succeeded", zmq.EVENT_HANDSHAKE_FAILED_AUTH: "refused",
                    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "refused", zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "refused"}
SESSION = {"end_date": "2025-07-02", "clock": {"speed": 2000}}


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _tcp_config(tmp: Path, store_root: Path, keys: Path) -> Path:
    path = write_config(tmp, store_root, session=SESSION)
    cfg = json.loads(path.read_text())
    names = ("coordinator_pub", "coordinator_router", "processor_pub", "quality_pub")
    cfg["endpoints"] = {n: f"tcp://127.0.0.1:{p}" for n, p in zip(names, _free_ports(len(names)))}
    cfg["security"] = {"keys_dir": str(keys)}
    path.write_text(json.dumps(cfg, indent=1))
    return path


def _handshake(sock: zmq.Socket, endpoint: str, limit_s: float = 20.0) -> str:
    """Connect `sock` and return how its handshake ended, from the socket's own monitor events."""
    monitor = sock.get_monitor_socket(zmq.EVENT_ALL)
    sock.connect(endpoint)
    deadline = time.monotonic() + limit_s
    try:
        while time.monotonic() < deadline:
            if monitor.poll(200):
                event = recv_monitor_message(monitor)["event"]
                if event in HANDSHAKE_EVENTS:
                    return HANDSHAKE_EVENTS[event]
        return "no handshake"
    finally:
        sock.disable_monitor()
        monitor.close(0)


def _stranger(ctx: zmq.Context, kind: int, server_keys: CurveKeys | None, own: CurveKeys | None) -> zmq.Socket:
    """A socket of a peer who knows the server's public key (it is no secret) but holds an unauthorized
    client key pair; or a plain one without CURVE when `own` is None."""
    sock = ctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if own is not None:
        sock.curve_serverkey = server_keys.server_public
        sock.curve_publickey, sock.curve_secretkey = own.client_public, own.client_secret
    if kind == zmq.SUB:
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    return sock


def test_keys_generate_writes_private_keys_and_keeps_existing_ones(tmp_path):
    folder = tmp_path / "keys"
    env = {**proc_env(), "SESSION_KEYS_DIR": str(folder)}
    first = subprocess.run([sys.executable, "-m", "services.ctl", "keys", "generate"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=30)
    assert first.returncode == 0, first.stderr
    assert {"server.key", "server.key_secret", "client.key", "client.key_secret", "authorized/client.key"} <= \
        {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.glob("*.key_secret"))
    keys = CurveKeys.load(folder)
    again = subprocess.run([sys.executable, "-m", "services.ctl", "keys", "generate"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=30)
    assert again.returncode != 0 and "exists already; pass --force" in again.stderr
    assert CurveKeys.load(folder) == keys  # handed-out keys stay valid
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".keys-")] == []  # no half-written folder


def test_a_tcp_session_serves_key_holders_only(tmp_path, sample_store):
    keys_dir, stranger_dir = tmp_path / "keys", tmp_path / "stranger"
    generate_keys(keys_dir)
    generate_keys(stranger_dir)
    keys, stranger = CurveKeys.load(keys_dir), CurveKeys.load(stranger_dir)
    config = _tcp_config(tmp_path, sample_store.root, keys_dir)
    endpoints = json.loads(config.read_text())["endpoints"]
    ctx = zmq.Context()
    pipe = Pipeline(tmp_path, config)
    outcomes = {}
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] > 5)  # ctl holds the keys
        for who, own in (("plain", None), ("stranger", stranger)):
            dealer = _stranger(ctx, zmq.DEALER, keys, own)
            outcomes[f"{who} commands"] = _handshake(dealer, endpoints["coordinator_router"])
            for msg in (P.Message(P.COMMAND, {"name": "stop", "args": {}, "request_id": "x1"}),
                        P.Message(P.HELLO, {"stage": "evil", "role": "participant", "pid": 1})):
                try:
                    dealer.send_multipart(P.encode(msg), zmq.NOBLOCK)
                except zmq.Again:  # no handshake, so no peer to queue for: the attempt goes nowhere
                    pass
            for source in ("coordinator_pub", "processor_pub"):
                sub = _stranger(ctx, zmq.SUB, keys, own)
                outcomes[f"{who} {source}"] = _handshake(sub, endpoints[source])
                assert sub.poll(0) == 0, f"{who} received data from {source}"
                sub.close(0)
            assert dealer.poll(0) == 0, f"{who} got a reply"
            dealer.close(0)
        status = _wait_for_status(config, lambda s: True)
        codes = pipe.wait(timeout=120)
    finally:
        pipe.kill()
        ctx.destroy(linger=0)
    assert set(outcomes.values()) == {"refused"}, outcomes
    assert "evil" not in status["stages"]
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()
    manifest = json.loads((tmp_path / "results" / "latest" / "manifest.json").read_text())
    assert manifest["status"] == "completed", manifest
    calm_dir = tmp_path / "ipc-run"
    calm_dir.mkdir()
    calm = Pipeline(calm_dir, write_config(calm_dir, sample_store.root, session=SESSION))
    assert set(calm.wait(timeout=120).values()) == {0}, calm.all_logs()
    names = ["analysis"]
    assert results_hashes(tmp_path / "results" / "latest", names) == \
        results_hashes(calm_dir / "results" / "latest", names) != {}


def test_ctl_without_the_keys_is_told_how_to_get_them(tmp_path):
    env = {**proc_env(), "SESSION_KEYS_DIR": str(tmp_path / "none")}
    result = subprocess.run([sys.executable, "-m", "services.ctl", "--endpoint", "tcp://127.0.0.1:9", "status"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "tcp://127.0.0.1:9" in result.stderr and "run `ctl keys generate`" in result.stderr

