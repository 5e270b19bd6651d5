"""What the system collector reads from the box: host and OS, CPU counters, memory and swap,
the container's memory cgroup, real filesystems, the process table (the run's shared one).
I/O only: judge.py decides what the figures mean.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from healthcheck.collectors.system.judge import (
    Readings,
    busy_percent,
    memory_used_percent,
    top_processes,
)
from healthcheck.config import Config
from healthcheck.processes import (
    ProcessRow,
    RunStart,
    cpu_times,
    largest_by_rss,
    own_cpu_seconds,
    process_rows,
    run_started,
)
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
# CPU use is measured from the start of the run (its shared scans) or else over the
# collector's own work, stretched to at least this long: a sleep of its own made every run
# that much slower, and 0.1 s, longer than a command's start-up had become, still did.
CPU_SAMPLE_SECONDS = 0.05


def gather(config: Config) -> Readings:
    """Everything the section shows (`data`, `volatile`) and the figures the judge reads."""
    start = _cpu_sample_start()
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    disks = disk_usage(config.paths.workspace)
    limit = cgroup_memory()
    processes, zombies = processes_and_zombies(config.system.top_processes)
    time.sleep(max(0.0, start.at + CPU_SAMPLE_SECONDS - time.monotonic()))
    cpu_after = cpu_times()
    # The share the rest of the box used: within a run most of the window is our own work.
    cpu_percent = (
        busy_percent(start.box, cpu_after, own_cpu_seconds() - start.own)
        if start.box and cpu_after
        else 0.0
    )
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
        "disks": [{k: d[k] for k in ("mountpoint", "device", "fstype", "total")} for d in disks],
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
        "process_count": process_count(),
        "disks": [{k: d[k] for k in ("mountpoint", "used", "free", "percent")} for d in disks],
        "top_processes": top_processes(processes, config.system.top_processes),
    }
    if limit:
        volatile["memory_limit_used_percent"] = memory_used_percent(*limit)
    return Readings(
        data=data,
        volatile=volatile,
        disks=disks,
        memory_total=memory.total,
        memory_available=memory.available,
        swap_total=swap.total,
        swap_used=swap.used,
        zombies=zombies,
        cgroup_limit=limit,
    )


def _cpu_sample_start() -> RunStart:
    """Where the CPU sample begins: the run's start when there is one, else now."""
    started = run_started()
    if started is not None and started.box is not None:
        return started
    return RunStart(time.monotonic(), cpu_times(), own_cpu_seconds())


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


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


def processes_and_zombies(
    largest: int | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every process (pid, name, rss, cmdline), or with `largest` those with the largest
    rss, that many at most (the others' rss is not read); and the zombies with their parents."""
    live: list[ProcessRow] = []
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
        live.append(row)
    if largest is not None:
        live = largest_by_rss(live, largest)
    processes = [
        {"pid": row.pid, "name": row.name, "rss": row.rss, "cmdline": _cmdline(list(row.cmdline))}
        for row in live
    ]
    zombies.sort(key=lambda z: z["pid"])
    return processes, zombies


def process_count() -> int:
    """Live processes other than this one (the table's zombies are not counted)."""
    me = os.getpid()
    return sum(1 for row in process_rows() if row.pid != me and not row.zombie)


def _cmdline(argv: list[str] | None) -> str:
    """One string, cut (visibly) to CMDLINE_CHARS: a long argv would swamp the report."""
    return cut(" ".join(argv or []), CMDLINE_CHARS)


def _name_of(pid: int | None) -> str | None:
    try:
        return psutil.Process(pid).name() if pid else None
    except psutil.Error:
        return None
