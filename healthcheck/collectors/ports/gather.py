"""What the ports collector reads: the listening TCP sockets (the run's shared scan), the
kernel's ephemeral port range, and the names of the processes that own the listeners.
I/O only: judge.py decides what they mean.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from healthcheck.collectors.ports.judge import PortReadings
from healthcheck.facts import Facts

# The kernel's default ephemeral range, when /proc does not say otherwise.
DEFAULT_EPHEMERAL = (32768, 60999)


def gather(facts: Facts) -> PortReadings:
    """The listeners, the ephemeral range, and the name of each listener's owner."""
    listeners = facts.listeners()
    pids = {pid for entries in listeners.values() for _, pid in entries if pid is not None}
    return PortReadings(listeners, ephemeral_ports(), {pid: process_name(pid) for pid in pids})


def ephemeral_ports(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The kernel's range for automatically chosen ports."""
    try:
        low, high = (int(x) for x in Path(path).read_text(encoding="utf-8").split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def process_name(pid: int) -> str | None:
    """The process's name; None when it is gone or may not be asked."""
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return None
