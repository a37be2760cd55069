"""The coordinator's side of a run record (common/runs.py): the run folder, `latest`, the manifest."""
from __future__ import annotations

import datetime as dt
import logging

from common import runs
from common.runs import RunStatus

log = logging.getLogger("coordinator")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


class RunRecord:
    """Creates results/<run id>/ and keeps its manifest.json: written at the start (status running) and
    at the end (status, reason, performance, data fingerprint)."""

    def __init__(self, config, run_id: str | None = None):
        self.config = config
        name = runs.config_name(config.raw, config.path)
        self.run_id = run_id or runs.new_run_id(config.results_dir, name)
        self.folder = runs.run_dir(config.results_dir, self.run_id)
        self.manifest = {
            "run_id": self.run_id, "config_name": name, "config_path": str(config.path),
            "config": config.raw, "config_hash": runs.config_hash(config.raw), "code_version": runs.code_version(),
            "start_date": config.start_date.isoformat(), "end_date": config.end_date.isoformat(),
            "symbols": list(config.symbols), "started_at": _now(), "ended_at": None,
            "status": RunStatus.RUNNING.value, "exit_reason": None, "exit_code": None,
        }

    def start(self) -> None:
        runs.write_manifest(self.folder, self.manifest)
        runs.point_latest(self.config.results_dir, self.run_id)
        log.info("run %s: results in %s", self.run_id, self.folder)

    def finish(self, engine, reads: dict[str, str]) -> int:
        """Final manifest; returns the run's exit code."""
        from services.coordinator import report

        reason, detail = engine.end_reason or "aborted", engine.end_detail
        status = runs.status_for(reason)
        self.manifest.update(
            ended_at=_now(), status=status.value, exit_reason=detail or reason, exit_code=runs.exit_code_for(reason),
            sessions_run=engine.sessions_ended, sessions_started=engine.day_index + 1,
            sessions_planned=len(engine.sessions),
            performance=report.performance_report(engine), data_files=dict(sorted(reads.items())),
            data_fingerprint=runs.data_fingerprint(reads),
            stages={s.name: {"role": s.role, "flushed": s.flushed} for s in engine.stages},
            dynamic=sorted(engine.dynamic),
            # what the sessions computed: the config's indicators plus those the strategies declared
            session_indicators=engine.config.session_indicators(engine.stages.declared_indicators()),
            dynamic_added={s: {"date": d.added_date, "clock_ns": d.added_clock, "caught_up": d.caught_up,
                               "status": d.status} for s, d in sorted(engine.dynamic.items())},
        )
        runs.write_manifest(self.folder, self.manifest)
        line = f"run {self.run_id} {status.value}" + (f": {detail}" if detail else "")
        (log.info if status is RunStatus.COMPLETED else log.error)("%s (manifest %s)", line, self.folder / runs.MANIFEST)
        return self.manifest["exit_code"]
