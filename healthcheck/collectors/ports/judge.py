"""How the ports collector judges what it read: is each expected service's port listened on,
and which other listeners are worth listing. Pure functions: no I/O.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from healthcheck.model import Finding, Status
from healthcheck.record import Record

MAX_OTHER_LISTENERS = 30


class PortReadings(Record):
    """Port -> [(address, owner pid)] for every listening TCP socket, the ephemeral port
    range, and the owners' names (None when the process could not be asked)."""

    __slots__ = ("ephemeral", "listeners", "names")

    def __init__(
        self,
        listeners: dict[int, list[tuple[str, int | None]]],
        ephemeral: tuple[int, int],
        names: dict[int, str | None],
    ) -> None:
        self.listeners = listeners
        self.ephemeral = ephemeral
        self.names = names


def assess(
    readings: PortReadings, expected: dict[str, int]
) -> tuple[dict[str, Any], dict[str, Any], list[Finding]]:
    """The section's data and volatile figures, and a finding per expected port not listened on."""
    listeners, names = readings.listeners, readings.names
    ports = [
        port_entry(service, port, listeners.get(port, []), names)
        for service, port in sorted(expected.items(), key=lambda item: (item[1], item[0]))
    ]
    unexpected = {p: e for p, e in listeners.items() if p not in expected.values()}
    # Loopback listeners on an ephemeral port (Jupyter kernels' ZMQ sockets, language
    # servers) get a new port each start: listing them would make every report differ.
    low, high = readings.ephemeral
    transient = {
        p
        for p, entries in unexpected.items()
        if low <= p <= high and all(_is_loopback(a) for a, _ in entries)
    }
    others = [
        {
            "port": port,
            "addresses": sorted({a for a, _ in entries}),
            "processes": _processes(entries, names),
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
    return data, volatile, findings


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    # ::ffff:127.0.0.1 is loopback too (Python before 3.13 says it is not).
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def port_entry(
    service: str, port: int, entries: list[tuple[str, int | None]], names: dict[int, str | None]
) -> dict[str, Any]:
    return {
        "service": service,
        "port": port,
        "listening": bool(entries),
        "addresses": sorted({address for address, _ in entries}),
        "processes": _processes(entries, names),
    }


def _processes(
    entries: list[tuple[str, int | None]], names: dict[int, str | None]
) -> list[dict[str, Any]]:
    return [
        {"pid": pid, "name": names.get(pid)}
        for pid in sorted({pid for _, pid in entries if pid is not None})
    ]


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
