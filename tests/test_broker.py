"""The broker with real processes: orders from a strategy, fills, accounts and result files."""
from __future__ import annotations


import json
import re

import pyarrow.parquet as pq
import pytest

from conftest import Pipeline, ctl, write_config

TRADER = {"class": "strategies.trading:SmaCrossTrader", "name": "sma_trader",
          "params": {"fast": 5, "slow": 20, "qty": 10}}


def trading_config(tmp, store_root, strategies=None, broker=None, **overrides):
    return write_config(tmp, store_root, strategies=strategies or [TRADER],
                        stages=["processor", "quality", "analysis", "broker"],
                        broker=broker or {"starting_cash": 100000, "commission": {"per_share": 0.005}},
                        **overrides)


# a stage starved for 2 s on a loaded machine (other test suites) is not lost in the multi-day restart tests
SLOW_MACHINE = {"lost_after_s": 5.0}


def run_dir(tmp):
    runs = [p for p in (tmp / "results").iterdir() if p.is_dir() and p.name != "latest"]
    assert len(runs) == 1
    return runs[0]


def run(tmp, config):
    pipeline = Pipeline(tmp, config)
    codes = pipeline.wait(timeout=180)
    assert set(codes.values()) == {0}, pipeline.all_logs()
    return run_dir(tmp), pipeline


def kill_and_restart(pipe, config, stage: str, after_step: int, day: int = 1) -> dict:
    """kill -9 of `stage` past `after_step` of session `day`; once the coordinator lists it lost (flow `wait`), start it again
    as `<stage>2` under the same name, let the run finish at full speed; every process's exit code."""
    import signal
    import sys

    from test_pipeline import _wait_for_status

    _wait_for_status(config, lambda s: s["state"] == "running" and s["day"] == day and s["session_step"] > after_step)
    pipe.procs[stage].send_signal(signal.SIGKILL)
    pipe.procs[stage].wait()
    _wait_for_status(config, lambda s: s["lost"])
    pipe.start(f"{stage}2", [sys.executable, "-m", f"services.{stage}", "--config", str(config)])
    _wait_for_status(config, lambda s: not s["lost"] and s["state"] == "running")
    ctl(config, "speed", "max")
    return pipe.wait(timeout=120)


def restarted_on_day_2(tmp_path, store, strategies: list, stage: str):
    """Three sessions at 3000x; kill -9 of `stage` on day 2, restarted under its name: the pipeline (every
    other process exited 0), after checking the restarted one restored the book of day 1."""
    from test_faults import FLOW

    config = trading_config(tmp_path, store.root, strategies=strategies,
                            session={"end_date": "2025-07-07", "clock": {"speed": 3000}},
                            flow={**FLOW, **SLOW_MACHINE, "on_stage_loss": "wait"})
    pipe = Pipeline(tmp_path, config)
    try:
        codes = kill_and_restart(pipe, config, stage, after_step=60, day=2)
    finally:
        pipe.kill()
    del codes[stage]
    assert set(codes.values()) == {0}, pipe.all_logs()
    assert "book of the 1 earlier session(s) restored" in pipe.log(f"{stage}2"), pipe.log(f"{stage}2")
    return pipe


def table(folder, name):
    return pq.read_table(folder / "broker" / f"{name}.parquet").to_pylist()


def test_a_trading_run_writes_orders_fills_equity_and_metrics(tmp_path, sample_store):
    folder, pipeline = run(tmp_path, trading_config(tmp_path, sample_store.root))
    fills, orders, equity = table(folder, "fills"), table(folder, "orders"), table(folder, "equity")
    metrics = table(folder, "metrics")
    assert fills and orders and equity
    assert {m["account"] for m in metrics} == {"analysis/sma_trader"}
    assert "booking difference" in pipeline.log("broker") and "0 booking difference(s)" in pipeline.log("broker")
    # every fill is at a bar's open time, after the order was placed
    placed = {o["order_id"]: o["placed_clock_ns"] for o in orders}
    assert all(f["ts_ns"] >= placed[f["order_id"]] for f in fills)
    assert metrics[0]["final_equity"] == pytest.approx(equity[-1]["equity"])
    assert metrics[0]["commissions"] == pytest.approx(sum(f["commission"] for f in fills))


