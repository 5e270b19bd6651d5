"""Xid errors: NVIDIA's driver reports GPU faults as `NVRM: Xid` lines in the kernel log.

`read_kernel_log` gets the kernel messages from a configured file, or from /dev/kmsg (read
without blocking, bounded), or from `dmesg` under a timeout; inside a container all of them
are often forbidden, and that is reported as data, never raised. `find_xids` picks out the
Xid lines and `CATALOGUE` explains the common codes: meaning, severity and what to do, after
NVIDIA's Xid catalogue (docs.nvidia.com/deploy/xid-errors) and GPU debug guidelines.
"""

from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import psutil

from healthcheck.logtail import read_tail
from healthcheck.proc import run_command

KMSG = "/dev/kmsg"
# Bounds on reading /dev/kmsg: the ring buffer is a few MiB at most, but a kernel spewing
# messages while we read must not keep us reading for ever.
KMSG_MAX_RECORDS = 200_000
KMSG_SECONDS = 2.0
KMSG_READ_SIZE = 65536  # one record per read(); records are at most a few KiB
MAX_LINE_BYTES = 4096


@dataclass(frozen=True)
class XidInfo:
    """One catalogue entry: what the code means, how bad it is, what to do."""

    code: int
    meaning: str
    severity: str  # "info", "warn" or "crit"
    action: str


def _entries(*rows: tuple[int, str, str, str]) -> dict[int, XidInfo]:
    return {code: XidInfo(code, meaning, sev, action) for code, meaning, sev, action in rows}


# Severity: crit when the GPU itself needs a reset, a reboot or replacing; warn when an
# application failed (the GPU stays usable) or a repair waits for the next reset; info when
# the message only follows another error.
CATALOGUE: dict[int, XidInfo] = _entries(
    (
        8,
        "GPU stopped processing (a channel timed out)",
        "warn",
        "Restart the application; if it recurs with an unchanged application, suspect the "
        "driver or the GPU and run nvidia-smi -q.",
    ),
    (
        13,
        "Graphics engine exception",
        "warn",
        "Usually the application (an illegal instruction or an out-of-range access in a "
        "kernel): restart it and debug it with compute-sanitizer. If it recurs with an "
        "unchanged application, run DCGM diagnostics to rule out the hardware.",
    ),
    (
        31,
        "GPU memory page fault",
        "warn",
        "Usually the application accessed an invalid GPU address: restart it and debug it. "
        "Suspect the driver only if it began after a driver change with the application "
        "unchanged.",
    ),
    (
        32,
        "Invalid or corrupted push buffer stream",
        "warn",
        "Commands reached the GPU corrupted (driver, PCIe or memory): restart the "
        "application; if it recurs, check the PCIe link and the driver.",
    ),
    (
        43,
        "GPU stopped processing (a channel was reset after an application fault)",
        "warn",
        "The application hit a fault; the GPU stays usable: restart the application.",
    ),
    (
        45,
        "Preemptive cleanup, due to previous errors",
        "info",
        "Informational: channels were torn down because of another error or a killed "
        "process. Look at the Xid logged before it.",
    ),
    (
        48,
        "Double-bit ECC error (uncorrectable memory error)",
        "crit",
        "Stop the work on this GPU and reset it (nvidia-smi -r, or reboot). If Xid 63 or 64 "
        "does not follow, run field diagnostics; repeated errors mean the GPU needs replacing.",
    ),
    (
        61,
        "Internal micro-controller breakpoint or warning (PMU)",
        "warn",
        "Reset the GPU at the next convenient time; report it to the provider if it recurs.",
    ),
    (
        62,
        "Internal micro-controller halt (PMU)",
        "crit",
        "Reset the GPU or reboot the host; report it to the provider if it recurs.",
    ),
    (
        63,
        "ECC page retirement or row remapping recorded",
        "warn",
        "A bad memory page or row was recorded. The application that hit it must restart; "
        "reset the GPU or reboot at a convenient time so the retirement or remapping takes "
        "effect.",
    ),
    (
        64,
        "ECC page retirement or row remapping could not be recorded",
        "crit",
        "Reset the GPU or reboot now; if it recurs, the GPU needs replacing (ask the provider "
        "for another machine).",
    ),
    (
        74,
        "NVLink error",
        "crit",
        "Reset the GPUs on the link; if the same link keeps failing, check the NVLink "
        "bridges and report it to the provider.",
    ),
    (
        79,
        "GPU has fallen off the bus (it stopped answering on PCIe)",
        "crit",
        "Reboot the host. If it recurs, check power, cooling and seating, or ask the provider "
        "for another machine.",
    ),
    (
        92,
        "High single-bit ECC error rate",
        "warn",
        "The GPU's memory is degrading: run field diagnostics and plan to replace the GPU if "
        "the rate stays high.",
    ),
    (
        94,
        "Contained ECC error (uncorrectable, confined to one application)",
        "warn",
        "Restart the application that hit it; other work can go on. Reset the GPU at a "
        "convenient time so the row remapping takes effect.",
    ),
    (
        95,
        "Uncontained ECC error (uncorrectable, may have hit every application on the GPU)",
        "crit",
        "Stop the work on this GPU and reset it (reboot the host when MIG is off); if it "
        "recurs, the GPU needs replacing.",
    ),
    (
        119,
        "GSP RPC timeout (the GPU's firmware processor stopped answering)",
        "crit",
        "Reset the GPU or reboot the host; if it recurs, update the driver.",
    ),
    (
        120,
        "GSP error (the GPU's firmware processor failed)",
        "crit",
        "Reset the GPU or reboot the host; if it recurs, update the driver.",
    ),
    (
        140,
        "Unrecovered ECC error",
        "crit",
        "Reset the GPU or reboot the host; if it recurs, the GPU needs replacing.",
    ),
    (
        154,
        "GPU recovery action changed (the driver says the GPU needs recovery)",
        "crit",
        "Do what the line asks (a GPU reset or a reboot).",
    ),
)


