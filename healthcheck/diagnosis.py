"""One cause, one finding: join what separate collectors saw of the same failure.

Collectors each report their own symptom: supervisor sees `jupyter` FATAL, ports sees 8080
closed, display sees no X server while the window manager and VNC fail. Reported apart, one
fault reads as three. This step runs after all collectors and folds a symptom into the
finding of its cause, keeping the symptom's evidence.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from healthcheck.model import Finding, Section, Status, worst

# A service name in [services.ports] and the supervisor program that provides it do not always
# share a name (ssh/sshd, novnc/websockify); these are the seed's spellings.
SERVICE_ALIASES = {
    "ssh": ("sshd", "ssh", "openssh"),
    "vnc": ("vnc", "tigervnc", "xvnc", "x11vnc", "xtigervnc", "xvfb"),
    "novnc": ("novnc", "websockify", "no_vnc"),
    "jupyter": ("jupyter", "jupyterlab", "lab", "notebook"),
    "filebrowser": ("filebrowser", "file_browser"),
}
# Programs that cannot work without the X server.
NEEDS_DISPLAY = (
    "vnc",
    "novnc",
    "websockify",
    "icewm",
    "wm",
    "window",
    "visomaster",
    "gui",
    "xterm",
    "firefox",
)
DISPLAY_RULES = ("display-unreachable",)


def diagnose(sections: list[Section]) -> list[Section]:
    """The same sections, with symptoms folded into the findings of their causes."""
    by_name = {s.name: s for s in sections}
    supervisor, ports, display, logs = (
        by_name.get(n) for n in ("supervisor", "ports", "display", "logs")
    )
    programs: list[dict[str, Any]] = (supervisor.data.get("programs") or []) if supervisor else []
    if logs is not None and supervisor is not None:
        _drop_logs_of_explained_programs(logs, supervisor, programs)
    gpu = by_name.get("gpu")
    if logs is not None and gpu is not None:
        _drop_logs_explained_by_cuda(logs, gpu)
    if gpu is not None and supervisor is not None:
        _drop_cuda_logs_of_explained_programs(gpu, supervisor, programs)
        _drop_oom_kills_of_explained_programs(gpu, supervisor)
    if display is not None:
        _fold_into_x_server_down(display, supervisor, ports, programs)
        _fold_window_manager(display, supervisor)
    if ports is not None and supervisor is not None:
        _fold_ports_into_programs(ports, supervisor, programs)
        _fold_ports_into_supervisord_down(ports, supervisor)
    for section in sections:
        if section.error is None:
            section.status = worst([f.severity for f in section.findings])
    return sections


def program_for_service(service: str, programs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The supervisor program that provides `service`, by name or a known alias."""
    names = SERVICE_ALIASES.get(service, (service,))
    for candidate in (service, *names):
        for program in programs:
            if program["name"].lower() == candidate:
                return program
    for program in programs:
        lowered = program["name"].lower()
        if any(lowered.startswith(n) or n.startswith(lowered) for n in names):
            return program
    return None


def _fold_ports_into_programs(
    ports: Section, supervisor: Section, programs: list[dict[str, Any]]
) -> None:
    """A closed port whose program is down: the program's finding, with the port noted."""
    for port_finding in [f for f in ports.findings if f.rule == "not-listening"]:
        service, _, port = port_finding.subject.rpartition(":")
        program = program_for_service(service, programs)
        if program is None:
            continue
        fullname = program.get("fullname") or program["name"]
        cause = _finding_about(supervisor, fullname)
        if cause is not None:
            _replace(
                supervisor,
                cause,
                _absorb(
                    cause, f"As a result nothing listens on port {port} ({service}).", port_finding
                ),
            )
            ports.findings.remove(port_finding)
        elif program.get("state") == "RUNNING":
            _replace(
                ports,
                port_finding,
                dataclasses.replace(
                    port_finding,
                    detail=f"{port_finding.detail} Its program {fullname} is RUNNING (pid "
                    f"{program.get('pid')}), so it listens elsewhere or has not bound yet.",
                    hint=f"Check the port and bind address in {fullname}'s command line and log "
                    f"(supervisorctl tail {fullname}).",
                ),
            )
        elif program.get("state") in ("STOPPED", "EXITED"):
            # Not a crash (no finding of its own), but it is why the port is closed.
            never = "" if program.get("started") else ", never started (autostart=false?)"
            _replace(
                ports,
                port_finding,
                dataclasses.replace(
                    port_finding,
                    detail=f"{port_finding.detail} Its program {fullname} is "
                    f"{program['state']}{never}.",
                    hint=f"supervisorctl start {fullname}; to start it with the container, "
                    f"set autostart=true in [program:{program['name']}].",
                ),
            )


def _fold_ports_into_supervisord_down(ports: Section, supervisor: Section) -> None:
    """No supervisord (no socket, or nothing listening on it) and closed ports: its services
    are down because it is. One crit finding, not one warning per port."""
    down = next((f for f in supervisor.findings if f.rule == "unreachable"), None)
    attempts = supervisor.data.get("attempts") or []
    if down is None or not attempts:
        return
    if not all(a.get("kind") in ("missing", "refused") for a in attempts):
        return  # it answered something, or denied us: not a sign that it is down
    closed = [f for f in ports.findings if f.rule == "not-listening"]
    if not closed:
        return  # its services listen: supervisord is elsewhere, not down
    names = ", ".join(f.subject.replace(":", " on port ") for f in closed)
    for symptom in closed:
        ports.findings.remove(symptom)
    merged = dataclasses.replace(
        down,
        severity=Status.CRIT,
        detail=f"{down.detail} Nothing listens for {names} either: the services "
        "supervisord starts are down with it.",
        hint=f"Start supervisord (supervisord -c /etc/supervisor/supervisord.conf, or restart "
        f"the container); then supervisorctl status. {down.hint}",
    )
    _replace(supervisor, down, merged)


