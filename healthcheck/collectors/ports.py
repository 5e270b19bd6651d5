"""Expected listeners: is each service's port open, on which address, by which process."""

from __future__ import annotations

import socket
from typing import Any, ClassVar

import psutil

from healthcheck.config import Config
from healthcheck.model import Finding, Section, Status

MAX_OTHER_LISTENERS = 30


class PortsCollector:
    """Each `[services.ports]` entry, looked up in the kernel's socket table (psutil)."""

    name: ClassVar[str] = "ports"
    description: ClassVar[str] = "expected TCP listeners: listening or not, where, by which process"
    timeout: ClassVar[float | None] = None

    def collect(self, config: Config) -> Section:
        listeners = tcp_listeners()
        expected = config.services.ports
        ports = [
            port_entry(service, port, listeners.get(port, []))
            for service, port in sorted(expected.items(), key=lambda item: (item[1], item[0]))
        ]
        others = [
            {
                "port": port,
                "addresses": sorted({a for a, _ in entries}),
                "processes": _processes(entries),
            }
            for port, entries in sorted(listeners.items())
            if port not in expected.values()
        ]
        data = {
            "ports": ports,
            "other_listeners": others[:MAX_OTHER_LISTENERS],
            "other_listeners_left_out": max(0, len(others) - MAX_OTHER_LISTENERS),
        }
        findings = [not_listening(p["service"], p["port"]) for p in ports if not p["listening"]]
        return Section.from_findings(self.name, data, findings)


def tcp_listeners() -> dict[int, list[tuple[str, int | None]]]:
    """Port -> [(address, pid)] for every listening TCP socket, IPv4 and IPv6."""
    listeners: dict[int, list[tuple[str, int | None]]] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or not conn.laddr:
            continue
        host = conn.laddr.ip
        address = (
            f"[{host}]:{conn.laddr.port}"
            if conn.family == socket.AF_INET6
            else (f"{host}:{conn.laddr.port}")
        )
        listeners.setdefault(conn.laddr.port, []).append((address, conn.pid))
    return listeners


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
        hint=f"Check the {service} service: supervisorctl status; its log in /logs.",
    )
