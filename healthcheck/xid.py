"""Xid errors: NVIDIA's driver reports GPU faults as `NVRM: Xid` lines in the kernel log.

`read_kernel_log` gets the kernel messages from a configured file, or from /dev/kmsg (read
without blocking, bounded), or from `dmesg` under a timeout; inside a container all of them
are often forbidden, and that is reported as data, never raised. `find_xids` picks out the
Xid lines and `explain` gives each code's meaning, severity and what to do from the catalogue
(collectors/gpu/failures/xid.toml, after NVIDIA's Xid catalogue,
docs.nvidia.com/deploy/xid-errors).
The driver's other messages (fallen off the bus, RmInitAdapter failed) and the OOM killer's
lines are kept too: the catalogue's `kernel` entries and the OOM probe read them.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import time
from typing import Any, NamedTuple

import psutil

from healthcheck.catalogue import catalogue
from healthcheck.commands import run_command
from healthcheck.lazyre import lazy
from healthcheck.logtail import read_tail
from healthcheck.record import Record
from healthcheck.timestamps import utc_stamp_of

KMSG = "/dev/kmsg"
# Bounds on reading /dev/kmsg: the ring buffer is a few MiB at most, but a kernel spewing
# messages while we read must not keep us reading for ever.
KMSG_MAX_RECORDS = 200_000
KMSG_SECONDS = 2.0
KMSG_READ_SIZE = 65536  # one record per read(); records are at most a few KiB
MAX_LINE_BYTES = 4096


class XidInfo(NamedTuple):
    """One catalogue entry: what the code means, how bad it is, what to do."""

    code: int
    meaning: str
    severity: str  # "info", "warn" or "crit"
    action: str


@functools.lru_cache(maxsize=1)
def xid_catalogue() -> dict[int, XidInfo]:
    """NVIDIA's Xid codes as the catalogue (collectors/gpu/failures/xid.toml) explains them.

    Severity: crit when the GPU itself needs a reset, a reboot or replacing; warn when an
    application failed (the GPU stays usable) or a repair waits for the next reset; info when
    the message only follows another error.
    """
    return {
        code: XidInfo(code, entry.meaning, entry.severity, entry.fix)
        for code, entry in catalogue().xids().items()
    }


_FATAL = lazy(r"\bfatal\b", re.IGNORECASE)


def explain(code: int, line: str = "") -> XidInfo:
    """The catalogue entry for `code`; an unknown code is worth a look, and crit when the
    driver's own line calls it fatal."""
    known = xid_catalogue().get(code)
    if known is not None:
        return known
    entry_id = "gpu.xid-unknown-fatal" if _FATAL.search(line) else "gpu.xid-unknown"
    entry = catalogue().by_id(entry_id)
    return XidInfo(
        code, "not in healthcheck's catalogue", entry.severity, entry.render({"code": code})[2]
    )


# `NVRM: Xid (PCI:0000:01:00): 79, pid=1234, name=python3, GPU has fallen off the bus.`
# Older drivers leave out "PCI:".
_XID = lazy(
    r"NVRM: Xid \((?:PCI:)?(?P<pci>[0-9A-Fa-f]{1,8}:[0-9A-Fa-f]{1,2}:[0-9A-Fa-f]{1,2}"
    r"(?:\.[0-7])?)\):\s*(?P<code>\d+)\b,?\s*(?P<rest>.*)"
)
_BUS_ID = lazy(r"([0-9A-Fa-f]{1,8}):([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2})(?:\.[0-7])?")
_PID = lazy(r"\bpid=(\d+)")
_NAME = lazy(r"\bname=([^,\s]+)")


class XidEvent(NamedTuple):
    code: int
    pci: str  # normalised: 0000:01:00
    pid: int | None
    process: str | None
    message: str  # the text after the code
    time: str | None  # UTC ISO 8601 from kmsg and dmesg; a file's own stamp, as written
    line: str  # the log line as read

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "pci": self.pci,
            "pid": self.pid,
            "process": self.process,
            "message": self.message,
            "time": self.time,
            "line": self.line,
        }


def pci_key(bus_id: str) -> str | None:
    """0000:01:00 for "PCI:0000:01:00", "00000000:01:00.0" or "0000:01:00.0"; None if not one.

    The kernel log and NVML spell a GPU's PCI address differently; this is what they share.
    """
    text = bus_id.strip()
    if text.upper().startswith("PCI:"):
        text = text[4:]
    found = _BUS_ID.fullmatch(text)
    if not found:
        return None
    domain, bus, device = (int(part, 16) for part in found.groups())
    return f"{domain:04x}:{bus:02x}:{device:02x}"


def parse_xid(line: str, when: str | None = None) -> XidEvent | None:
    """The Xid event in one kernel log line, or None."""
    found = _XID.search(line)
    if not found:
        return None
    rest = found.group("rest").strip()
    pid = _PID.search(rest)
    name = _NAME.search(rest)
    return XidEvent(
        code=int(found.group("code")),
        pci=pci_key(found.group("pci")) or found.group("pci"),
        pid=int(pid.group(1)) if pid else None,
        process=name.group(1) if name else None,
        message=rest,
        time=when,
        line=line.strip(),
    )


