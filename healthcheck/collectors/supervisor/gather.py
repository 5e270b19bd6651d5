"""What the supervisor collector reads: supervisord's state and version, and every program
with the end of its logs.

XML-RPC first (healthcheck.supervisor_client), over the configured serverurl; when that is
the default and there is no socket, over the servers the box's supervisord.conf declares;
when XML-RPC cannot be used at all, `supervisorctl status` as a fallback. The result is a
`Gathered` record; judge.py (with the rules module) says what it means.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import Any

from healthcheck.collectors.supervisor.judge import Gathered
from healthcheck.commands import run_command
from healthcheck.config import Config, LogsConfig, SupervisorConfig
from healthcheck.lazyre import lazy
from healthcheck.loglines import PROGRAM_EVENT
from healthcheck.logtail import clean_line, looks_like_error, read_tail
from healthcheck.program import STREAMS, Program
from healthcheck.record import Record
from healthcheck.supervisor_client import (
    DiscoveredServer,
    ProcessInfo,
    SupervisorClient,
    SupervisorUnavailable,
    discover_serverurls,
    display_url,
)
from healthcheck.timestamps import utc_stamp_of

DEFAULT_SERVERURL = SupervisorConfig().serverurl
SHUTDOWN_STATE_FAULT = 6  # supervisor.xmlrpc.Faults.SHUTDOWN_STATE
MAX_CALL_TIMEOUT = 5.0  # seconds per XML-RPC call, whatever the collector's budget
# Share of the collector's budget it plans to use: it returns before the runner gives up.
BUDGET_SHARE = 0.9
MIN_CALL_S = 0.2  # not worth starting a call with less time than this left
MAX_DISCOVERED = 5  # discovered servers tried after the configured one
MAX_FALLBACK_CONFS = 3
SUPERVISORCTL_STARTUP_S = 2.0  # a Python program's start-up on a busy box
API_TAIL_MAX_BYTES = 64 * 1024
MAIN_LOG_BYTES = 64 * 1024
MAX_EVENTS = 5  # supervisord's own log lines kept per program
# Lines of each log the diagnosis reads: more than the report shows, since the decisive line
# often sits above a long trailer (x11vnc's tips, Qt's plugin list, Xorg's "Please consult").
DIAGNOSIS_LINES = 100
STATES = ("STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN")
# States whose log tail the supervisorctl fallback reads (each read is a supervisorctl run).
TAIL_STATES = frozenset({"FATAL", "BACKOFF", "EXITED", "UNKNOWN"})
EXTRA_BIN_DIRS = ("/usr/local/bin", "/usr/bin", "/usr/local/sbin", "/usr/sbin")
# Spawn errors supervisord sets when a process exited (as opposed to never being forked).
_EXITED_SPAWNERR = ("Exited too quickly", "Bad exit code")

Discover = Callable[[], list[DiscoveredServer]]


def gather(
    config: Config,
    budget: float,
    discover: Discover = discover_serverurls,
    supervisorctl: str = "supervisorctl",
) -> Gathered:
    """One collection within `budget` seconds: through XML-RPC, else supervisorctl, else
    what was tried and why it failed."""
    run = _Run(
        config=config,
        deadline=time.monotonic() + budget * BUDGET_SHARE,
        call_timeout=min(MAX_CALL_TIMEOUT, budget / 2),
        discover=discover,
    )
    connected = run.connect()
    if connected is not None:
        return run.via_xmlrpc(connected)
    first = run.attempts[0]
    fallback_error: str | None
    if first.error.kind == "no-answer":
        # supervisorctl would wait on the same silent socket.
        fallback_error = (
            "supervisorctl not tried: the server accepts connections but does not answer"
        )
    else:
        gathered, fallback_error = run.via_supervisorctl(supervisorctl)
        if gathered is not None:
            return gathered
    return run.unreachable(fallback_error)


class _Attempt(Record):
    __slots__ = ("error", "source", "url")

    def __init__(
        self,
        url: str,  # for display: no credentials
        source: str,
        error: SupervisorUnavailable,
    ) -> None:
        self.url = url
        self.source = source
        self.error = error

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "source": self.source,
            "error": self.error.reason,
            "kind": self.error.kind,
        }


class _Connected(Record):
    __slots__ = ("client", "infos", "source", "state", "version")

    def __init__(
        self,
        client: SupervisorClient,
        source: str,
        state: dict[str, Any],
        version: str | None,
        infos: list[ProcessInfo],
    ) -> None:
        self.client = client
        self.source = source
        self.state = state
        self.version = version
        self.infos = infos


class _Run(Record):
    """One collection: the budget, and what was tried."""

    __slots__ = ("_discovered", "attempts", "call_timeout", "config", "deadline", "discover")

    def __init__(
        self,
        config: Config,
        deadline: float,
        call_timeout: float,
        discover: Discover,
        attempts: list[_Attempt] | None = None,
        _discovered: list[DiscoveredServer] | None = None,
    ) -> None:
        self.config = config
        self.deadline = deadline
        self.call_timeout = call_timeout
        self.discover = discover
        self.attempts = attempts if attempts is not None else []
        self._discovered = _discovered

    @property
    def url(self) -> str:
        return display_url(self.config.supervisor.serverurl)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def discovered(self) -> list[DiscoveredServer]:
        """The box's declared servers, looked up once and only when needed."""
        if self._discovered is None:
            try:
                self._discovered = list(self.discover())
            except Exception:  # psutil or file trouble must not cost the whole section
                self._discovered = []
        return self._discovered

    # --- XML-RPC --------------------------------------------------------------------------

    def connect(self) -> _Connected | None:
        """The first server that answers: the configured one, then (maybe) discovered ones."""
        cfg = self.config.supervisor
        try:
            client = SupervisorClient(cfg.serverurl, cfg.username, cfg.password, self.call_timeout)
        except SupervisorUnavailable as exc:
            self.attempts.append(_Attempt(self.url, "config", exc))
            return None
        connected = self._try(client, "config")
        if connected is not None:
            return connected
        # A custom serverurl is the operator's explicit choice: only the default, which may
        # simply not be where this box's supervisord listens, is worth second-guessing.
        if cfg.serverurl != DEFAULT_SERVERURL or self.attempts[0].error.kind not in (
            "missing",
            "refused",
        ):
            return None
        tried = {cfg.serverurl}
        for server in self.discovered():
            if len(tried) > MAX_DISCOVERED or server.url in tried:
                continue
            tried.add(server.url)
            if self.remaining() < MIN_CALL_S:
                break
            try:
                client = SupervisorClient(
                    server.url,
                    server.username or cfg.username,
                    server.password or cfg.password,
                    min(self.call_timeout, self.remaining()),
                )
            except SupervisorUnavailable as exc:
                self.attempts.append(_Attempt(display_url(server.url), server.source, exc))
                continue
            connected = self._try(client, server.source)
            if connected is not None:
                return connected
        return None

    def _try(self, client: SupervisorClient, source: str) -> _Connected | None:
        try:
            state = client.get_state()
            version = client.get_supervisor_version()
            infos = client.get_all_process_info()
        except SupervisorUnavailable as exc:
            if exc.kind == "fault" and exc.fault_code == SHUTDOWN_STATE_FAULT:
                # Shutting down or restarting, it answers every call, getState included,
                # with this fault: it is there, but says nothing more.
                return _Connected(client, source, {"statename": "SHUTDOWN"}, None, [])
            self.attempts.append(_Attempt(client.display_url, source, exc))
            return None
        return _Connected(client, source, state, version, infos)

    def via_xmlrpc(self, c: _Connected) -> Gathered:
        events = self._main_log_events(c.client) if c.infos else {}
        programs: list[Program] = []
        uptimes: dict[str, int] = {}
        for info in c.infos:
            program, uptime = program_from_info(info, events.get(info.get("name", ""), []))
            self._add_logs(program, c.client)
            programs.append(program)
            if uptime is not None:
                uptimes[program.fullname] = uptime
        programs.sort(key=lambda p: p.fullname)
        state = str(c.state.get("statename"))
        data = {
            "url": c.client.display_url,
            "via": "xmlrpc",
            "state": state,
            "version": c.version,
            "source": c.source,
            "attempts": [a.to_dict() for a in self.attempts],
            "programs": programs,
        }
        return Gathered(data, uptimes, self.url)

    def _main_log_events(self, client: SupervisorClient) -> dict[str, list[str]]:
        """supervisord's own log lines about each program (by program name)."""
        if self.remaining() < MIN_CALL_S:
            return {}
        try:
            text = _utf8_retry(
                lambda n: client.with_timeout(self._call_time()).read_log(n), MAIN_LOG_BYTES
            )
        except SupervisorUnavailable:
            return {}  # logfile=/dev/null, /dev/stdout...: only exit statuses are lost
        # Only a read that filled its window can have begun inside a line.
        partial = len(text.encode("utf-8")) >= MAIN_LOG_BYTES - 3
        lines = clean_log_text(text, None, self.config.logs.max_line_bytes, partial)
        return main_log_events(lines)

    def _call_time(self) -> float:
        return max(MIN_CALL_S, min(self.call_timeout, self.remaining()))

    def _add_logs(self, program: Program, client: SupervisorClient) -> None:
        """The program's log tails: from the files, else through the API."""
        sources: dict[str, str] = {}
        for stream in STREAMS:
            path = program.stdout_logfile if stream == "stdout" else program.stderr_logfile
            longer, source, error = self._stream_log(client, program.fullname, stream, path)
            _keep_tail(program, stream, longer, self.config.logs)
            if source is not None:
                sources[stream] = source
            if error is not None:
                program.log_errors[stream] = error
        values = set(sources.values())
        program.log_source = "xmlrpc" if "xmlrpc" in values else ("file" if values else None)

    def _stream_log(
        self, client: SupervisorClient, fullname: str, stream: str, path: str | None
    ) -> tuple[list[str], str | None, str | None]:
        """(lines, where they came from, why they are missing)."""
        if not path:
            return [], None, None
        logs = self.config.logs
        tail = read_tail(path, _diagnosis_lines(logs), logs.max_line_bytes)
        if tail.error is None:
            if tail.binary:
                return [], "file", f"{path}: binary content, not shown"
            return list(tail.lines), "file", None
        if tail.error.startswith("not a regular file") or tail.error == "is a directory":
            # /dev/stdout and the like: supervisord would read the same thing.
            return [], None, f"{path}: {tail.error}"
        if self.remaining() < MIN_CALL_S:
            return [], None, f"{path}: {tail.error}; not read through XML-RPC: out of time"
        length = api_tail_bytes(logs)
        try:
            got = _utf8_retry(
                lambda n: client.with_timeout(self._call_time()).tail_process_log(
                    fullname, stream, n
                ),
                length,
            )
        except SupervisorUnavailable as exc:
            return [], None, f"{path}: {tail.error}; through XML-RPC: {exc.reason}"
        if not got.text:
            # Not written yet (never started) reads as nothing either way.
            if tail.error == "no such file":
                return [], None, None
            return [], "xmlrpc", None
        lines = clean_log_text(got.text, _diagnosis_lines(logs), logs.max_line_bytes, got.overflow)
        return lines, "xmlrpc", None

    # --- supervisorctl --------------------------------------------------------------------

    def via_supervisorctl(self, name: str) -> tuple[Gathered | None, str | None]:
        """`supervisorctl status` with each discovered conf: what it read, or why not."""
        binary = find_program(name)
        if binary is None:
            return None, f"no {name} on PATH"
        confs: list[str | None] = []
        for server in self.discovered():
            if server.config_path and server.config_path not in confs:
                confs.append(server.config_path)
        if not confs:
            confs = [None]  # supervisorctl's own search for a config
        failures: list[str] = []
        for conf in confs[:MAX_FALLBACK_CONFS]:
            if self.remaining() < MIN_CALL_S:
                failures.append("out of time")
                break
            prefix = [binary, *(["-c", conf] if conf else [])]
            result = run_command([*prefix, "status"], timeout=self._ctl_time())
            output = (result.stdout + result.stderr).strip()
            programs, uptimes = parse_status(result.stdout)
            # LSB status codes: 0 all running, 3 some not; 4 could not ask. Older versions
            # exit 0 whatever happened, but then print no status lines.
            if result.returncode in (0, 3) and (programs or not output):
                for program in programs:
                    if program.state in TAIL_STATES:
                        self._ctl_logs(prefix, program)
                return self._fallback_gathered(conf, programs, uptimes), None
            where = conf or "its default config"
            why = result.error or _first_line(output) or f"exit status {result.returncode}"
            failures.append(f"supervisorctl with {where}: {why}")
        return None, "; ".join(failures)

    def _ctl_time(self) -> float:
        return max(MIN_CALL_S, min(self.remaining(), self.call_timeout + SUPERVISORCTL_STARTUP_S))

    def _ctl_logs(self, prefix: list[str], program: Program) -> None:
        logs = self.config.logs
        got_any = False
        for stream in ("stderr", "stdout"):
            if self.remaining() < MIN_CALL_S:
                program.log_errors[stream] = "not read: out of time"
                continue
            length = api_tail_bytes(logs)
            args = [*prefix, "tail", f"-{length}", program.fullname, stream]
            result = run_command(args, timeout=self._ctl_time())
            if not result.ok:
                why = result.error or _first_line(result.stdout + result.stderr)
                program.log_errors[stream] = f"supervisorctl tail: {why}"
                continue
            # supervisorctl adds a newline of its own after the log's bytes.
            text = result.stdout[:-1] if result.stdout.endswith("\n") else result.stdout
            partial = len(text.encode("utf-8", "replace")) >= length
            longer = clean_log_text(text, _diagnosis_lines(logs), logs.max_line_bytes, partial)
            _keep_tail(program, stream, longer, logs)
            got_any = True
        program.log_source = "supervisorctl" if got_any else None

    def _fallback_gathered(
        self, conf: str | None, programs: list[Program], uptimes: dict[str, int]
    ) -> Gathered:
        url = self._ctl_url(conf)
        data: dict[str, Any] = {
            "url": url,
            "via": "supervisorctl",
            "state": None,  # supervisorctl status does not say
            "version": None,
            "source": conf or "supervisorctl's default config",
            "attempts": [a.to_dict() for a in self.attempts],
            "programs": sorted(programs, key=lambda p: p.fullname),
        }
        return Gathered(data, uptimes, self.url, conf)

    def _ctl_url(self, conf: str | None) -> str:
        """The server URL supervisorctl talks to with `conf` (its own default without one)."""
        for server in self.discovered():
            if server.config_path == conf and server.section == "supervisorctl":
                return display_url(server.url)
        # supervisorctl's built-in default when its config names no serverurl.
        return "http://localhost:9001" if conf else "(supervisorctl default)"

    # --- nothing worked -------------------------------------------------------------------

    def unreachable(self, fallback_error: str | None) -> Gathered:
        data = {
            "url": self.url,
            "via": None,
            "state": None,
            "version": None,
            "source": "config",
            "attempts": [a.to_dict() for a in self.attempts],
            "fallback_error": fallback_error,
            "programs": [],
        }
        return Gathered(data, {}, self.url)


