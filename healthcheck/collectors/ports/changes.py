"""What `healthcheck diff` says of the ports: an expected port that opened or closed, moved,
or is served by other processes; a listener nobody expected that came or went."""

from __future__ import annotations

from typing import Any

from healthcheck.tracking import DriftSpec, records_by


def port_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    changes = []
    a, b = records_by(old.get("ports"), "service"), records_by(new.get("ports"), "service")
    for name in sorted(set(a) | set(b)):
        before, after = a.get(name, {}), b.get(name, {})
        port = after.get("port", before.get("port"))
        listening = [
            before.get("listening") if before else None,
            after.get("listening") if after else None,
        ]
        if listening[0] != listening[1] or before.get("port") != after.get("port"):
            changes.append(
                {"service": name, "port": port, "old": listening[0], "new": listening[1]}
            )
        elif _names(before.get("processes")) != _names(after.get("processes")):
            changes.append(
                {
                    "service": name,
                    "port": port,
                    "old": listening[0],
                    "new": listening[1],
                    "processes": [_names(before.get("processes")), _names(after.get("processes"))],
                }
            )
    others_a = set(records_by(old.get("other_listeners"), "port"))
    others_b = set(records_by(new.get("other_listeners"), "port"))
    for port in sorted(others_a ^ others_b, key=lambda p: int(p) if p.isdigit() else 0):
        changes.append(
            {
                "service": None,
                "port": int(port) if port.isdigit() else port,
                "old": port in others_a,
                "new": port in others_b,
            }
        )
    return changes


def _names(processes: Any) -> list[str]:
    if not isinstance(processes, list):
        return []
    return sorted(str(p.get("name")) if isinstance(p, dict) else str(p) for p in processes)


def _listening(value: Any) -> str:
    return {True: "listening", False: "not listening", None: "not checked"}.get(value, str(value))


def port_line(c: dict[str, Any]) -> str:
    if c["service"] is None:
        return f"port {c['port']} (unexpected listener): {'opened' if c['new'] else 'closed'}"
    where = f"{c['service']} ({c['port']})"
    if "processes" in c:
        old, new = (", ".join(p) or "none" for p in c["processes"])
        return f"{where}: served by {old} → {new}"
    return f"{where}: {_listening(c['old'])} → {_listening(c['new'])}"


DRIFT = DriftSpec(
    heading="Ports",
    key="ports",
    compare=port_changes,
    covers=("ports", "other_listeners"),
    lines=lambda changes: [port_line(c) for c in changes],
    order=20,
)
