"""How a supervisor program that is down (or a running one that cannot work) is explained.

The knowledge is data: the catalogue's `program` entries (healthcheck/knowledge/failures/*.toml,
read by healthcheck.catalogue) are tried in order, and the first that matches the program's
log, spawn error, exit status or signal decides the finding. What an entry cannot see in the
log (the kernel's OOM kills, the cgroup's memory limit, NVML, an X lock file, a filesystem's
use) comes from the probes below, which the entry names in `requires` (the probe must say yes)
or `facts` (it only adds fields); each is read at most once per run, and only when an entry
that needs it is tried.
"""

from __future__ import annotations

import os
import re
import socket
import stat
from collections.abc import Callable
from typing import Any

from healthcheck.catalogue import Entry, catalogue, never_decisive
from healthcheck.config import Config
from healthcheck.lazyre import lazy
from healthcheck.logtail import looks_like_error
from healthcheck.model import Finding, Status
from healthcheck.program import Program

EVIDENCE_LINES = 5
RUNNING_TAIL = 5  # a RUNNING program is judged on its newest lines only
CONNECT_TIMEOUT = 0.5
MEMORY_USERS = 3
CGROUP = "/sys/fs/cgroup"
# Above this a cgroup v1 limit means "no limit" (the kernel's page-rounded LONG_MAX).
NO_LIMIT = 1 << 60

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

# Supervisor states that need no finding (a RUNNING program is still judged on its newest
# lines by the entries marked `running`).
QUIET = {"RUNNING", "STARTING", "STOPPING"}


def pip_package(module: str) -> str:
    """The `pip install` name for an import name: PySide6.QtCore -> PySide6, cv2 -> opencv."""
    if module in PIP_PACKAGES:
        return PIP_PACKAGES[module]
    top = module.split(".")[0]
    return PIP_PACKAGES.get(top, top)


# --- facts outside the program's log ---------------------------------------------------------


class Probe:
    """What the box says beyond a program's log, read lazily and at most once per run."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._cache: dict[str, Any] = {}

    def _once(self, key: str, read: Callable[[], Any]) -> Any:
        if key not in self._cache:
            try:
                self._cache[key] = read()
            except Exception:  # a probe is a nicety: never the reason a section fails
                self._cache[key] = None
        return self._cache[key]

    def kernel_lines(self) -> list[tuple[str | None, str]]:
        """The kernel's OOM-killer lines, (time, text)."""

        def read() -> list[tuple[str | None, str]]:
            from healthcheck.xid import read_kernel_log

            gpu = self.config.gpu
            log = read_kernel_log(gpu.kernel_log, gpu.dmesg_timeout, gpu.kernel_log_lines)
            return [(t, x) for t, x in log.lines if _OOM_KILL.search(x)]

        return self._once("kernel", read) or []

    def cgroup(self) -> dict[str, Any]:
        """{memory_limit: text, oom_kill: count or None} of this container's memory cgroup."""
        return self._once("cgroup", _read_cgroup) or {"memory_limit": "unknown", "oom_kill": None}

    def memory_users(self) -> str:
        return self._once("memory_users", _memory_users) or "unknown"

    def nvml(self) -> dict[str, Any]:
        return self._once("nvml", _read_nvml) or {}

    def environment(self) -> dict[str, str]:
        def read() -> dict[str, str]:
            from healthcheck.environ import read_environment

            config = self.config
            return dict(read_environment(config.env.source, config.supervisor.serverurl).variables)

        return self._once("env", read) or {}

    def program_environment(self, name: str) -> dict[str, str]:
        """`environment=` of [program:NAME] in the supervisord.conf serving our serverurl."""
        return self._once(f"progenv{name}", lambda: _program_environment(self.config, name)) or {}

    def x_lock(self, number: str) -> dict[str, Any] | None:
        """The X lock file of display `number`: its pid, whether it lives, what it is."""
        return self._once(f"xlock{number}", lambda: _read_x_lock(number))

    def x11_unix(self) -> dict[str, str]:
        return self._once("x11unix", _read_x11_unix) or {"owner": "unknown", "mode": "unknown"}

    def disk(self, path: str | None) -> dict[str, str]:
        return self._once(f"disk{path}", lambda: _disk_usage(path)) or {}

    def refused(self, target: str) -> bool:
        """Whether a TCP connection to host:port is refused right now."""
        return bool(self._once(f"refused{target}", lambda: _refused(target)))

    def port_holder(self, port: str) -> str:
        return self._once(f"port{port}", lambda: _port_holder(port)) or "unknown"


