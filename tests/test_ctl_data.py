"""`ctl data …` and `ctl calendar …` through click's CliRunner."""
import json

import pytest
from click.testing import CliRunner

from services.ctl.data import calendar_group, data_group


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("store")
    result = CliRunner().invoke(data_group, ["--data-root", str(path), "generate", "--symbols", "AAPL,msft",
                                             "--start", "2025-06-30", "--end", "2025-07-08", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("generated ") and result.stdout.count("\n") == 1   # no progress bar
    return path


def data(root, *args, **kwargs):
    return CliRunner().invoke(data_group, ["--data-root", str(root), *args], **kwargs)


def assert_one_line_error(result, *fragments):
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)          # a clean exit, not an escaped exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("Error: ")
    for fragment in fragments:
        assert fragment in lines[-1]


def test_ls_json(root):
    result = data(root, "ls", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [r["symbol"] for r in rows] == ["AAPL", "MSFT"]
    assert rows[0]["first_date"] == "2025-06-30" and rows[0]["last_date"] == "2025-07-08"
    assert rows[0]["days"] == 6 and rows[0]["bars"] > 6 * 380


def test_ls_text_and_data_root_from_environment(root):
    result = CliRunner().invoke(data_group, ["ls"], env={"SESSION_DATA_ROOT": str(root)})
    assert result.exit_code == 0
    assert result.stdout.splitlines()[1].split()[:4] == ["AAPL", "2025-06-30", "2025-07-08", "6"]


def test_check_json(root):
    result = data(root, "check", "AAPL", "--start", "2025-07-02", "--end", "2025-07-05", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    days = {d["day"]: d for d in report["days"]}
    assert list(days) == ["2025-07-02", "2025-07-03"]
    assert days["2025-07-03"]["expected"] == 210 and days["2025-07-02"]["expected"] == 390
    for d in days.values():
        assert d["duplicates"] == 0
        assert d["present"] + sum(g["count"] for g in d["gaps"]) == d["expected"]
        assert d["parts"]["pre"] > 0 and d["parts"]["post"] > 0


def test_check_text_shows_gaps_in_exchange_time(root):
    result = data(root, "check", "AAPL")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 7 and lines[-1].startswith("AAPL: 6 session(s)")
    assert lines[3].startswith("2025-07-03  regular ") and "/210 early-close" in lines[3]
    assert all(" gaps " in line for line in lines[:6] if "390/390" not in line and "210/210" not in line)


def test_unknown_symbol_and_bad_date_are_one_line_errors(root):
    assert_one_line_error(data(root, "check", "ZZZZ"), "unknown symbol ZZZZ")
    assert_one_line_error(data(root, "check", "AAPL", "--start", "2025-02-30"), "--start", "2025-02-30")
    assert_one_line_error(data(root, "generate", "--symbols", "AAPL", "--start", "x", "--end", "2025-07-01"))
    assert_one_line_error(data(root, "frobnicate"), "No such command")


def test_corrupt_parquet_is_reported_with_its_path(tmp_path):
    data(tmp_path, "generate", "--symbols", "AAPL", "--start", "2025-07-02", "--end", "2025-07-02")
    path = tmp_path / "1m" / "AAPL" / "2025" / "2025-07-02.parquet"
    path.write_bytes(b"garbage")
    assert_one_line_error(data(tmp_path, "check", "AAPL"), str(path))
    data(tmp_path, "generate", "--symbols", "MSFT", "--start", "2025-07-02", "--end", "2025-07-02")
    listed = data(tmp_path, "ls")  # one corrupt file does not make the listing fail
    assert listed.exit_code == 0 and f"{path}: unreadable Parquet file" in listed.output
    assert "AAPL" in listed.output and "CORRUPT: 1 file(s)" in listed.output and "MSFT" in listed.output


CSV_HEADER = "timestamp,open,high,low,close,volume"
CSV_ROWS = ["2025-07-02 13:30:00+00:00,10.0,10.5,9.5,10.2,100", "2025-07-02 13:31:00+00:00,10.2,10.4,10.1,10.3,200"]


def test_import_good_file_then_again(tmp_path):
    path = tmp_path / "XYZ_2025-07-02.csv"
    path.write_text("\n".join([CSV_HEADER, *CSV_ROWS]) + "\n")
    first = data(tmp_path / "store", "import", str(path))
    again = data(tmp_path / "store", "import", str(path), "--json")
    assert first.exit_code == 0 and "XYZ 2 bars on 1 day(s) (added 2, replaced 0)" in first.stdout
    assert "regular 2" in first.stdout
    assert again.exit_code == 0 and json.loads(again.stdout)[0]["replaced"] == 2


def test_import_bad_file_exits_non_zero_and_lists_the_line(tmp_path):
    path = tmp_path / "XYZ_bad.csv"
    path.write_text("\n".join([CSV_HEADER, *CSV_ROWS, "2025-07-02 13:32:00+00:00,10,9,9,10,1"]) + "\n")
    result = data(tmp_path / "store", "import", str(path))
    assert_one_line_error(result, "rejected, 1 bad row(s), nothing written")
    assert f"{path}:4: high 9 < max(open, close) 10" in result.stderr
    assert not (tmp_path / "store").exists()
    skipped = data(tmp_path / "store", "import", str(path), "--skip-bad")
    assert skipped.exit_code == 0 and "skipped 1 bad row(s)" in skipped.stdout
    assert f"{path}:4:" in skipped.stderr


def test_import_missing_file(tmp_path):
    assert_one_line_error(data(tmp_path, "import", str(tmp_path / "AAPL_none.csv")), "no such file")


def test_calendar_day_early_close_json():
    result = CliRunner().invoke(calendar_group, ["day", "2025-07-03", "--json"])
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert (info["session"], info["close_et"], info["early_close"], info["minutes"]) == (True, "13:00", True, 210)
    assert info["open_utc"] == "2025-07-03T13:30:00Z" and info["close_utc"] == "2025-07-03T17:00:00Z"


def test_calendar_day_holiday_is_information_not_an_error():
    result = CliRunner().invoke(calendar_group, ["day", "2025-07-04"])
    assert result.exit_code == 0
    assert "2025-07-04 (Friday) is not a trading session (holiday)" in result.stdout
    assert "next 2025-07-07" in result.stdout


def test_calendar_sessions():
    result = CliRunner().invoke(calendar_group, ["sessions", "2025-06-30", "2025-07-08", "--json"])
    rows = json.loads(result.stdout)
    assert [r["date"] for r in rows] == ["2025-06-30", "2025-07-01", "2025-07-02", "2025-07-03",
                                         "2025-07-07", "2025-07-08"]
    assert [r["date"] for r in rows if r["early_close"]] == ["2025-07-03"]
    text = CliRunner().invoke(calendar_group, ["sessions", "2025-06-30", "2025-07-08"]).stdout
    assert "2025-07-03  Thu  09:30  13:00  13:30  17:00  210  early close" in text


def test_calendar_bad_input_is_one_line():
    assert_one_line_error(CliRunner().invoke(calendar_group, ["day", "July 4th"]), "not a date")
    assert_one_line_error(CliRunner().invoke(calendar_group, ["day", "1990-01-02"]), "outside")
    assert_one_line_error(CliRunner().invoke(calendar_group, ["sessions", "2025-07-08", "2025-07-01"]), "before")


@pytest.mark.parametrize("args", [["data", "--help"], ["data", "generate", "--help"], ["data", "import", "--help"],
                                  ["data", "ls", "--help"], ["data", "check", "--help"],
                                  ["calendar", "sessions", "--help"], ["calendar", "day", "--help"]])
def test_every_command_has_help(args):
    group = data_group if args[0] == "data" else calendar_group
    result = CliRunner().invoke(group, args[1:])
    assert result.exit_code == 0 and "Usage:" in result.stdout


def test_check_counts_no_spill_over_day_and_reports_jumps(tmp_path):
    """A UTC-dated file puts the previous evening's bars on their own exchange day: not a 0/390 session."""
    import datetime as dt

    import numpy as np

    from common.data.store import BarStore
    from common.domain.bars import Bars
    from common.domain.timeconv import NS_PER_MIN, exchange_ns

    store = BarStore(tmp_path)
    evening = exchange_ns(dt.date(2025, 7, 1), "20:00") + np.arange(10, dtype=np.int64) * NS_PER_MIN
    session = exchange_ns(dt.date(2025, 7, 2), "09:30") + np.arange(390, dtype=np.int64) * NS_PER_MIN
    ts = np.concatenate([evening, session])
    close = np.full(len(ts), 100.0)
    close[10 + 120:] = 130.0  # a 30 % jump at 11:30
    store.write_bars("AAPL", Bars(ts, close, close, close, close, np.ones(len(ts))), source="a.csv")
    result = data(tmp_path, "check", "AAPL")
    assert result.exit_code == 0, result.output
    assert "2025-07-01  extended hours only (pre 0, post 10)" in result.output
    assert "AAPL: 1 session(s), regular 390/390 (100.00%), 0 gap(s)" in result.output
    assert "jumps >10% 1: 11:30 100->130 (+30.0%)" in result.output
