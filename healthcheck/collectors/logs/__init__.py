"""The last lines of every service log, newest log first.

gather.py finds the logs and reads their ends (the run's shared reads); judge.py decides what
they say and how much of each the report shows.
"""

from __future__ import annotations

from typing import ClassVar

from healthcheck.collectors.logs import gather, judge
from healthcheck.collectors.logs.judge import FILE_BYTES, RUNAWAY_BYTES, SECTION_BYTES
from healthcheck.config import Config, LogsConfig
from healthcheck.model import RunContext, Section, as_context


class LogsCollector:
    """Reads the tail of each log in the configured directories, without reading whole files."""

    name: ClassVar[str] = "logs"
    description: ClassVar[str] = "the last lines of every matching log in /logs and /Logs"
    timeout: ClassVar[float | None] = None
    # The [collectors.logs] table (first spelt [logs], still read so).
    Options: ClassVar[type] = LogsConfig

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        readings = gather.gather(ctx.options, ctx.config, ctx.facts)
        data, findings = judge.assess(readings, ctx.options)
        return Section.from_findings(self.name, data, findings)


__all__ = ["FILE_BYTES", "RUNAWAY_BYTES", "SECTION_BYTES", "LogsCollector"]