class CannedProbe(Probe):
    """A probe that answers from a catalogue case's `probe` table, and reads nothing."""

    def __init__(self, config: Config, canned: dict[str, Any]) -> None:
        super().__init__(config)
        self.canned = canned

    def kernel_lines(self) -> list[tuple[str | None, str]]:
        return [(None, line) for line in self.canned.get("kernel", [])]

    def cgroup(self) -> dict[str, Any]:
        return {"memory_limit": "unknown", "oom_kill": None, **self.canned.get("cgroup", {})}

    def memory_users(self) -> str:
        return str(self.canned.get("memory_users", "unknown"))

    def nvml(self) -> dict[str, Any]:
        return dict(self.canned.get("nvml", {}))

    def environment(self) -> dict[str, str]:
        return dict(self.canned.get("env", {}))

    def program_environment(self, name: str) -> dict[str, str]:
        return dict(self.canned.get("program_env", {}))

    def x_lock(self, number: str) -> dict[str, Any] | None:
        lock = self.canned.get("x_lock")
        return None if lock is None else {"file": f"/tmp/.X{number}-lock", **lock}

    def x11_unix(self) -> dict[str, str]:
        return {"owner": "root", "mode": "1777", **self.canned.get("x11_unix", {})}

    def disk(self, path: str | None) -> dict[str, str]:
        return dict(self.canned.get("disk", {}))

    def refused(self, target: str) -> bool:
        return bool(self.canned.get("refused", False))

    def port_holder(self, port: str) -> str:
        return str(self.canned.get("port_holder", "unknown"))


Fields = dict[str, Any]
ProbeFn = Callable[[Probe, Program, Fields], "Fields | None"]

_OOM_KILL = lazy(
    r"Out of memory: Kill(?:ed)? process (?P<pid>\d+) \((?P<name>[^)]+)\)"
    r"|oom-kill:.*\btask=(?P<task>[^,\s]+),pid=(?P<tpid>\d+)"
    r"|Memory cgroup out of memory: Kill(?:ed)? process (?P<cpid>\d+) \((?P<cname>[^)]+)\)"
    # Older kernels log the kill on a line of its own, after "Out of memory: Kill process".
    r"|\bKilled process (?P<kpid>\d+) \((?P<kname>[^)]+)\)",
    re.IGNORECASE,
)


def _oom(probe: Probe, program: Program, fields: Fields) -> Fields | None:
    started = program.started
    kills_seen = [
        found
        for when, text in probe.kernel_lines()
        # A kill before the program's current start is history, not its cause.
        if not (started and when and len(when) == len(started) and when < started)
        and (found := _OOM_KILL.search(text))
    ]
    cgroup = probe.cgroup()
    kills = cgroup.get("oom_kill")
    if not kills_seen and not (isinstance(kills, int) and kills > 0):
        return None
    if kills_seen:
        found = kills_seen[-1]
        pid = found.group("pid") or found.group("tpid") or found.group("cpid") or found["kpid"]
        name = found.group("name") or found.group("task") or found.group("cname") or found["kname"]
        evidence = f"The kernel's OOM killer killed process {pid} ({name})."
    else:
        evidence = (
            f"The container's memory cgroup counts {kills} OOM kill{'s' if kills != 1 else ''}."
        )
    return {
        "oom_evidence": evidence,
        "memory_limit": cgroup.get("memory_limit"),
        "memory_users": probe.memory_users(),
    }


