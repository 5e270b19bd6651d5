"""The box itself: host, OS, CPU, memory, disks, processes.

Threshold logic lives in pure functions (`disk_findings`, `memory_findings`, `swap_findings`,
`zombie_findings`) over plain figures, so the boundaries are testable without a full disk.
"""

from __future__ import annotations

import os
import platform
import shlex
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar

import psutil

from healthcheck.config import Config, SystemConfig
from healthcheck.model import Finding, RunContext, Section, Status, as_context
from healthcheck.processes import CpuTimes, cpu_times, process_rows, run_started
from healthcheck.text import cut
from healthcheck.timestamps import utc_stamp_of

# Filesystems that hold no operator data: their "fullness" means nothing. squashfs is
# read-only and always 100% full. overlay stays: it is a container's root filesystem.
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
# ...except shared memory: PyTorch DataLoader workers die with "bus error" / "insufficient
# shared memory" when it fills, and Docker gives containers only 64 MiB of it by default.
SHM_MOUNTS = frozenset({"/dev/shm"})
CMDLINE_CHARS = 300
# CPU use is measured from the start of the run (its shared scans; by the time this
# collector runs, the start-up has taken longer than this) or else over the collector's own
# work, stretched to at least this long. A sleep of its own made every run that much slower.
CPU_SAMPLE_SECONDS = 0.1
# Swap has no config key: using swap is harmless, only nearly full swap is worth a line
# (the next memory spike then goes to the OOM killer).
SWAP_WARN_PERCENT = 80.0


class SystemCollector:
    """Host facts in `data`; load, memory, disk use and top processes in `volatile`."""

    name: ClassVar[str] = "system"
    description: ClassVar[str] = "host, OS, CPU, memory, swap, disks, processes, zombies"
    timeout: ClassVar[float | None] = None
    # The [collectors.system] table (first spelt [system], still read so).
    Options: ClassVar[type] = SystemConfig

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        config = ctx.config
        began, cpu_before = _cpu_sample_start()
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        disks = disk_usage(config.paths.workspace)
        limit = cgroup_memory()
        processes, zombies = processes_and_zombies()
        time.sleep(max(0.0, began + CPU_SAMPLE_SECONDS - time.monotonic()))
        cpu_after = cpu_times()
        cpu_percent = busy_percent(cpu_before, cpu_after) if cpu_before and cpu_after else 0.0
        boot = psutil.boot_time()
        data: dict[str, Any] = {
            "host": socket.gethostname(),
            "os": os_name(),
            "kernel": platform.release(),
            "arch": platform.machine(),
            "python": platform.python_version(),
            "boot_time": utc_stamp_of(boot),
            "cpu_count": psutil.cpu_count() or 0,
            "memory_total": memory.total,
            # The container's memory cgroup limit, when tighter than the host's memory
            # (which is all /proc/meminfo shows inside a container).
            "memory_limit": limit[0] if limit else None,
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
            "swap_used_percent": round(swap.percent, 1),
            "process_count": len(processes),
            "disks": [{k: d[k] for k in ("mountpoint", "used", "free", "percent")} for d in disks],
            "top_processes": top_processes(processes, config.system.top_processes),
        }
        findings = [
            *disk_findings(disks, config.system),
            *memory_findings(memory.total, memory.available, config.system),
            *swap_findings(swap.total, swap.used),
            *zombie_findings(zombies),
        ]
        if limit:
            volatile["memory_limit_used_percent"] = memory_used_percent(*limit)
            findings += memory_findings(*limit, config.system, scope="container")
        return Section.from_findings(self.name, data, findings, volatile)


def _cpu_sample_start() -> tuple[float, CpuTimes | None]:
    """Where the CPU sample begins: the run's start when there is one, else now."""
    started = run_started()
    if started is not None and started[1] is not None:
        return started
    return time.monotonic(), cpu_times()


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


def cgroup_memory(
    root: str = "/sys/fs/cgroup", own: str = "/proc/self/cgroup"
) -> tuple[int, int] | None:
    """(limit, available) of our memory cgroup when it is tighter than the host's memory.

    The OOM killer enforces the cgroup limit, not /proc/meminfo's total. Used is counted as
    docker stats does (usage minus inactive page cache). cgroup v2 first, then v1; our own
    cgroup's directory first, then the mount's root (which is our cgroup when the container
    has a cgroup namespace or a private cgroup mount).
    """
    paths = _own_cgroups(own)
    base = Path(root)
    layouts = [
        (base, paths.get("", "/"), "memory.max", "memory.current", "inactive_file"),
        (base / "unified", paths.get("", "/"), "memory.max", "memory.current", "inactive_file"),
        (
            base / "memory",
            paths.get("memory", "/"),
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
            "total_inactive_file",
        ),
    ]
    host_total = psutil.virtual_memory().total
    for mount, path, limit_file, usage_file, inactive_key in layouts:
        for directory in (mount / path.lstrip("/"), mount):
            limit = _read_int(directory / limit_file)  # None for v2's "max": no limit
            usage = _read_int(directory / usage_file)
            if limit is None or usage is None:
                continue
            # v1 spells "no limit" as a huge number; a limit above the host's is no limit.
            if not 0 < limit < host_total:
                return None
            used = max(usage - _read_stat(directory / "memory.stat", inactive_key), 0)
            return limit, max(limit - used, 0)
    return None