def explain(code: int) -> XidInfo:
    """The catalogue entry for `code`; an unknown code is worth a look, not a verdict."""
    return CATALOGUE.get(
        code,
        XidInfo(
            code,
            "not in healthcheck's catalogue",
            "warn",
            f"Look up Xid {code} in NVIDIA's Xid catalogue "
            "(https://docs.nvidia.com/deploy/xid-errors/).",
        ),
    )


# `NVRM: Xid (PCI:0000:01:00): 79, pid=1234, name=python3, GPU has fallen off the bus.`
# Older drivers leave out "PCI:".
_XID = re.compile(
    r"NVRM: Xid \((?:PCI:)?(?P<pci>[0-9A-Fa-f]{1,8}:[0-9A-Fa-f]{1,2}:[0-9A-Fa-f]{1,2}"
    r"(?:\.[0-7])?)\):\s*(?P<code>\d+)\b,?\s*(?P<rest>.*)"
)
_BUS_ID = re.compile(r"([0-9A-Fa-f]{1,8}):([0-9A-Fa-f]{1,2}):([0-9A-Fa-f]{1,2})(?:\.[0-7])?")
_PID = re.compile(r"\bpid=(\d+)")
_NAME = re.compile(r"\bname=([^,\s]+)")


@dataclass(frozen=True)
class XidEvent:
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


@dataclass
class KernelLog:
    """Kernel messages that mention Xid, and where they came from (or why they could not)."""

    source: str | None = None  # "/dev/kmsg", "dmesg" or the configured file
    lines: list[tuple[str | None, str]] = field(default_factory=list)  # (time, text)
    scanned: int = 0  # records or lines looked at
    error: str | None = None  # why no source could be read
    tried: list[str] = field(default_factory=list)  # "source: why not", for each failure


def read_kernel_log(path: str = "", timeout: float = 3.0, file_lines: int = 5000) -> KernelLog:
    """Xid-bearing kernel messages from `path`, else /dev/kmsg, else `dmesg`.

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
        log.lines = [(_syslog_time(line), line) for line in tail.lines if "Xid" in line]
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
            if "Xid" in message:
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
    log.lines = [(_dmesg_time(line, boot), line) for line in out if "Xid" in line]
    return None


def _kmsg_time(header: str, boot: float) -> str | None:
    # "priority,sequence,microseconds since boot,flags"
    parts = header.split(",")
    if len(parts) < 3 or not parts[2].isdigit():
        return None
    return _iso(boot + int(parts[2]) / 1e6)


# A syslog line's own time, as written: "Nov 28 10:00:01" or rsyslog's ISO 8601.
_SYSLOG_STAMP = re.compile(r"^(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d|\d{4}-\d\d-\d\dT\S+)")


def _syslog_time(line: str) -> str | None:
    found = _SYSLOG_STAMP.match(line)
    return found.group(0) if found else None


_DMESG_STAMP = re.compile(r"^\[\s*(\d+(?:\.\d+)?)\]")


def _dmesg_time(line: str, boot: float) -> str | None:
    found = _DMESG_STAMP.match(line)
    return _iso(boot + float(found.group(1))) if found else None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied (reading the kernel log needs CAP_SYSLOG in a container)"
    if isinstance(exc, FileNotFoundError):
        return "not present in this container"
    return exc.strerror or type(exc).__name__


__all__ = [
    "CATALOGUE",
    "KernelLog",
    "XidEvent",
    "XidInfo",
    "explain",
    "find_xids",
    "parse_xid",
    "pci_key",
    "read_kernel_log",
]