def _diagnosis_lines(logs: LogsConfig) -> int:
    return max(logs.tail_lines, DIAGNOSIS_LINES)


def _shown(lines: list[str], logs: LogsConfig) -> list[str]:
    """The report's share of a longer tail: its last `tail_lines` lines."""
    return lines[-logs.tail_lines :] if logs.tail_lines > 0 else []


def _keep_tail(program: Program, stream: str, longer: list[str], logs: LogsConfig) -> None:
    """A stream's longer tail for the diagnosis, and the report's share of it."""
    if program.diagnosis_log is None:
        program.diagnosis_log = {}
    program.diagnosis_log[stream] = longer
    lines = _shown(longer, logs)
    program.log[stream] = lines
    program.error_lines[stream] = [i for i, x in enumerate(lines) if looks_like_error(x)]


def find_program(name: str) -> str | None:
    """`name` on PATH, else in the usual bin directories (cron's PATH lacks /usr/local/bin)."""
    found = shutil.which(name)
    if found is not None or os.sep in name:
        return found
    for folder in EXTRA_BIN_DIRS:
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


# --- programs -------------------------------------------------------------------------------


def program_from_info(info: ProcessInfo, events: list[str]) -> tuple[Program, int | None]:
    """A program's entry from getAllProcessInfo, and its uptime (seconds) when RUNNING.

    supervisord reports exit status 0 for a process that never exited, and forgets the
    status of one that "exited too quickly" (the usual FATAL): the status is then taken from
    supervisord's own log (`events`), and is None when nobody knows it.
    """
    name = str(info.get("name", ""))
    state = str(info.get("statename") or "UNKNOWN")
    start = int(info.get("start") or 0)
    stop = int(info.get("stop") or 0)
    spawnerr = info.get("spawnerr") or None
    exitstatus: int | None = None
    exitstatus_source: str | None = None
    exitsignal: str | None = None
    if state in ("EXITED", "STOPPED") and start:
        exitstatus, exitstatus_source = int(info.get("exitstatus") or 0), "xmlrpc"
        if exitstatus == -1:  # supervisord's status for a process a signal ended
            exitsignal = last_exit_signal(events)
    elif state in ("FATAL", "BACKOFF") and spawnerr and spawnerr.startswith(_EXITED_SPAWNERR):
        exitstatus = last_exit_status(events)
        exitstatus_source = "supervisord log" if exitstatus is not None else None
        if exitstatus is None:
            exitsignal = last_exit_signal(events)
    program = Program(
        group=str(info.get("group") or name),
        name=name,
        state=state,
        pid=int(info.get("pid") or 0) or None,
        started=utc_stamp_of(start) if start else None,
        stopped=utc_stamp_of(stop) if stop else None,
        exitstatus=exitstatus,
        exitstatus_source=exitstatus_source,
        exitsignal=exitsignal,
        spawnerr=spawnerr,
        # For RUNNING it is "pid N, uptime H:MM:SS": it ticks, so it is not data.
        description=None if state == "RUNNING" else (info.get("description") or None),
        stdout_logfile=info.get("stdout_logfile") or info.get("logfile") or None,
        stderr_logfile=info.get("stderr_logfile") or None,
        supervisord_log=events[-MAX_EVENTS:],
    )
    uptime = None
    if state == "RUNNING" and start:
        uptime = max(0, int(info.get("now") or 0) - start)
    return program, uptime


