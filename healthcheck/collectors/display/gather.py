"""What the display collector reads from the box: the X server's socket, lock file and a real
connection, the process table (the run's shared one), and the environments of the window
manager and noVNC processes. I/O only: judge.py decides what it means.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import psutil

from healthcheck import x11
from healthcheck.collectors.display.judge import HOST_PORT_RE, UNREADABLE
from healthcheck.display_fixes import X_SERVER_NAMES
from healthcheck.environ import environ_of
from healthcheck.processes import (
    ProcessRow,
    descends_from,
    interpreted_script,
    process_rows,
    unix_socket_pids,
)
from healthcheck.text import cut

VNC_SERVER_NAMES = ("Xtigervnc", "Xvnc")
VNC_PORT_BASE = 5900
NOVNC_NAMES = ("websockify", "novnc_proxy")
CMDLINE_MAX = 200
PROBE_TIMEOUT = 2.0


class ProcInfo(NamedTuple):
    """One row of the process table, as the collector needs it."""

    pid: int
    name: str
    cmdline: tuple[str, ...]
    zombie: bool = False

    @property
    def argv0(self) -> str:
        return os.path.basename(self.cmdline[0]) if self.cmdline else ""

    @property
    def programs(self) -> list[str]:
        """argv[0], and the script an interpreter runs (python3 /usr/bin/websockify)."""
        if not self.cmdline:
            return []
        script = interpreted_script(self.cmdline)  # `python3 -m websockify`: websockify
        return [self.cmdline[0], script] if script else [self.cmdline[0]]

    @property
    def program_names(self) -> set[str]:
        """Its name and the basenames of `programs`."""
        return ({self.name} | {os.path.basename(p) for p in self.programs}) - {""}

    def shown_cmdline(self) -> str:
        return cut(" ".join(self.cmdline) or f"[{self.name}]", CMDLINE_MAX)


def process_infos(rows: list[ProcessRow] | None = None) -> list[ProcInfo]:
    """Every process but this one, as the display collector reads it (pid, name, argv, zombie
    or not); `rows`: the run's process table, read if not given."""
    me = os.getpid()
    # Made as plain tuples of the fields (tuple.__new__), not through ProcInfo's keyword
    # constructor, and sorted as tuples (by pid, which is first and unique): a busy box has
    # thousands of rows (5,000: 7.2 -> 2.8 ms).
    make = tuple.__new__
    table = [
        make(ProcInfo, (row.pid, row.name, row.cmdline, row.zombie))
        for row in (rows if rows is not None else process_rows())
        if row.pid != me
    ]
    table.sort()
    return table


def gather(
    display: str,
    window_manager: str,
    processes: list[ProcInfo],
    listeners: dict[int, list[tuple[str, int | None]]],
    base: str = x11.DEFAULT_BASE,
    own_tree: frozenset[int] = frozenset(),
) -> dict[str, Any]:
    """Everything about `display`, as the JSON-able data of the section.

    `own_tree`: the box's own supervisord(s). Window managers and noVNC are matched by name,
    so on a shared host another box's icewm or websockify matches too: with `own_tree`, only
    processes below it are this box's ("processes"); the rest are listed as "elsewhere" and
    judged by nobody. Empty: every process counts (no supervisord, or it cannot be told).

    Raises ValueError for a display value that cannot be parsed (a configuration error).
    """
    spec = x11.parse_display(display)
    number = spec.number
    sock = x11.socket_path(number, base)
    lock = x11.read_lock(number, base)
    server = find_server(processes, number)
    if server is None and lock.pid_alive and lock.pid_name in X_SERVER_NAMES:
        server = next((p for p in processes if p.pid == lock.pid), None)
    connection = connect(spec, server, base)
    if server is None and connection["answered"] and spec.local:
        # Started with -displayfd (no ":N" in its argv, no lock): whoever owns the socket.
        server = _socket_owner(processes, sock)
    port = vnc_port(server.name, server.cmdline, number) if server else None
    wm, wm_elsewhere = _split_by_tree(find_window_managers(processes, window_manager), own_tree)
    novnc, novnc_elsewhere = _split_by_tree(find_novnc(processes), own_tree)
    return {
        "display": display,
        "number": number,
        "socket": {"path": sock, "exists": os.path.lexists(sock)},
        "lock": lock.to_dict(),
        "connection": connection,
        "server": (
            {
                "pid": server.pid,
                "name": server.name,
                "cmdline": server.shown_cmdline(),
                "auth_file": _option(server.cmdline, "auth"),
                "program": _environment_of(server.pid)["program"],
            }
            if server
            else None
        ),
        "vnc": {"port": port, "listening": None if port is None else port in listeners},
        "window_manager": {
            "name": window_manager,
            "running": bool(wm),
            "processes": [{"pid": p.pid, "name": p.name, **_environment_of(p.pid)} for p in wm],
            "elsewhere": [
                {"pid": p.pid, "name": p.name, **_environment_of(p.pid)} for p in wm_elsewhere
            ],
        },
        "novnc": {
            "running": bool(novnc),
            "processes": [
                {
                    "pid": p.pid,
                    "name": p.name,
                    "ports": sorted(
                        tcp for tcp, rows in listeners.items() if any(p.pid == r[1] for r in rows)
                    ),
                    "target": novnc_target(p.cmdline),
                }
                for p in novnc
            ],
            "elsewhere": [{"pid": p.pid, "name": p.name} for p in novnc_elsewhere],
        },
    }


