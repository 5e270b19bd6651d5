"""The box itself: host, OS, CPU, memory, disks, processes."""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import psutil

from healthcheck.config import Config, SystemConfig
from healthcheck.model import Finding, Section, Status

# Filesystems that hold no operator data: their "fullness" means nothing.
PSEUDO_FS = frozenset(
    {
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "tmpfs",
        "cgroup",
        "cgroup2",
        "mqueue",
        "securityfs",
        "debugfs",
        "tracefs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "hugetlbfs",
        "autofs",
        "binfmt_misc",
        "nsfs",
        "rpc_pipefs",
        "squashfs",
        "ramfs",
        "efivarfs",
        "selinuxfs",
    }
)
CMDLINE_CHARS = 300
CPU_SAMPLE_SECONDS = 0.2


class SystemCollector:
    """Host facts in `data`; load, memory, disk use and top processes in `volatile`."""

    name: ClassVar[str] = "system"
    description: ClassVar[str] = "host, OS, CPU, memory, swap, disks, processes, zombies"
    timeout: ClassVar[float | None] = None

    def collect(self, config: Config) -> Section:
        cpu_percent = psutil.cpu_percent(interval=CPU_SAMPLE_SECONDS)
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        disks = disk_usage(config.paths.workspace)
        processes, zombies = process_table()
        boot = psutil.boot_time()
        data: dict[str, Any] = {
            "host": socket.gethostname(),
            "os": os_name(),
            "kernel": platform.release(),
            "arch": platform.machine(),
            "python": platform.python_version(),
            "boot_time": _iso(boot),
            "cpu_count": psutil.cpu_count() or 0,
            "memory_total": memory.total,
            "swap_total": swap.total,
            "disks": [
                {k: d[k] for k in ("mountpoint", "device", "fstype", "total")} for d in disks
            ],
            "zombies": zombies,
        }
        load = os.getloadavg()
        volatile: dict[str, Any] = {
            "uptime_s": int(time.time() - boot),
            "load": [round(x, 2) for x in load],
            "cpu_percent": cpu_percent,
            "memory_used_percent": memory_used_percent(memory.total, memory.available),
            "memory_available": memory.available,
            "swap_used": swap.used,
            "process_count": len(processes),
            "disks": [{k: d[k] for k in ("mountpoint", "used", "free", "percent")} for d in disks],
            "top_processes": top_processes(processes, config.system.top_processes),
        }
        findings = [
            *disk_findings(disks, config.system),
            *memory_findings(memory.total, memory.available, config.system),
            *zombie_findings(zombies),
        ]
        return Section.from_findings(self.name, data, findings, volatile)


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


def memory_used_percent(total: int, available: int) -> float:
    """In use, counting reclaimable cache as free (what `free` calls available)."""
    return round(100.0 * (total - available) / total, 1) if total else 0.0


def disk_usage(workspace: str) -> list[dict[str, Any]]:
    """Real filesystems, the one holding the workspace first, one entry per device."""
    anchor = Path(workspace).expanduser().absolute()
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    partitions = [p for p in psutil.disk_partitions(all=True) if p.fstype not in PSEUDO_FS]
    home = _mount_of(anchor, partitions)
    ordered = sorted(partitions, key=lambda p: (p.mountpoint != home, p.mountpoint))
    disks, seen = [], set()
    for part in ordered:
        try:
            usage = psutil.disk_usage(part.mountpoint)
            device = os.stat(part.mountpoint).st_dev
        except OSError:
            continue
        # Bind mounts of one filesystem (common in containers) are the same disk.
        if device in seen or usage.total == 0:
            continue
        seen.add(device)
        disks.append(
            {
                "mountpoint": part.mountpoint,
                "device": part.device,
                "fstype": part.fstype,
                "total": usage.total,
                "used": usage.used,
                "free": usage.free,
                "percent": usage.percent,
            }
        )
    return disks


