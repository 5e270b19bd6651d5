"""The small typed contract every collector, the runner and the renderer share."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from healthcheck.record import Record

if TYPE_CHECKING:
    from healthcheck.config import Config
    from healthcheck.facts import Facts


class Status(str, enum.Enum):
    """Severity of a finding, and status of a section or a whole run."""

    OK = "ok"
    UNKNOWN = "unknown"
    WARN = "warn"
    CRIT = "crit"

    @property
    def rank(self) -> int:
        # crit > unknown > warn > ok: a check that could not look must not read better
        # than one that saw a warning (the fault it missed may be a crit).
        return _RANK[self]

    def __str__(self) -> str:
        return self.value


_RANK = {Status.OK: 0, Status.WARN: 1, Status.UNKNOWN: 2, Status.CRIT: 3}


def worst(statuses: list[Status] | tuple[Status, ...]) -> Status:
    """The most severe of `statuses` (ok when empty)."""
    return max(statuses, key=lambda s: s.rank, default=Status.OK)


def human_duration(seconds: float) -> str:
    """`45 seconds`, `12 minutes`, `3 hours`, `2 days`: a span of time in words."""
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 86400:.0f} days"


def human_bytes(value: Any) -> str:
    """`512 B`, `4.9 KiB`, `300.0 MiB`: a size in binary units ("n/a" for no number)."""
    if not isinstance(value, (int, float)):
        return "n/a"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


class Finding(NamedTuple):
    """A derived fact worth the operator's attention, with a way out."""

    collector: str
    rule: str  # short machine name of what was detected, e.g. "disk-full"
    subject: str  # what it is about: a path, a port, a program
    severity: Status
    title: str
    detail: str = ""
    hint: str = ""
    evidence: tuple[str, ...] = ()  # raw lines (untrusted: rendered only inside fences)

    @property
    def id(self) -> str:
        """Stable across runs, so drift can tell a finding opened from one resolved."""
        return (
            f"{self.collector}.{self.rule}:{self.subject}"
            if self.subject
            else (f"{self.collector}.{self.rule}")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "severity": self.severity.value,
            "title": self.title,
            "detail": self.detail,
            "hint": self.hint,
            "collector": self.collector,
            "subject": self.subject,
            "evidence": list(self.evidence),
        }


def rank_findings(findings: list[Finding]) -> list[Finding]:
    """Most severe first; ties in a stable, deterministic order."""
    return sorted(findings, key=lambda f: (-f.severity.rank, f.collector, f.rule, f.subject))


class Section(Record):
    """What one collector found.

    `data` holds facts that stay put on an idle box; `volatile` holds figures that move on
    every run (load, memory used, uptime), kept apart so that two reports differ in few lines.
    """

    __slots__ = ("data", "duration_ms", "error", "findings", "name", "status", "volatile")

    def __init__(
        self,
        name: str,
        status: Status = Status.OK,
        data: dict[str, Any] | None = None,
        findings: list[Finding] | None = None,
        volatile: dict[str, Any] | None = None,
        duration_ms: int = 0,
        error: str | None = None,
    ) -> None:
        self.name = name
        self.status = status
        self.data: dict[str, Any] = {} if data is None else data
        self.findings: list[Finding] = [] if findings is None else findings
        self.volatile: dict[str, Any] = {} if volatile is None else volatile
        self.duration_ms = duration_ms
        self.error = error

    @classmethod
    def from_findings(
        cls,
        name: str,
        data: dict[str, Any],
        findings: list[Finding],
        volatile: dict[str, Any] | None = None,
    ) -> Section:
        """A section whose status is the worst of its findings."""
        return cls(
            name=name,
            status=worst([f.severity for f in findings]),
            data=data,
            findings=findings,
            volatile=volatile or {},
        )

    @classmethod
    def failed(cls, name: str, error: str, duration_ms: int = 0) -> Section:
        """A collector that could not do its job: status unknown, and a finding saying why.

        The finding puts the gap among the ranked findings, where a reader (or an assistant)
        looks first, instead of leaving it for them to notice in a section further down.
        """
        finding = Finding(
            collector=name,
            rule="collector-failed",
            subject="",
            severity=Status.UNKNOWN,
            title=f"The {name} collector could not run",
            detail=error,
            hint=f"healthcheck run --only {name} -vv shows what happens.",
        )
        return cls(
            name=name,
            status=Status.UNKNOWN,
            findings=[finding],
            error=error,
            duration_ms=duration_ms,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "duration_ms": self.duration_ms,
            "error": self.error,
            "data": json_ready(self.data),
            "volatile": self.volatile,
        }


def json_ready(data: dict[str, Any]) -> dict[str, Any]:
    """A section's data for the report: the records a collector keeps in a list (a
    supervisor Program) become their JSON tables here, at the edge, and nowhere before."""
    return {
        key: [item.to_dict() if hasattr(item, "to_dict") else item for item in value]
        if isinstance(value, list)
        else value
        for key, value in data.items()
    }


class RunContext(NamedTuple):
    """What a collector gets for one run (`collect(ctx)`).

    `options` is the collector's `[collectors.NAME]` table as its `Options` dataclass (None
    for a collector without one); `deadline` the `time.monotonic()` by which the runner stops
    waiting for it; `facts` the run's shared facts (healthcheck.facts).
    """

    name: str
    config: Config
    options: Any
    deadline: float
    facts: Facts

    @property
    def remaining(self) -> float:
        """Seconds left before the deadline (0 once it has passed)."""
        import time

        return max(0.0, self.deadline - time.monotonic())


@runtime_checkable
class Collector(Protocol):
    """A plugin that gathers one area of the box.

    Declarative class attributes say what it is; `collect` does the work and may raise:
    the runner turns an exception or an overrun into an `unknown` section.

    `collect(ctx)` gets the run context (RunContext). A collector whose `collect` parameter is
    named anything but `ctx` (the first release's `collect(config)`) gets the Config instead:
    see `takes_context`. Optional: `Options`, a dataclass whose fields and defaults are the
    `[collectors.NAME]` table of the configuration; `facts`, the run's shared facts it reads
    that the runner reads before the collectors start (`Facts.read_ahead`: "processes").
    """

    name: ClassVar[str]
    description: ClassVar[str]
    # Seconds; None means the run-wide `collectors.timeout`.
    timeout: ClassVar[float | None]

    def collect(self, ctx: RunContext) -> Section: ...


def takes_context(collector: object) -> bool:
    """Whether `collector.collect` wants the RunContext: its first parameter is named `ctx`
    or annotated `RunContext`. Any other (`collect(self, config)`, as the first release's
    plugins wrote it) gets the Config."""
    method = getattr(collector, "collect", None)
    function = getattr(method, "__func__", method)
    code = getattr(function, "__code__", None)
    if code is None:
        return False
    first = 1 if hasattr(method, "__self__") else 0
    names = code.co_varnames[first : code.co_argcount]
    if not names:
        return False
    if names[0] == "ctx":
        return True
    annotation = getattr(function, "__annotations__", {}).get(names[0])
    return annotation is RunContext or (
        isinstance(annotation, str) and annotation.split("|")[0].strip().endswith("RunContext")
    )


def as_context(collector: object, given: RunContext | Config) -> RunContext:
    """The RunContext a built-in collector works with when called directly with a Config
    (tests, scripts, the first release's callers): one built for this call alone."""
    if isinstance(given, RunContext):
        return given
    from healthcheck.facts import context_for

    return context_for(collector, given)  # type: ignore[arg-type]
