"""How the system collector judges its figures: small pure functions from plain numbers and
rows to findings (`disk_findings`, `memory_findings`, `swap_findings`, `zombie_findings`), so
the boundaries are testable without a full disk. No I/O here.
"""

from __future__ import annotations

import shlex
from typing import Any

from healthcheck.config import SystemConfig
from healthcheck.model import Finding, Status
from healthcheck.record import Record

# Swap has no config key: using swap is harmless, only nearly full swap is worth a line
# (the next memory spike then goes to the OOM killer).
SWAP_WARN_PERCENT = 80.0


class Readings(Record):
    """What gather read: the section's `data` and `volatile`, and the figures judged."""

    __slots__ = (
        "cgroup_limit",
        "data",
        "disks",
        "memory_available",
        "memory_total",
        "swap_total",
        "swap_used",
        "volatile",
        "zombies",
    )

    def __init__(
        self,
        data: dict[str, Any],
        volatile: dict[str, Any],
        disks: list[dict[str, Any]],
        memory_total: int,
        memory_available: int,
        swap_total: int,
        swap_used: int,
        zombies: list[dict[str, Any]],
        # (limit, available) of the container's memory cgroup when tighter than the host's.
        cgroup_limit: tuple[int, int] | None = None,
    ) -> None:
        self.data = data
        self.volatile = volatile
        self.disks = disks
        self.memory_total = memory_total
        self.memory_available = memory_available
        self.swap_total = swap_total
        self.swap_used = swap_used
        self.zombies = zombies
        self.cgroup_limit = cgroup_limit


def assess(readings: Readings, limits: SystemConfig) -> list[Finding]:
    """All findings for what gather read, against the [collectors.system] limits."""
    findings = [
        *disk_findings(readings.disks, limits),
        *memory_findings(readings.memory_total, readings.memory_available, limits),
        *swap_findings(readings.swap_total, readings.swap_used),
        *zombie_findings(readings.zombies),
    ]
    if readings.cgroup_limit:
        findings += memory_findings(*readings.cgroup_limit, limits, scope="container")
    return findings


def memory_used_percent(total: int, available: int) -> float:
    """In use, counting reclaimable cache as free (what `free` calls available)."""
    return round(100.0 * (total - available) / total, 1) if total else 0.0


def busy_percent(before: Any, after: Any, excluded: float = 0.0) -> float:
    """CPU use between two psutil.cpu_times() samples, as psutil.cpu_percent counts it,
    less `excluded` CPU seconds of that time (our own process's, within a run)."""

    def busy_and_total(times: Any) -> tuple[float, float]:
        # Guest time is already counted in user time on Linux.
        total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
        idle = times.idle + getattr(times, "iowait", 0.0)
        return total - idle, total

    busy_before, total_before = busy_and_total(before)
    busy_after, total_after = busy_and_total(after)
    if total_after <= total_before:
        return 0.0
    share = (busy_after - busy_before - excluded) / (total_after - total_before)
    return round(min(100.0, max(0.0, share * 100)), 1)


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
