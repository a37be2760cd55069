"""Vendor CSV import: the three real files, validation with line numbers, idempotence, pandas oracle."""
import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.domain.calendar import TradingCalendar
from services.ctl.csvimport import CsvImportError, import_csv, parse_csv, symbol_from_filename
from common.data.store import BarStore
from common.domain.timeconv import exchange_ns

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
AAPL = REAL / "AAPL_2025-07-02_1m_extended.csv"
RIVN = REAL / "RIVN_2025-07-02_1m_extended.csv"
SPX = REAL / "SPX_2019-11-05_to_08_1m.csv"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")
D = dt.date


@pytest.fixture(scope="module")
def cal():
    return TradingCalendar()


def write_csv(folder: Path, name: str, lines: list[str]) -> Path:
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def store_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


HEADER = "timestamp,open,high,low,close,volume"
GOOD = [
    "2025-07-02 13:30:00+00:00,10.0,10.5,9.5,10.2,100",
    "2025-07-02 13:31:00+00:00,10.2,10.4,10.1,10.3,200",
    "2025-07-02 13:32:00+00:00,10.3,10.3,10.0,10.1,0",
]


# ---- real files --------------------------------------------------------------------------------------
@needs_real
def test_aapl_has_349_regular_bars_on_2025_07_02(tmp_path, cal):
    store = BarStore(tmp_path)
    report = import_csv(store, AAPL, calendar=cal)
    assert report.symbol == "AAPL" and report.bars == 862 and not report.errors
    assert (report.parts.pre, report.parts.regular, report.parts.post) == (50, 349, 463)
    regular, dropped = store.read_session("AAPL", "2025-07-02", *cal.open_close_ns("2025-07-02"))
    assert len(regular) == 349
    assert dropped == 50 + 240
    assert store.days("AAPL") == [D(2025, 7, 1), D(2025, 7, 2)]   # 20:00-23:59 ET of 1 July


@needs_real
def test_rivn_imports_cleanly(tmp_path, cal):
    report = import_csv(BarStore(tmp_path), RIVN, calendar=cal)
    assert report.symbol == "RIVN" and report.bars == 617 and report.duplicates == 0
    assert report.parts.regular + report.parts.extended == 617


@needs_real
def test_spx_1600_bar_is_post_market_on_three_days(tmp_path, cal):
    store = BarStore(tmp_path)
    report = import_csv(store, SPX, calendar=cal)
    assert report.days == 4
    assert (report.parts.pre, report.parts.regular, report.parts.post) == (0, 4 * 390, 3)
    dropped_per_day = []
    for day in cal.sessions("2019-11-05", "2019-11-08"):
        regular, dropped = store.read_session("SPX", day, *cal.open_close_ns(day))
        assert len(regular) == 390
        dropped_per_day.append(dropped)
    assert dropped_per_day == [1, 1, 1, 0]
    last = store.read_day("SPX", "2019-11-05").ts[-1]
    assert last == exchange_ns(D(2019, 11, 5), "16:00")        # naive 16:00 read as New York time


@needs_real
def test_reimport_changes_nothing(tmp_path, cal):
    store = BarStore(tmp_path)
    first = import_csv(store, AAPL, calendar=cal)
    before = store_files(tmp_path)
    again = import_csv(store, AAPL, calendar=cal)
    assert (first.added, first.replaced) == (862, 0)
    assert (again.added, again.replaced) == (0, 862)
    assert store_files(tmp_path) == before


def doctored_copy(tmp_path: Path, line_no: int, new_line: str) -> Path:
    lines = AAPL.read_text().splitlines()
    lines[line_no - 1] = new_line
    return write_csv(tmp_path, AAPL.name, lines)


def bad_high_line() -> str:
    """Line 10 of the AAPL file with its high pushed below the open."""
    cells = AAPL.read_text().splitlines()[9].split(",")
    cells[8] = str(float(cells[7]) - 1.0)          # high = open - 1
    return ",".join(cells)


@needs_real
def test_doctored_row_rejects_the_file_naming_its_line(tmp_path, cal):
    path = doctored_copy(tmp_path, 10, bad_high_line())
    store = BarStore(tmp_path / "store")
    with pytest.raises(CsvImportError) as info:
        import_csv(store, path, calendar=cal)
    assert f"{path}:10: high" in str(info.value)
    assert [(e.line, e.problem.split()[0]) for e in info.value.errors] == [(10, "high")]
    assert not (tmp_path / "store").exists() or store_files(tmp_path / "store") == {}


@needs_real
def test_skip_bad_writes_the_other_rows(tmp_path, cal):
    path = doctored_copy(tmp_path, 10, bad_high_line())
    store = BarStore(tmp_path / "store")
    report = import_csv(store, path, skip_bad=True, calendar=cal)
    assert report.bars == 861
    assert [e.line for e in report.errors] == [10]
    assert len(store.read_range("AAPL", "2025-07-01", "2025-07-02")) == 861


