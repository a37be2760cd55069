"""Behaviour fingerprint: three real-process runs and a content hash of every result file they write.

The three runs are the ones a refactor must not change: the demo config (configs/default.json on the
generated sample set, with its 12:06 add of RIVN), an add of AAPL at 12:06 on the real AAPL file, and
a session with an observer attached mid-session. Each result file is hashed by its decoded content
(column names, types and values), so the fingerprint does not depend on the pyarrow version that wrote
the file. tests/golden/identity.json holds the fingerprint taken before the code was reshaped;
tests/test_identity.py checks that today's code gives the same.

    python tests/support/identity.py            # print the fingerprint
    python tests/support/identity.py --save     # write tests/golden/identity.json
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "identity.json"
REAL = ROOT.parent / "shared" / "data" / "real"
DAY = "2025-07-02"


def table_hash(path: Path) -> str:
    """sha256 of a Parquet file's schema (names, types) and values, floats by their exact repr."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    h = hashlib.sha256()
    for field, column in zip(table.schema, table.columns):
        h.update(f"{field.name}:{field.type}".encode())
        h.update(json.dumps(column.to_pylist(), default=repr).encode())
    return h.hexdigest()


def results_hashes(results: Path, names: list[str]) -> dict[str, str]:
    out = {}
    for name in names:
        for path in sorted((results / name).glob("*.parquet")):
            out[f"{name}/{path.name}"] = table_hash(path)
    return out


def _config(tmp: Path, base: dict, store_root: Path) -> Path:
    ipc = tmp / "ipc"
    ipc.mkdir(exist_ok=True)
    cfg = dict(base)
    cfg["endpoints"] = {n: f"ipc://{ipc}/{n}" for n in ("coordinator_pub", "coordinator_router",
                                                        "coordinator_pull", "processor_pub", "quality_pub")}
    cfg["data_root"], cfg["results_dir"] = str(store_root), str(tmp / "results")
    path = tmp / "config.json"
    path.write_text(json.dumps(cfg, indent=1))
    return path


def _check(pipe, codes) -> None:
    if any(codes.values()) or "LOSS" in pipe.all_logs():
        raise RuntimeError(f"run failed: {codes}\n{pipe.all_logs()[-4000:]}")


def demo_run(tmp: Path, flow: dict | None = None) -> dict[str, str]:
    """configs/default.json on the sample set `make run` generates (AAPL, MSFT, RIVN); `flow` overrides."""
    from conftest import Pipeline

    from common.data.generate import generate
    from common.data.store import BarStore
    from common.domain.calendar import TradingCalendar

    store = BarStore(tmp / "store")
    generate(store, TradingCalendar(), ["AAPL", "MSFT", "RIVN"], "2025-06-02", "2025-07-08")
    base = json.loads((ROOT / "configs" / "default.json").read_text())
    base["dump_replica"] = True
    base["flow"].update(flow or {})
    pipe = Pipeline(tmp, _config(tmp, base, store.root))
    _check(pipe, pipe.wait(timeout=180))
    return results_hashes(tmp / "results" / "latest", ["analysis"])


def real_add_run(tmp: Path) -> dict[str, str]:
    """MSFT configured, the real AAPL file of 2025-07-02 added at 12:06; default indicators/strategies."""
    from conftest import Pipeline

    from common.data.generate import generate
    from common.data.store import BarStore
    from common.domain.calendar import TradingCalendar
    from services.ctl.csvimport import import_csv

    store = BarStore(tmp / "store")
    calendar = TradingCalendar()
    generate(store, calendar, ["AAPL", "MSFT"], "2025-06-23", "2025-07-01", seed=3)
    generate(store, calendar, ["MSFT"], DAY, DAY, seed=3)
    from support.realdata import one_day_copy
    import_csv(store, one_day_copy(REAL / "AAPL_2025-07-02_1m_extended.csv", DAY, tmp), symbol="AAPL")
    base = json.loads((ROOT / "configs" / "default.json").read_text())
    base["session"].update(start_date=DAY, end_date=DAY, symbols=["MSFT"])
    base["historical"] = [{"trailing_days": 3, "intervals": ["1m", "5m", "1d"], "apply_to": "all"}]
    base["schedule"] = [{"date": DAY, "at": "12:06", "command": "add-symbol", "symbols": ["AAPL"]}]
    base["dump_replica"] = True
    pipe = Pipeline(tmp, _config(tmp, base, store.root))
    _check(pipe, pipe.wait(timeout=180))
    return results_hashes(tmp / "results" / "latest", ["analysis"])


def observer_run(tmp: Path) -> dict[str, str]:
    """Three sessions at 6000x; an observer with the example strategies attaches after 60 steps. Its
    replica dumps must equal the analysis process's (its signals depend on when it joined: not hashed)."""
    import subprocess

    from conftest import Pipeline, ctl

    from common.data.generate import generate
    from common.data.store import BarStore
    from common.domain.calendar import TradingCalendar

    store = BarStore(tmp / "store")
    generate(store, TradingCalendar(), ["AAPL", "MSFT", "RIVN"], "2025-06-23", "2025-07-08", seed=7)
    base = json.loads((ROOT / "configs" / "default.json").read_text())
    base["session"].update(start_date=DAY, clock={"speed": 6000})
    base["schedule"] = [{"date": DAY, "at": "10:00", "command": "add-symbol", "symbols": ["RIVN"]}]
    base["historical"] = [{"trailing_days": 2, "intervals": ["1m"], "apply_to": "all"}]
    base["flow"] = {"window": 4, "ack_timeout_s": 10, "heartbeat_s": 0.2}
    base["dump_replica"] = True
    config = _config(tmp, base, store.root)
    pipe = Pipeline(tmp, config)
    try:
        for _ in range(400):
            res = ctl(config, "status", "--json")
            if res.returncode == 0 and json.loads(res.stdout)["session_step"] >= 60:
                break
        ctl(config, "pause")  # the observer joins mid-session however loaded the machine is
        pipe.start("late", [sys.executable, "-m", "services.analysis", "--config", str(config), "--name", "late",
                            "--observer"])
        for _ in range(400):
            res = ctl(config, "status", "--json")
            if res.returncode == 0 and "late" in json.loads(res.stdout)["stages"]:
                break
        ctl(config, "resume")
        ctl(config, "speed", "max")
        codes = pipe.wait(timeout=180)
    except subprocess.TimeoutExpired:
        pipe.kill()
        raise
    _check(pipe, codes)
    if "snapshot applied" not in pipe.log("late"):
        raise RuntimeError("the observer did not join through a snapshot:\n" + pipe.log("late"))
    hashes = results_hashes(tmp / "results" / "latest", ["analysis"])
    late = {k.replace("late/", "analysis/"): v for k, v in results_hashes(tmp / "results" / "latest", ["late"]).items()
            if "/replica_" in k}
    if any(hashes[k] != v for k, v in late.items()) or not late:
        raise RuntimeError(f"observer replica differs from the analysis replica: {late} vs {hashes}")
    return hashes


SCENARIOS = {"demo": demo_run, "real_add_1206": real_add_run, "late_observer": observer_run}


def fingerprint(only: list[str] | None = None) -> dict[str, dict[str, str]]:
    out = {}
    for name, run in SCENARIOS.items():
        if only and name not in only:
            continue
        with tempfile.TemporaryDirectory(prefix=f"identity-{name}-") as tmp:
            out[name] = run(Path(tmp))
    return out


def main(argv: list[str]) -> int:
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    result = fingerprint()
    text = json.dumps(result, indent=1, sort_keys=True)
    if "--save" in argv:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text + "\n")
        print(f"written {GOLDEN}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