def _memory(probe: Probe, program: Program, fields: Fields) -> Fields:
    return {
        "memory_limit": probe.cgroup().get("memory_limit"),
        "memory_users": probe.memory_users(),
    }


def _nvml(probe: Probe, program: Program, fields: Fields) -> Fields:
    return {
        "gpu_name": "the GPU",
        "compute_capability": "unknown (NVML could not say)",
        "driver_version": "unknown",
        "driver_cuda": "unknown",
        "nvml_gpus": "no GPU (NVML could not be read)",
        **probe.nvml(),
    }


def _cuda_versions(probe: Probe, program: Program, fields: Fields) -> Fields:
    found = fields.get("found")  # PyTorch's "found version 11040": CUDA 11.4
    out: Fields = {}
    if found and found.isdigit():
        out["driver_cuda"] = f"{int(found) // 1000}.{int(found) % 1000 // 10}"
    runtime = probe.environment().get("CUDA_VERSION")
    out["runtime_cuda"] = runtime or "newer (CUDA_VERSION is not set in the container)"
    return out


def _cuda_env(probe: Probe, program: Program, fields: Fields) -> Fields:
    """The variables as the program saw them: its own environment= over the container's."""
    container = probe.environment()
    own = probe.program_environment(program.name)
    out = {}
    for variable in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        if variable in own:
            shown = own[variable] or '""'
            value = f"{shown} (set in [program:{program.name}])"
        else:
            value = container.get(variable, "(unset)")
        out[variable.lower()] = value
    return out


def _x_lock(probe: Probe, program: Program, fields: Fields) -> Fields:
    number = str(fields.get("lock_display", fields["display_number"]))
    lock = probe.x_lock(number)
    if lock is None:
        return {
            "lock_file": f"/tmp/.X{number}-lock",
            "lock_pid": "none",
            "lock_holder": "no lock file now",
        }
    return {
        "lock_file": lock["file"],
        "lock_pid": str(lock["pid"]),
        "lock_holder": lock.get("holder") or "unknown",
    }


def _x_lock_stale(probe: Probe, program: Program, fields: Fields) -> Fields | None:
    number = str(fields.get("lock_display", fields["display_number"]))
    lock = probe.x_lock(number)
    if lock is None or lock.get("alive"):
        return None
    return {
        "lock_file": lock["file"],
        "lock_pid": str(lock["pid"]),
        "lock_holder": lock.get("holder") or "no such process",
    }


def _x11_unix(probe: Probe, program: Program, fields: Fields) -> Fields:
    now = probe.x11_unix()
    return {"x11_unix_owner": now["owner"], "x11_unix_mode": now["mode"]}


def _library_package(probe: Probe, program: Program, fields: Fields) -> Fields | None:
    package = catalogue().libraries.get(fields.get("library", ""))
    return {"package": package} if package else None


def _pip_package(probe: Probe, program: Program, fields: Fields) -> Fields:
    return {"package": pip_package(fields.get("module", ""))}


def _probe_disk_usage(probe: Probe, program: Program, fields: Fields) -> Fields:
    return {"filesystem": "the filesystem", "disk_use": "full", **probe.disk(fields.get("path"))}


def _target_refused(probe: Probe, program: Program, fields: Fields) -> Fields | None:
    target = fields.get("target")
    if program.state == "RUNNING":
        # A running proxy's old complaint matters only while its target still refuses.
        return {} if target and probe.refused(target) else None
    return {} if target else {"target": "its target"}


def _display_number_target(probe: Probe, program: Program, fields: Fields) -> Fields | None:
    """A proxy aimed at host:N with N a display number (VNC listens on 5900+N)."""
    number = fields.get("target_display")
    if not number or _target_refused(probe, program, fields) is None:
        return None
    return {"vnc_port": str(5900 + int(number))}


