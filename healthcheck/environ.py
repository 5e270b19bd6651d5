"""Whose environment to report: our own, pid 1's, or a named process's.

Under cron our own environment is nearly empty, while the container's variables (CUDA_*,
VNC_*, JUPYTER_*) live in pid 1 and the processes it started. The redactor uses this too, to
learn secret values, so reading is cheap (one /proc file, one process scan at most) and has
no side effects. Anything unreadable falls back to our own environment and says why.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import psutil

from healthcheck.processes import interpreted_script, process_rows, shared

SELF = "self"
PID1 = "pid1"
PROCESS_PREFIX = "process:"


class EnvironmentSnapshot(NamedTuple):
    """The variables read, where from, and why not from where asked (if so)."""

    variables: dict[str, str]
    source_requested: str
    source_used: str  # "self", "pid1 (/proc/1/environ)", "process:supervisord (pid 123)"
    fallback_reason: str | None = None

    @property
    def fell_back(self) -> bool:
        return self.fallback_reason is not None


def read_environment(source: str, serverurl: str | None = None) -> EnvironmentSnapshot:
    """The environment named by `source`: "self", "pid1" or "process:NAME".

    For "process:supervisord" with the box's `serverurl`, the supervisord that serves it:
    on a shared host the oldest supervisord may be another box's.
    Never raises for an unreadable process: that falls back to os.environ with the reason.
    An unknown `source` form is a programming error (config validation rejects it) and raises.
    Inside a run (`processes.shared_scan`) it is read once, whoever asks: the env and gpu
    collectors, the rules' probe and the redactor see the same variables.
    """
    return shared(("environment", source, serverurl), lambda: _read(source, serverurl))


def _read(source: str, serverurl: str | None) -> EnvironmentSnapshot:
    if source == SELF:
        return EnvironmentSnapshot(dict(os.environ), source, SELF)
    if source == PID1:
        return _from_pid(1, source, f"{PID1} (/proc/1/environ)")
    if source.startswith(PROCESS_PREFIX) and len(source) > len(PROCESS_PREFIX):
        name = source[len(PROCESS_PREFIX) :]
        pid = _own_supervisord(serverurl) if name == "supervisord" and serverurl else None
        if pid is None:
            pid = find_process(name)
        if pid is None:
            return _fallback(source, f"no process named {name!r} is running")
        return _from_pid(pid, source, f"{source} (pid {pid})")
    raise ValueError(f"unknown environment source {source!r} (self, pid1 or process:NAME)")


def _own_supervisord(serverurl: str) -> int | None:
    from healthcheck.supervisor_client import own_supervisord_pids

    return min(own_supervisord_pids(serverurl), default=None)


def environ_of(pid: int) -> dict[str, str]:
    """The environment of process `pid`, from /proc/PID/environ: the one reader every part
    uses. OSError (FileNotFoundError, PermissionError, ...) when it cannot be read."""
    with open(f"/proc/{pid}/environ", "rb") as handle:
        return parse_environ(handle.read())


def parse_environ(raw: bytes) -> dict[str, str]:
    """Parse /proc/PID/environ: NUL-separated NAME=VALUE entries.

    Bytes that are not UTF-8 are replaced rather than rejected (one odd variable must not
    hide the rest); entries without a name are skipped; the first of duplicates wins, as
    with getenv(3).
    """
    variables: dict[str, str] = {}
    for entry in raw.split(b"\0"):
        name, sep, value = entry.partition(b"=")
        if not sep or not name:
            continue
        key = name.decode("utf-8", "replace")
        variables.setdefault(key, value.decode("utf-8", "replace"))
    return variables


def find_process(name: str) -> int | None:
    """The pid of the oldest process called `name`, other than ourselves.

    An exact process name wins over a command-line match (argv[0]'s basename, or the
    script an interpreter runs); zombies are taken only when nothing else matches,
    since they have no environment left to read.
    """
    me = os.getpid()
    exact: list[tuple[bool, float, int]] = []
    by_cmdline: list[tuple[bool, float, int]] = []
    for row in process_rows():
        if row.pid == me:
            continue
        if row.name == name:
            exact.append((row.zombie, row.create_time() or 0.0, row.pid))
        # A name found nowhere in the command line (most processes) is told at C speed,
        # before the basenames are taken.
        elif name in "\0".join(row.cmdline) and name in _cmdline_names(list(row.cmdline)):
            by_cmdline.append((row.zombie, row.create_time() or 0.0, row.pid))
    for candidates in (exact, by_cmdline):
        if candidates:
            return min(candidates)[2]
    return None


def _cmdline_names(cmdline: list[str]) -> set[str]:
    if not cmdline:
        return set()
    # `python3 /usr/bin/supervisord` has the name python3 and argv[0] python3.
    names = {os.path.basename(cmdline[0])}
    script = interpreted_script(cmdline)
    if script:
        names.add(os.path.basename(script))
    return names


def _from_pid(pid: int, source: str, used: str) -> EnvironmentSnapshot:
    path = f"/proc/{pid}/environ"
    try:
        variables = environ_of(pid)
    except (FileNotFoundError, ProcessLookupError):
        # Zombies and kernel threads keep a /proc entry, but have no environment: depending
        # on the kernel, reading it fails with ESRCH or gives nothing.
        return _fallback(source, _no_environment(pid, path))
    except PermissionError:
        return _fallback(source, f"permission denied reading {path}")
    except OSError as exc:
        return _fallback(source, f"cannot read {path}: {exc.strerror or exc}")
    if not variables:
        return _fallback(source, _no_environment(pid, path))
    return EnvironmentSnapshot(variables, source, used)


def _no_environment(pid: int, path: str) -> str:
    """Why pid has no environment to read."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return f"pid {pid} is a zombie: it has exited and its environment is gone"
        if not proc.cmdline():
            return f"pid {pid} is a kernel thread: it has no environment"
    except psutil.Error:
        return f"process {pid} does not exist ({path} not found)"
    return f"{path} is empty (pid {pid} runs with an empty environment)"


def _fallback(source: str, reason: str) -> EnvironmentSnapshot:
    return EnvironmentSnapshot(dict(os.environ), source, SELF, reason)
