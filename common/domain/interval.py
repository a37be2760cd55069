"""`Interval`: a bar interval as a value (1m, 5m, any N-minute, 1d), parsed once at the edges.

Everywhere inside the engine an interval is an `Interval`; its `name` ('5m', '1d') is what goes on
the wire, into result files and the strategy API. A daily interval is one bar per trading session, not
a fixed number of minutes: `minutes` is None for it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from common.domain.timeconv import NS_PER_MIN

_PATTERN = re.compile(r"^([1-9][0-9]{0,3})([md])$")


@dataclass(frozen=True, order=True)
class Interval:
    """N minutes (N >= 1), or the session bar when `daily`."""

    minutes_or_zero: int

    @classmethod
    def parse(cls, text: str) -> "Interval":
        """'1m' -> 1 minute, '15m' -> 15 minutes, '1d' -> daily; anything else is a ValueError."""
        match = _PATTERN.match(text) if isinstance(text, str) else None
        if not match:
            raise ValueError(f"{text!r} is not an interval like 1m, 5m, 15m or 1d")
        count, unit = int(match.group(1)), match.group(2)
        if unit == "d":
            if count != 1:
                raise ValueError(f"{text!r}: only 1d is supported for daily bars")
            return DAILY
        return cls(count)

    @property
    def daily(self) -> bool:
        return self.minutes_or_zero == 0

    @property
    def minutes(self) -> int | None:
        return None if self.daily else self.minutes_or_zero

    @property
    def ns(self) -> int:
        """Length in nanoseconds (intraday intervals only)."""
        if self.daily:
            raise ValueError("1d has no fixed length: it is one bar per trading session")
        return self.minutes_or_zero * NS_PER_MIN

    @property
    def name(self) -> str:
        return "1d" if self.daily else f"{self.minutes_or_zero}m"

    def __str__(self) -> str:
        return self.name


DAILY = Interval(0)
BASE = Interval(1)  # the 1m base interval the coordinator streams
