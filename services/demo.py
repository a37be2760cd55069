"""`make run`: create the sample data set if the store is empty, show it, then `honcho start`.

The sample set is AAPL, MSFT and RIVN, 2025-06-02..2025-07-08 (generated, deterministic), which covers
configs/default.json plus its trailing history.
"""
import os
import shutil
import sys
from pathlib import Path

from common.config import ConfigError, load_config
from common.data.generate import generate
from common.data.store import BarStore, StoreError
from common.domain.calendar import TradingCalendar

SAMPLE_SYMBOLS = ["AAPL", "MSFT", "RIVN"]
SAMPLE_RANGE = ("2025-06-02", "2025-07-08")


SAMPLE_STORE = Path("data/store")  # the only folder the sample set is ever generated into


def main() -> int:
    config_path = os.environ.get("SESSION_CONFIG", "configs/default.json")
    try:
        config = load_config(config_path)
        store = _sample_or_configured_store(config)
        for symbol in store.symbols():
            s = store.summary(symbol)
            if s["corrupt"]:
                raise StoreError("; ".join(s["corrupt"]))
            print(f"store: {symbol:<6} {s['first_date']}..{s['last_date']}  {s['days']:>3} days  {s['bars']:>7} bars")
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    honcho = shutil.which("honcho")
    if honcho is None:
        print("error: honcho is not on PATH (run `make run`, which uses the project's venv)", file=sys.stderr)
        return 2
    sys.stdout.flush()
    os.execv(honcho, [honcho, "start"])


def _sample_or_configured_store(config) -> BarStore:
    """The default sample store is filled on first use; any other data root must exist and hold data
    (a typo in data_root must not silently run on synthetic bars)."""
    store = BarStore(config.data_root)
    if store.symbols():
        return store
    if Path(config.data_root).resolve() != SAMPLE_STORE.resolve():
        state = "is empty" if Path(config.data_root).is_dir() else "does not exist"
        raise StoreError(f"data root {config.data_root} (from {config.path}) {state}: fill it with `ctl data import` "
                         f"or `ctl data generate`, or use the sample store {SAMPLE_STORE}")
    print(f"sample store {SAMPLE_STORE} is empty: generating the sample data set "
          f"({', '.join(SAMPLE_SYMBOLS)} {SAMPLE_RANGE[0]}..{SAMPLE_RANGE[1]})")
    generate(store, TradingCalendar(config.calendar), SAMPLE_SYMBOLS, *SAMPLE_RANGE)
    return store


if __name__ == "__main__":
    sys.exit(main())
