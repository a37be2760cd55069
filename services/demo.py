"""`make run`: create the sample data set if the store is empty, show it, then `honcho start`.

The sample set is AAPL, MSFT and RIVN, 2025-06-02..2025-07-08 (generated, deterministic), which covers
configs/default.json plus its trailing history.
"""
import os
import shutil
import sys

from common.domain.calendar import TradingCalendar
from common.config import ConfigError, load_config
from common.data.generate import generate
from common.data.store import BarStore

SAMPLE_SYMBOLS = ["AAPL", "MSFT", "RIVN"]
SAMPLE_RANGE = ("2025-06-02", "2025-07-08")


def main() -> int:
    config_path = os.environ.get("SESSION_CONFIG", "configs/default.json")
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = BarStore(config.data_root)
    if not store.symbols():
        print(f"store {config.data_root} is empty: generating the sample data set "
              f"({', '.join(SAMPLE_SYMBOLS)} {SAMPLE_RANGE[0]}..{SAMPLE_RANGE[1]})")
        generate(store, TradingCalendar(config.calendar), SAMPLE_SYMBOLS, *SAMPLE_RANGE)
    for symbol in store.symbols():
        s = store.summary(symbol)
        print(f"store: {symbol:<6} {s['first_date']}..{s['last_date']}  {s['days']:>3} days  {s['bars']:>7} bars")
    honcho = shutil.which("honcho")
    if honcho is None:
        print("error: honcho is not on PATH (run `make run`, which uses the project's venv)", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os.execv(honcho, [honcho, "start"])


if __name__ == "__main__":
    sys.exit(main())