def pandas_oracle(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, float_precision="round_trip")
    frame.columns = [c.lower() for c in frame.columns]
    if "timestamp" in frame:
        ts = pd.to_datetime(frame["timestamp"], utc=True)
    else:
        ts = pd.to_datetime(frame["date"], format="%m/%d/%Y %H:%M").dt.tz_localize("America/New_York")
    frame["ts"] = ts.dt.tz_convert("UTC").dt.tz_localize(None).astype("datetime64[ns]").astype("int64")
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


@needs_real
@pytest.mark.parametrize("path", [AAPL, RIVN, SPX], ids=lambda p: p.name[:4])
def test_parsed_values_match_pandas(path):
    parsed = parse_csv(path)
    expected = pandas_oracle(path)
    assert not parsed.errors
    assert np.array_equal(parsed.bars.ts, expected["ts"].to_numpy())
    for field in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(parsed.bars, field), expected[field].to_numpy(dtype=np.float64)), field


# ---- validation on small synthetic files ------------------------------------------------------------
def test_each_bad_row_is_reported_with_its_line(tmp_path):
    lines = [HEADER, *GOOD,
             "2025-07-02 13:33:00+00:00,10.1,x,10.0,10.1,5",       # line 5: unparsable
             "2025-07-02 13:34:00+00:00,0,10.3,10.0,10.1,5",        # line 6: non-positive price
             "2025-07-02 13:35:00+00:00,10.1,10.3,10.0,10.1,-5",    # line 7: negative volume
             "2025-07-02 13:36:00+00:00,10.1,10.3,10.2,10.1,5",     # line 8: low > min(open, close)
             "not a time,10.1,10.3,10.0,10.1,5",                    # line 9: bad timestamp
             "2025-07-02 13:37:00+00:00,10.1,10.3"]                 # line 10: short row
    parsed = parse_csv(write_csv(tmp_path, "T_bad.csv", lines))
    problems = {e.line: e.problem for e in parsed.errors}
    assert sorted(problems) == [5, 6, 7, 8, 9, 10]
    assert "unparsable high 'x'" in problems[5]
    assert "non-positive price" in problems[6]
    assert "negative volume" in problems[7]
    assert problems[8].startswith("low 10.2 > min(open, close) 10.1")
    assert "unparsable timestamp" in problems[9]
    assert "fields" in problems[10]
    assert str(parsed.errors[0]) == f"{tmp_path / 'T_bad.csv'}:5: {problems[5]}"
    assert len(parsed.bars) == 3


def test_unsorted_rows_are_sorted_and_exact_duplicates_kept_once(tmp_path):
    lines = [HEADER, GOOD[2], GOOD[0], GOOD[1], GOOD[0]]
    parsed = parse_csv(write_csv(tmp_path, "T.csv", lines))
    assert not parsed.errors and parsed.duplicates == 1 and not parsed.was_sorted
    assert np.all(np.diff(parsed.bars.ts) > 0) and len(parsed.bars) == 3
    assert parsed.bars.close.tolist() == [10.2, 10.3, 10.1]


def test_same_timestamp_with_different_values_is_an_error_on_both_lines(tmp_path):
    conflicting = GOOD[1].replace(",200", ",201")
    parsed = parse_csv(write_csv(tmp_path, "T.csv", [HEADER, *GOOD, conflicting]))
    assert [e.line for e in parsed.errors] == [3, 5]
    assert all("different values on lines 3, 5" in e.problem for e in parsed.errors)
    assert len(parsed.bars) == 2                              # neither version is trusted


def test_blank_lines_keep_physical_line_numbers(tmp_path):
    lines = [HEADER, GOOD[0], "", GOOD[1], "2025-07-02 13:40:00+00:00,1,1,1,1,-1"]
    parsed = parse_csv(write_csv(tmp_path, "T.csv", lines))
    assert [e.line for e in parsed.errors] == [5]


def test_import_rejects_without_writing_and_skip_bad_writes(tmp_path, cal):
    path = write_csv(tmp_path, "T.csv", [HEADER, *GOOD, "2025-07-02 13:40:00+00:00,1,1,1,1,-1"])
    store = BarStore(tmp_path / "store")
    with pytest.raises(CsvImportError, match=r"T.csv: rejected, 1 bad row.*T.csv:5: negative volume"):
        import_csv(store, path, calendar=cal)
    assert store.symbols() == []
    report = import_csv(store, path, skip_bad=True, calendar=cal)
    assert report.bars == 3 and len(report.errors) == 1
    assert len(store.read_day("T", "2025-07-02")) == 3


def test_columns_by_name_any_case_aliases_and_order(tmp_path):
    lines = ["Volume,C,L,H,O,DateTime", "100,10.2,9.5,10.5,10.0,2025-07-02T13:30:00Z"]
    parsed = parse_csv(write_csv(tmp_path, "T.csv", lines))
    assert not parsed.errors
    assert parsed.bars.ts.tolist() == [exchange_ns(D(2025, 7, 2), "09:30")]
    assert (parsed.bars.open[0], parsed.bars.high[0], parsed.bars.low[0], parsed.bars.close[0]) == (
        10.0, 10.5, 9.5, 10.2)


