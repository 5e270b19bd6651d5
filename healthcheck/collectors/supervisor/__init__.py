"""supervisord and every program it runs: state, pid, exit status, spawn error, log tail.

gather.py reads (XML-RPC over the configured serverurl, the servers the box's
supervisord.conf declares, `supervisorctl status` as a fallback); judge.py says what it means,
each program's state through the table of known failures in the rules module.
"""

from __future__ import annotations

from typing import ClassVar

from healthcheck.collectors.supervisor import gather, judge
from healthcheck.collectors.supervisor.changes import DRIFT
from healthcheck.collectors.supervisor.gather import (
    Discover,
    api_tail_bytes,
    clean_log_text,
    find_program,
    last_exit_signal,
    last_exit_status,
    main_log_events,
    parse_status,
    program_from_info,
)
from healthcheck.config import Config, SupervisorConfig
from healthcheck.model import RunContext, Section, Status, as_context
from healthcheck.supervisor_client import discover_serverurls
from healthcheck.tracking import DriftSpec


class SupervisorCollector:
    """supervisord's state and version, and every program with the end of its logs."""

    name: ClassVar[str] = "supervisor"
    description: ClassVar[str] = (
        "supervisord and every program: state, pid, start, exit status, spawn error, log tail "
        "(XML-RPC; supervisorctl as fallback)"
    )
    timeout: ClassVar[float | None] = None
    # The run's shared facts it reads that the runner reads ahead (Facts.read_ahead).
    facts: ClassVar[tuple[str, ...]] = ("processes",)
    # The [collectors.supervisor] table (first spelt [supervisor], still read so).
    Options: ClassVar[type] = SupervisorConfig
    # What `healthcheck diff` says of its programs (changes.py).
    drift: ClassVar[DriftSpec] = DRIFT

    def __init__(
        self, discover: Discover = discover_serverurls, supervisorctl: str = "supervisorctl"
    ) -> None:
        # Both are parameters so that tests can point them at a supervisord of their own.
        self._discover = discover
        self._supervisorctl = supervisorctl

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        config = ctx.config
        budget = self.timeout if self.timeout is not None else config.collectors.timeout
        gathered = gather.gather(config, budget, self._discover, self._supervisorctl)
        findings = judge.assess(gathered, config)
        if gathered.data["via"] is None:
            return Section(
                name=self.name,
                status=Status.UNKNOWN,
                data=gathered.data,
                findings=findings,
                error=gathered.reason,
            )
        volatile = {"uptime_s": dict(sorted(gathered.uptimes.items()))}
        return Section.from_findings(self.name, gathered.data, findings, volatile)


__all__ = [
    "SupervisorCollector",
    "api_tail_bytes",
    "clean_log_text",
    "find_program",
    "last_exit_signal",
    "last_exit_status",
    "main_log_events",
    "parse_status",
    "program_from_info",
]