_EXITED_STATUS = lazy(r"\bexited: \S+ \(exit status (-?\d+)")
_EXITED_SIGNAL = lazy(r"\bexited: \S+ \(terminated by (SIG[A-Z0-9]+)")


def main_log_events(lines: list[str]) -> dict[str, list[str]]:
    """supervisord's log lines, by the program (process name) they are about."""
    events: dict[str, list[str]] = {}
    for line in lines:
        match = PROGRAM_EVENT.search(line)
        if match:
            name = match.group("a") or match.group("b") or match.group("c")
            events.setdefault(name, []).append(line)
    return events


def last_exit_status(events: list[str]) -> int | None:
    """The exit status in the newest "exited:" line; None when it died by a signal or none."""
    for line in reversed(events):
        if "exited: " in line:
            match = _EXITED_STATUS.search(line)
            return int(match.group(1)) if match else None
    return None


def last_exit_signal(events: list[str]) -> str | None:
    """The signal in the newest "exited:" line ("terminated by SIGKILL"); None otherwise."""
    for line in reversed(events):
        if "exited: " in line:
            match = _EXITED_SIGNAL.search(line)
            return match.group(1) if match else None
    return None


# "name   STATE   description" as supervisorctl status prints it.
_STATUS_LINE = lazy(rf"^(?P<name>\S+)\s+(?P<state>{'|'.join(STATES)})(?:\s+(?P<desc>.*))?$")
_RUNNING_DESC = lazy(
    r"^pid (?P<pid>\d+), uptime (?:(?P<days>\d+) days?, )?(?P<h>\d+):(?P<m>\d\d):(?P<s>\d\d)"
)