def _probe_port_holder(probe: Probe, program: Program, fields: Fields) -> Fields:
    port = fields.get("port")
    if not port:
        return {"port": "(see ss -ltnp)", "port_holder": "unknown"}
    return {"port_holder": probe.port_holder(port)}


def _no_error_in_log(probe: Probe, program: Program, fields: Fields) -> Fields | None:
    """Only when the program's own log reports no error (else that error is the story)."""
    log = program.diagnosis_log or program.log
    lines = [*(log.get("stdout") or []), *(log.get("stderr") or [])]
    if any(looks_like_error(x) and not never_decisive(x) for x in lines):
        return None
    return {}


PROBES: dict[str, ProbeFn] = {
    "no_error_in_log": _no_error_in_log,
    "oom": _oom,
    "memory": _memory,
    "nvml": _nvml,
    "cuda_versions": _cuda_versions,
    "cuda_env": _cuda_env,
    "x_lock": _x_lock,
    "x_lock_stale": _x_lock_stale,
    "x11_unix": _x11_unix,
    "library_package": _library_package,
    "pip_package": _pip_package,
    "disk_usage": _probe_disk_usage,
    "target_refused": _target_refused,
    "display_number_target": _display_number_target,
    "port_holder": _probe_port_holder,
}


# --- judging one program ---------------------------------------------------------------------


def program_lines(program: Program) -> list[str]:
    """What supervisord and the program said, oldest first, spawn error last (it is newest).

    The collector's longer tails when it kept them (`diagnosis_log`), else the shown ones.
    """
    log = program.diagnosis_log or program.log
    lines = [*(log.get("stdout") or []), *(log.get("stderr") or [])]
    if program.spawnerr:
        lines.append(program.spawnerr)
    return lines


def program_findings(
    programs: list[Program], config: Config, probe: Probe | None = None
) -> list[Finding]:
    """One finding per program that is down (or running but unable to work)."""
    probe = probe or Probe(config)
    findings = []
    for program in programs:
        finding = explain_program(program, config, probe)
        if finding is not None:
            findings.append(finding)
    return findings


def explain_program(program: Program, config: Config, probe: Probe | None = None) -> Finding | None:
    probe = probe or Probe(config)
    state = program.state or "UNKNOWN"
    name = program.fullname
    exitstatus = program.exitstatus
    signal = program.exitsignal
    fields = _base_fields(program, config)
    if state in QUIET:
        if state != "RUNNING":
            return None
        log = program.log
        tail = [
            *(log.get("stdout") or [])[-RUNNING_TAIL:],
            *(log.get("stderr") or [])[-RUNNING_TAIL:],
        ]
        if not any(looks_like_error(line) for line in tail):
            return None  # the usual case: nothing to judge, and no catalogue to read
        for entry in catalogue().of_kind("program"):
            if entry.running:
                matched = match_entry(entry, program, tail, probe, fields)
                if matched is not None:
                    running = f"pid {program.pid}"
                    return _finding(entry, name, entry.status, state, running, tail, *matched)
        return None
    if state == "EXITED" and not exitstatus and not signal:
        return None  # a one-shot program that finished as expected
    if state == "STOPPED":
        if not program.started:
            return None  # never started (autostart=false): nothing went wrong
        entry = catalogue().by_id("supervisor.program-stopped")
        title, detail, fix = entry.render(fields)
        return Finding("supervisor", entry.rule, name, entry.status, title, detail, fix)
    lines = program_lines(program)
    for entry in catalogue().of_kind("program"):
        matched = match_entry(entry, program, lines, probe, fields)
        if matched is not None:
            severity = Status.UNKNOWN if state == "UNKNOWN" else entry.status
            return _finding(entry, name, severity, state, fields["status_text"], lines, *matched)
    raise AssertionError("the catalogue's fallback entry matches every program")  # pragma: no cover


