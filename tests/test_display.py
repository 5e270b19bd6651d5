"""The display collector and the X11 probe against real Xvfb, Xtigervnc and icewm servers."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from healthcheck import x11
from healthcheck.collectors.display import (
    DisplayCollector,
    ProcInfo,
    assess,
    find_novnc,
    find_server,
    find_window_managers,
    lock_is_stale,
    novnc_target,
    vnc_port,
)
from healthcheck.collectors.display.gather import process_infos
from healthcheck.config import Config, DisplayConfig, ServicesConfig
from healthcheck.model import Finding, Section, Status
from healthcheck.processes import ZOMBIE, ProcessRow

from xserver import (
    free_display_number,
    free_tcp_port,
    have,
    running_icewm,
    start_icewm,
    start_xtigervnc,
    start_xvfb,
    stop_process,
    write_xauthority,
)

needs_xvfb = pytest.mark.skipif(not have("Xvfb"), reason="Xvfb is not installed")
needs_icewm = pytest.mark.skipif(not have("icewm"), reason="icewm is not installed")
needs_xtigervnc = pytest.mark.skipif(not have("Xtigervnc"), reason="Xtigervnc is not installed")

TOP_KEYS = {
    "display",
    "number",
    "socket",
    "lock",
    "connection",
    "server",
    "vnc",
    "window_manager",
    "novnc",
}
ICEWM_NO_DISPLAY = "Can't open display: <none>. X must be running and $DISPLAY set."


def config_for(display: str, vnc: int | None = 5901, wm: str = "icewm") -> Config:
    ports = {"ssh": 22} if vnc is None else {"vnc": vnc}
    return Config(
        display=DisplayConfig(display=display, window_manager=wm),
        services=ServicesConfig(ports=ports),
    )


def collect(display: str, base: str = x11.DEFAULT_BASE, **kwargs: Any) -> Section:
    return DisplayCollector(base=base).collect(config_for(display, **kwargs))


def rules(section: Section) -> dict[str, Finding]:
    return {f.rule: f for f in section.findings}


def dead_pid() -> int:
    """A pid no process has now (above any pid in use)."""
    pid = max(psutil.pids()) + 1000
    while psutil.pid_exists(pid):
        pid += 1
    return pid


@pytest.fixture(scope="module")
def xvfb() -> Iterator[Any]:
    """One Xvfb for the tests that only look at it."""
    if not have("Xvfb"):
        pytest.skip("Xvfb is not installed")
    with start_xvfb() as server:
        yield server


# --- parse_display ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "host", "number", "screen", "local"),
    [
        (":1", "", 1, 0, True),
        (":1.0", "", 1, 0, True),
        (":0.2", "", 0, 2, True),
        ("unix:1", "unix", 1, 0, True),
        ("localhost:10.0", "localhost", 10, 0, False),
        ("gpu-box.example:3.1", "gpu-box.example", 3, 1, False),
        ("10.0.0.5:7", "10.0.0.5", 7, 0, False),
        ("[::1]:4", "::1", 4, 0, False),
        ("::1:4", "::1", 4, 0, False),
        (" :1 ", "", 1, 0, True),
    ],
)
def test_parse_display(value: str, host: str, number: int, screen: int, local: bool) -> None:
    spec = x11.parse_display(value)
    assert (spec.host, spec.number, spec.screen, spec.local) == (host, number, screen, local)


@pytest.mark.parametrize("value", ["", "   ", "1", ":", ":x", "host:1.x", ":1.", "host", ":-1"])
def test_parse_display_rejects(value: str) -> None:
    with pytest.raises(ValueError, match=r"invalid X display .*"):
        x11.parse_display(value)


@pytest.mark.parametrize(
    ("value", "same"),
    [
        (":1", True),
        (":1.0", True),
        ("unix:1", True),
        (":2", False),
        ("localhost:1", False),  # TCP, which a -nolisten tcp server does not offer
        (None, False),
        ("", False),
        ("garbage", False),
    ],
)
def test_same_display(value: str | None, same: bool) -> None:
    assert x11.same_display(value, x11.parse_display(":1")) is same


# --- probe_x_server -----------------------------------------------------------------------


def test_probe_real_xvfb(xvfb: Any) -> None:
    probe = x11.probe_x_server(xvfb.number)
    assert probe.ok and probe.answered
    assert probe.result == "success"
    assert probe.vendor == "The X.Org Foundation"
    assert probe.release is not None and probe.release > 10_000_000  # e.g. 12101006
    assert probe.address == xvfb.socket_path


@needs_xvfb
def test_probe_falls_back_to_the_abstract_socket() -> None:
    with start_xvfb() as server:
        # A cleaner that wipes /tmp/.X11-unix leaves the server reachable only by the
        # abstract name, as clients (Xlib tries both) still reach it.
        os.unlink(server.socket_path)
        probe = x11.probe_x_server(server.number)
        assert probe.result == "success", probe
        assert probe.address == "@" + server.socket_path


@needs_xvfb
def test_probe_survives_server_resets() -> None:
    # Without -noreset the server resets each time our probe (its only client) leaves and
    # drops whoever connects meanwhile: about one probe in thirty, back to back.
    with start_xvfb(noreset=False) as server:
        results = [x11.probe_x_server(server.number).result for _ in range(60)]
    assert results == ["success"] * 60


def test_probe_no_socket(tmp_path: Path) -> None:
    probe = x11.probe_x_server(free_display_number(), base=str(tmp_path))
    assert (probe.ok, probe.result, probe.answered) == (False, "no-socket", False)
    assert "does not exist" in (probe.reason or "")


def test_probe_no_socket_in_real_tmp() -> None:
    assert x11.probe_x_server(free_display_number()).result == "no-socket"


def _x11_dir(tmp_path: Path) -> Path:
    (tmp_path / ".X11-unix").mkdir(exist_ok=True)
    return tmp_path / ".X11-unix"


def test_probe_refused_on_a_stale_socket(tmp_path: Path) -> None:
    path = _x11_dir(tmp_path) / "X7"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    listener.close()  # the file stays, nothing listens: what a crashed X server leaves
    probe = x11.probe_x_server(7, base=str(tmp_path))
    assert (probe.ok, probe.result) == (False, "refused")
    assert str(path) in (probe.reason or "")


class FakeServer:
    """A unix socket that accepts one client, records its request and sends `reply`
    (or nothing, holding the connection open until the test ends)."""

    def __init__(self, path: Path, reply: bytes | None) -> None:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen()
        self.reply = reply
        self.request = b""
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(10)
            while len(self.request) < 12:
                chunk = conn.recv(12 - len(self.request))
                if not chunk:
                    break
                self.request += chunk
            if self.reply is not None:
                conn.sendall(self.reply)
            self.done.wait(10)

    def close(self) -> None:
        self.done.set()
        self.thread.join(10)
        self.listener.close()


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Any]:
    servers: list[FakeServer] = []

    def start(reply: bytes | None) -> FakeServer:
        server = FakeServer(_x11_dir(tmp_path) / "X9", reply)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_probe_times_out_on_a_silent_server(tmp_path: Path, fake_server: Any) -> None:
    server = fake_server(None)
    probe = x11.probe_x_server(9, timeout=0.3, base=str(tmp_path))
    assert (probe.ok, probe.result) == (False, "timeout")
    assert "no setup reply" in (probe.reason or "")
    # What it sent is a well-formed little-endian X11 11.0 setup with no authorization.
    assert server.request == b"l\x00\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00"


def test_probe_reads_a_failed_reply(tmp_path: Path, fake_server: Any) -> None:
    reason = b"Maximum number of clients reached"
    padded = reason + b"\0" * (-len(reason) % 4)
    header = bytes([0, len(reason)]) + (11).to_bytes(2, "little") + (0).to_bytes(2, "little")
    fake_server(header + (len(padded) // 4).to_bytes(2, "little") + padded)
    probe = x11.probe_x_server(9, base=str(tmp_path))
    assert (probe.ok, probe.result, probe.answered) == (False, "failed", True)
    assert probe.reason == "Maximum number of clients reached"
    assert not probe.auth_required


def test_probe_reads_an_authenticate_reply(tmp_path: Path, fake_server: Any) -> None:
    reason = b"need more\0\0\0"
    fake_server(bytes([2, 0, 0, 0, 0, 0]) + (len(reason) // 4).to_bytes(2, "little") + reason)
    probe = x11.probe_x_server(9, base=str(tmp_path))
    assert (probe.ok, probe.result, probe.reason) == (False, "authenticate", "need more")
    assert probe.answered and probe.auth_required


def test_probe_rejects_a_non_x_server(tmp_path: Path, fake_server: Any) -> None:
    fake_server(b"SSH-2.0-OpenSSH_9.6\r\n")
    probe = x11.probe_x_server(9, base=str(tmp_path))
    assert (probe.ok, probe.result, probe.answered) == (False, "error", False)
    assert "not an X server" in (probe.reason or "")


def test_probe_over_tcp_refused() -> None:
    # 6000+N on localhost with nothing there: the TCP path reports refused, not no-socket.
    number = next(n for n in range(90, 200) if _tcp_free(6000 + n))
    assert x11.probe_x_server(number, host="127.0.0.1").result == "refused"


def _tcp_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


# --- Xauthority ---------------------------------------------------------------------------


@needs_xvfb
def test_cookie_protected_server(tmp_path: Path) -> None:
    number = free_display_number()
    auth = tmp_path / "Xauthority"
    cookie = secrets.token_bytes(16)
    write_xauthority(auth, number, cookie)
    if have("xauth"):  # the file we write is the format xauth itself reads
        listed = subprocess.run(
            ["xauth", "-f", str(auth), "list"], capture_output=True, text=True, check=True
        ).stdout
        assert f":{number}  MIT-MAGIC-COOKIE-1  {cookie.hex()}" in listed
    with start_xvfb(number, auth_file=auth) as server:
        bare = x11.probe_x_server(number)
        assert (bare.ok, bare.result, bare.answered, bare.auth_required) == (
            False,
            "failed",
            True,
            True,
        )
        assert "Authorization required" in (bare.reason or "")
        entry = x11.read_cookie(str(auth), number)
        assert entry is not None and entry.data == cookie
        assert x11.probe_x_server(number, auth=entry).ok
        wrong = x11.XAuthEntry(256, b"", str(number), x11.MIT_COOKIE, b"\0" * 16)
        assert x11.probe_x_server(number, auth=wrong).result == "failed"

        # The collector finds the cookie through the server's own -auth argument.
        section = collect(server.display)
        conn = section.data["connection"]
        assert conn["ok"] and conn["result"] == "success"
        assert conn["auth_required"] and conn["auth_file"] == str(auth)
        assert section.data["server"]["auth_file"] == str(auth)
        assert "x-server-down" not in rules(section)


def test_parse_xauthority_keeps_whole_records_only() -> None:
    def counted(chunk: bytes) -> bytes:
        return len(chunk).to_bytes(2, "big") + chunk

    one = (256).to_bytes(2, "big") + counted(b"box") + counted(b"1")
    one += counted(b"MIT-MAGIC-COOKIE-1") + counted(b"k" * 16)
    other = (65535).to_bytes(2, "big") + counted(b"") + counted(b"")
    other += counted(b"XDM-AUTHORIZATION-1") + counted(b"x" * 8)
    entries = x11.parse_xauthority(one + other + one[:9])
    assert [(e.family, e.number, e.name) for e in entries] == [
        (256, "1", "MIT-MAGIC-COOKIE-1"),
        (65535, "", "XDM-AUTHORIZATION-1"),
    ]
    assert x11.find_cookie(entries, 1) == entries[0]
    assert x11.find_cookie(entries, 2) is None


# --- the lock file ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "pid"),
    [("      4242\n", 4242), ("4242", 4242), ("", None), ("abc\n", None), ("0\n", None)],
)
def test_parse_lock(text: str, pid: int | None) -> None:
    assert x11.parse_lock(text) == pid


def test_real_lock_names_a_live_server(xvfb: Any) -> None:
    lock = x11.read_lock(xvfb.number)
    assert lock.exists and lock.pid == xvfb.proc.pid
    assert lock.pid_alive is True and lock.pid_name == "Xvfb"
    raw = Path(xvfb.lock_path).read_text(encoding="ascii")
    assert raw == f"{xvfb.proc.pid:>10}\n"  # the format we parse is the server's own


def test_missing_lock(tmp_path: Path) -> None:
    assert x11.read_lock(3, base=str(tmp_path)) == x11.LockInfo(str(tmp_path / ".X3-lock"), False)


def test_stale_lock_with_a_dead_pid(tmp_path: Path) -> None:
    number = free_display_number()
    pid = dead_pid()
    Path(x11.lock_path(number, str(tmp_path))).write_text(f"{pid:>10}\n", encoding="ascii")
    section = collect(f":{number}", base=str(tmp_path))
    found = rules(section)
    assert section.status is Status.CRIT
    assert found["x-server-down"].severity is Status.CRIT
    assert f"rm -f {tmp_path}/.X{number}-lock" in found["x-server-down"].hint
    stale = found["stale-lock"]
    assert stale.subject == str(tmp_path / f".X{number}-lock")
    assert f"pid {pid}" in stale.detail and "no longer running" in stale.detail
    assert f"Server is already active for display {number}" in stale.detail
    assert stale.hint.startswith(f"rm -f {tmp_path}/.X{number}-lock {tmp_path}/.X11-unix/X")
    assert section.data["lock"] == {
        "path": str(tmp_path / f".X{number}-lock"),
        "exists": True,
        "pid": pid,
        "pid_alive": False,
        "pid_name": None,
    }


def test_stale_lock_whose_pid_was_reused(tmp_path: Path) -> None:
    # After a container restart the old pid may now be another program (here: us).
    number = free_display_number()
    Path(x11.lock_path(number, str(tmp_path))).write_text(f"{os.getpid():>10}\n")
    stale = rules(collect(f":{number}", base=str(tmp_path)))["stale-lock"]
    assert f"which is now {psutil.Process().name()}, not an X server" in stale.detail


# --- the collector against real servers ---------------------------------------------------


def test_no_server_is_x_server_down(tmp_path: Path) -> None:
    # A private socket directory: on the host's /tmp/.X11-unix another X server could take
    # the free number between the pick and the check. The number is free on the host too:
    # a server running there for it (another test's Xvfb :50) is found by its process.
    base = str(tmp_path)
    number = free_display_number(start=free_display_number(), base=base)
    section = collect(f":{number}", base=base)
    assert set(section.data) == TOP_KEYS
    json.dumps(section.data)  # JSON-able as it stands
    data = section.data
    assert data["display"] == f":{number}" and data["number"] == number
    assert data["socket"] == {"path": f"{base}/.X11-unix/X{number}", "exists": False}
    assert data["lock"]["exists"] is False and data["lock"]["pid"] is None
    assert data["connection"]["ok"] is False and data["connection"]["result"] == "no-socket"
    assert data["server"] is None
    assert data["vnc"] == {"port": None, "listening": None}
    assert [f.rule for f in section.findings] == ["x-server-down"]
    down = section.findings[0]
    assert down.severity is Status.CRIT and section.status is Status.CRIT
    assert down.subject == f":{number}"
    assert down.title == f"The X server for display :{number} is not running"
    # Alone, the collector cannot tell which supervisor program serves X (diagnosis can).
    assert "supervisorctl start PROGRAM" in down.hint


@needs_icewm
def test_xvfb_without_window_manager(xvfb: Any) -> None:
    section = collect(xvfb.display)
    data = section.data
    assert set(data) == TOP_KEYS
    json.dumps(data)
    assert data["socket"]["exists"] is True
    assert data["lock"]["pid"] == xvfb.proc.pid and data["lock"]["pid_alive"] is True
    assert data["connection"]["ok"] is True
    assert data["connection"]["vendor"] == "The X.Org Foundation"
    assert data["server"]["pid"] == xvfb.proc.pid and data["server"]["name"] == "Xvfb"
    assert data["server"]["cmdline"].startswith(f"Xvfb {xvfb.display} -nolisten tcp")
    assert data["vnc"] == {"port": None, "listening": None}  # Xvfb serves no VNC
    assert data["window_manager"] == {
        "name": "icewm",
        "running": False,
        "processes": [],
        "elsewhere": [],
    }
    assert [f.rule for f in section.findings] == ["wm-not-running"]
    finding = section.findings[0]
    assert finding.severity is Status.WARN and finding.subject == "icewm"
    assert f'environment=DISPLAY="{xvfb.display}"' in finding.hint
    assert "Can't open display: <none>" in finding.hint


@needs_icewm
def test_icewm_on_the_display(xvfb: Any) -> None:
    with running_icewm(xvfb.display) as wm:
        section = collect(xvfb.display)
        assert wm.poll() is None, wm.stderr  # it stayed up: it did get the display
    data = section.data["window_manager"]
    assert data["running"] is True
    mine = {"pid": wm.pid, "name": "icewm", "display": xvfb.display, "xauthority": None}
    assert {**mine, "program": None} in data["processes"]
    assert section.findings == [] and section.status is Status.OK


@needs_icewm
def test_icewm_without_display_fails_and_is_not_running(xvfb: Any) -> None:
    wm = start_icewm(None)
    try:
        _, stderr = wm.communicate(timeout=15)
    finally:
        stop_process(wm)
    assert wm.returncode != 0
    assert f"IceWM: {ICEWM_NO_DISPLAY}" in stderr  # the seed's log line, word for word
    section = collect(xvfb.display)
    assert section.data["window_manager"]["running"] is False
    assert "wm-not-running" in rules(section)


@needs_icewm
def test_icewm_on_another_display(xvfb: Any) -> None:
    with start_xvfb() as other, running_icewm(other.display) as wm:
        section = collect(xvfb.display)
        assert wm.poll() is None, wm.stderr
    wrong = rules(section)["wm-wrong-display"]
    assert wrong.severity is Status.WARN
    assert f"DISPLAY set to '{other.display}', not {xvfb.display}" in wrong.title
    assert f'environment=DISPLAY="{xvfb.display}"' in wrong.hint
    assert "wm-not-running" not in rules(section)


@needs_xtigervnc
def test_xtigervnc_vnc_port_and_novnc(tmp_path: Path) -> None:
    with start_xtigervnc() as server:
        port = server.rfbport
        assert port is not None
        section = collect(server.display, vnc=port)
        assert section.data["server"]["name"] == "Xtigervnc"
        assert section.data["vnc"] == {"port": port, "listening": True}
        assert "vnc-port-mismatch" not in rules(section)

        mismatch = rules(collect(server.display, vnc=port + 1))["vnc-port-mismatch"]
        assert mismatch.subject == f"vnc:{port}" and str(port + 1) in mismatch.title

        # A websockify (a stand-in that only listens) forwarding to the wrong port.
        with FakeWebsockify(tmp_path, f"localhost:{port + 2}") as (proc, web_port):
            section = collect(server.display, vnc=port)
        novnc = section.data["novnc"]
        assert novnc["running"] is True
        entry = next(p for p in novnc["processes"] if p["pid"] == proc.pid)
        assert entry["ports"] == [web_port] and entry["target"] == f"localhost:{port + 2}"
        target = rules(section)["novnc-target-mismatch"]
        assert f"port {port + 2}, but VNC is on port {port}" in target.title


class FakeWebsockify:
    """A process called websockify (python3 .../websockify LISTEN TARGET) that listens."""

    def __init__(self, tmp_path: Path, target: str) -> None:
        self.script = tmp_path / "websockify"
        self.script.write_text(
            "import socket, sys, time\n"
            "s = socket.socket()\n"
            "s.bind(('127.0.0.1', int(sys.argv[1])))\n"
            "s.listen()\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n"
        )
        self.target = target

    def __enter__(self) -> tuple[subprocess.Popen[str], int]:
        port = free_tcp_port()
        self.proc = subprocess.Popen(
            [sys.executable, str(self.script), str(port), self.target],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"
        return self.proc, port

    def __exit__(self, *exc: object) -> None:
        stop_process(self.proc)


# --- pure rules on fabricated data --------------------------------------------------------


def P(pid: int, name: str, command: str, zombie: bool = False) -> ProcInfo:
    """A fabricated process-table row; `command` is split on spaces."""
    return ProcInfo(pid, name, tuple(command.split()), zombie)


def test_the_process_table_is_read_as_the_collector_needs_it() -> None:
    """Every row but this process's, by pid, with a zombie told as one."""
    rows = [
        ProcessRow(40, "Xvfb", ("Xvfb", ":1"), "sleeping", None),
        ProcessRow(os.getpid(), "python3", ("python3",), "running", None),
        ProcessRow(7, "icewm", (), ZOMBIE, None),
    ]
    assert process_infos(rows) == [
        ProcInfo(pid=7, name="icewm", cmdline=(), zombie=True),
        ProcInfo(pid=40, name="Xvfb", cmdline=("Xvfb", ":1"), zombie=False),
    ]
    assert all(type(info) is ProcInfo for info in process_infos(rows))