def _split_by_tree(
    found: list[ProcInfo], own_tree: frozenset[int]
) -> tuple[list[ProcInfo], list[ProcInfo]]:
    """(this box's processes, the others): below `own_tree`, or all when it is empty."""
    if not own_tree:
        return found, []
    ours = [p for p in found if descends_from(p.pid, own_tree)]
    return ours, [p for p in found if p not in ours]


def connect(spec: x11.DisplaySpec, server: ProcInfo | None, base: str) -> dict[str, Any]:
    """Probe the display; if it wants credentials, retry with the cookie the server uses.

    The server's own `-auth` file (tigervncserver passes ~/.Xauthority) holds the cookie it
    accepts; $XAUTHORITY and ~/.Xauthority are where a client would look.
    """
    host = None if spec.local else spec.host
    probe = x11.probe_x_server(spec.number, PROBE_TIMEOUT, base, host=host)
    result: dict[str, Any] = {
        **_probe_fields(probe),
        "answered": probe.answered,
        "auth_required": probe.auth_required,
        "auth_file": None,
    }
    if not probe.auth_required:
        return result
    candidates = [
        _option(server.cmdline, "auth") if server else None,
        os.environ.get("XAUTHORITY"),
        os.path.expanduser("~/.Xauthority"),
    ]
    for path in dict.fromkeys(c for c in candidates if c):
        cookie = x11.read_cookie(path, spec.number)
        if cookie is None:
            continue
        retry = x11.probe_x_server(spec.number, PROBE_TIMEOUT, base, host=host, auth=cookie)
        if retry.ok:
            result.update(_probe_fields(retry), auth_file=path)
            return result
    return result


def _probe_fields(probe: x11.XProbe) -> dict[str, Any]:
    return {
        "ok": probe.ok,
        "result": probe.result,
        "reason": probe.reason,
        "vendor": probe.vendor,
        "release": probe.release,
    }


def find_server(processes: list[ProcInfo], number: int) -> ProcInfo | None:
    """The X server process whose arguments name display `number` (":N")."""
    wanted = f":{number}"
    servers = set(X_SERVER_NAMES)
    for proc in processes:
        # Few processes have ":N" among their arguments: the others are passed over at C
        # speed, before their argv[0]'s basename is taken (thousands on a busy box).
        if wanted not in proc.cmdline or proc.zombie:
            continue
        if wanted in proc.cmdline[1:] and {proc.name, proc.argv0} & servers:
            return proc
    return None


def _socket_owner(processes: list[ProcInfo], path: str) -> ProcInfo | None:
    names = {path, "@" + path, "\0" + path}
    try:
        pids = unix_socket_pids(names)
    except (psutil.Error, OSError):
        return None
    return next((p for p in processes if p.pid in pids), None)


