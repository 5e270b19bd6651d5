"""How the display collector judges what it gathered: small pure functions from the section's
JSON-able data to findings, so every rule can be tested with data built by hand.
"""

from __future__ import annotations

from typing import Any

from healthcheck import x11
from healthcheck.display_fixes import (
    X_SERVER_NAMES,
    lock_is_stale,
    wm_not_running_hint,
    x_server_down_hint,
)
from healthcheck.lazyre import lazy
from healthcheck.model import Finding, Status

NAME = "display"
UNREADABLE = "unreadable"
HOST_PORT_RE = lazy(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")


def _port_of(address: str | None) -> int | None:
    match = HOST_PORT_RE.match(address or "")
    return int(match.group(1)) if match else None


def assess(data: dict[str, Any], expected_vnc_port: int | None = None) -> list[Finding]:
    """All findings for the gathered `data`."""
    up = bool(data["connection"].get("answered", data["connection"]["ok"]))
    findings = server_findings(data)
    findings += window_manager_findings(data, up)
    findings += vnc_findings(data, up, expected_vnc_port)
    return findings


def server_findings(data: dict[str, Any]) -> list[Finding]:
    """x-server-down, stale-lock, and a server that answered but turned us away."""
    display = data["display"]
    conn = data["connection"]
    server = data["server"]
    lock = data["lock"]
    findings: list[Finding] = []
    answered = bool(conn.get("answered", conn["ok"]))
    if not answered and conn["result"] == x11.ERROR and server is not None:
        # A server process exists but we could not even try (permissions, say): no verdict.
        findings.append(
            Finding(
                NAME,
                "x-server-unchecked",
                display,
                Status.UNKNOWN,
                f"Could not check the X server for display {display}",
                f"{server['name']} (pid {server['pid']}) serves {display}, but connecting "
                f"failed: {conn['reason']}.",
                "Run healthcheck as the user that owns the X server (or as root).",
            )
        )
        return findings
    if not answered:
        findings.append(x_server_down(data))
        if lock_is_stale(lock, server):
            findings.append(stale_lock(data))
    elif not conn["ok"] and not conn.get("auth_required"):
        findings.append(
            Finding(
                NAME,
                "x-connection-rejected",
                display,
                Status.WARN,
                f"The X server for display {display} rejects new connections",
                f"It answered the connection setup with {conn['result']}: {conn['reason']}.",
                "Clients such as the window manager and the GUI app cannot connect either; "
                f"check the X server's log and restart it if needed: {_log_and_restart(server)}",
            )
        )
    return findings


def x_server_down(data: dict[str, Any]) -> Finding:
    display = data["display"]
    conn = data["connection"]
    server = data["server"]
    wm = data["window_manager"]
    if server is not None:
        title = (
            f"The X server for display {display} ({server['name']}, pid {server['pid']}) "
            "does not answer"
        )
    else:
        title = f"The X server for display {display} is not running"
    facts = [f"Connecting to {display}: {conn['result']} ({conn['reason']})."]
    facts.append(
        f"Socket {data['socket']['path']} {'exists' if data['socket']['exists'] else 'is missing'}."
    )
    if server is None:
        facts.append(f"No X server process ({', '.join(X_SERVER_NAMES)}) names {display}.")
    if not wm["running"]:
        facts.append(
            f"The window manager {wm['name']} is not running either; it cannot start "
            "without the X server (its log then says it cannot open the display)."
        )
    program = server.get("program") if server else None
    serving = {"name": program, "state": None, "pid": server["pid"]} if program else None
    hint = x_server_down_hint(data, serving)
    return Finding(NAME, "x-server-down", display, Status.CRIT, title, " ".join(facts), hint)


def _log_and_restart(server: dict[str, Any] | None) -> str:
    program = server.get("program") if server else None
    if program:
        return f"supervisorctl tail {program} stderr; supervisorctl restart {program}."
    return (
        "supervisorctl status lists the program that runs it; supervisorctl tail PROGRAM "
        "stderr; supervisorctl restart PROGRAM."
    )


def stale_lock(data: dict[str, Any]) -> Finding:
    display = data["display"]
    lock = data["lock"]
    number = data["number"]
    if lock["pid"] is None:
        whose = "holds no readable pid"
    elif lock.get("pid_alive") and lock.get("pid_name"):
        whose = f"names pid {lock['pid']}, which is now {lock['pid_name']}, not an X server"
    else:
        whose = f"names pid {lock['pid']}, which is no longer running"
    return Finding(
        NAME,
        "stale-lock",
        lock["path"],
        # The x-server-down finding carries the crit and, with a stale lock, the same rm.
        Status.WARN,
        f"A stale X lock file {lock['path']} blocks display {display}",
        f"The lock {whose}. Until it is removed the X server refuses to start with "
        f'"Server is already active for display {number}".',
        f"rm -f {lock['path']} {data['socket']['path']}, then restart the X server: "
        f"{_log_and_restart(data['server'])}",
    )


def window_manager_findings(data: dict[str, Any], up: bool) -> list[Finding]:
    """wm-not-running (only when the X server is up: otherwise that is the cause) and
    wm-wrong-display (only when none of this box's window managers is on the display)."""
    display = data["display"]
    wm = data["window_manager"]
    name = wm["name"]
    conn = data["connection"]
    auth_note = ""
    if conn.get("auth_required"):
        where = conn.get("auth_file") or "its -auth file"
        auth_note = (
            f" The X server requires a cookie ({where}): a client without XAUTHORITY "
            "pointing at it is turned away with 'Authorization required'."
        )
    findings: list[Finding] = []
    processes = wm["processes"]
    if not processes:
        if up:
            elsewhere = _elsewhere_note(wm.get("elsewhere") or [], name)
            findings.append(
                Finding(
                    NAME,
                    "wm-not-running",
                    name,
                    Status.WARN,
                    f"The window manager {name} is not running",
                    f"The X server for {display} is up, but no {name} process runs, so VNC "
                    f"shows a bare (often black) screen.{elsewhere}{auth_note}",
                    wm_not_running_hint(display, name, None),
                )
            )
        return findings
    spec = x11.parse_display(display)
    if any(
        p.get("display") == UNREADABLE or x11.same_display(p.get("display"), spec)
        for p in processes
    ):
        return findings  # one manages this display: others elsewhere are not a fault
    proc = processes[0]
    value = proc.get("display")
    shown = "unset" if value is None else f"set to {value!r}"
    program = proc.get("program")
    section = (
        f"[program:{program.split(':')[-1]}]" if program else f"the [program:...] that runs {name}"
    )
    restart = f"supervisorctl restart {program}" if program else "supervisorctl restart PROGRAM"
    findings.append(
        Finding(
            NAME,
            "wm-wrong-display",
            name,
            Status.WARN,
            f"The window manager {name} runs with DISPLAY {shown}, not {display}",
            f"{proc['name']} (pid {proc['pid']}) has DISPLAY {shown} in its environment, "
            f"so it does not manage display {display}.{auth_note}",
            f'Add environment=DISPLAY="{display}" to {section} in the supervisor '
            f"configuration, then supervisorctl update; {restart}.",
        )
    )
    return findings


def _elsewhere_note(elsewhere: list[dict[str, Any]], name: str) -> str:
    if not elsewhere:
        return ""
    shown = ", ".join(f"pid {p['pid']}, DISPLAY {p.get('display')}" for p in elsewhere[:3])
    return f" An {name} outside this box's supervisord ({shown}) belongs to someone else."


def vnc_findings(data: dict[str, Any], up: bool, expected_vnc_port: int | None) -> list[Finding]:
    """The VNC server's port against the configured one, and noVNC's target against both."""
    findings: list[Finding] = []
    display = data["display"]
    port = data["vnc"]["port"]
    if up and port is not None and expected_vnc_port is not None and port != expected_vnc_port:
        findings.append(
            Finding(
                NAME,
                "vnc-port-mismatch",
                f"vnc:{port}",
                Status.WARN,
                f"The VNC server for {display} uses port {port}, not {expected_vnc_port}",
                f"{data['server']['name']} was started for port {port}; the configuration "
                f"expects VNC on {expected_vnc_port}.",
                "Make -rfbport in the VNC program's command and [services.ports] vnc agree "
                "(5900+N is TigerVNC's default for display :N).",
            )
        )
    vnc = port if port is not None else expected_vnc_port
    if vnc is None:
        return findings
    targets = [_port_of(p.get("target")) for p in data["novnc"]["processes"]]
    if vnc in targets:
        return findings  # one noVNC reaches VNC: a second one aimed elsewhere is not ours to fix
    for proc in data["novnc"]["processes"]:
        target = _port_of(proc.get("target"))
        if target is None or target == vnc:
            continue
        findings.append(
            Finding(
                NAME,
                "novnc-target-mismatch",
                f"novnc:{target}",
                Status.WARN,
                f"noVNC forwards to port {target}, but VNC is on port {vnc}",
                f"{proc['name']} (pid {proc['pid']}) forwards browser sessions to "
                f"{proc['target']}; the VNC server listens on {vnc}, so noVNC cannot connect.",
                f"Point noVNC at localhost:{vnc} (--vnc localhost:{vnc} for novnc_proxy, or "
                f"websockify's target argument).",
            )
        )
        break
    return findings