@pytest.mark.parametrize(
    ("name", "argv", "port"),
    [
        ("Xtigervnc", ["/usr/bin/Xtigervnc", ":1", "-rfbport", "5901"], 5901),
        ("Xtigervnc", ["/usr/bin/Xtigervnc", ":1"], 5901),
        ("Xtigervnc", ["/usr/bin/Xtigervnc", ":3", "-desktop", "x"], 5903),
        ("Xvnc", ["Xvnc", ":1", "-rfbport=5905"], 5905),
        ("Xvnc", ["Xvnc", ":1", "-RfbPort", "5906"], 5906),
        ("Xtigervnc", ["Xtigervnc", ":1", "-rfbport", "-1"], None),
        ("Xvfb", ["Xvfb", ":1", "-rfbport", "5901"], None),
        ("Xorg", ["/usr/lib/xorg/Xorg", ":0"], None),
    ],
)
def test_vnc_port(name: str, argv: list[str], port: int | None) -> None:
    assert vnc_port(name, argv, x11.parse_display(argv[1]).number) == port


def test_find_server_and_window_managers() -> None:
    table = [
        P(10, "Xtigervnc", "/usr/bin/Xtigervnc :1 -rfbport 5901"),
        P(11, "Xvfb", "Xvfb :12"),
        P(12, "bash", "bash -c Xvfb :1"),  # names :1, but is not an X server
        P(13, "Xvfb", "Xvfb :2", zombie=True),
        P(20, "icewm", "icewm"),
        P(21, "icewm-session", "/usr/bin/icewm-session"),
        P(22, "icewmbg", "icewmbg"),
        P(23, "icewm", "icewm", zombie=True),
        P(24, "tail", "tail -f /logs/icewm.log"),
    ]
    assert find_server(table, 1) == table[0]
    assert find_server(table, 12) == table[1]
    assert find_server(table, 2) is None
    assert [p.pid for p in find_window_managers(table, "icewm")] == [20, 21]