def _own_cgroups(path: str) -> dict[str, str]:
    """Controller ("" for cgroup v2) -> our cgroup's path, from /proc/self/cgroup."""
    cgroups: dict[str, str] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError:
        return cgroups
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(","):
                cgroups[controller] = parts[2]
    return cgroups


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None


def _read_stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def disk_usage(workspace: str) -> list[dict[str, Any]]:
    """Real filesystems, the one holding the workspace first, one entry per device."""
    # Resolved: a /workspace symlink lives on its target's filesystem.
    anchor = Path(os.path.realpath(Path(workspace).expanduser()))
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    # Single files bind-mounted into a container (/etc/hosts, the NVIDIA runtime's
    # nvidia-smi and libraries) are not disks an operator fills.
    mounts = [p for p in psutil.disk_partitions(all=True) if os.path.isdir(p.mountpoint)]
    home = _mount_of(anchor, mounts)
    partitions = [
        p
        for p in mounts
        # The workspace's filesystem is shown whatever it is (a tmpfs workspace fills too).
        if p.fstype not in PSEUDO_FS or p.mountpoint in SHM_MOUNTS or p.mountpoint == home
    ]
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


def busy_percent(before: Any, after: Any) -> float:
    """CPU use between two psutil.cpu_times() samples, as psutil.cpu_percent counts it."""

    def busy_and_total(times: Any) -> tuple[float, float]:
        # Guest time is already counted in user time on Linux.
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        idle = times.idle + getattr(times, "iowait", 0.0)
        return total - idle, total

    busy_before, total_before = busy_and_total(before)
    busy_after, total_after = busy_and_total(after)
    if total_after <= total_before:
        return 0.0
    share = (busy_after - busy_before) / (total_after - total_before)
    return round(min(100.0, max(0.0, share * 100)), 1)


def processes_and_zombies() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every process (pid, name, rss, cmdline), and the zombies with their parents."""
    processes: list[dict[str, Any]] = []
    zombies: list[dict[str, Any]] = []
    me = os.getpid()
    for row in process_rows():
        if row.pid == me:  # the report is about the box, not about its own writer
            continue
        if row.zombie:
            parent = row.ppid()
            if parent is None:
                # Reaped since the scan: a child its parent was just waiting for, not a zombie
                # left behind (a busy box has such passing ones every moment).
                continue
            zombies.append(
                {"pid": row.pid, "name": row.name, "parent_pid": parent, "parent": _name_of(parent)}
            )
            continue
        processes.append(
            {
                "pid": row.pid,
                "name": row.name,
                "rss": row.rss,
                "cmdline": _cmdline(list(row.cmdline)),
            }
        )
    zombies.sort(key=lambda z: z["pid"])
    return processes, zombies


def _cmdline(argv: list[str] | None) -> str:
    """One string, cut (visibly) to CMDLINE_CHARS: a long argv would swamp the report."""
    return cut(" ".join(argv or []), CMDLINE_CHARS)


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
                f"du -xh --max-depth=1 {shlex.quote(mount)} | sort -h | tail",
            )
        )
    return findings


def memory_findings(
    total: int, available: int, limits: SystemConfig, scope: str = "memory"
) -> list[Finding]:
    """`memory-pressure` at or above the warn/crit percentage of memory in use.

    `scope` is "memory" (the host's, /proc/meminfo) or "container" (the cgroup limit).
    """
    percent = memory_used_percent(total, available)
    if percent >= limits.memory_crit_percent:
        severity, limit = Status.CRIT, limits.memory_crit_percent
    elif percent >= limits.memory_warn_percent:
        severity, limit = Status.WARN, limits.memory_warn_percent
    else:
        return []
    what = "The container's memory limit" if scope == "container" else "Memory"
    return [
        Finding(
            "system",
            "memory-pressure",
            scope,
            severity,
            f"{what} is {percent:.0f}% used",
            f"{_gib(available)} available of {_gib(total)} (limit {limit:g}%). The OOM killer "
            "stops the largest process first, usually the training job.",
            "ps -eo pid,rss,comm --sort=-rss | head",
        )
    ]


def swap_findings(total: int, used: int) -> list[Finding]:
    """`swap-full` when there is swap and at least SWAP_WARN_PERCENT of it is used."""
    percent = 100.0 * used / total if total > 0 else 0.0
    if percent < SWAP_WARN_PERCENT:
        return []
    return [
        Finding(
            "system",
            "swap-full",
            "swap",
            Status.WARN,
            f"Swap is {percent:.0f}% used",
            f"{_gib(used)} of {_gib(total)} swap in use. With swap full, the next memory spike "
            "goes to the OOM killer, and a box swapping hard is slow.",
            "grep VmSwap /proc/[0-9]*/status | sort -k2 -n | tail",
        )
    ]


# Zombies it takes to warn. A child is a zombie from its exit until its parent's next wait
# (supervisord reaps once a second): one or two are seen on any busy box and are harmless;
# a parent that never waits piles them up.
ZOMBIES_WARN = 5


def zombie_findings(zombies: list[dict[str, Any]]) -> list[Finding]:
    if len(zombies) < ZOMBIES_WARN:
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
            "Restart the parent (supervisorctl restart PROGRAM if supervisord runs it), or run "
            "the container with an init (docker run --init, tini) if the parent is pid 1.",
            tuple(
                f"pid {z['pid']} {z['name']} <defunct>, parent {z['parent'] or '?'} "
                f"(pid {z['parent_pid']})"
                for z in zombies
            ),
        )
    ]


def _gib(value: int) -> str:
    return f"{value / 1024**3:.1f} GiB"