def test_an_error_in_on_fill_follows_on_error(tmp_path, sample_store):
    raiser = {"class": "support.trading:BuyOnceRaiseOnFill", "name": "raiser"}
    folder, pipeline = run(tmp_path, trading_config(tmp_path, sample_store.root, strategies=[raiser, TRADER]))
    log = pipeline.log("analysis")
    assert "strategy raiser raised in on_fill" in log and "boom on fill of order 1" in log
    assert "strategy disabled" in log
    # the other strategy trades on, the raiser's fill is booked
    fills = table(folder, "fills")
    assert {f["account"] for f in fills} == {"analysis/raiser", "analysis/sma_trader"}


def test_an_error_in_on_fill_with_on_error_stop_stops_the_run(tmp_path, sample_store):
    raiser = {"class": "support.trading:BuyOnceRaiseOnFill", "name": "raiser", "on_error": "stop"}
    pipeline = Pipeline(tmp_path, trading_config(tmp_path, sample_store.root, strategies=[raiser]))
    codes = pipeline.wait(timeout=120)
    assert set(codes.values()) == {3}, pipeline.all_logs()
    assert "stopping the run" in pipeline.log("analysis")


def test_bad_orders_are_refused_with_the_field_named_and_the_run_goes_on(tmp_path, sample_store):
    bad = {"class": "support.trading:BadOrders", "name": "bad"}
    folder, _ = run(tmp_path, trading_config(tmp_path, sample_store.root, strategies=[bad]))
    reasons = [s["reason"] for s in pq.read_table(folder / "analysis" / "signals.parquet").to_pylist()]
    assert "refused: limit: required for a limit order" in reasons
    assert any(r.startswith("order 1 rejected insufficient buying power") for r in reasons)
    assert "order 2 accepted " in reasons and "order 2 filled " in reasons
    orders = table(folder, "orders")
    assert [(o["order_id"], o["status"]) for o in orders] == [(1, "rejected"), (2, "filled")]


def test_a_config_without_the_broker_refuses_orders_by_name(tmp_path, sample_store):
    bad = {"class": "support.trading:BuyOnceRaiseOnFill", "name": "raiser"}
    pipeline = Pipeline(tmp_path, write_config(tmp_path, sample_store.root, strategies=[bad]))
    assert set(pipeline.wait(timeout=120).values()) == {0}
    assert "trading needs the broker: add \"broker\" to the config's stages" in pipeline.log("analysis")


def test_ctl_status_shows_the_accounts(tmp_path, sample_store):
    import time



    pause = [{"date": "2025-07-02", "at": "11:00", "command": "pause"}]
    config = trading_config(tmp_path, sample_store.root, schedule=pause)
    pipeline = Pipeline(tmp_path, config)
    try:
        deadline = time.monotonic() + 60
        status = {}
        while time.monotonic() < deadline:  # polls ctl: the pause comes when the run gets there
            res = ctl(config, "status", "--json")
            status = json.loads(res.stdout) if res.returncode == 0 else {}
            if status.get("operator_paused") and status.get("accounts"):
                break
        assert status.get("accounts"), pipeline.all_logs()
        text = ctl(config, "status").stdout
        assert re.search(r"account +analysis/sma_trader +equity [\d,]+\.\d\d  cash [\d,]+\.\d\d", text), text
        assert "(booked to 2025-07-02 1" in text
        ctl(config, "stop")
        assert set(pipeline.wait(timeout=60).values()) == {3}
    finally:
        pipeline.kill()