def test_find_novnc_and_target() -> None:
    table = [
        P(30, "python3", "python3 /usr/bin/websockify --web /usr/share/novnc 6901 localhost:5901"),
        P(31, "novnc_proxy", "/bin/bash /usr/share/novnc/utils/novnc_proxy --vnc localhost:5901"),
        P(32, "python3", "python3 -m websockify 0.0.0.0:6901 127.0.0.1:5900"),
        P(33, "tail", "tail -f /logs/novnc.log"),
        P(34, "launch.sh", "/opt/noVNC/utils/launch.sh --vnc localhost:5901"),
        P(35, "less", "less /logs/novnc.log"),
    ]
    assert [p.pid for p in find_novnc(table)] == [30, 31, 32, 34]
    assert novnc_target(table[0].cmdline) == "localhost:5901"
    assert novnc_target(table[1].cmdline) == "localhost:5901"
    assert novnc_target(table[2].cmdline) == "127.0.0.1:5900"
    assert novnc_target(("websockify", "6901")) is None
    assert novnc_target(("websockify", "0.0.0.0:6901")) is None  # token mode: no target


def fabricated(**changes: Any) -> dict[str, Any]:
    """The data of a healthy display :1 (Xtigervnc, icewm, noVNC), with `changes` applied."""
    data: dict[str, Any] = {
        "display": ":1",
        "number": 1,
        "socket": {"path": "/tmp/.X11-unix/X1", "exists": True},
        "lock": {
            "path": "/tmp/.X1-lock",
            "exists": True,
            "pid": 10,
            "pid_alive": True,
            "pid_name": "Xtigervnc",
        },
        "connection": {
            "ok": True,
            "result": "success",
            "reason": None,
            "vendor": "The X.Org Foundation",
            "release": 12101006,
            "answered": True,
            "auth_required": False,
            "auth_file": None,
        },
        "server": {"pid": 10, "name": "Xtigervnc", "cmdline": "Xtigervnc :1", "auth_file": None},
        "vnc": {"port": 5901, "listening": True},
        "window_manager": {
            "name": "icewm",
            "running": True,
            "processes": [{"pid": 20, "name": "icewm", "display": ":1", "xauthority": None}],
        },
        "novnc": {
            "running": True,
            "processes": [
                {"pid": 30, "name": "websockify", "ports": [6901], "target": "localhost:5901"}
            ],
        },
    }
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    return data