def _base_fields(program: Program, config: Config) -> Fields:
    exitstatus = program.exitstatus
    signal = program.exitsignal
    if signal:
        status_text = f"terminated by {signal}"  # supervisord's own words
    elif exitstatus is not None:
        status_text = f"exit status {exitstatus}"
    else:
        status_text = "no exit status"
    display = config.display.display
    return {
        "program": program.fullname,
        "name": program.name,
        "state": program.state or "UNKNOWN",
        "status_text": status_text,
        "display": display,
        "display_number": display.rsplit(":", 1)[-1].split(".")[0],
    }


def match_entry(
    entry: Entry, program: Program, lines: list[str], probe: Probe, base: Fields
) -> tuple[int, Fields] | None:
    """(index of the decisive line, the fields) when `entry` explains `program`, else None."""
    if entry.programs and not entry.programs.search(program.name):
        return None
    index, groups = _search(entry.patterns, lines)
    by_status = program.exitstatus in entry.exitstatus or program.exitsignal in entry.signals
    if not entry.is_fallback and index is None and not by_status:
        return None
    if index is None:
        index = decisive_index(lines)
    fields = {**base, **groups}
    for pattern in entry.context:
        _, more = _search((pattern,), lines)
        for key, value in more.items():
            fields.setdefault(key, value)
    if entry.requires:
        required = PROBES[entry.requires](probe, program, fields)
        if required is None:
            return None
        _fill(fields, required)
    for name in entry.facts:
        _fill(fields, PROBES[name](probe, program, fields) or {})
    _fill(fields, entry.otherwise)
    return index, fields


def _fill(fields: Fields, more: Fields) -> None:
    for key, value in more.items():
        fields.setdefault(key, value)


def _search(patterns: tuple[re.Pattern[str], ...], lines: list[str]) -> tuple[int | None, Fields]:
    """The newest line any of `patterns` matches, and its named groups."""
    for index in range(len(lines) - 1, -1, -1):
        for pattern in patterns:
            found = pattern.search(lines[index])
            if found:
                groups = {k: v.strip() for k, v in found.groupdict().items() if v}
                return index, groups
    return None, {}


def _finding(
    entry: Entry,
    name: str,
    severity: Status,
    state: str,
    status_text: str,
    lines: list[str],
    index: int,
    fields: Fields,
) -> Finding:
    title, extra, fix = entry.render(fields)
    decisive = lines[index] if 0 <= index < len(lines) else ""
    detail = f"State {state}, {status_text}."
    if extra:
        detail += f" {extra}"
    if decisive:
        detail += f" Decisive line: {decisive}"
    start = max(0, index - EVIDENCE_LINES + 1)
    # A retried program logs its traceback once per try: show the last one from its start.
    for i in range(index, start - 1, -1):
        if _TRACEBACK.match(lines[i]):
            start = i
            break
    evidence = tuple(lines[start : index + 1]) if decisive else ()
    return Finding(entry.collector, entry.rule, name, severity, title, detail, fix, evidence)


_EXCEPTION_LINE = lazy(r"^[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)\b:?")
# Python's last traceback line is "Name: message" or "Name" alone; an exception's name is
# dotted (cv2.error, jinja2.exceptions.TemplateNotFound) or CamelCase (StopIteration).
_EXCEPTION_SHAPE = lazy(r"^(?:[A-Za-z_][\w]*\.[\w.]+|[A-Z][\w]*)(?::\s|:$|$)")
_TRACEBACK = lazy(r"^(?P<prefix>.*?)Traceback \(most recent call last\):?\s*$")
_EMPTY_MESSAGE = lazy(r"^[\w.]+:\s*$")