def test_volume_cap_partial_fills_and_a_removed_symbol_is_flattened(tmp_path, sample_store):
    trader = {"class": "strategies.trading:EveryBarTrader", "name": "every", "params": {"qty": 300}}
    remove = [{"date": "2025-07-02", "at": "12:00", "command": "remove-symbol", "symbols": ["MSFT"]}]
    config = trading_config(tmp_path, sample_store.root, strategies=[trader], schedule=remove,
                            session={"end_date": "2025-07-02"},
                            broker={"volume_cap": 0.01, "commission": {"per_order": 1.0}})
    folder, _ = run(tmp_path, config)
    fills, orders = table(folder, "fills"), table(folder, "orders")
    per_order = {}
    for f in fills:
        per_order.setdefault((f["account"], f["order_id"]), []).append(f)
    assert any(len(parts) > 1 for parts in per_order.values()), "the cap should split some orders"
    for (account, order_id), parts in per_order.items():
        order = next(o for o in orders if o["order_id"] == order_id)
        assert sum(abs(p["qty"]) for p in parts) == pytest.approx(order["filled"])
        assert [p["commission"] for p in parts][1:] == [0.0] * (len(parts) - 1)  # per order: the first fill
    flatten = [o for o in orders if o["reason"] == "flatten: MSFT was removed from the session"]
    cancelled = [o for o in orders if o["reason"] == "MSFT was removed from the session"]
    assert [o["status"] for o in flatten] == ["filled"] and all(o["status"] == "cancelled" for o in cancelled)
    assert not any(f["symbol"] == "MSFT" and f["clock_ns"] > flatten[0]["updated_clock_ns"] for f in fills)
    positions = table(folder, "positions")
    assert not any(p["symbol"] == "MSFT" for p in positions)


def test_a_restarted_broker_rebuilds_the_session_from_the_journal(tmp_path, sample_store):
    """kill -9 of the broker mid-session, `wait`, restart: it replays the session's journal (bars and
    relayed ORDERS) and its files equal an undisturbed run's, byte for byte."""
    from test_faults import FLOW

    session = {"end_date": "2025-07-02", "clock": {"speed": 3000}}
    flow = {**FLOW, "on_stage_loss": "wait"}
    config = trading_config(tmp_path, sample_store.root, session=session, flow=flow)
    pipe = Pipeline(tmp_path, config)
    try:
        codes = kill_and_restart(pipe, config, "broker", after_step=60)
    finally:
        pipe.kill()
    del codes["broker"]
    assert set(codes.values()) == {0}, pipe.all_logs()
    assert "snapshot applied" in pipe.log("broker2") and "0 booking difference(s)" in pipe.log("broker2")
    calm_dir = tmp_path / "calm"
    calm_dir.mkdir()
    calm, _ = run(calm_dir, trading_config(calm_dir, sample_store.root, session={"end_date": "2025-07-02"},
                                           flow=FLOW))
    for name in ("orders", "fills", "equity", "positions", "trades", "metrics"):
        got = (run_dir(tmp_path) / "broker" / f"{name}.parquet").read_bytes()
        assert got == (calm / "broker" / f"{name}.parquet").read_bytes(), name


def test_what_a_strategy_sees_of_its_fills_is_the_brokers_record(tmp_path, sample_store):
    recorder = {"class": "support.trading:FillRecorder", "name": "rec",
                "params": {"fast": 3, "slow": 8, "qty": 7, "order_type": "limit", "offset": 0.02}}
    config = trading_config(tmp_path, sample_store.root, strategies=[recorder],
                            broker={"commission": {"bps": 2.0, "minimum": 0.5}, "slippage": {"fixed": 0.01}})
    folder, _ = run(tmp_path, config)
    seen = [json.loads(s["extra"]) | {"symbol": s["symbol"], "qty": s["qty"]}
            for s in pq.read_table(folder / "analysis" / "signals.parquet").to_pylist() if s["reason"] == "fill"]
    booked = table(folder, "fills")
    assert len(seen) == len(booked) > 10
    assert [(s["order_id"], s["symbol"], s["qty"], s["price"], s["ts"], s["commission"]) for s in seen] == \
        [(f["order_id"], f["symbol"], abs(f["qty"]), f["price"], f["ts_ns"], f["commission"]) for f in booked]
    equity = table(folder, "equity")
    cash_after = {r["clock_ns"]: r["cash"] for r in equity}
    last_fill_clock = booked[-1]["clock_ns"]
    assert seen[-1]["cash"] == cash_after[last_fill_clock]  # the strategy's cash is the broker's, to the bit


