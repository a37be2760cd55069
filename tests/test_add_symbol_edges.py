"""Edge cases of add/remove-symbol with the real processes on generated data."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq

from services.analysis.results import read_replica_dump
from conftest import Pipeline, ctl, write_config
from test_pipeline import _wait_for_status

RECORDER = [{"class": "support.recording:CallbackRecorder", "name": "recorder"}]
MIN = 60_000_000_000


def _regular(store, calendar, symbol, day, until=None):
    open_ns, close_ns = calendar.open_close_ns(day)
    bars, _ = store.read_session(symbol, day, open_ns, close_ns)
    return bars if until is None else bars.between(open_ns, until)


def test_scheduled_edges(tmp_path, sample_store, calendar):
    schedule = [
        {"date": "2025-07-02", "at": "09:30", "command": "add-symbol", "symbols": ["AAPL"]},   # first step
        {"date": "2025-07-02", "at": "16:00", "command": "add-symbol", "symbols": ["RIVN"]},   # last step
        {"date": "2025-07-03", "at": "10:00", "command": "remove-symbol", "symbols": ["AAPL"]},
        {"date": "2025-07-03", "at": "10:30", "command": "add-symbol", "symbols": ["AAPL"]},   # add again
        {"date": "2025-07-03", "at": "11:00", "command": "add-symbol", "symbols": ["ZZZZ"]},   # no data
        {"date": "2025-07-03", "at": "14:00", "command": "remove-symbol", "symbols": ["RIVN"]},  # after 13:00 close
    ]
    config = write_config(tmp_path, sample_store.root, session={"symbols": ["MSFT"]}, strategies=RECORDER,
                          schedule=schedule)
    pipe = Pipeline(tmp_path, config)
    codes = pipe.wait()
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()
    assert "LOSS" not in pipe.all_logs()
    results = tmp_path / "results" / "latest" / "analysis"
    sig = pq.read_table(results / "signals.parquet").to_pydict()
    added = [(s, q, c) for s, q, c, r in zip(sig["symbol"], sig["qty"], sig["clock_ns"], sig["reason"])
             if r == "on_symbol_added"]
    open2, close2 = calendar.open_close_ns("2025-07-02")
    open3, _ = calendar.open_close_ns("2025-07-03")
    assert added == [
        ("AAPL", 0, open2),
        ("RIVN", len(_regular(sample_store, calendar, "RIVN", "2025-07-02")), close2),
        ("AAPL", len(_regular(sample_store, calendar, "AAPL", "2025-07-03", open3 + 60 * MIN)), open3 + 60 * MIN),
    ]
    removed = [(s, c) for s, c, r in zip(sig["symbol"], sig["clock_ns"], sig["reason"]) if r == "on_symbol_removed"]
    open7, _ = calendar.open_close_ns("2025-07-07")
    assert removed == [("AAPL", open3 + 30 * MIN), ("RIVN", open7)]  # after the early close: next session's open
    # no on_bar for AAPL between its removal and its re-add, none for catch-up bars
    for s, r, c in zip(sig["symbol"], sig["reason"], sig["clock_ns"]):
        if s == "AAPL" and r.startswith("on_bar"):
            assert not (open3 + 30 * MIN < c <= open3 + 60 * MIN)
    # every day's replica holds exactly the store's regular bars of the symbols present at the close
    for day, symbols in (("2025-07-02", ["MSFT", "AAPL", "RIVN"]), ("2025-07-03", ["MSFT", "AAPL", "RIVN"]),
                         ("2025-07-07", ["MSFT", "AAPL"])):
        dump = read_replica_dump(results / f"replica_{day}.parquet")
        for symbol in symbols:
            assert np.array_equal(dump[f"{symbol}/1m/ts"], _regular(sample_store, calendar, symbol, day).ts), (day, symbol)
    log = pipe.log("coordinator")
    assert "add ZZZZ refused: ZZZZ: no data in the store for session 2025-07-03" in log
    dump7 = read_replica_dump(results / "replica_2025-07-07.parquet")
    assert not any(k.startswith("RIVN/") for k in dump7)


def test_ctl_add_errors_and_add_during_operator_pause(tmp_path, sample_store, calendar):
    later = [{"date": "2025-07-07", "at": "10:00", "command": "add-symbol", "symbols": ["RIVN"]}]
    config = write_config(tmp_path, sample_store.root, session={"symbols": ["MSFT"], "clock": {"speed": 3000}},
                          strategies=RECORDER, schedule=later)
    pipe = Pipeline(tmp_path, config)
    try:
        _wait_for_status(config, lambda s: s["state"] == "running" and s["session_step"] >= 5)
        assert ctl(config, "pause").returncode == 0
        before = _wait_for_status(config, lambda s: s["operator_paused"])
        for args, message in ((["add-symbol", "aa pl"], "is not a ticker"),
                              (["add-symbol", "ZZZZ"], "no data in the store"),
                              (["add-symbol", "MSFT"], "already in the session"),
                              (["add-symbol", "AAPL", "--at", "09:31"], "is in the past"),
                              (["remove-symbol", "AAPL"], "is not in the session"),
                              (["add-symbol", "AAPL", "--streams", "1m,30m"], "not among the session's streams")):
            res = ctl(config, *args)
            assert res.returncode != 0 and message in res.stderr, (args, res.stderr)
            assert len(res.stderr.strip().splitlines()) == 1
        res = ctl(config, "add-symbol", "AAPL", "RIVN")
        assert res.returncode == 0, res.stderr
        dyn = None
        for _ in range(400):
            listed = json.loads(ctl(config, "list-dynamic", "--json").stdout)
            dyn = [d for d in listed if d["status"] != "queued"]
            if len(dyn) == 2:
                break
        assert [d["symbol"] for d in dyn] == ["AAPL", "RIVN"]
        # RIVN's scheduled add of 07-07 is listed as queued too
        assert [(d["symbol"], d["due"]) for d in listed if d["status"] == "queued"] == [("RIVN", "2025-07-07 10:00")]
        clock = before["clock_ns"]
        for d in dyn:
            expected = len(_regular(sample_store, calendar, d["symbol"], before["session_date"], clock))
            assert d["caught_up"] == expected and d["added_clock"] == clock
        after = json.loads(ctl(config, "status", "--json").stdout)
        assert after["clock_ns"] == clock and after["steps_done"] == before["steps_done"]
        assert after["operator_paused"]
        rows = {r["symbol"]: r for r in json.loads(ctl(config, "session", "--json").stdout)}
        assert rows["AAPL"]["dynamic"] and not rows["MSFT"]["dynamic"]
        assert rows["AAPL"]["bars_1m"] == dyn[0]["caught_up"]
        assert ctl(config, "resume").returncode == 0
        assert ctl(config, "speed", "max").returncode == 0
        codes = pipe.wait(timeout=60)
    finally:
        pipe.kill()
    assert codes == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()


def test_strategy_adds_a_symbol_in_lockstep_reproducibly(tmp_path, sample_store, calendar):
    results = []
    for run in ("a", "b"):
        tmp = tmp_path / run
        tmp.mkdir()
        config = write_config(tmp, sample_store.root, session={"symbols": ["MSFT"], "end_date": "2025-07-02"},
                              strategies=[{"class": "support.recording:Scanner", "name": "scanner"}],
                              flow={"window": 1, "ack_timeout_s": 10, "heartbeat_s": 0.2})
        pipe = Pipeline(tmp, config)
        assert pipe.wait() == {"coordinator": 0, "processor": 0, "quality": 0, "analysis": 0}, pipe.all_logs()
        assert "strategy asked to add-symbol AAPL: queued" in pipe.log("analysis")
        results.append(tmp / "results" / "latest" / "analysis")
    sig = pq.read_table(results[0] / "signals.parquet").to_pydict()
    open_ns, _ = calendar.open_close_ns("2025-07-02")
    t_ns = open_ns + 31 * MIN  # the 10:00 bar is seen at clock 10:01; the add lands at that boundary
    added = [(s, q, c) for s, q, c, r in zip(sig["symbol"], sig["qty"], sig["clock_ns"], sig["reason"])
             if r == "on_symbol_added"]
    assert added == [("AAPL", len(_regular(sample_store, calendar, "AAPL", "2025-07-02", t_ns)), t_ns)]
    for name in ("signals.parquet", "summary.parquet", "replica_2025-07-02.parquet"):
        assert (results[0] / name).read_bytes() == (results[1] / name).read_bytes(), name