def decisive_index(lines: list[str]) -> int:
    """The line that explains a crash, not merely the last one.

    The end of the last traceback wins: its exception line, the first line after the frames
    (Python prints chained exceptions oldest first, so the last traceback's is the final one),
    or the line after it when its message starts on the next line. A prefix the traceback's
    lines share (docker compose's "name  | ", syslog's "date host prog: ") is looked through.
    Then the last line that looks like an error; then the last non-blank line. supervisord's
    own words ("Exited too quickly") and CUDA's boilerplate are never chosen while the log has
    anything else. -1 when there is nothing.
    """
    candidates = [i for i, line in enumerate(lines) if line.strip() and not never_decisive(line)]
    last_traceback = next((i for i in reversed(candidates) if _TRACEBACK.match(lines[i])), None)
    if last_traceback is not None:
        found = _exception_after(lines, last_traceback)
        if found is not None:
            return found
    for index in reversed(candidates):
        if looks_like_error(lines[index]):
            return index
    if candidates:
        return candidates[-1]
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip():
            return index
    return -1


def _exception_after(lines: list[str], traceback: int) -> int | None:
    """The index of the exception line that ends the traceback starting at `traceback`."""
    found = _TRACEBACK.match(lines[traceback])
    prefix = found.group("prefix") if found else ""
    # The same prefix on each line, its digits free to change (time stamps).
    own = re.compile("".join(r"\d" if c.isdigit() else re.escape(c) for c in prefix))
    for index in range(traceback + 1, len(lines)):
        shared = own.match(lines[index])
        if shared is None:
            continue  # another stream's line (compose's "name exited with code 1")
        text = lines[index][shared.end() :]
        if not text.strip() or text[0].isspace() or text.startswith('File "'):
            continue  # a frame or its source line
        if never_decisive(text):
            continue
        if _EXCEPTION_LINE.match(text) or _EXCEPTION_SHAPE.match(text):
            if _EMPTY_MESSAGE.match(text) and index + 1 < len(lines) and lines[index + 1].strip():
                return index + 1  # "AssertionError:" with its message on the next line
            return index
    return None


# --- reading the box -------------------------------------------------------------------------


def _read_cgroup() -> dict[str, Any]:
    """Memory limit and OOM-kill count of this container (cgroup v2, else v1)."""
    v2, v1 = CGROUP, os.path.join(CGROUP, "memory")
    if os.path.exists(os.path.join(v2, "memory.events")):
        events = _key_values(os.path.join(v2, "memory.events"))
        limit_text = _read(os.path.join(v2, "memory.max")).strip()
        limit = None if limit_text in ("", "max") else int(limit_text)
        peak_text = _read(os.path.join(v2, "memory.peak")).strip()
    else:
        events = _key_values(os.path.join(v1, "memory.oom_control"))
        limit_text = _read(os.path.join(v1, "memory.limit_in_bytes")).strip()
        limit = int(limit_text) if limit_text.isdigit() else None
        if limit is not None and limit >= NO_LIMIT:
            limit = None
        peak_text = _read(os.path.join(v1, "memory.max_usage_in_bytes")).strip()
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    shown = _gib(limit) if limit else f"none set (the host's {_gib(total)})"
    if peak_text.isdigit():
        shown += f", the container's peak use {_gib(int(peak_text))}"
    return {"memory_limit": shown, "oom_kill": events.get("oom_kill")}


def _key_values(path: str) -> dict[str, int]:
    out = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read(4096)
    except OSError:
        return ""


def _gib(size: float) -> str:
    return f"{size / 2**30:.1f} GiB"


def _memory_users() -> str:
    import psutil

    users = []
    for proc in psutil.process_iter(["pid", "name", "memory_info"]):
        info = proc.info
        if info.get("memory_info") is not None:
            users.append((info["memory_info"].rss, info["pid"], info.get("name") or "?"))
    users.sort(reverse=True)
    return ", ".join(f"{n} (pid {p}) {_gib(r)}" for r, p, n in users[:MEMORY_USERS]) or "unknown"


