"""Progress signals from long computations, so that no timeout has to guess how long a universe takes.

A process installs how it shows it is alive (the coordinator: a HEARTBEAT; a stage: a HEARTBEAT on its
PUB and an `alive` ACK marked busy); loops that can run for seconds on a whole market (reading 5,000
files, a HISTORY of every symbol, writing results) call `tick()`, which beats at most once per interval.
Peers then see a busy process, not a silent one: the coordinator does not flag it stalled nor lose it,
consumers wait for its answer, stages do not give the coordinator up. Only the main thread beats (the
sockets belong to it); a tick from another thread does nothing.
"""
from __future__ import annotations

import threading
import time
from typing import Callable

_beat: Callable[[], None] | None = None
_every_s = 0.5
_last = 0.0


def install(beat: Callable[[], None] | None, every_s: float) -> None:
    """`beat()` is called by `tick()` at most every `every_s` seconds (None: ticks do nothing)."""
    global _beat, _every_s, _last
    _beat, _every_s, _last = beat, every_s, time.monotonic()


def tick() -> None:
    """Called often from long loops: beats when the interval has passed since the last beat."""
    global _last
    if _beat is None or threading.current_thread() is not threading.main_thread():
        return
    now = time.monotonic()
    if now - _last >= _every_s:
        _last = now
        _beat()
