"""The X display: is its server up (socket, lock, a real connection), who serves it, is the
window manager running on it, and are VNC and noVNC listening.

Gathering (gather.py: reads the box) and judging (judge.py: small pure functions over the
JSON-able data, so every rule can be tested with fabricated data) are kept apart.
"""

from __future__ import annotations

from typing import ClassVar

from healthcheck import x11
from healthcheck.collectors.display import gather, judge
from healthcheck.collectors.display.gather import (
    ProcInfo,
    find_novnc,
    find_server,
    find_window_managers,
    novnc_target,
    process_infos,
    vnc_port,
)
from healthcheck.collectors.display.judge import NAME, assess
from healthcheck.config import Config, DisplayConfig
from healthcheck.display_fixes import lock_is_stale
from healthcheck.model import RunContext, Section, as_context


class DisplayCollector:
    """The X server, window manager, VNC and noVNC behind `display.display`."""

    name: ClassVar[str] = NAME
    description: ClassVar[str] = (
        "X server for the display (socket, lock file, a real connection), window manager, "
        "VNC and noVNC"
    )
    timeout: ClassVar[float | None] = None
    # The run's shared facts it reads that the runner reads ahead (Facts.read_ahead).
    facts: ClassVar[tuple[str, ...]] = ("processes",)
    # The [collectors.display] table (first spelt [display], still read so).
    Options: ClassVar[type] = DisplayConfig

    def __init__(self, base: str = x11.DEFAULT_BASE) -> None:
        self.base = base  # where .X11-unix and the lock files live; tests may point elsewhere

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        config = ctx.config
        from healthcheck.supervisor_client import own_supervisord_pids

        data = gather.gather(
            config.display.display,
            config.display.window_manager,
            process_infos(ctx.facts.processes()),
            ctx.facts.listeners(),
            base=self.base,
            own_tree=own_supervisord_pids(config.supervisor.serverurl),
        )
        findings = judge.assess(data, expected_vnc_port=config.services.ports.get("vnc"))
        return Section.from_findings(self.name, data, findings)


__all__ = [
    "NAME",
    "DisplayCollector",
    "ProcInfo",
    "assess",
    "find_novnc",
    "find_server",
    "find_window_managers",
    "lock_is_stale",
    "novnc_target",
    "process_infos",
    "vnc_port",
]
