"""`make run` (services.demo): the sample set goes only into the sample store; a bad data root is an error."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT, proc_env


def _demo(tmp_path, data_root) -> subprocess.CompletedProcess:
    cfg = json.loads((ROOT / "configs" / "default.json").read_text())
    cfg["data_root"] = str(data_root)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    env = {**proc_env(), "SESSION_CONFIG": str(path)}
    return subprocess.run([sys.executable, "-m", "services.demo"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60)


def test_a_missing_data_root_is_an_error_naming_it_and_nothing_is_generated(tmp_path):
    typo = tmp_path / "data" / "rael"
    result = _demo(tmp_path, typo)
    assert result.returncode == 2
    assert f"error: data root {typo} (from {tmp_path / 'config.json'}) does not exist" in result.stderr
    assert "generating" not in result.stdout and not typo.exists()


def test_a_corrupt_store_is_one_line_not_a_traceback(tmp_path, sample_store):
    import shutil

    root = tmp_path / "store"
    shutil.copytree(sample_store.root, root)
    victim = next(root.rglob("*.parquet"))
    victim.write_bytes(b"not parquet")
    result = _demo(tmp_path, root)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{victim}: unreadable Parquet file" in result.stderr
