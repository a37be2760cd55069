"""Parameter sweeps on Dask: a 12-combination grid on a LocalCluster gives the table of 12 separate inline
runs; a failing combination is reported in its row and the others complete; `ctl sweep` end to end; the
example notebook runs top to bottom."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import session_engine as se
from conftest import ROOT, proc_env

DAY = "2025-07-01"
GRID = {"strategies.sma_market.params.fast": [3, 5, 8], "strategies.sma_market.params.slow": [12, 20, 30, 40]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return se.sample_store(tmp_path_factory.mktemp("sweep-store"))


def _config(store, results) -> dict:
    """configs/trading.json on one day, one symbol, without the scheduled add, history and indicators (the
    strategy keeps its own averages): a small run."""
    config = json.loads((ROOT / "configs" / "trading.json").read_text())
    config["session"].update(start_date=DAY, end_date=DAY, symbols=["AAPL"])
    config.update(data_root=str(store), results_dir=str(results), schedule=[], historical=[], indicators=[])
    config["strategies"] = config["strategies"][:1]
    return config


def test_a_sweep_of_12_equals_12_separate_inline_runs(tmp_path, store):
    config = _config(store, tmp_path / "sweep")
    seen = []
    table = se.sweep(config, GRID, workers=2, progress=lambda done, total, row: seen.append((done, total)))
    assert len(table) == 12 and set(table["status"]) == {"completed"} and table["error"].isna().all()
    assert seen == [(k, 12) for k in range(1, 13)]
    separate = []
    for combo in se.expand_grid(GRID):
        run = se.run(_config(store, tmp_path / "single"), **combo)
        separate.append({**combo, **run.metrics.drop(columns="account").iloc[0].to_dict()})
    expected = pd.DataFrame(separate)
    pd.testing.assert_frame_equal(table[list(expected.columns)], expected)
    assert table["trades"].sum() > 0 and table["total_return"].nunique() > 1  # the parameters made a difference
    written = pd.read_parquet(f"{table.attrs['folder']}/sweep.parquet")
    pd.testing.assert_frame_equal(written, table)
    for run_id in table["run_id"]:  # each combination's run folder, inside the sweep's
        assert se.Run(f"{table.attrs['folder']}/{run_id}").completed


def test_a_grid_is_checked_before_anything_runs():
    assert se.expand_grid({"a": [1, 2], "b": ["x"]}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    with pytest.raises(ValueError, match="non-empty list"):
        se.expand_grid({"a": []})
    with pytest.raises(ValueError, match="1,000,000 combinations, more than 100,000"):
        se.expand_grid({"a": list(range(1000)), "b": list(range(1000))})


def test_a_failed_combination_is_reported_and_the_others_complete(tmp_path, store):
    grid = {"strategies.sma_market.class": ["strategies.trading:SmaCrossTrader", "strategies.trading:Missing"],
            "strategies.sma_market.params.fast": [3]}
    table = se.sweep(_config(store, tmp_path), grid, workers=1)
    assert list(table["status"]) == ["completed", "error"]
    assert "strategies.trading:Missing" in table["error"][1] and "cannot load" in table["error"][1]
    assert table["final_equity"][0] > 0


def test_the_example_notebook_runs_top_to_bottom(tmp_path, store, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("SESSION_EXAMPLE_DATA", str(store))
    monkeypatch.setenv("SESSION_EXAMPLE_RESULTS", str(tmp_path / "results"))
    notebook = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "examples")}}).execute()
    outputs = "\n".join(o.get("text", "") + json.dumps(o.get("data", {}))
                        for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", []))
    assert "completed" in outputs and "total_return" in outputs and "sma(20)" in outputs
    assert "files identical to the inline run: True" in outputs
    assert not any(o.get("output_type") == "error" for cell in notebook.cells for o in cell.get("outputs", []))


def test_ctl_sweep_on_an_existing_cluster_named_by_scheduler(tmp_path, store):
    """A Dask scheduler and a worker started apart (as on other machines), on loopback: `ctl sweep
    --scheduler` sends the combinations there, shows its progress, prints and writes the table, which is
    the same as on the private LocalCluster; a bad grid path is refused before anything runs."""
    import socket

    from dask.distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen(dask + ["--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              env=proc_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                                       "--no-dashboard"], env=proc_env(), cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        config = tmp_path / "config.json"
        config.write_text(json.dumps(_config(store, tmp_path / "results")))
        out = tmp_path / "table.csv"
        res = subprocess.run([sys.executable, "-m", "services.ctl", "sweep", str(config), "--scheduler", address,
                              "--grid", "strategies.sma_market.params.fast=3,8",
                              "--grid", "strategies.sma_market.params.slow=[12, 20]", "--out", str(out)],
                             capture_output=True, text=True, env=proc_env(), timeout=300)
        as_json = subprocess.run([sys.executable, "-m", "services.ctl", "sweep", str(config), "--scheduler", address,
                                  "--grid", "strategies.sma_market.params.fast=3,8", "--json"],
                                 capture_output=True, text=True, env=proc_env(), timeout=300)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
    assert res.returncode == 0, res.stderr
    assert "sweep: 4 combination(s)" in res.stderr and "sweep: 4/4 done (0 failed)" in res.stderr and "ETA" in res.stderr
    assert "total_return" in res.stdout and res.stdout.count("completed") == 4
    table = pd.read_csv(out)
    assert list(table["strategies.sma_market.params.slow"]) == [12, 20, 12, 20]
    rows = json.loads(as_json.stdout)
    local = se.sweep(_config(store, tmp_path / "local"), {"strategies.sma_market.params.fast": [3, 8]}, workers=1)
    assert [r["final_equity"] for r in rows] == list(local["final_equity"])
    assert [r["final_equity"] for r in rows] == list(table["final_equity"][1::2])  # slow 20: the config's
    bad = subprocess.run([sys.executable, "-m", "services.ctl", "sweep", str(config), "--grid",
                          "strategies.nope.params.fast=3"], capture_output=True, text=True, env=proc_env(), timeout=60)
    assert bad.returncode == 1 and "no entry 'nope' (entries: sma_market)" in bad.stderr


def test_the_private_cluster_is_tls_on_loopback_and_refuses_a_plain_client():
    from dask.distributed import Client

    from session_engine.sweep import ClusterClient

    with ClusterClient(None, None, 1, 1) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")  # encrypted, authenticated, loopback only
        with pytest.raises((OSError, TimeoutError)):
            Client(address.replace("tls://", "tcp://"), timeout=3)
