"""How the supervisor collector judges what it gathered: each program through the table of
known failures (rules.py), supervisord's own state, and why XML-RPC could not be used.

No I/O of its own. The one exception is the rules' `Probe`, which asks the box lazily about
the one program a rule needs (does the module import, is the port taken): pass a `probe`
(rules.CannedProbe) to judge from data alone.
"""

from __future__ import annotations

from typing import Any

from healthcheck.catalogue import finding as worded
from healthcheck.collectors.supervisor.rules import Probe, program_findings
from healthcheck.config import Config
from healthcheck.model import Finding
from healthcheck.program import Program
from healthcheck.record import Record


class Gathered(Record):
    """What gather read: the section's data (`via` says how: "xmlrpc", "supervisorctl", or
    None when supervisord could not be reached), the programs' uptimes (volatile), the
    configured server (for display: no credentials) and the supervisord.conf the
    supervisorctl fallback used."""

    __slots__ = ("conf", "data", "uptimes", "url")

    def __init__(
        self,
        data: dict[str, Any],
        uptimes: dict[str, int] | None = None,
        url: str = "",
        conf: str | None = None,
    ) -> None:
        self.data = data
        self.uptimes = uptimes if uptimes is not None else {}
        self.url = url
        self.conf = conf

    @property
    def reason(self) -> str:
        """Why the configured server could not be used (the first attempt's error)."""
        attempts = self.data["attempts"]
        return str(attempts[0]["error"]) if attempts else ""


def assess(gathered: Gathered, config: Config, probe: Probe | None = None) -> list[Finding]:
    """All findings for what gather read. The programs' longer diagnosis tails are dropped
    afterwards: they served the judgement, the report shows its own share."""
    data = gathered.data
    via = data["via"]
    if via is None:
        return [unreachable(gathered)]
    programs: list[Program] = data["programs"]
    findings = program_findings(programs, config, probe)
    _drop_diagnosis_logs(programs)
    if via == "supervisorctl":
        findings.append(xmlrpc_unavailable(gathered))
    elif data["state"] != "RUNNING":
        findings.append(_not_running(data["url"], data["state"]))
    return findings


def xmlrpc_unavailable(gathered: Gathered) -> Finding:
    """XML-RPC failed, supervisorctl answered: the programs are known, the API is not."""
    data = gathered.data
    return worded(
        "supervisor.xmlrpc-unavailable",
        gathered.url,
        url=gathered.url,
        reason=gathered.reason,
        source=data["source"],
        conf=gathered.conf or "the supervisord.conf",
        ctl_url=data["url"],
    )


def unreachable(gathered: Gathered) -> Finding:
    """Neither XML-RPC nor supervisorctl reached supervisord: everything that was tried."""
    tried = "; ".join(
        f"{a['url']} ({a['source']}): {a['error']}" for a in gathered.data["attempts"]
    )
    fallback_error = gathered.data.get("fallback_error")
    return worded(
        "supervisor.unreachable",
        gathered.url,
        url=gathered.url,
        reason=gathered.reason,
        tried=tried,
        fallback=f" Fallback: {fallback_error}." if fallback_error else "",
    )


def _drop_diagnosis_logs(programs: list[Program]) -> None:
    for program in programs:
        program.diagnosis_log = None


def _not_running(url: str, state: str) -> Finding:
    if state == "SHUTDOWN":
        shutting = worded("supervisor.shutting-down", url)
        return shutting._replace(rule="not-running")  # one rule, either way
    return worded("supervisor.not-running", url, state=state)
