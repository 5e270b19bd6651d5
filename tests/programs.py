"""The one factory tests use for a supervisor program (healthcheck.program.Program), instead
of rebuilding the collector's record by hand."""

from __future__ import annotations

from typing import Any

from healthcheck.program import Program

STARTED = "2026-11-28T10:00:00Z"


def program(
    name: str = "app",
    state: str = "FATAL",
    exitstatus: int | None = 1,
    stderr: str | list[str] = "",
    spawnerr: str | None = None,
    started: str | None = STARTED,
    **fields: Any,
) -> Program:
    """A program of its own group: `stderr` is its log (text, or lines), `fields` any other
    of the record's fields (pid=42, exitsignal="SIGKILL")."""
    made = Program(name, name, state, started=started, exitstatus=exitstatus, spawnerr=spawnerr)
    made.log["stderr"] = stderr.splitlines() if isinstance(stderr, str) else list(stderr)
    return made.replace(**fields) if fields else made
