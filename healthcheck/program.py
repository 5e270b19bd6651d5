"""A supervisor program as the supervisor collector sees it: one typed record.

The collector builds it (from XML-RPC or `supervisorctl status`), the rules that explain a
program and the diagnosis read it, and it becomes JSON only at the edge (`to_dict`, called by
`Section.to_dict`). A report read back from disk (drift, diff) is JSON again: `from_dict`
turns its entries into records, tolerating what an older or hand-edited report lacks.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from healthcheck.record import Record

STREAMS = ("stdout", "stderr")  # a program's two logs, in the order the report shows them


def _by_stream() -> dict[str, list[Any]]:
    return {"stdout": [], "stderr": []}


class Program(Record):
    """One program of supervisord: its state, how it ended, and the end of its logs."""

    __slots__ = (
        "description",
        "diagnosis_log",
        "error_lines",
        "exitsignal",
        "exitstatus",
        "exitstatus_source",
        "group",
        "log",
        "log_errors",
        "log_source",
        "name",
        "pid",
        "spawnerr",
        "started",
        "state",
        "stderr_logfile",
        "stdout_logfile",
        "stopped",
        "supervisord_log",
    )

    def __init__(
        self,
        group: str,
        name: str,
        state: str = "UNKNOWN",
        pid: int | None = None,
        started: str | None = None,  # UTC stamps
        stopped: str | None = None,
        exitstatus: int | None = None,
        exitstatus_source: str | None = None,  # "xmlrpc", "supervisord log" or None (unknown)
        exitsignal: str | None = None,  # "SIGKILL" when a signal ended it
        spawnerr: str | None = None,
        description: str | None = None,
        stdout_logfile: str | None = None,
        stderr_logfile: str | None = None,
        log: dict[str, list[str]] | None = None,  # the lines shown
        log_source: str | None = None,
        log_errors: dict[str, str] | None = None,
        error_lines: dict[str, list[int]] | None = None,
        supervisord_log: list[str] | None = None,
        # The longer tails the diagnosis reads (the decisive line may sit above the shown
        # ones); never in the report: the collector drops them once its findings are made.
        diagnosis_log: dict[str, list[str]] | None = None,
    ) -> None:
        self.group = group
        self.name = name
        self.state = state
        self.pid = pid
        self.started = started
        self.stopped = stopped
        self.exitstatus = exitstatus
        self.exitstatus_source = exitstatus_source
        self.exitsignal = exitsignal
        self.spawnerr = spawnerr
        self.description = description
        self.stdout_logfile = stdout_logfile
        self.stderr_logfile = stderr_logfile
        self.log: dict[str, list[str]] = _by_stream() if log is None else log
        self.log_source = log_source
        self.log_errors: dict[str, str] = {} if log_errors is None else log_errors
        self.error_lines: dict[str, list[int]] = (
            _by_stream() if error_lines is None else error_lines
        )
        self.supervisord_log: list[str] = [] if supervisord_log is None else supervisord_log
        self.diagnosis_log = diagnosis_log

    @property
    def fullname(self) -> str:
        """`group:name`, or `name` alone for a program that is its own group."""
        return self.name if self.group == self.name else f"{self.group}:{self.name}"

    def own_lines(self) -> list[str]:
        """What the program itself wrote (its shown stdout and stderr tails), oldest first."""
        return [*(self.log.get("stdout") or []), *(self.log.get("stderr") or [])]

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON for this program: every field but the diagnosis's tails, in
        the report's order (fullname after group and name)."""
        return {
            "group": self.group,
            "name": self.name,
            "fullname": self.fullname,
            **{key: getattr(self, key) for key in _COPIED},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Program:
        """A report's entry read back. Values are taken as they are (a report is our own
        output); a missing key keeps the default, and an entry without `group` takes it from
        `fullname` ("group:name")."""
        name = str(data.get("name") or "")
        fullname = str(data.get("fullname") or name)
        group = data.get("group") or (fullname.rpartition(":")[0] or name)
        program = cls(group=str(group), name=name)
        for key in _COPIED:
            if key in data:
                setattr(program, key, data[key])
        return program


# The fields a report carries as they are (group and name are the record's identity; the
# diagnosis's tails never leave the run), in the order of Program's parameters: the report's.
_COPIED = tuple(
    name
    for name in inspect.signature(Program).parameters
    if name not in ("group", "name", "diagnosis_log")
)


def programs_of(items: Any) -> list[Program]:
    """A report's `programs` list as records: entries that are not tables are skipped."""
    if not isinstance(items, list):
        return []
    return [
        item if isinstance(item, Program) else Program.from_dict(item)
        for item in items
        if isinstance(item, (Program, Mapping))
    ]
