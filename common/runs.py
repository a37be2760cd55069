"""Run records: every run gets its own folder `results/<run id>/` with a `manifest.json`, and
`results/latest` points at the newest.

The coordinator picks the run id (UTC start time and config name) and announces it in SESSION_START;
every analysis process writes its results into `<run folder>/<stage name>/`. The manifest says what ran
(the config as run and its hash, the code version, a fingerprint of every symbol-day file read), how it
ended (status, exit reason, start and end) and how fast (the performance report). It is written when
the run starts (status `running`: a run that dies without a word is visibly unfinished) and again when
it ends. Same config + same data + same code -> the same fingerprints and byte-identical result files.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
from enum import Enum
from pathlib import Path

MANIFEST = "manifest.json"
LATEST = "latest"
_RUN_ID = re.compile(r"^\d{8}-\d{6}-[A-Za-z0-9_.-]{1,64}(-\d+)?$")


class RunStatus(str, Enum):
    """How a run ended; its process exit code says the same (EXIT_CODES)."""

    RUNNING = "running"        # written at start; still there after the end means the run died
    COMPLETED = "completed"    # every session ran to its close
    STOPPED = "stopped"        # an operator (ctl stop, a signal) or a strategy stopped it early
    ABORTED = "aborted"        # an error ended it (bad data, a lost stage, ...)


EXIT_CODES = {RunStatus.COMPLETED: 0, RunStatus.ABORTED: 1, RunStatus.STOPPED: 3}


def exit_code_for(reason: str) -> int:
    """Exit code of every process for a BACKTEST_END reason: 0 only for a completed run."""
    return EXIT_CODES.get(status_for(reason), 1)


def status_for(reason: str) -> RunStatus:
    if reason == "completed":
        return RunStatus.COMPLETED
    if reason == "stopped":
        return RunStatus.STOPPED
    return RunStatus.ABORTED


def config_name(raw: dict, path: str) -> str:
    """The config's `name`, else its file name without extension, reduced to safe characters."""
    name = raw.get("name") if isinstance(raw.get("name"), str) else Path(path).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:64] or "run"


def new_run_id(results_dir: Path, name: str, now: dt.datetime | None = None) -> str:
    """'20261126-114502-default', with '-2', '-3'... when that folder exists already."""
    now = now or dt.datetime.now(dt.timezone.utc)
    base = f"{now:%Y%m%d-%H%M%S}-{name}"
    run_id, n = base, 1
    while (Path(results_dir) / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def is_run_id(text: str) -> bool:
    """A name from a message or the command line that may be used as a folder under results/."""
    return isinstance(text, str) and bool(_RUN_ID.match(text))


def run_dir(results_dir: Path, run_id: str) -> Path:
    if not is_run_id(run_id):
        raise ValueError(f"{run_id!r} is not a run id")
    return Path(results_dir) / run_id


def config_hash(raw: dict) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def data_fingerprint(files: dict[str, str]) -> str:
    """One hash over every symbol-day file's hash (sorted by name)."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}={files[name]}\n".encode())
    return "sha256:" + h.hexdigest()


def code_version(root: Path | None = None) -> str:
    """The package version and, in a git checkout, the commit (+'-dirty' with local changes)."""
    from importlib import metadata

    try:
        version = metadata.version("session-engine")
    except metadata.PackageNotFoundError:
        version = "unknown"
    root = root or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+{commit}{'-dirty' if dirty else ''}" if commit else version


def write_manifest(folder: Path, manifest: dict) -> None:
    """Atomic: a temp file beside it, then rename."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MANIFEST}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, folder / MANIFEST)


def point_latest(results_dir: Path, run_id: str) -> None:
    """results/latest -> <run id> (a relative symlink, replaced atomically)."""
    link = Path(results_dir) / LATEST
    tmp = Path(results_dir) / f".{LATEST}.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(run_id, tmp)
    os.replace(tmp, link)


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def list_runs(results_dir: Path) -> list[dict]:
    """Every run folder under results_dir with its manifest, oldest first."""
    root = Path(results_dir)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink() and is_run_id(p.name)):
        manifest = read_manifest(folder)
        if manifest is not None:
            out.append({"run_id": folder.name, "folder": str(folder), **manifest})
    return out