def _mount_of(path: Path, partitions: Iterable[Any]) -> str:
    mounts = {p.mountpoint for p in partitions}
    for candidate in (path, *path.parents):
        if str(candidate) in mounts:
            return str(candidate)
    return "/"


def process_table() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every process (pid, name, rss, cmdline), and the zombies with their parents."""
    processes, zombies = [], []
    attrs = ["pid", "ppid", "name", "status", "memory_info", "cmdline"]
    me = os.getpid()
    for proc in psutil.process_iter(attrs, ad_value=None):
        info = proc.info
        if info["pid"] == me:  # the report is about the box, not about its own writer
            continue
        if info["status"] == psutil.STATUS_ZOMBIE:
            zombies.append(
                {
                    "pid": info["pid"],
                    "name": info["name"],
                    "parent_pid": info["ppid"],
                    "parent": _name_of(info["ppid"]),
                }
            )
            continue
        rss = info["memory_info"].rss if info["memory_info"] else 0
        processes.append(
            {
                "pid": info["pid"],
                "name": info["name"],
                "rss": rss,
                "cmdline": " ".join(info["cmdline"] or [])[:CMDLINE_CHARS],
            }
        )
    zombies.sort(key=lambda z: z["pid"])
    return processes, zombies


def _name_of(pid: int | None) -> str | None:
    try:
        return psutil.Process(pid).name() if pid else None
    except psutil.Error:
        return None


def top_processes(processes: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    return sorted(processes, key=lambda p: (-p["rss"], p["pid"]))[:count]


def disk_findings(disks: list[dict[str, Any]], limits: SystemConfig) -> list[Finding]:
    findings = []
    for disk in disks:
        percent, mount = disk["percent"], disk["mountpoint"]
        if percent >= limits.disk_crit_percent:
            severity, limit = Status.CRIT, limits.disk_crit_percent
        elif percent >= limits.disk_warn_percent:
            severity, limit = Status.WARN, limits.disk_warn_percent
        else:
            continue
        findings.append(
            Finding(
                "system",
                "disk-full",
                mount,
                severity,
                f"Disk {mount} is {percent:.0f}% full",
                f"{_gib(disk['free'])} free of {_gib(disk['total'])} (limit {limit:g}%). Logs, "
                "checkpoints and pip caches fail to write when it fills.",
                f"du -xh --max-depth=1 {mount} | sort -h | tail",
            )
        )
    return findings


def memory_findings(total: int, available: int, limits: SystemConfig) -> list[Finding]:
    percent = memory_used_percent(total, available)
    if percent >= limits.memory_crit_percent:
        severity, limit = Status.CRIT, limits.memory_crit_percent
    elif percent >= limits.memory_warn_percent:
        severity, limit = Status.WARN, limits.memory_warn_percent
    else:
        return []
    return [
        Finding(
            "system",
            "memory-pressure",
            "memory",
            severity,
            f"Memory is {percent:.0f}% used",
            f"{_gib(available)} available of {_gib(total)} (limit {limit:g}%). The OOM killer "
            "stops the largest process first, usually the training job.",
            "ps -eo pid,rss,comm --sort=-rss | head",
        )
    ]


def zombie_findings(zombies: list[dict[str, Any]]) -> list[Finding]:
    if not zombies:
        return []
    parents = sorted({f"{z['parent'] or '?'} (pid {z['parent_pid']})" for z in zombies})
    return [
        Finding(
            "system",
            "zombies",
            "processes",
            Status.WARN,
            f"{len(zombies)} zombie process{'es' if len(zombies) != 1 else ''}",
            f"Exited but not reaped by their parent: {', '.join(parents)}. A few are harmless; a "
            "growing number means the parent never waits for its children.",
            "Restart the parent, or run the container with an init (docker run --init, tini).",
        )
    ]


def _gib(value: int) -> str:
    return f"{value / 1024**3:.1f} GiB"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
