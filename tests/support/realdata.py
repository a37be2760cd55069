"""The real vendor files, cut to one exchange-local day for fixtures that put them beside generated days.

The AAPL file of 2025-07-02 starts at 20:00 ET on 07-01 (its timestamps are UTC): imported whole into a
store that holds generated AAPL for 07-01 it would mix two sources on that day, which the store refuses.
"""
from __future__ import annotations

from pathlib import Path


def one_day_copy(source: Path, day: str, folder: Path) -> Path:
    """A copy of `source` keeping the header and the rows whose exchange-local date (timestamp_et) is `day`."""
    lines = source.read_text().splitlines()
    column = lines[0].split(",").index("timestamp_et")
    kept = [lines[0]] + [line for line in lines[1:] if line.split(",")[column].startswith(day)]
    path = folder / source.name
    path.write_text("\n".join(kept) + "\n")
    return path