def test_a_restarted_trading_analysis_rebuilds_its_book_from_the_journal(tmp_path, sample_store):
    """kill -9 of the trading analysis mid-session, `wait`, restart under its name: it books its own relayed
    orders again while it replays the journal, so its next order ids, positions and cash are the broker's."""
    from test_faults import FLOW

    trader = {**TRADER, "params": {**TRADER["params"], "replica_closes": True}}
    config = trading_config(tmp_path, sample_store.root, strategies=[trader],
                            session={"end_date": "2025-07-02", "clock": {"speed": 3000}},
                            flow={**FLOW, "on_stage_loss": "wait"})
    pipe = Pipeline(tmp_path, config)
    try:
        codes = kill_and_restart(pipe, config, "analysis", after_step=120)
    finally:
        pipe.kill()
    del codes["analysis"]
    assert set(codes.values()) == {0}, pipe.all_logs()
    rebuilt = re.search(r"book rebuilt from this session's journal: (\d+) order action\(s\), 0 id\(s\) differ",
                        pipe.log("analysis2"))
    assert rebuilt and int(rebuilt.group(1)) > 0, pipe.log("analysis2")
    assert "0 booking difference(s)" in pipe.log("broker") and "differs" not in pipe.log("broker")
    orders = table(run_dir(tmp_path), "orders")
    assert len(orders) > int(rebuilt.group(1))  # it went on trading after the restart


def test_step_batches_book_as_single_steps_with_no_look_ahead(tmp_path, sample_store):
    """Clock max with STEPS batches of up to 8 steps and with one step per message: the broker's files and
    what the strategies saw of their fills are byte-identical; an order placed while the clock was T
    fills on the bar that opens at T (market), never on an earlier one, though its step travelled in a
    batch with the steps after it."""
    strategies = [{"class": "strategies.trading:EveryBarTrader", "name": "every"},
                  {"class": "support.trading:FillRecorder", "name": "rec",
                   "params": {"fast": 3, "slow": 8, "qty": 7, "order_type": "limit", "offset": 0.02}}]
    folders = {}
    for batch in (8, 1):
        tmp = tmp_path / str(batch)
        tmp.mkdir()
        config = trading_config(tmp, sample_store.root, strategies=strategies,
                                session={"end_date": "2025-07-03"}, flow={"window": 16, "batch": batch})
        folders[batch], pipe = run(tmp, config)
        stats = json.loads(re.search(r"performance json: (\{.*\})", pipe.log("coordinator")).group(1))
        assert (stats["step_batches"] > 20) == (batch > 1), stats
        assert "differs" not in pipe.log("broker") and "0 booking difference(s)" in pipe.log("broker")
    for name in ("orders", "fills", "equity", "positions", "trades", "metrics"):
        got = (folders[8] / "broker" / f"{name}.parquet").read_bytes()
        assert got == (folders[1] / "broker" / f"{name}.parquet").read_bytes(), name
    signals = [(folders[b] / "analysis" / "signals.parquet").read_bytes() for b in (8, 1)]
    assert signals[0] == signals[1]
    orders = {(o["account"], o["order_id"]): o for o in table(folders[8], "orders")}
    fills = table(folders[8], "fills")
    assert len([f for f in fills if f["account"] == "analysis/every"]) > 100
    for fill in fills:
        order = orders[(fill["account"], fill["order_id"])]
        assert fill["ts_ns"] >= order["placed_clock_ns"] and fill["clock_ns"] > order["placed_clock_ns"]
    market = [f for f in fills if f["account"] == "analysis/every"]
    at_once = sum(f["ts_ns"] == orders[("analysis/every", f["order_id"])]["placed_clock_ns"] for f in market)
    assert at_once >= 0.9 * len(market)  # the bar that opens at T (minutes without a bar wait)


def test_orders_after_the_last_bar_are_rejected_with_the_reason(tmp_path, sample_store):
    """on_session_end of an earlier session: the order is decided on the next session's first bar. After the
    last session's close (its on_session_end, on_stop) no bar is left: the order is rejected at once with
    the reason (on_order hears it, the analysis log counts it) and never reaches the broker."""
    config = trading_config(tmp_path, sample_store.root, session={"end_date": "2025-07-03"},
                            strategies=[{"class": "support.trading:OrdersAtTheEnd", "name": "end"}])
    folder, pipe = run(tmp_path, config)
    said = [s["reason"] for s in pq.read_table(folder / "analysis" / "signals.parquet").to_pylist()]
    after = "rejected: placed after the backtest's last bar: no bar is left to fill it"
    assert said == ["order 1 accepted: ", "order 1 filled: ", "order 2 accepted: ", "order 2 filled: ",
                    f"order 3 {after}", f"order 4 {after}"]
    orders = table(folder, "orders")
    assert [(o["order_id"], o["status"]) for o in orders] == [(1, "filled"), (2, "filled")]
    fills = table(folder, "fills")
    day2_open = orders[1]["updated_clock_ns"] - 60_000_000_000  # the first bar of 2025-07-03 opens then
    assert fills[1]["order_id"] == 2 and fills[1]["ts_ns"] == day2_open and fills[1]["session_date"] == "2025-07-03"
    assert "2 order(s) placed after the backtest's last bar were rejected" in pipe.log("analysis")


