"""Known failures of this environment, and how a failed supervisor program is explained.

`KNOWN_FAILURES` is the one table to extend: a new known issue is one entry (and a test in
tests/test_rules.py). Entries are tried in order, so specific causes come before general ones;
the first entry that matches a program's spawn error or log decides the finding's cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from healthcheck.config import Config
from healthcheck.logtail import looks_like_error
from healthcheck.model import Finding, Status

# Every service of the seed environment has a program whose name says what it is.
SSH_PROGRAMS = r"ssh"
EVIDENCE_LINES = 5


@dataclass(frozen=True)
class KnownFailure:
    """A cause recognised by a line of a program's log (or its spawn error).

    `title` and `hint` are format strings: {program} (its supervisor name), {display}
    (the configured display), {display_number}, and the pattern's named groups.
    `pattern=None` matches any program that `programs` and `exitstatus` select: a fallback
    for a program whose log names no cause.
    """

    rule: str
    pattern: str | None
    title: str
    hint: str
    severity: Status = Status.CRIT
    programs: str | None = None  # regex on the program name; None: any program
    exitstatus: int | None = None  # only when the program exited with this status

    def match(self, program: dict[str, Any], lines: list[str]) -> tuple[int, dict[str, str]] | None:
        """(index of the decisive line, named groups), searching from the newest line."""
        if self.programs and not re.search(self.programs, program["name"], re.IGNORECASE):
            return None
        if self.exitstatus is not None and program.get("exitstatus") != self.exitstatus:
            return None
        if self.pattern is None:
            return (_decisive_index(lines), {})
        compiled = re.compile(self.pattern, re.IGNORECASE)
        for index in range(len(lines) - 1, -1, -1):
            found = compiled.search(lines[index])
            if found:
                return index, {k: v for k, v in found.groupdict().items() if v is not None}
        return None


KNOWN_FAILURES: tuple[KnownFailure, ...] = (
    KnownFailure(
        rule="missing-python-module",
        pattern=r"ModuleNotFoundError: No module named '(?P<module>[^']+)'",
        title="{program} cannot start: Python module '{module}' is missing",
        hint="Install it into the Python that runs {program}: pip install {package}",
    ),
    KnownFailure(
        rule="command-not-found",
        pattern=r"can't find command '(?P<command>[^']+)'",
        title="{program} cannot start: its command {command} does not exist",
        hint="Install it, or fix command= in [program:{program}] of the supervisor config "
        "(then supervisorctl update).",
    ),
    KnownFailure(
        rule="display-unset",
        pattern=r"Can't open display: ?<none>|DISPLAY (?:is )?not set|no display name and no "
        r"\$DISPLAY",
        title="{program} cannot open a display: DISPLAY is unset in its environment",
        hint='Add environment=DISPLAY="{display}" to [program:{program}] in the supervisor '
        "config, then supervisorctl update.",
    ),
    KnownFailure(
        rule="display-unreachable",
        pattern=r"(?:can't|cannot|unable to|could not) (?:open|connect to) display:? *"
        r"\"?(?P<target>[\w.-]*:\d+(?:\.\d+)?)",
        title="{program} cannot reach the X display {target}",
        hint="Start the X server for {target} (the VNC program) before {program}; "
        "supervisorctl status shows whether it runs.",
    ),
    KnownFailure(
        rule="sshd-privsep-dir",
        pattern=r"Missing privilege separation directory: (?P<path>\S+)",
        title="{program} exits: its privilege separation directory {path} is missing",
        hint="mkdir -p {path} && chmod 0755 {path} (in the container start-up, before sshd).",
        programs=SSH_PROGRAMS,
    ),
    KnownFailure(
        rule="sshd-no-host-keys",
        pattern=r"no hostkeys available|Could not load host key|sshd: no hostkeys",
        title="{program} exits: there are no SSH host keys",
        hint="ssh-keygen -A (creates the missing host keys), then supervisorctl start {program}.",
        programs=SSH_PROGRAMS,
    ),
    KnownFailure(
        rule="port-in-use",
        pattern=r"Bind to port (?P<port>\d+) on \S+ failed: Address already in use|"
        r"Address already in use|EADDRINUSE",
        title="{program} cannot listen: the address is already in use",
        hint="Another process holds its port: ss -ltnp shows which; stop it or change the port.",
    ),
    KnownFailure(
        rule="permission-denied",
        pattern=r"(?P<path>/[^\s:'\"]+): Permission denied",
        title="{program} is denied access to {path}",
        hint="ls -l {path}: fix its owner or mode, or run {program} as a user allowed to use it.",
    ),
    KnownFailure(
        rule="file-not-found",
        pattern=r"(?P<path>/[^\s:'\"]+): No such file or directory",
        title="{program} needs {path}, which does not exist",
        hint="Create or restore {path} (a provisioning step that did not run?).",
    ),
    KnownFailure(
        rule="sshd-exit-255",
        pattern=None,
        title="{program} exits with status 255",
        hint="sshd -t -f /etc/ssh/sshd_config names the problem. Usual causes here: missing host "
        "keys (ssh-keygen -A), missing /run/sshd (mkdir -p /run/sshd), port 22 in use "
        "(ss -ltnp).",
        programs=SSH_PROGRAMS,
        exitstatus=255,
    ),
)

# Modules whose pip package has another name (import name -> distribution).
PIP_PACKAGES = {
    "cv2": "opencv-python",
    "PIL": "Pillow",
    "yaml": "PyYAML",
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "OpenGL": "PyOpenGL",
    "Crypto": "pycryptodome",
    "serial": "pyserial",
    "attr": "attrs",
    "google.protobuf": "protobuf",
    "onnxruntime": "onnxruntime-gpu",
}

# Supervisor states that mean a crash, and the ones that need no finding.
CRASHED = {"FATAL", "BACKOFF"}
QUIET = {"RUNNING", "STARTING", "STOPPING"}


def pip_package(module: str) -> str:
    """The `pip install` name for an import name: PySide6.QtCore -> PySide6, cv2 -> opencv."""
    if module in PIP_PACKAGES:
        return PIP_PACKAGES[module]
    top = module.split(".")[0]
    return PIP_PACKAGES.get(top, top)


def program_lines(program: dict[str, Any]) -> list[str]:
    """What supervisord and the program said, oldest first, spawn error last (it is newest)."""
    log = program.get("log") or {}
    lines = [*(log.get("stdout") or []), *(log.get("stderr") or [])]
    if program.get("spawnerr"):
        lines.append(program["spawnerr"])
    return lines


def program_findings(programs: list[dict[str, Any]], config: Config) -> list[Finding]:
    """One finding per program that is down, naming its cause when a known failure matches."""
    findings = []
    for program in programs:
        finding = explain_program(program, config)
        if finding is not None:
            findings.append(finding)
    return findings


def explain_program(program: dict[str, Any], config: Config) -> Finding | None:
    state = program.get("state") or "UNKNOWN"
    name = program.get("fullname") or program["name"]
    exitstatus = program.get("exitstatus")
    if state in QUIET:
        return None
    if state == "EXITED" and not exitstatus:
        return None  # a one-shot program that finished as expected
    if state == "STOPPED":
        if not program.get("started"):
            return None  # never started (autostart=false): nothing went wrong
        return Finding(
            "supervisor",
            "program-stopped",
            name,
            Status.WARN,
            f"{name} is stopped",
            "It was started before and has been stopped (by an operator or supervisorctl). "
            "A stopped program is not a crash, but its service is unavailable.",
            f"supervisorctl start {name}",
        )
    severity = Status.UNKNOWN if state == "UNKNOWN" else Status.CRIT
    lines = program_lines(program)
    status_text = f"exit status {exitstatus}" if exitstatus is not None else "no exit status"
    display = config.display.display
    fields = {
        "program": name,
        "display": display,
        "display_number": display.rsplit(":", 1)[-1].split(".")[0],
    }
    for known in KNOWN_FAILURES:
        matched = known.match(program, lines)
        if matched is None:
            continue
        index, groups = matched
        values = {**fields, **groups}
        if "module" in groups:
            values["package"] = pip_package(groups["module"])
        return _finding(
            known.rule,
            name,
            severity,
            known.title.format(**values),
            state,
            status_text,
            lines,
            index,
            known.hint.format(**values),
        )
    index = _decisive_index(lines)
    return _finding(
        "program-down",
        name,
        severity,
        f"{name} is {state} ({status_text})",
        state,
        status_text,
        lines,
        index,
        f"supervisorctl tail {name} stderr shows more; after fixing: supervisorctl start {name}",
    )


def _finding(
    rule: str,
    name: str,
    severity: Status,
    title: str,
    state: str,
    status_text: str,
    lines: list[str],
    index: int,
    hint: str,
) -> Finding:
    decisive = lines[index] if 0 <= index < len(lines) else ""
    detail = f"State {state}, {status_text}."
    if decisive:
        detail += f" Decisive line: {decisive}"
    start = max(0, index - EVIDENCE_LINES + 1)
    # A retried program logs its traceback once per try: show the last one from its start.
    for i in range(index, start - 1, -1):
        if lines[i].startswith("Traceback (most recent call last)"):
            start = i
            break
    evidence = tuple(lines[start : index + 1]) if decisive else ()
    return Finding("supervisor", rule, name, severity, title, detail, hint, evidence)


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b:?")


def _decisive_index(lines: list[str]) -> int:
    """The line that explains a crash, not merely the last one.

    The final line of the last traceback wins (it names the exception); then the last line
    that looks like an error; then the last non-blank line. -1 when there is nothing.
    """
    traceback_seen = False
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("Traceback (most recent call last)"):
            traceback_seen = True
            break
    if traceback_seen:
        for index in range(len(lines) - 1, -1, -1):
            if _EXCEPTION_LINE.match(lines[index].strip()):
                return index
    for index in range(len(lines) - 1, -1, -1):
        if looks_like_error(lines[index]):
            return index
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip():
            return index
    return -1