# Kernel messages worth keeping: the NVIDIA driver's, and the OOM killer's.
_INTERESTING = lazy(r"Xid|NVRM|NV_ERR_|Killed process|oom-kill|oom_reaper", re.IGNORECASE)


def interesting(line: str) -> bool:
    return _INTERESTING.search(line) is not None


class KernelLog(Record):
    """Kernel messages of interest (Xid, NVRM, OOM kills), and where they came from (or why
    they could not be read)."""

    __slots__ = ("error", "lines", "scanned", "source", "tried")

    def __init__(
        self,
        source: str | None = None,  # "/dev/kmsg", "dmesg" or the configured file
        lines: list[tuple[str | None, str]] | None = None,  # (time, text)
        scanned: int = 0,  # records or lines looked at
        error: str | None = None,  # why no source could be read
        tried: list[str] | None = None,  # "source: why not", for each failure
    ) -> None:
        self.source = source
        self.lines = [] if lines is None else lines
        self.scanned = scanned
        self.error = error
        self.tried = [] if tried is None else tried


def read_kernel_log(path: str = "", timeout: float = 3.0, file_lines: int = 5000) -> KernelLog:
    """Kernel messages of interest (Xid, NVRM, OOM kills) from `path`, else /dev/kmsg, else `dmesg`.

    A configured `path` (a syslog or kern.log copy) is the only source tried: the operator
    chose it. Never raises; an unreadable log is `error`, with every attempt in `tried`.
    """
    log = KernelLog()
    if path:
        tail = read_tail(path, file_lines, MAX_LINE_BYTES)
        if tail.error is not None:
            log.error = f"{path}: {tail.error}"
            log.tried.append(log.error)
            return log
        log.source = path
        log.scanned = len(tail.lines)
        log.lines = [(_syslog_time(line), line) for line in tail.lines if interesting(line)]
        return log
    for reader in (_read_kmsg, _read_dmesg):
        problem = reader(log, timeout)
        if problem is None:
            return log
        log.tried.append(problem)
    log.error = "; ".join(log.tried)
    return log


def find_xids(log: KernelLog) -> list[XidEvent]:
    """Every Xid event in the log, oldest first."""
    events = []
    for when, text in log.lines:
        event = parse_xid(text, when)
        if event is not None:
            events.append(event)
    return events


def _read_kmsg(log: KernelLog, timeout: float) -> str | None:
    """Fill `log` from /dev/kmsg; None on success, else why not."""
    try:
        fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        return f"{KMSG}: {_why(exc)}"
    boot = psutil.boot_time()
    deadline = time.monotonic() + min(timeout, KMSG_SECONDS)
    records = 0
    lines: list[tuple[str | None, str]] = []
    try:
        while records < KMSG_MAX_RECORDS and time.monotonic() < deadline:
            try:
                raw = os.read(fd, KMSG_READ_SIZE)
            except BlockingIOError:
                break  # read everything there was
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue  # records were overwritten while we read: go on from the next
                if records == 0:
                    return f"{KMSG}: {_why(exc)}"
                break
            if not raw:
                break
            records += 1
            header, sep, body = raw.decode("utf-8", "replace").partition(";")
            if not sep:
                continue
            # Continuation lines (" KEY=value") carry device metadata, not the message.
            message = body.split("\n", 1)[0]
            if interesting(message):
                lines.append((_kmsg_time(header, boot), message))
    finally:
        os.close(fd)
    log.source = KMSG
    log.scanned = records
    log.lines = lines
    return None


def _read_dmesg(log: KernelLog, timeout: float) -> str | None:
    result = run_command(["dmesg"], timeout=timeout)
    if result.error is not None:
        return f"dmesg: {result.error}"
    if not result.ok:
        reason = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}"]
        return f"dmesg: {reason[0]}"
    boot = psutil.boot_time()
    out = result.stdout.splitlines()
    log.source = "dmesg"
    log.scanned = len(out)
    log.lines = [(_dmesg_time(line, boot), line) for line in out if interesting(line)]
    return None


def _kmsg_time(header: str, boot: float) -> str | None:
    # "priority,sequence,microseconds since boot,flags"
    parts = header.split(",")
    if len(parts) < 3 or not parts[2].isdigit():
        return None
    return utc_stamp_of(boot + int(parts[2]) / 1e6)


# A syslog line's own time, as written: "Nov 28 10:00:01" or rsyslog's ISO 8601.
_SYSLOG_STAMP = lazy(r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+)")


def _syslog_time(line: str) -> str | None:
    found = _SYSLOG_STAMP.match(line)
    return found.group(0) if found else None


_DMESG_STAMP = lazy(r"^\[\s*(\d+(?:\.\d+)?)\]")


def _dmesg_time(line: str, boot: float) -> str | None:
    found = _DMESG_STAMP.match(line)
    return utc_stamp_of(boot + float(found.group(1))) if found else None


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied (reading the kernel log needs CAP_SYSLOG in a container)"
    if isinstance(exc, FileNotFoundError):
        return "not present in this container"
    return exc.strerror or type(exc).__name__


__all__ = [
    "KernelLog",
    "XidEvent",
    "XidInfo",
    "explain",
    "find_xids",
    "interesting",
    "parse_xid",
    "pci_key",
    "read_kernel_log",
    "xid_catalogue",
]