def parse_status(output: str) -> tuple[list[Program], dict[str, int]]:
    """Programs (unknown fields None) and uptimes from `status`."""
    programs: list[Program] = []
    uptimes: dict[str, int] = {}
    for raw in output.splitlines():
        match = _STATUS_LINE.match(raw.strip())
        if not match:
            continue
        fullname = match.group("name")
        group, _, name = fullname.rpartition(":")
        state = match.group("state")
        program = Program(group=group or name, name=name, state=state)
        desc = (match.group("desc") or "").strip()
        if state == "RUNNING":
            running = _RUNNING_DESC.match(desc)
            if running:
                program.pid = int(running.group("pid"))
                uptimes[fullname] = (
                    int(running.group("days") or 0) * 86400
                    + int(running.group("h")) * 3600
                    + int(running.group("m")) * 60
                    + int(running.group("s"))
                )
        else:
            program.description = desc or None
            # For FATAL and BACKOFF supervisorctl shows the spawn error as the description.
            if state in ("FATAL", "BACKOFF") and desc and not desc.startswith("unknown error"):
                program.spawnerr = desc
        programs.append(program)
    return programs, uptimes


# --- log text -------------------------------------------------------------------------------


# Terminal escapes, as logtail removes them from files (here on text, not bytes).
def api_tail_bytes(logs: LogsConfig) -> int:
    """How much of a log to ask supervisord for: enough for tail_lines of long lines."""
    return max(4096, min(API_TAIL_MAX_BYTES, logs.tail_lines * (logs.max_line_bytes + 1)))


def clean_log_text(
    text: str, tail_lines: int | None, max_line_bytes: int, partial_first: bool
) -> list[str]:
    """The last `tail_lines` lines of `text` (all when None), cleaned as logtail cleans a
    file's lines.

    `partial_first`: the text starts inside a line (it is the end of a longer log), so its
    first line is a fragment and is dropped. Invalid UTF-8 was already replaced on the way.
    """
    if not text:
        return []
    body = text[:-1] if text.endswith("\n") else text
    raw = body.split("\n")
    if partial_first:
        raw = raw[1:]
    out = [line for line in (clean_line(r, max_line_bytes) for r in raw) if line is not None]
    return out if tail_lines is None else out[-tail_lines:] if tail_lines > 0 else []


def _utf8_retry(call: Callable[[int], Any], length: int) -> Any:
    """`call(length)`, retried a byte shorter when supervisord failed on a cut character.

    supervisord decodes the bytes it read as strict UTF-8 and answers HTTP 500 when the read
    began inside a multi-byte character; starting up to 3 bytes later realigns it.
    """
    for shorter in range(4):
        try:
            return call(length - shorter)
        except SupervisorUnavailable as exc:
            if exc.kind != "http" or shorter == 3:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:300]
    return ""