def test_a_broker_restarted_on_a_later_day_writes_the_files_of_an_undisturbed_run(tmp_path, sample_store):
    """kill -9 of the broker on day 2 of 3, restart under its name: the book and records of day 1 come from
    the checkpoint written at its close, the journal brings day 2 (with the orders placed in day 1's
    on_session_end, booked before day 2's first bar), and the files equal an undisturbed run's, byte for byte."""
    from test_faults import FLOW

    traders = [TRADER, {**TRADER, "name": "limits", "params": {"fast": 3, "slow": 8, "qty": 5, "order_type": "limit",
                                                                "offset": 0.05}},
               {"class": "support.trading:OrdersAtTheEnd", "name": "end"}]
    days = {"end_date": "2025-07-07"}
    pipe = restarted_on_day_2(tmp_path, sample_store, traders, "broker")
    assert "0 booking difference(s)" in pipe.log("broker2") and "differs" not in pipe.log("broker2")
    calm_dir = tmp_path / "calm"
    calm_dir.mkdir()
    calm, _ = run(calm_dir, trading_config(calm_dir, sample_store.root, strategies=traders, session=days, flow=FLOW))
    assert len({p["session_date"] for p in table(calm, "positions")}) == 3  # positions held over the closes
    for name in ("orders", "fills", "equity", "positions", "trades", "metrics"):
        got = (run_dir(tmp_path) / "broker" / f"{name}.parquet").read_bytes()
        assert got == (calm / "broker" / f"{name}.parquet").read_bytes(), name


def test_a_trading_analysis_restarted_on_a_later_day_keeps_the_book_of_the_earlier_days(tmp_path, sample_store):
    """kill -9 of the trading analysis on day 2 of 3, restart under its name: its book of day 1 (cash,
    positions, open orders, ids) comes from the checkpoint written at that close, so its orders book
    with the same ids as the broker's and what it sees at every later close is the broker's record.
    (Its strategies start afresh and the steps in flight at the kill replay silently, so its later
    decisions may differ from an undisturbed run's: the broker's record is compared, not a calm run.)"""
    recorder = {"class": "support.trading:FillRecorder", "name": "rec",
                "params": {"fast": 3, "slow": 8, "qty": 7, "order_type": "limit", "offset": 0.02, "buy_at_close": 3}}
    pipe = restarted_on_day_2(tmp_path, sample_store, [recorder], "analysis")
    assert re.search(r"0 id\(s\) differ", pipe.log("analysis2")), pipe.log("analysis2")
    assert "0 booking difference(s)" in pipe.log("broker") and "differs" not in pipe.log("broker")
    folder = run_dir(tmp_path)
    books = [json.loads(s["extra"]) for s in pq.read_table(folder / "analysis" / "signals.parquet").to_pylist()
             if s["reason"] == "book"]
    assert len(books) == 2  # days 2 and 3, by the restarted process (the killed one wrote no files)
    equity, positions = table(folder, "equity"), table(folder, "positions")
    first_close = [r["clock_ns"] for r in equity if r["time"].startswith("2025-07-02")][-1]
    over_close = [o for o in table(folder, "orders") if o["placed_clock_ns"] == first_close and o["qty"] == 3]
    assert over_close and over_close[0]["status"] == "filled"  # open over the first close (in the checkpoint)
    for date, book in zip(("2025-07-03", "2025-07-07"), books):
        close_cash = [r["cash"] for r in equity if r["time"].startswith(date)][-1]
        held = {p["symbol"]: p["qty"] for p in positions if p["session_date"] == date}
        assert book["cash"] == close_cash and {s: q for s, q in book["positions"].items() if q} == held, date