def _drop_logs_of_explained_programs(
    logs: Section, supervisor: Section, programs: list[dict[str, Any]]
) -> None:
    """A crashed program's log ending in an error is that crash, already explained."""
    explained = {f.subject for f in supervisor.findings}
    log_owner = _log_owners(programs)
    logs.findings[:] = [
        f
        for f in logs.findings
        if not (f.rule == "log-ends-with-error" and log_owner.get(f.subject) in explained)
    ]


def _drop_cuda_logs_of_explained_programs(
    gpu: Section, supervisor: Section, programs: list[dict[str, Any]]
) -> None:
    """A program that crashed on CUDA out of memory is one crit finding (its own), not that
    and a warning about its log."""
    explained = {f.subject for f in supervisor.findings}
    log_owner = _log_owners(programs)
    gpu.findings[:] = [
        f
        for f in gpu.findings
        if not (f.rule in ("cuda-oom", "cuda-error") and log_owner.get(f.subject) in explained)
    ]


def _drop_oom_kills_of_explained_programs(gpu: Section, supervisor: Section) -> None:
    """The kernel's OOM kill is the killed program's own finding when one names it."""
    if any(f.rule == "oom-killed" for f in supervisor.findings):
        gpu.findings[:] = [f for f in gpu.findings if f.id.split(":")[0] != "system.oom-kill"]


def _log_owners(programs: list[dict[str, Any]]) -> dict[str, str]:
    """Each program's log file paths, to the program's full name."""
    return {
        path: program.get("fullname") or program["name"]
        for program in programs
        for path in (program.get("stdout_logfile"), program.get("stderr_logfile"))
        if path
    }


def _drop_logs_explained_by_cuda(logs: Section, gpu: Section) -> None:
    """A log ending in "CUDA out of memory" is the gpu collector's finding, named as such."""
    explained = {f.subject for f in gpu.findings if f.rule in ("cuda-oom", "cuda-error")}
    logs.findings[:] = [
        f for f in logs.findings if not (f.rule == "log-ends-with-error" and f.subject in explained)
    ]


def _fold_into_x_server_down(
    display: Section,
    supervisor: Section | None,
    ports: Section | None,
    programs: list[dict[str, Any]],
) -> None:
    """The X server down explains the window manager, VNC and the GUI app failing."""
    down = next((f for f in display.findings if f.rule == "x-server-down"), None)
    if down is None:
        return
    merged = down
    for symptom in [
        f for f in display.findings if f.rule in ("wm-not-running", "wm-wrong-display")
    ]:
        merged = _absorb(merged, "", symptom)
        display.findings.remove(symptom)
    for lock in [f for f in display.findings if f.rule == "stale-lock"]:
        # The down server's hint already says to remove the lock: keep its why, not a twin.
        merged = _absorb(merged, lock.detail, lock)
        display.findings.remove(lock)
    if supervisor is not None:
        for finding in list(supervisor.findings):
            # Only failures the missing display explains: a GUI app that also lacks a Python
            # module, or a window manager without DISPLAY, has a cause of its own.
            generic = finding.rule == "program-down" and _needs_display(finding.subject)
            if finding.rule in DISPLAY_RULES or generic:
                merged = _absorb(merged, f"{finding.subject}: {finding.title}.", finding)
                supervisor.findings.remove(finding)
    if ports is not None:
        for finding in list(ports.findings):
            service = finding.subject.rpartition(":")[0]
            if finding.rule == "not-listening" and service in ("vnc", "novnc"):
                merged = _absorb(merged, f"Port {finding.subject} has no listener.", finding)
                ports.findings.remove(finding)
    _replace(display, down, merged)


def _fold_window_manager(display: Section, supervisor: Section | None) -> None:
    """A window manager that is down because of its own program's cause: that one finding."""
    if supervisor is None:
        return
    wm = str((display.data.get("window_manager") or {}).get("name") or "")
    for symptom in [
        f for f in display.findings if f.rule in ("wm-not-running", "wm-wrong-display")
    ]:
        cause = next(
            (
                f
                for f in supervisor.findings
                if wm and f.subject.lower().split(":")[-1].startswith(wm.lower())
            ),
            None,
        )
        if cause is None:
            continue
        _replace(supervisor, cause, _absorb(cause, "", symptom))
        display.findings.remove(symptom)


def _needs_display(program: str) -> bool:
    name = program.lower().split(":")[-1]
    return any(re.search(rf"(^|[_-]){word}", name) for word in NEEDS_DISPLAY)


def _finding_about(section: Section, subject: str) -> Finding | None:
    return next((f for f in section.findings if f.subject == subject), None)


def _absorb(cause: Finding, note: str, symptom: Finding) -> Finding:
    """`cause` with `symptom` recorded in its detail and evidence."""
    note = note or f"Also seen: {symptom.title}."
    # A program retried before FATAL logs the same line each time: once is evidence enough.
    evidence = tuple(dict.fromkeys(cause.evidence + symptom.evidence))
    detail = cause.detail.rstrip()
    if detail and not detail.endswith((".", "!", "?", ")")):
        detail += "."  # a decisive log line ends the detail, usually without a full stop
    return dataclasses.replace(cause, detail=f"{detail} {note}".strip(), evidence=evidence)


def _replace(section: Section, old: Finding, new: Finding) -> None:
    section.findings[section.findings.index(old)] = new
