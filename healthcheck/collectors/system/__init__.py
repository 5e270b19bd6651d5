"""The box itself: host, OS, CPU, memory, disks, processes.

gather.py reads the box; judge.py holds the threshold logic, pure functions over plain figures
(`disk_findings`, `memory_findings`, `swap_findings`, `zombie_findings`), so the boundaries are
testable without a full disk.
"""

from __future__ import annotations

from typing import ClassVar

from healthcheck.collectors.system import gather, judge
from healthcheck.collectors.system.gather import (
    CMDLINE_CHARS,
    CPU_SAMPLE_SECONDS,
    PSEUDO_FS,
    SHM_MOUNTS,
    cgroup_memory,
    disk_usage,
    processes_and_zombies,
)
from healthcheck.collectors.system.judge import (
    SWAP_WARN_PERCENT,
    ZOMBIES_WARN,
    Readings,
    busy_percent,
    disk_findings,
    memory_findings,
    memory_used_percent,
    swap_findings,
    zombie_findings,
)
from healthcheck.config import Config, SystemConfig
from healthcheck.model import RunContext, Section, as_context


class SystemCollector:
    """Host facts in `data`; load, memory, disk use and top processes in `volatile`."""

    name: ClassVar[str] = "system"
    description: ClassVar[str] = "host, OS, CPU, memory, swap, disks, processes, zombies"
    timeout: ClassVar[float | None] = None
    # The run's shared facts it reads that the runner reads ahead (Facts.read_ahead).
    facts: ClassVar[tuple[str, ...]] = ("processes",)
    # The [collectors.system] table (first spelt [system], still read so).
    Options: ClassVar[type] = SystemConfig

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        readings = gather.gather(ctx.config)
        findings = judge.assess(readings, ctx.config.system)
        return Section.from_findings(self.name, readings.data, findings, readings.volatile)


__all__ = [
    "CMDLINE_CHARS",
    "CPU_SAMPLE_SECONDS",
    "PSEUDO_FS",
    "SHM_MOUNTS",
    "SWAP_WARN_PERCENT",
    "ZOMBIES_WARN",
    "Readings",
    "SystemCollector",
    "busy_percent",
    "cgroup_memory",
    "disk_findings",
    "disk_usage",
    "memory_findings",
    "memory_used_percent",
    "processes_and_zombies",
    "swap_findings",
    "zombie_findings",
]
