"""A run's result as one object: what the templates and the JSON are made from."""

from __future__ import annotations

import re
import socket
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from healthcheck import __version__
from healthcheck.model import Finding, Section, Status, rank_findings, worst
from healthcheck.record import Record
from healthcheck.timestamps import utc_stamp

SCHEMA = "healthcheck/report/v1"


class Report(Record):
    __slots__ = (
        "findings",
        "generated_at",
        "host",
        "improvements",
        "partial",
        "revision",
        "sections",
        "status",
        "version",
    )
    # The revision only counts changes made in place: two reports that say the same are
    # equal, however they came to say it.
    _not_compared = frozenset({"revision"})
    _not_shown = frozenset({"revision"})

    def __init__(
        self,
        host: str,
        generated_at: datetime,
        sections: list[Section],
        findings: list[Finding],  # ranked, most severe first
        status: Status,
        version: str = __version__,
        # The improvement log's open entries (id, title, added, source, finding), so that
        # whoever reads the report (an assistant, say) sees what was already recommended.
        improvements: list[dict[str, str]] | None = None,
        # A run of some collectors only (--only, --skip): not the box's state, never recorded.
        partial: bool = False,
        # Bumped by add_findings, so that what was made from the report before (the redacted
        # data output.Rendering keeps) is known to be stale.
        revision: int = 0,
    ) -> None:
        self.host = host
        self.generated_at = generated_at
        self.sections = sections
        self.findings = findings
        self.status = status
        self.version = version
        self.improvements: list[dict[str, str]] = [] if improvements is None else improvements
        self.partial = partial
        self.revision = revision

    @classmethod
    def build(
        cls, sections: list[Section], host: str | None = None, now: datetime | None = None
    ) -> Report:
        findings = rank_findings([f for s in sections for f in s.findings])
        _explain_closed_ports(sections, findings)
        _explain_window_manager(sections, findings)
        # A section that could not run counts as `unknown` even without a finding of its own.
        status = worst([f.severity for f in findings] + [s.status for s in sections])
        return cls(
            host=host or socket.gethostname(),
            generated_at=(now or datetime.now(timezone.utc)).replace(microsecond=0),
            sections=sections,
            findings=findings,
            status=status,
        )

    def add_findings(self, findings: list[Finding]) -> None:
        """Findings about the run itself (its history, its log), ranked in with the rest."""
        self.findings = rank_findings([*self.findings, *findings])
        self.status = worst([self.status, *(f.severity for f in findings)])
        self.revision += 1

    @property
    def counts(self) -> dict[str, int]:
        """Findings per severity, every severity present (zero included)."""
        counted = Counter(f.severity.value for f in self.findings)
        return {
            s.value: counted.get(s.value, 0)
            for s in (Status.CRIT, Status.WARN, Status.UNKNOWN, Status.OK)
        }

    @property
    def tally(self) -> str:
        """`Status WARN: 0 crit, 1 warn, 0 unknown.` (the console's and the ping's summary)."""
        counts = self.counts
        return (
            f"Status {self.status.value.upper()}: {counts['crit']} crit, {counts['warn']} warn, "
            f"{counts['unknown']} unknown."
        )

    @property
    def generated_iso(self) -> str:
        return utc_stamp(self.generated_at)

    def at_least(self, level: Status) -> list[Finding]:
        return [f for f in self.findings if f.severity.rank >= level.rank]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "generator": f"healthcheck {self.version}",
            "generated_at": self.generated_iso,
            "host": self.host,
            "status": self.status.value,
            "counts": self.counts,
            "findings": [f.to_dict() for f in self.findings],
            "sections": {s.name: s.to_dict() for s in self.sections},
            "improvements": list(self.improvements),
            # Only on a partial run, so that whoever reads it knows what was not looked at.
            **(
                {"partial": True, "collectors_run": [s.name for s in self.sections]}
                if self.partial
                else {}
            ),
        }


def _explain_closed_ports(sections: list[Section], findings: list[Finding]) -> None:
    """A closed expected port folded into its program's finding (or supervisord's) leaves
    the ports table showing it closed: the row names that finding, and the section's
    status is no better than it, so the table and its status agree."""
    ports = next((s for s in sections if s.name == "ports"), None)
    if ports is None or ports.error is not None:
        return
    for row in ports.data.get("ports") or []:
        if not isinstance(row, dict) or row.get("listening"):
            continue
        port, service = row.get("port"), row.get("service")
        if any(f.collector == "ports" and f.subject == f"{service}:{port}" for f in findings):
            continue
        pattern = re.compile(rf"\bport {port}\b")
        cause = next((f for f in findings if pattern.search(f.detail)), None)
        if cause is not None:
            row["explained_by"] = cause.id
            ports.status = worst([ports.status, cause.severity])


def _explain_window_manager(sections: list[Section], findings: list[Finding]) -> None:
    """The same for the display section's window manager: down, and folded into its
    program's finding ("Also seen: The window manager icewm is not running.")."""
    display = next((s for s in sections if s.name == "display"), None)
    if display is None or display.error is not None:
        return
    wm = display.data.get("window_manager")
    if not isinstance(wm, dict) or wm.get("running") is not False or not wm.get("name"):
        return
    if any(f.collector == "display" and f.rule.startswith("wm-") for f in findings):
        return
    said = f"The window manager {wm['name']} is not running"
    cause = next((f for f in findings if said in f.detail), None)
    if cause is not None:
        wm["explained_by"] = cause.id
        display.status = worst([display.status, cause.severity])
