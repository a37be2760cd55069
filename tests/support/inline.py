"""The whole session in one process for tests of what strategies see: session_engine's InlineSession (the
coordinator's engine and every stage's handler, the real codec on every message, lockstep acks), with
the analysis handler handed back so a test can read its replica, strategies and contexts."""
from __future__ import annotations

import logging

from common.config import parse_config
from common.wire import protocol as P
from services.analysis.handler import AnalysisHandler
from session_engine import inline
from session_engine.inline import InlineSession

STAGES = ("processor", "quality", "analysis")


class Wire(inline.Wire):
    """session_engine's stand-in for the PUB socket (every message kept, decoded back from its frames), with
    its publisher at hand."""

    def __init__(self):
        super().__init__()
        self.publisher = P.Publisher(self, "coordinator")

    def types(self) -> list[str]:
        return [m.type for m in self.messages]


def run_inline(config: dict, store, calendar, results_dir, log: logging.Logger | None = None) -> AnalysisHandler:
    """Run the whole backtest on `store`; returns the analysis handler (its replica, signals, contexts)."""
    cfg = parse_config({"stages": list(STAGES), **config, "results_dir": str(results_dir),
                        "data_root": str(store.root)})
    session = InlineSession(cfg, "20250101-000000-inline", log=log or logging.getLogger("inline"))
    session.run()
    return session.stages["analysis"].handler
