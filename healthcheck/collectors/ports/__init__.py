"""Expected listeners: is each service's port open, on which address, by which process.

gather.py reads the socket table (the run's shared scan) and the owners' names; judge.py
compares them with `[services.ports]`.
"""

from __future__ import annotations

from typing import ClassVar

from healthcheck.collectors.ports import gather, judge
from healthcheck.collectors.ports.changes import DRIFT
from healthcheck.collectors.ports.gather import DEFAULT_EPHEMERAL, ephemeral_ports
from healthcheck.collectors.ports.judge import (
    MAX_OTHER_LISTENERS,
    _is_loopback,
    not_listening,
    port_entry,
)
from healthcheck.config import Config, ServicesConfig
from healthcheck.model import RunContext, Section, as_context
from healthcheck.tracking import DriftSpec


class PortsCollector:
    """Each `[services.ports]` entry, looked up in the kernel's socket table (psutil)."""

    name: ClassVar[str] = "ports"
    description: ClassVar[str] = "expected TCP listeners: listening or not, where, by which process"
    timeout: ClassVar[float | None] = None
    # The [collectors.ports] table (first spelt [services], still read so).
    Options: ClassVar[type] = ServicesConfig
    # What `healthcheck diff` says of its expected ports (changes.py).
    drift: ClassVar[DriftSpec] = DRIFT

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        data, volatile, findings = judge.assess(gather.gather(ctx.facts), ctx.options.ports)
        return Section.from_findings(self.name, data, findings, volatile)


__all__ = [
    "DEFAULT_EPHEMERAL",
    "MAX_OTHER_LISTENERS",
    "PortsCollector",
    "_is_loopback",
    "ephemeral_ports",
    "not_listening",
    "port_entry",
]