def test_separate_date_and_time_columns_and_tz_argument(tmp_path):
    lines = ["Date,Time,Open,High,Low,Close,Volume", "2025-07-02,09:30,10,11,9,10,5"]
    path = write_csv(tmp_path, "T.csv", lines)
    assert parse_csv(path).bars.ts.tolist() == [exchange_ns(D(2025, 7, 2), "09:30")]
    chicago = parse_csv(path, tz="America/Chicago").bars.ts.tolist()
    assert chicago == [exchange_ns(D(2025, 7, 2), "10:30")]
    with pytest.raises(CsvImportError, match="unknown time zone"):
        parse_csv(path, tz="Mars/Olympus")


def test_us_style_naive_times_follow_dst(tmp_path):
    lines = ["Date,Open,Close,High,Low,Volume", "3/7/2025 9:30,1,1,1,1,0", "3/10/2025 9:30,1,1,1,1,0",
             "3/9/2025 2:30,1,1,1,1,0"]
    parsed = parse_csv(write_csv(tmp_path, "T.csv", lines))
    assert parsed.bars.ts.tolist() == [exchange_ns(D(2025, 3, 7), "09:30"), exchange_ns(D(2025, 3, 10), "09:30")]
    assert [e.line for e in parsed.errors] == [4] and "does not exist" in parsed.errors[0].problem


def test_missing_column_and_missing_file_are_file_errors(tmp_path):
    path = write_csv(tmp_path, "T.csv", ["timestamp,open,high,low,close", GOOD[0]])
    with pytest.raises(CsvImportError, match=r"T.csv:1: no column for volume"):
        parse_csv(path)
    with pytest.raises(CsvImportError, match="no such file"):
        parse_csv(tmp_path / "NOPE.csv")


def test_symbol_inference():
    assert symbol_from_filename("/x/AAPL_2025-07-02_1m_extended.csv") == "AAPL"
    assert symbol_from_filename("BRK.B_2025.csv") == "BRK.B"
    assert symbol_from_filename("SPX.csv") == "SPX"
    assert symbol_from_filename("bars_2025.csv") is None
    assert symbol_from_filename("AAPL-2025-07-02.csv") is None


def test_symbol_must_be_given_when_not_in_the_file_name(tmp_path):
    path = write_csv(tmp_path, "bars.csv", [HEADER, *GOOD])
    with pytest.raises(CsvImportError, match="cannot infer the symbol"):
        parse_csv(path)
    assert parse_csv(path, symbol="msft").symbol == "MSFT"
    with pytest.raises(CsvImportError, match="not a ticker"):
        parse_csv(path, symbol="../etc")


# ---- implausible values and mixed sources ------------------------------------------------------------
@pytest.mark.parametrize("row, problem", [
    ("2025-07-02 13:33:00+00:00,1e308,1e308,1e308,1e308,5", "price 1e+308 above 10,000,000 (implausible)"),
    ("2025-07-02 13:33:00+00:00,10,10,10,10,1e300", "volume 1e+300 above 1,000,000,000,000 (implausible)"),
    ("1700-07-02 13:33:00+00:00,10,10,10,10,5", "outside the trading calendar's range"),
    ("2025-07-02 13:33:00+00:00,inf,inf,10,10,5", "unparsable open 'inf'"),
])
def test_implausible_rows_are_rejected_with_their_line(tmp_path, cal, row, problem):
    path = write_csv(tmp_path, "X.csv", [HEADER] + GOOD + [row])
    store = BarStore(tmp_path / "store")
    with pytest.raises(CsvImportError) as info:
        import_csv(store, path, calendar=cal)
    assert [(e.line, problem in e.problem) for e in info.value.errors] == [(5, True)]
    assert not (tmp_path / "store").exists()


@needs_real
def test_real_file_over_generated_day_is_refused_then_replaces_whole_days(tmp_path, cal):
    from common.data.generate import generate

    store = BarStore(tmp_path)
    generate(store, cal, ["AAPL"], "2025-07-01", "2025-07-02", seed=7)
    before = store_files(tmp_path)
    with pytest.raises(CsvImportError, match=r"2025-07-01 holds bars from generated \(seed 7\); 2025-07-02 holds "
                                             r"bars from generated \(seed 7\); this write is AAPL_2025-07-02_1m_extended"
                                             r".csv \(sha256 [0-9a-f]{12}\)"):
        import_csv(store, AAPL, calendar=cal)
    assert store_files(tmp_path) == before
    import_csv(store, AAPL, calendar=cal, replace=True)
    regular, _ = store.read_session("AAPL", "2025-07-02", *cal.open_close_ns("2025-07-02"))
    assert len(regular) == 349  # the file's bars only: no generated bar fills its gaps
    assert store.source("AAPL", "2025-07-02").startswith("AAPL_2025-07-02_1m_extended.csv (sha256 ")
    again = import_csv(store, AAPL, calendar=cal)  # the same file again: same source, nothing changes
    assert (again.added, again.replaced) == (0, 862)