def _option(cmdline: tuple[str, ...] | list[str], name: str) -> str | None:
    """The value of `-name value` / `-name=value` / `--name value` (case-insensitive)."""
    args = list(cmdline)
    for i, arg in enumerate(args):
        if not arg.startswith("-"):
            continue
        key, sep, value = arg.lstrip("-").partition("=")
        if key.lower() != name.lower():
            continue
        if sep:
            return value
        if i + 1 < len(args):
            return args[i + 1]
    return None


def vnc_port(name: str, cmdline: tuple[str, ...] | list[str], number: int) -> int | None:
    """The TCP port a VNC X server listens on: -rfbport, else 5900+N; None for plain X."""
    if name not in VNC_SERVER_NAMES and os.path.basename(cmdline[0] if cmdline else "") not in (
        VNC_SERVER_NAMES
    ):
        return None
    value = _option(cmdline, "rfbport")
    if value is None:
        return VNC_PORT_BASE + number
    try:
        port = int(value)
    except ValueError:
        return None
    # TigerVNC takes -rfbport -1 (or 0 with a unix path) to mean "no TCP listener".
    return port if 0 < port < 65536 else None


def find_window_managers(processes: list[ProcInfo], wm: str) -> list[ProcInfo]:
    """Live processes named `wm` or `wm-session` (by name or argv[0])."""
    names = {wm, f"{wm}-session"}
    # argv[0] can only be one of them if it ends with one: told at C speed first.
    endings = tuple(names)
    return [
        p
        for p in processes
        if not p.zombie
        and (p.name in names or (p.cmdline and p.cmdline[0].endswith(endings) and p.argv0 in names))
    ]


def _environment_of(pid: int) -> dict[str, str | None]:
    """DISPLAY and XAUTHORITY from the process's environment ("unreadable" if we cannot
    tell), and the supervisor program that started it (supervisord puts its name in every
    child's environment; None when no supervisord did)."""
    try:
        variables = environ_of(pid)
    except OSError:
        return {"display": UNREADABLE, "xauthority": UNREADABLE, "program": None}
    return {
        "display": variables.get("DISPLAY"),
        "xauthority": variables.get("XAUTHORITY"),
        "program": supervisor_program(variables),
    }


def supervisor_program(variables: dict[str, str]) -> str | None:
    """The full supervisor name (group:name, or name) from a child's environment."""
    name = variables.get("SUPERVISOR_PROCESS_NAME")
    if not name:
        return None
    group = variables.get("SUPERVISOR_GROUP_NAME") or name
    return name if group == name else f"{group}:{name}"


def find_novnc(processes: list[ProcInfo]) -> list[ProcInfo]:
    """websockify / novnc_proxy, or a program run from a noVNC directory.

    Matching on the program rather than anywhere in the command line keeps `tail -f
    /logs/novnc.log` out.
    """
    found = []
    for proc in processes:
        if proc.zombie:
            continue
        # Every name and path below is a part of the name or the command line: a process
        # that holds none of them anywhere is passed over at C speed (thousands of them on a
        # busy box cost 100 ms through the properties).
        text = "\0".join((proc.name, *proc.cmdline)).lower()
        if "novnc" not in text and not any(n in text for n in NOVNC_NAMES):
            continue
        if proc.program_names & set(NOVNC_NAMES) or any(
            "novnc" in path.lower() for path in proc.programs
        ):
            found.append(proc)
    return found


def novnc_target(cmdline: tuple[str, ...] | list[str]) -> str | None:
    """Where noVNC forwards to: `--vnc HOST:PORT`, else websockify's last HOST:PORT argument."""
    explicit = _option(cmdline, "vnc")
    if explicit:
        return explicit
    positional = [a for a in cmdline[1:] if not a.startswith("-")]
    pairs = [a for a in positional if HOST_PORT_RE.match(a)]
    # websockify [source_addr:]source_port target_addr:target_port: the target comes last,
    # after the listen address; a lone host:port is the listen address (token mode).
    if pairs and positional.index(pairs[-1]) > 0:
        return pairs[-1]
    return None
