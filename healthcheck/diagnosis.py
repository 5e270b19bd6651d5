"""One cause, one finding: join what separate collectors saw of the same failure.

Collectors each report their own symptom: supervisor sees `jupyter` FATAL, ports sees 8080
closed, display sees no X server while the window manager and VNC fail. Reported apart, one
fault reads as three. This step runs after all collectors and folds a symptom into the
finding of its cause, keeping the symptom's evidence.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any

from healthcheck.config import Config
from healthcheck.lazyre import lazy
from healthcheck.logtail import looks_like_error
from healthcheck.model import Finding, Section, Status, worst
from healthcheck.program import Program
from healthcheck.timestamps import stamp_seconds

# Findings of a program that say no more than "it failed": the X server being down may be why.
GENERIC_RULES = ("program-down", "program-stopped")
DISPLAY_RULES = ("display-unreachable",)
# What X clients print when the server is not there: Xlib's "Can't open display: :1" (icewm,
# xterm, GTK), Qt's "could not connect to display :1", Tk's "couldn't connect to display
# \":1\"", xdpyinfo's "unable to open display \":1\"", x11vnc's XOpenDisplay(":1") failed.
_CANNOT_REACH_DISPLAY = lazy(
    r"(?:can'?t|cannot|can not|unable to|could ?n[o']?t|failed to)\s+(?:open|connect to)"
    r"(?:\s+the)?(?:\s+X)?\s+(?:display|server)\b(?P<rest>.{0,40})"
    r"|XOpenDisplay\((?P<rest2>[^)]{0,40})\)\s+failed",
    re.IGNORECASE,
)
_DISPLAY_NAME = lazy(r"[\w.-]*:\d+(?:\.\d+)?")
# "<none>", "DISPLAY not set": the program has no display at all, a cause of its own.
_NO_DISPLAY_NAME = lazy(r"<none>|DISPLAY (?:is )?not set|no display name", re.I)
# A program's log that comes from an X server (it names the program serving X when the
# program's name does not).
_X_SERVER_BANNER = lazy(r"Xvnc TigerVNC|X\.Org X Server|Xtigervnc|\bXvfb\b|Fatal server error")


def diagnose(sections: list[Section], config: Config | None = None) -> list[Section]:
    """The same sections, with symptoms folded into the findings of their causes.

    `config` says which display is this box's and which programs serve and need it (the
    defaults without one)."""
    config = config or Config()
    by_name = {s.name: s for s in sections}
    supervisor, ports, display, logs = (
        by_name.get(n) for n in ("supervisor", "ports", "display", "logs")
    )
    programs: list[Program] = (supervisor.data.get("programs") or []) if supervisor else []
    if logs is not None and supervisor is not None:
        # Every program with a finding now keeps it or is folded into another's cause below.
        explained = {f.subject for f in supervisor.findings}
        evidence = {
            line for s in sections if s is not logs for f in s.findings for line in f.evidence
        }
        _drop_logs_of_explained_programs(logs, supervisor, programs)
        _set_log_history(logs, programs, explained, evidence)
    gpu = by_name.get("gpu")
    if logs is not None and gpu is not None:
        _drop_logs_explained_by_cuda(logs, gpu)
    if gpu is not None and supervisor is not None:
        _drop_cuda_logs_of_explained_programs(gpu, supervisor, programs)
        _drop_oom_kills_of_explained_programs(gpu, supervisor)
    if gpu is not None and programs:
        _name_log_owners(gpu, programs)
    if display is not None:
        _name_novnc_program(display, supervisor, programs, config)
        _fold_into_x_server_down(display, supervisor, ports, programs, config)
        _fold_window_manager(display, supervisor, programs, config)
        if supervisor is not None:
            _started_before_x(display, supervisor, programs, config)
    if supervisor is not None:
        _aimed_at_another_display(supervisor, programs, config)
    if ports is not None and supervisor is not None:
        _fold_ports_into_programs(ports, supervisor, programs, config)
        _fold_ports_into_supervisord_down(ports, supervisor)
    for section in sections:
        if section.error is None:
            section.status = worst([f.severity for f in section.findings])
    return sections


def program_for_service(
    service: str, programs: list[Program], config: Config | None = None
) -> Program | None:
    """The supervisor program that provides `service`: by its name, or by one of the names
    `[services] programs` gives it (ssh is served by sshd, novnc by websockify)."""
    aliases = (config or Config()).services.programs
    names = [n.lower() for n in aliases.get(service, [service])]
    for candidate in (service, *names):
        for program in programs:
            if program.name.lower() == candidate:
                return program
    for program in programs:
        lowered = program.name.lower()
        if any(lowered.startswith(n) or n.startswith(lowered) for n in names):
            return program
    return None


def _fold_ports_into_programs(
    ports: Section, supervisor: Section, programs: list[Program], config: Config
) -> None:
    """A closed port whose program is down: the program's finding, with the port noted."""
    for port_finding in [f for f in ports.findings if f.rule == "not-listening"]:
        service, _, port = port_finding.subject.rpartition(":")
        program = program_for_service(service, programs, config)
        if program is None:
            continue
        fullname = program.fullname
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
        elif program.state == "RUNNING":
            _replace(
                ports,
                port_finding,
                port_finding._replace(
                    detail=f"{port_finding.detail} Its program {fullname} is RUNNING (pid "
                    f"{program.pid}), so it listens elsewhere or has not bound yet.",
                    hint=f"Check the port and bind address in {fullname}'s command line and log "
                    f"(supervisorctl tail {fullname}).",
                ),
            )
        elif program.state in ("STOPPED", "EXITED"):
            # Not a crash (no finding of its own), but it is why the port is closed.
            never = "" if program.started else ", never started (autostart=false?)"
            _replace(
                ports,
                port_finding,
                port_finding._replace(
                    detail=f"{port_finding.detail} Its program {fullname} is "
                    f"{program.state}{never}.",
                    hint=f"supervisorctl start {fullname}; to start it with the container, "
                    f"set autostart=true in [program:{program.name}].",
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
    merged = down._replace(
        severity=Status.CRIT,
        detail=f"{down.detail} Nothing listens for {names} either: the services "
        "supervisord starts are down with it.",
        hint=f"Start supervisord (supervisord -c /etc/supervisor/supervisord.conf, or restart "
        f"the container); then supervisorctl status. {down.hint}",
    )
    _replace(supervisor, down, merged)


def _drop_logs_of_explained_programs(
    logs: Section, supervisor: Section, programs: list[Program]
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
    gpu: Section, supervisor: Section, programs: list[Program]
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


def _log_owners(programs: list[Program]) -> dict[str, str]:
    """Each program's log file paths, to the program's full name."""
    return {
        path: program.fullname
        for program in programs
        for path in (program.stdout_logfile, program.stderr_logfile)
        if path
    }


# An evidence line shorter than this says too little to tell that a log line repeats it.
MIN_EVIDENCE_CHARS = 12


def _set_log_history(
    logs: Section,
    programs: list[Program],
    explained: set[str],
    evidence: set[str],
) -> None:
    """Error lines that are history or already explained stop counting towards a log's
    "ends with an error" finding; the section still shows them, and says how many.

    History: lines written before the current start of the program that writes the log
    (the file untouched since, or stamped earlier). Explained: supervisord's own lines about
    a program another finding names (or from before that program's start), its routine
    start-up words, and lines that repeat another finding's evidence.
    """
    from healthcheck.loglines import ends_with_error, line_times, written_before

    by_path: dict[str, Program] = {}
    for program in programs:
        for path in (program.stdout_logfile, program.stderr_logfile):
            if path:
                by_path[path] = by_path[os.path.realpath(path)] = program
    by_name = {p.name: p for p in programs}
    said = [e for e in evidence if len(e) >= MIN_EVIDENCE_CHARS]
    for entry in logs.data.get("files") or []:
        flagged: list[int] = entry.get("error_lines") or []
        if not flagged:
            continue
        path, lines = entry["path"], entry["lines"]
        mtime = stamp_seconds(entry.get("mtime"))
        times = line_times(lines, mtime)
        owner = (
            by_path.get(path)
            or by_path.get(os.path.realpath(path))
            or _owner_by_name(path, programs)
        )
        # A crashed program's log is its finding's evidence, current by definition.
        crashed = owner is not None and owner.fullname in explained
        started = stamp_seconds(owner.started) if owner and not crashed else None
        history = written_before(lines, started, mtime, times) if started is not None else 0
        excused = [
            i
            for i in flagged
            if i >= history and _explained_line(lines[i], times[i], by_name, explained, said)
        ]
        remaining = [i for i in flagged if i >= history and i not in excused]
        if history and owner is not None:
            entry["history"] = {
                "lines": history,
                "program": owner.fullname,
                "started": owner.started,
            }
        if excused:
            entry["explained_lines"] = excused
        if remaining == flagged:
            continue
        old = next(
            (f for f in logs.findings if f.rule == "log-ends-with-error" and f.subject == path),
            None,
        )
        if old is None:
            continue
        new = ends_with_error(path, lines, remaining)
        if new is None:
            logs.findings.remove(old)
        else:
            _replace(logs, old, new)


def _explained_line(
    line: str,
    when: float | None,
    by_name: dict[str, Program],
    explained: set[str],
    said: list[str],
) -> bool:
    from healthcheck.loglines import supervisord_line  # only with a supervisor

    parsed = supervisord_line(line)
    if parsed is None:
        return False
    message, name = parsed
    if name == "":
        return True  # routine: running as root, no HTTP password, reaped an orphan
    program = by_name.get(name) if name else None
    if program is not None:
        if program.fullname in explained:
            return True
        started = stamp_seconds(program.started)
        return started is not None and when is not None and when < started
    return any(e in message for e in said)


def _owner_by_name(path: str, programs: list[Program]) -> Program | None:
    """The program a log is named after (jupyter.log, sshd-stderr---supervisor-x.log)."""
    stem = os.path.basename(path).split(".")[0].lower()
    named = [
        p
        for p in programs
        if stem == p.name.lower() or stem.startswith((p.name.lower() + "-", p.name.lower() + "_"))
    ]
    return max(named, key=lambda p: len(p.name), default=None)


_SUPERVISORCTL_VERB = lazy(r"\bsupervisorctl (restart|start|stop|tail) ([\w:.-]+)")


def _name_log_owners(section: Section, programs: list[Program]) -> None:
    """A finding about a program's log guesses the program from the file's name
    (comfyui_stderr.log); the supervisor program that writes the file is the name to use."""
    known = {p.fullname for p in programs}
    by_path = _log_owners(programs)
    for finding in list(section.findings):
        owner = by_path.get(finding.subject) or by_path.get(os.path.realpath(finding.subject))
        if owner is None:
            continue
        hint = _SUPERVISORCTL_VERB.sub(_renamer(owner, known), finding.hint)
        if hint != finding.hint:
            _replace(section, finding, finding._replace(hint=hint))


def _renamer(owner: str, known: set[str]) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement: "supervisorctl VERB NAME" with `owner` for a NAME that is no
    supervisor program."""

    def rename(match: re.Match[str]) -> str:
        if match.group(2) in known:
            return match.group(0)
        return f"supervisorctl {match.group(1)} {owner}"

    return rename


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
    programs: list[Program],
    config: Config,
) -> None:
    """The X server down explains the window manager, VNC and the GUI app failing, but only
    those whose own log says they cannot reach this display, or that name no cause at all.
    Its fix names the program that serves X and that program's state."""
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
    serving = serving_program(display.data, programs, config)
    by_fullname = {p.fullname: p for p in programs}
    serving_info: dict[str, Any] | None = None
    if serving is not None:
        name = serving.fullname
        serving_info = {"name": name, "state": serving.state, "pid": serving.pid}
    if supervisor is not None:
        for finding in list(supervisor.findings):
            program = by_fullname.get(finding.subject)
            if program is None:
                continue
            if program is serving:
                if finding.rule in GENERIC_RULES:
                    merged = _absorb(merged, f"{finding.subject}: {finding.title}.", finding)
                    supervisor.findings.remove(finding)
                elif serving_info is not None:
                    serving_info["cause"] = finding.title  # its own finding says why
                continue
            if _down_for_want_of_display(finding, program, config):
                merged = _absorb(merged, f"{finding.subject}: {finding.title}.", finding)
                supervisor.findings.remove(finding)
    if ports is not None:
        for finding in list(ports.findings):
            service = finding.subject.rpartition(":")[0]
            # A port served by an X client (VNC, noVNC) closes with the X server.
            if finding.rule == "not-listening" and _needs_display(service, config):
                merged = _absorb(merged, f"Port {finding.subject} has no listener.", finding)
                ports.findings.remove(finding)
    if "lock" in display.data and (serving_info is not None or supervisor is not None):
        from healthcheck.display_fixes import x_server_down_hint

        merged = merged._replace(hint=x_server_down_hint(display.data, serving_info))
    _replace(display, down, merged)


def _display_complaints(
    supervisor: Section, programs: list[Program]
) -> list[tuple[Finding, Program, str]]:
    """(finding, its program, the display its log says it cannot reach) for each program
    whose finding is that it cannot reach a named display."""
    by_fullname = {p.fullname: p for p in programs}
    found = []
    for finding in supervisor.findings:
        program = by_fullname.get(finding.subject)
        if program is None or finding.rule not in DISPLAY_RULES:
            continue
        target = unreached_display(program.own_lines())
        if target:
            found.append((finding, program, target))
    return found


def _started_before_x(
    display: Section, supervisor: Section, programs: list[Program], config: Config
) -> None:
    """A program that gave up on the configured display while the X server answers now
    started before the server was ready: starting X is not the fix, starting it again is."""
    connection = display.data.get("connection") or {}
    if not connection.get("answered", connection.get("ok")):
        return
    serving = serving_program(display.data, programs, config)
    before = f"give [program:{serving.name}] a lower priority= than it, " if serving else ""
    for finding, program, target in _display_complaints(supervisor, programs):
        if not _same_display(target, config.display.display):
            continue
        name = finding.subject
        hint = (
            f"The X server for {target} answers now: {name} started before it was ready. "
            f"supervisorctl start {name}; so that it does not happen again, {before}and set "
            f"autorestart=true in [program:{program.name}]."
        )
        _replace(supervisor, finding, finding._replace(hint=hint))


def _aimed_at_another_display(supervisor: Section, programs: list[Program], config: Config) -> None:
    """A program that cannot reach a display other than the configured one is aimed at the
    wrong display: starting an X server there is not the fix, its DISPLAY is."""
    configured = config.display.display
    for finding, program, target in _display_complaints(supervisor, programs):
        if _same_display(target, configured):
            continue
        hint = (
            f"{finding.subject} aims at display {target}, but this box's X server is "
            f'{configured}: set environment=DISPLAY="{configured}" in [program:{program.name}] '
            f"(or unset the DISPLAY it inherits), then supervisorctl update; "
            f"supervisorctl start {finding.subject}."
        )
        _replace(supervisor, finding, finding._replace(hint=hint))


def serving_program(
    data: dict[str, Any], programs: list[Program], config: Config
) -> Program | None:
    """The supervisor program that runs (or should run) the X server of the display.

    The running server's own environment or pid says it for sure; a server that is down is
    found by the program's name (`display.server_programs`), else by its log, which an X
    server starts with its banner.
    """
    server = data.get("server") or {}
    for program in programs:
        fullname = program.fullname
        if server.get("program") == fullname or (
            server.get("pid") and program.pid == server.get("pid")
        ):
            return program
    names = [n.lower() for n in config.display.server_programs]
    for exact in (True, False):
        for program in programs:
            name = program.name.lower()
            if any(name == n if exact else name.startswith(n) for n in names):
                return program
    for program in programs:
        if any(_X_SERVER_BANNER.search(line) for line in program.own_lines()):
            return program
    return None


def _down_for_want_of_display(finding: Finding, program: Program, config: Config) -> bool:
    """Whether the X server being down explains this program's failure.

    Only a finding that names no other cause (the display one, or a bare "it failed") is a
    candidate; then its own log must say it cannot reach the configured display, or, saying
    nothing of a display, have no error line of its own and be a program that needs X.
    A missing module or library, a held lock, a port in use, DISPLAY unset or another
    display are causes of their own: the program keeps its finding.
    """
    if finding.rule not in (*DISPLAY_RULES, *GENERIC_RULES):
        return False
    lines = program.own_lines()
    target = unreached_display(lines)
    if target is not None:
        return target == "" or _same_display(target, config.display.display)
    if finding.rule in DISPLAY_RULES:
        return True  # the rule saw it in the spawn error or a line cut from the tail
    if any(looks_like_error(line) for line in lines):
        return False
    return _needs_display(finding.subject, config)


def unreached_display(lines: list[str]) -> str | None:
    """The display the newest "cannot open display" line names ("" when it names none);
    None when no line says so (or only that DISPLAY is unset)."""
    for line in reversed(lines):
        found = _CANNOT_REACH_DISPLAY.search(line)
        if not found:
            continue
        rest = found.group("rest") or found.group("rest2") or ""
        name = _DISPLAY_NAME.search(rest)
        if name:
            return name.group(0)
        return None if _NO_DISPLAY_NAME.search(line) else ""
    return None


def _same_display(value: str, configured: str) -> bool:
    from healthcheck import x11

    try:
        return x11.same_display(value, x11.parse_display(configured))
    except ValueError:
        return False


def window_manager_program(
    display_data: dict[str, Any], programs: list[Program], config: Config | None = None
) -> Program | None:
    """The supervisor program that runs the window manager: the one its process says, else
    the one named after it (icewm, icewm-session), else one of the names
    `[display] window_manager_programs` gives (wm, desktop), else the one whose log speaks
    as it ("IceWM: Can't open display")."""
    generic = {n.lower() for n in (config or Config()).display.window_manager_programs}
    wm = display_data.get("window_manager") or {}
    binary = str(wm.get("name") or "").lower()
    by_fullname = {p.fullname: p for p in programs}
    for proc in wm.get("processes") or []:
        if proc.get("program") in by_fullname:
            return by_fullname[proc["program"]]
    if not binary:
        return None
    for program in programs:
        name = program.name.lower()
        if name == binary or name.startswith(binary) or binary.startswith(name + "-"):
            return program
    for program in programs:
        if program.name.lower() in generic:
            return program
    for program in programs:
        if any(binary in line.lower() for line in program.own_lines()):
            return program
    return None


def _name_novnc_program(
    display: Section, supervisor: Section | None, programs: list[Program], config: Config
) -> None:
    """The supervisor program that runs noVNC (by `[services] programs`, as the ports are
    joined to theirs), named in the display section so that its noVNC line and supervisor's
    table agree on it. Only when supervisor was read: without it nothing is known."""
    novnc = display.data.get("novnc")
    if supervisor is None or not isinstance(novnc, dict):
        return
    program = program_for_service("novnc", programs, config)
    novnc["program"] = program.fullname if program is not None else None


def _fold_window_manager(
    display: Section, supervisor: Section | None, programs: list[Program], config: Config
) -> None:
    """A window manager that is down because of its own program's cause: that one finding.
    One that is merely not started: the display's finding, naming its program."""
    symptoms = [f for f in display.findings if f.rule in ("wm-not-running", "wm-wrong-display")]
    if not symptoms:
        return
    program = window_manager_program(display.data, programs, config)
    if program is None:
        return
    fullname = program.fullname
    original = _finding_about(supervisor, fullname) if supervisor is not None else None
    cause = original
    for symptom in symptoms:
        if cause is not None:
            cause = _absorb(cause, "", symptom)
            display.findings.remove(symptom)
        elif symptom.rule == "wm-not-running":
            state = program.state or "UNKNOWN"
            from healthcheck.display_fixes import wm_not_running_hint

            hint = wm_not_running_hint(display.data["display"], symptom.subject, fullname)
            if state in ("STOPPED", "EXITED"):
                hint = f"{fullname} is {state}: supervisorctl start {fullname}. {hint}"
            _replace(display, symptom, symptom._replace(hint=hint))
    if supervisor is not None and original is not None and cause is not None:
        _replace(supervisor, original, cause)


def _needs_display(program: str, config: Config) -> bool:
    name = program.lower().split(":")[-1]
    return _display_client_name(tuple(config.display.clients))(name) is not None


@functools.lru_cache(maxsize=8)
def _display_client_name(clients: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """A search for any of `clients` at the start of a name or of a word of it (after _ or
    -): one pattern for the list, compiled once, not one per client and program."""
    if not clients:
        return lambda name: None
    words = "|".join(re.escape(w.lower()) for w in clients)
    return re.compile(rf"(^|[_-])(?:{words})").search


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
    return cause._replace(detail=f"{detail} {note}".strip(), evidence=evidence)


def _replace(section: Section, old: Finding, new: Finding) -> None:
    section.findings[section.findings.index(old)] = new
