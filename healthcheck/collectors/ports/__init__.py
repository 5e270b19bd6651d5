"""Expected listeners: is each service's port open, on which address, by which process."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, ClassVar

import psutil

from healthcheck.config import Config, ServicesConfig
from healthcheck.model import Finding, RunContext, Section, Status, as_context

MAX_OTHER_LISTENERS = 30
# The kernel's default ephemeral range, when /proc does not say otherwise.
DEFAULT_EPHEMERAL = (32768, 60999)


class PortsCollector:
    """Each `[services.ports]` entry, looked up in the kernel's socket table (psutil)."""

    name: ClassVar[str] = "ports"
    description: ClassVar[str] = "expected TCP listeners: listening or not, where, by which process"
    timeout: ClassVar[float | None] = None
    # The [collectors.ports] table (first spelt [services], still read so).
    Options: ClassVar[type] = ServicesConfig

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        listeners = ctx.facts.listeners()
        expected = ctx.options.ports
        ports = [
            port_entry(service, port, listeners.get(port, []))
            for service, port in sorted(expected.items(), key=lambda item: (item[1], item[0]))
        ]
        unexpected = {p: e for p, e in listeners.items() if p not in expected.values()}
        # Loopback listeners on an ephemeral port (Jupyter kernels' ZMQ sockets, language
        # servers) get a new port each start: listing them would make every report differ.
        low, high = ephemeral_ports()
        transient = {
            p
            for p, entries in unexpected.items()
            if low <= p <= high and all(_is_loopback(a) for a, _ in entries)
        }
        others = [
            {
                "port": port,
                "addresses": sorted({a for a, _ in entries}),
                "processes": _processes(entries),
            }
            for port, entries in sorted(unexpected.items())
            if port not in transient
        ]
        data = {
            "ports": ports,
            "other_listeners": others[:MAX_OTHER_LISTENERS],
            "other_listeners_left_out": max(0, len(others) - MAX_OTHER_LISTENERS),
        }
        volatile = {"loopback_ephemeral_listeners": len(transient)}
        findings = [not_listening(p["service"], p["port"]) for p in ports if not p["listening"]]
        return Section.from_findings(self.name, data, findings, volatile)


def ephemeral_ports(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The kernel's range for automatically chosen ports."""
    try:
        low, high = (int(x) for x in Path(path).read_text(encoding="utf-8").split())
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL
    return low, high


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    # ::ffff:127.0.0.1 is loopback too (Python before 3.13 says it is not).
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def port_entry(service: str, port: int, entries: list[tuple[str, int | None]]) -> dict[str, Any]:
    return {
        "service": service,
        "port": port,
        "listening": bool(entries),
        "addresses": sorted({address for address, _ in entries}),
        "processes": _processes(entries),
    }


def _processes(entries: list[tuple[str, int | None]]) -> list[dict[str, Any]]:
    processes = []
    for pid in sorted({pid for _, pid in entries if pid is not None}):
        try:
            name = psutil.Process(pid).name()
        except psutil.Error:
            name = None
        processes.append({"pid": pid, "name": name})
    return processes


def not_listening(service: str, port: int) -> Finding:
    return Finding(
        collector="ports",
        rule="not-listening",
        subject=f"{service}:{port}",
        severity=Status.WARN,
        title=f"Nothing listens on port {port} ({service})",
        detail=f"{service} is expected on TCP port {port}, but no process listens there.",
        hint=(
            f"Check the {service} service: supervisorctl status (is its program RUNNING?), "
            f"then its log: supervisorctl tail -200 PROGRAM stderr, or ls -t /logs | head. "
            f"Once it runs, ss -ltnp 'sport = :{port}' shows who listens."
        ),
    )