def _read_nvml() -> dict[str, Any]:
    from healthcheck.nvml import import_pynvml, start, stop, system_info, text

    nv, failure = import_pynvml()
    if nv is None:
        return {"nvml_gpus": f"no GPU ({failure.title if failure else 'no NVML'})"}
    failure = start(nv)
    if failure is not None:
        return {"nvml_gpus": f"no GPU ({failure.title})"}
    try:
        system, _ = system_info(nv)
        listed = system.get("count")
        count = listed if isinstance(listed, int) else 0
        names, capabilities = [], []
        for index in range(count):
            handle = nv.nvmlDeviceGetHandleByIndex(index)
            names.append(str(text(nv.nvmlDeviceGetName(handle))))
            try:
                major, minor = nv.nvmlDeviceGetCudaComputeCapability(handle)
                capabilities.append(f"sm_{major}{minor}")
            except Exception:
                capabilities.append("unknown")
    finally:
        stop(nv)
    out: dict[str, Any] = {
        "driver_version": system.get("driver_version"),
        "driver_cuda": system.get("cuda_driver_version"),
        "nvml_gpus": f"{count} GPU{'s' if count != 1 else ''}"
        + (f": {', '.join(names)}" if names else ""),
    }
    if names:
        out["gpu_name"] = names[0]
        out["compute_capability"] = capabilities[0]
    return out


_ENV_ITEM = lazy(r"""(\w+)=(?:"([^"]*)"|'([^']*)'|([^,]*))""")


def _program_environment(config: Config, name: str) -> dict[str, str]:
    from healthcheck.supervisor_client import _read_conf, discover_serverurls

    servers = discover_serverurls()
    confs = {s.config_path for s in servers if s.url == config.supervisor.serverurl}
    if len(confs) != 1:
        return {}  # which supervisord.conf is ours is not certain: say nothing
    section = _read_conf(confs.pop()).get(f"program:{name}", {})
    return {
        m.group(1): next(g for g in m.groups()[1:] if g is not None)
        for m in _ENV_ITEM.finditer(section.get("environment", ""))
    }


def _read_x_lock(number: str) -> dict[str, Any] | None:
    import psutil

    path = f"/tmp/.X{number}-lock"
    text = _read(path).strip()
    if not text.isdigit():
        return None
    pid = int(text)
    try:
        holder: str | None = psutil.Process(pid).name()
    except psutil.Error:
        holder = None
    # After a container restart the lock's pid often names some other process: the lock is
    # stale unless an X server holds it.
    alive = bool(holder and _X_SERVER.search(holder))
    return {"file": path, "pid": pid, "alive": alive, "holder": holder or "no such process"}


_X_SERVER = lazy(r"^X|vnc|xvfb|xorg|xwayland", re.IGNORECASE)


def _read_x11_unix() -> dict[str, str]:
    import pwd

    try:
        info = os.stat("/tmp/.X11-unix")
    except FileNotFoundError:  # a non-root X server cannot create it
        return {"owner": "nobody (it does not exist)", "mode": "none"}
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    return {"owner": owner, "mode": f"{stat.S_IMODE(info.st_mode):04o}"}


def _disk_usage(path: str | None) -> dict[str, str]:
    import shutil

    candidate = path or "/"
    while candidate and not os.path.exists(candidate):
        candidate = os.path.dirname(candidate)
    mount = os.path.realpath(candidate or "/")
    while not os.path.ismount(mount):
        mount = os.path.dirname(mount)
    usage = shutil.disk_usage(mount)
    percent = 100 * usage.used / usage.total if usage.total else 0
    return {
        "filesystem": mount,
        "disk_use": f"{percent:.0f}% used ({_gib(usage.free)} free of {_gib(usage.total)})",
    }


def _refused(target: str) -> bool:
    host, _, port = target.rpartition(":")
    if not port.isdigit():
        return False
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # unreachable or slow is not "refused": say nothing


def _port_holder(port: str) -> str:
    import psutil

    for conn in psutil.net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and str(conn.laddr.port) == port:
            if conn.pid is None:
                return "a process this user cannot see"
            try:
                return f"{psutil.Process(conn.pid).name()} (pid {conn.pid})"
            except psutil.Error:
                return f"pid {conn.pid}"
    return "nothing now (it may have exited)"