def test_healthy_display_has_no_findings() -> None:
    assert assess(fabricated(), expected_vnc_port=5901) == []


def test_rejected_connection_is_reported() -> None:
    data = fabricated(
        connection={"ok": False, "result": "failed", "reason": "Maximum number of clients"}
    )
    (finding,) = assess(data, 5901)
    assert (finding.rule, finding.severity) == ("x-connection-rejected", Status.WARN)
    assert "Maximum number of clients" in finding.detail


def test_cookie_wanted_is_up_and_explains_the_window_manager() -> None:
    data = fabricated(
        connection={
            "ok": False,
            "result": "failed",
            "reason": "Authorization required, but no authorization protocol specified",
            "auth_required": True,
        },
        window_manager={"running": False, "processes": []},
    )
    (finding,) = assess(data, 5901)
    assert finding.rule == "wm-not-running"
    assert "requires a cookie" in finding.detail and "XAUTHORITY" in finding.detail


def test_unchecked_server_is_unknown() -> None:
    data = fabricated(
        connection={
            "ok": False,
            "result": "error",
            "reason": "Permission denied",
            "answered": False,
        }
    )
    (finding,) = assess(data, 5901)
    assert (finding.rule, finding.severity) == ("x-server-unchecked", Status.UNKNOWN)


