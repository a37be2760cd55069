"""ctl's progress bar: drawn on a terminal, silent in pipes and logs."""
from __future__ import annotations

import io

from services.ctl.progressbar import bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_not_a_terminal():
    stream = io.StringIO()
    with bar(5, "working", stream=stream) as advance:
        for _ in range(5):
            advance()
    assert stream.getvalue() == ""


def test_drawn_on_a_terminal():
    stream = Terminal()
    with bar(5, "working", stream=stream) as advance:
        for _ in range(5):
            advance()
    assert "working" in stream.getvalue() and "5/5" in stream.getvalue()