def test_hung_server_is_down_with_its_name() -> None:
    data = fabricated(connection={"ok": False, "result": "timeout", "answered": False})
    found = {f.rule: f for f in assess(data, 5901)}
    assert set(found) == {"x-server-down"}  # the process exists: the lock is not stale
    assert found["x-server-down"].title == (
        "The X server for display :1 (Xtigervnc, pid 10) does not answer"
    )


def test_window_manager_down_with_the_server_is_one_finding() -> None:
    data = fabricated(
        connection={"ok": False, "result": "no-socket", "answered": False},
        server=None,
        lock={"exists": False, "pid": None, "pid_alive": None, "pid_name": None},
        window_manager={"running": False, "processes": []},
    )
    (finding,) = assess(data, 5901)
    assert finding.rule == "x-server-down"
    assert "icewm is not running either" in finding.detail


@pytest.mark.parametrize(
    ("display", "rule"),
    [(None, "wm-wrong-display"), (":0", "wm-wrong-display"), ("unreadable", None), (":1.0", None)],
)
def test_window_manager_display(display: str | None, rule: str | None) -> None:
    processes = [{"pid": 20, "name": "icewm", "display": display, "xauthority": None}]
    findings = assess(fabricated(window_manager={"processes": processes}), 5901)
    assert [f.rule for f in findings] == ([rule] if rule else [])
    if display is None:
        assert "DISPLAY unset" in findings[0].title


@pytest.mark.parametrize(
    ("lock", "server", "stale"),
    [
        ({"exists": False, "pid": None, "pid_alive": None}, None, False),
        ({"exists": True, "pid": None, "pid_alive": None}, None, True),
        ({"exists": True, "pid": 5, "pid_alive": False}, None, True),
        ({"exists": True, "pid": 5, "pid_alive": True, "pid_name": "sshd"}, None, True),
        ({"exists": True, "pid": 5, "pid_alive": True, "pid_name": "Xtigervnc"}, None, False),
        ({"exists": True, "pid": 5, "pid_alive": False}, {"pid": 6}, False),
    ],
)
def test_lock_is_stale(lock: dict[str, Any], server: dict[str, Any] | None, stale: bool) -> None:
    assert lock_is_stale(lock, server) is stale


def test_novnc_pointing_elsewhere() -> None:
    data = fabricated(
        novnc={
            "processes": [
                {"pid": 30, "name": "websockify", "ports": [6901], "target": "localhost:5900"}
            ]
        }
    )
    (finding,) = assess(data, 5901)
    assert finding.rule == "novnc-target-mismatch" and finding.subject == "novnc:5900"
