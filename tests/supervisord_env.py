"""A real supervisord for tests: programs that run, crash and fail as the seed's do.

    from supervisord_env import seed_programs, start_supervisord

    with start_supervisord(tmp_path, seed_programs(port)) as sv:
        sv.wait_for_states({"sshd": "FATAL", "novnc": "RUNNING"})
        sv.url            # unix:///tmp/svXXXX/supervisor.sock
        sv.conf_path      # tmp_path / "supervisord.conf" ([supervisorctl] serverurl set)
        sv.log("sshd", "stderr")   # tmp_path / "logs" / "sshd.err.log"
        sv.toml()         # a [supervisor] table for a healthcheck.toml

`programs` maps a program name to its command line (a string) or to its options (a dict:
command, autostart, autorestart, startsecs, startretries, exitcodes, environment (a dict or
supervisor's KEY="v" string), redirect_stderr, ...). `{python}` in a command is this
interpreter. Logs go to tmp_path/logs/NAME.log (stdout) and NAME.err.log (stderr).

supervisord runs in the foreground (`-n`) as a child of the test, with a controlled
environment: PATH, HOME, LANG, TZ=UTC, PYTHONUNBUFFERED, plus `env`, and nothing else; in
particular no DISPLAY, unless a program's own `environment=` sets it. The socket lives in a
short /tmp directory (AF_UNIX paths are limited to about 107 bytes). Stopping shuts
supervisord down, kills whatever is left of it and its programs, and removes the directory.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

BIN = Path(sys.executable).parent
SUPERVISORD = str(BIN / "supervisord")
SUPERVISORCTL = str(BIN / "supervisorctl")
PYTHON = sys.executable
READY_TIMEOUT = 20.0  # seconds for supervisord to answer: generous for a loaded 2-core CI box
STOP_TIMEOUT = 10.0
CALL_TIMEOUT = 5.0

STATES = frozenset(
    {"STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN"}
)

# What every program gets unless its options say otherwise: quick to give up and to stop.
PROGRAM_DEFAULTS: dict[str, Any] = {
    "autostart": True,
    "autorestart": False,
    "startsecs": 1,
    "startretries": 1,
    "stopwaitsecs": 2,
    "stopasgroup": True,
    "killasgroup": True,
}

# The sshd of the seed box: it exits 255 at once when /run/sshd is missing.
SSHD_ERROR = "Missing privilege separation directory: /run/sshd"
ICEWM_ERROR = "IceWM: Can't open display: <none>. X must be running and $DISPLAY set."
FILEBROWSER_COMMAND = "/opt/filebrowser/bin/filebrowser"


# --- ready-made programs that mirror the seed -----------------------------------------------


def python_command(code: str) -> str:
    """A command line running `code` (one line) with this interpreter, quoted for supervisord.

    supervisord splits commands with shlex (POSIX rules), so shlex.quote survives any quote
    or apostrophe in `code`; use chr(10) for a newline, the conf cannot hold one.
    """
    return f"{{python}} -c {shlex.quote(code)}"


def http_server(port: int) -> dict[str, Any]:
    """A healthy web service (noVNC, Jupyter...): listens on 127.0.0.1:port and stays up."""
    return {
        "command": f"{{python}} -m http.server {port} --bind 127.0.0.1",
        "autorestart": True,
    }


def sleeper() -> dict[str, Any]:
    """A quiet long-running program (a worker): RUNNING until stopped."""
    return {"command": python_command("import time; time.sleep(3600)"), "autorestart": True}


def sshd_failing() -> dict[str, Any]:
    """sshd as on the seed box: prints its error to stderr and exits 255; FATAL after a retry."""
    code = f"import sys; sys.stderr.write({SSHD_ERROR!r} + chr(10)); sys.exit(255)"
    return {"command": python_command(code), "autorestart": True}


def visomaster_missing_module() -> dict[str, Any]:
    """The GUI app: `import PySide6` fails (ModuleNotFoundError traceback, exit 1) -> FATAL.

    -I -S keep site-packages out, so PySide6 is missing whatever this machine has installed.
    """
    return {"command": "{python} -I -S -c 'import PySide6'", "autorestart": True}


def filebrowser_missing_command(command: str = FILEBROWSER_COMMAND) -> dict[str, Any]:
    """A program whose binary does not exist: spawnerr "can't find command ..." -> FATAL."""
    return {"command": f"{command} -r / -p 8585 -a 127.0.0.1", "autorestart": True}


def icewm_no_display() -> dict[str, Any]:
    """The window manager: without DISPLAY it cannot open the display and exits 1 -> FATAL.

    With DISPLAY set (environment={"DISPLAY": ":1"}) it stays up, like a running icewm.
    """
    code = (
        "import os, sys, time; "
        f"os.environ.get('DISPLAY') or sys.exit(sys.stderr.write({ICEWM_ERROR!r} + chr(10)) "
        "and 1); time.sleep(3600)"
    )
    return {"command": python_command(code), "autorestart": True}


def real_icewm(home: Path, display: str | None) -> dict[str, Any]:
    """The real window manager (Debian's icewm) as a program; DISPLAY only when given, so
    without it icewm fails as on the seed box ("Can't open display: <none>")."""
    environment = {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
    if display is not None:
        environment["DISPLAY"] = display
    return {"command": "icewm", "autorestart": True, "environment": environment}


def xtigervnc(number: int, rfbport: int, autostart: bool = True) -> dict[str, Any]:
    """The seed's VNC program: a real Xtigervnc serving display :number, VNC on `rfbport`
    (localhost only, no VNC password), started before the programs that need it."""
    command = (
        f"Xtigervnc :{number} -rfbport {rfbport} -localhost -SecurityTypes None -nolisten tcp "
        "-geometry 640x480 -depth 16 -noreset"
    )
    return {"command": command, "autostart": autostart, "autorestart": True, "priority": 10}


def stamped_web_service(port: int) -> dict[str, Any]:
    """Jupyter's way of logging: a local-time stamped line when it is up ("[I 2026-11-28
    10:00:00.123 ServerApp] ... is running at ..."), then it serves on 127.0.0.1:port."""
    code = (
        "import datetime, http.server; "
        "now = datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]; "
        f"print(f'[I {{now}} ServerApp] Jupyter Server is running at http://127.0.0.1:{port}/', "
        "flush=True); "
        "http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None; "
        f"http.server.HTTPServer(('127.0.0.1', {port}), "
        "http.server.SimpleHTTPRequestHandler).serve_forever()"
    )
    return {"command": python_command(code), "autorestart": True}


def jupyter_stopped(port: int) -> dict[str, Any]:
    """A service configured with autostart=false: STOPPED, never started."""
    return {"command": f"{{python}} -m http.server {port} --bind 127.0.0.1", "autostart": False}


def oneshot() -> dict[str, Any]:
    """A provisioning step that prints and exits 0 as expected: EXITED, exit status 0."""
    return {
        "command": python_command("print('provisioning done')"),
        "startsecs": 0,
        "exitcodes": "0",
        "redirect_stderr": True,
    }


def seed_programs(port: int, filebrowser_command: str = FILEBROWSER_COMMAND) -> dict[str, Any]:
    """The seed box's programs, each in the state the seed documents (see SEED_STATES)."""
    return {
        "novnc": http_server(port),
        "sshd": sshd_failing(),
        "visomaster": visomaster_missing_module(),
        "filebrowser": filebrowser_missing_command(filebrowser_command),
        "icewm": icewm_no_display(),
        "jupyter": jupyter_stopped(free_port()),
        "provision": oneshot(),
    }


# The state each of seed_programs() settles in: pass to wait_for_states.
SEED_STATES: dict[str, str] = {
    "novnc": "RUNNING",
    "sshd": "FATAL",
    "visomaster": "FATAL",
    "filebrowser": "FATAL",
    "icewm": "FATAL",
    "jupyter": "STOPPED",
    "provision": "EXITED",
}


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the running supervisord ----------------------------------------------------------------


@dataclass(eq=False)
class Supervisord:
    """A supervisord started by a test. Use as a context manager, or call stop()."""

    root: Path  # the test's directory: conf, logs, supervisord's own log
    sock_dir: Path  # short /tmp directory holding the socket
    conf_path: Path
    socket_path: Path
    log_dir: Path
    proc: subprocess.Popen[bytes]
    http_port: int | None = None
    username: str = ""
    password: str = field(default="", repr=False)
    _stopped: bool = False

    @property
    def url(self) -> str:
        """The unix:// server URL (no authentication)."""
        return f"unix://{self.socket_path}"

    @property
    def http_url(self) -> str | None:
        """The http:// server URL (with username/password when given), or None."""
        return None if self.http_port is None else f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self, name: str, stream: str = "stdout") -> Path:
        """Where program `name` logs `stream` ("stdout" or "stderr")."""
        suffix = ".log" if stream == "stdout" else ".err.log"
        return self.log_dir / f"{name}{suffix}"

    def toml(self, http: bool = False) -> str:
        """A [supervisor] table pointing healthcheck at this supervisord."""
        if http:
            if self.http_url is None:
                raise ValueError("this supervisord has no inet_http_server")
            return (
                f'[supervisor]\nserverurl = "{self.http_url}"\n'
                f'username = "{self.username}"\npassword = "{self.password}"\n'
            )
        return f'[supervisor]\nserverurl = "{self.url}"\n'

    def rpc(self, method: str, *args: Any) -> Any:
        """Call supervisord's XML-RPC interface over the unix socket (independent client)."""
        proxy = xmlrpc.client.ServerProxy(
            "http://localhost/RPC2", transport=_UnixTransport(str(self.socket_path))
        )
        return getattr(proxy, method)(*args)

    def info(self) -> dict[str, dict[str, Any]]:
        """Every program's process info, by full name ("group:name", or name)."""
        infos = self.rpc("supervisor.getAllProcessInfo")
        return {_fullname(i): i for i in infos}

    def wait_for_states(
        self, wanted: Mapping[str, str | Iterable[str]], timeout: float = READY_TIMEOUT
    ) -> dict[str, dict[str, Any]]:
        """Poll until each named program is in one of its wanted states; the infos then.

        Raises AssertionError naming every program's state (and supervisord's log) on timeout.
        """
        expected = {
            name: {states} if isinstance(states, str) else set(states)
            for name, states in wanted.items()
        }
        for name, states in expected.items():
            unknown = states - STATES
            if unknown:
                raise ValueError(f"{name}: not supervisor states: {sorted(unknown)}")
        deadline = time.monotonic() + timeout
        infos: dict[str, dict[str, Any]] = {}
        while True:
            with contextlib.suppress(OSError, xmlrpc.client.Error, http.client.HTTPException):
                infos = self.info()
                if all(
                    name in infos and infos[name]["statename"] in states
                    for name, states in expected.items()
                ):
                    return infos
            if time.monotonic() > deadline or self.proc.poll() is not None:
                now = {n: i["statename"] for n, i in infos.items()}
                raise AssertionError(
                    f"programs did not reach {expected} within {timeout:g}s: {now}\n"
                    f"{self.daemon_log()}"
                )
            time.sleep(0.1)

    def ctl(self, *args: str, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
        """Run supervisorctl -c CONF ARGS."""
        return subprocess.run(
            [SUPERVISORCTL, "-c", str(self.conf_path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def daemon_log(self) -> str:
        """supervisord's own log and output, for failure messages."""
        parts = []
        for path in (self.root / "supervisord.log", self.root / "supervisord.out"):
            with contextlib.suppress(OSError):
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Shut down supervisord and its programs; kill what is left; remove the socket dir."""
        if self._stopped:
            return
        self._stopped = True
        _RUNNING.discard(self)
        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            family = []
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
        # supervisord stops its groups one after another, a second or more each: killing the
        # programs ourselves (it no longer restarts them once it has SIGTERM) is much faster.
        # They run in process groups of their own, so a killed supervisord would leave them.
        for child in family:
            with contextlib.suppress(psutil.Error):
                child.kill()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        psutil.wait_procs(family, timeout=STOP_TIMEOUT)
        shutil.rmtree(self.sock_dir, ignore_errors=True)

    def __enter__(self) -> Supervisord:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_RUNNING: set[Supervisord] = set()


@atexit.register
def _stop_all() -> None:  # pragma: no cover - only when a test forgot to stop one
    for sv in list(_RUNNING):
        sv.stop()


def start_supervisord(
    tmp_path: Path,
    programs: Mapping[str, str | Mapping[str, Any]],
    env: Mapping[str, str] | None = None,
    *,
    http: bool = False,
    username: str = "",
    password: str = "",
    groups: Mapping[str, Iterable[str]] | None = None,
    ready_timeout: float = READY_TIMEOUT,
) -> Supervisord:
    """Write tmp_path/supervisord.conf, start `supervisord -n` and wait until it is RUNNING.

    `http`: also serve XML-RPC on 127.0.0.1 (a free port), with `username`/`password` as
    its basic auth when given (the unix socket has none). `groups`: {group: [program...]}.
    `env` is added to the controlled environment supervisord (and so each program) gets.
    """
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    sock_dir = Path(tempfile.mkdtemp(prefix="sv", dir="/tmp"))
    socket_path = sock_dir / "supervisor.sock"
    conf_path = tmp_path / "supervisord.conf"
    http_port = free_port() if http else None
    conf_path.write_text(
        _conf_text(tmp_path, socket_path, log_dir, programs, http_port, username, password, groups),
        encoding="utf-8",
    )
    environment = {
        "PATH": f"{BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    with open(tmp_path / "supervisord.out", "wb") as out:
        proc = subprocess.Popen(
            [SUPERVISORD, "-n", "-c", str(conf_path)],
            cwd=tmp_path,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    sv = Supervisord(
        root=tmp_path,
        sock_dir=sock_dir,
        conf_path=conf_path,
        socket_path=socket_path,
        log_dir=log_dir,
        proc=proc,
        http_port=http_port,
        username=username,
        password=password,
    )
    _RUNNING.add(sv)
    try:
        _wait_running(sv, ready_timeout)
    except BaseException:
        sv.stop()
        raise
    return sv


def _wait_running(sv: Supervisord, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if sv.proc.poll() is not None:
            raise RuntimeError(f"supervisord exited with {sv.proc.returncode}\n{sv.daemon_log()}")
        try:
            state = sv.rpc("supervisor.getState")
            if state.get("statename") == "RUNNING":
                return
            last = state
        except (OSError, xmlrpc.client.Error, http.client.HTTPException) as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(
        f"supervisord did not answer RUNNING within {timeout:g}s ({last!r})\n{sv.daemon_log()}"
    )


def _conf_text(
    root: Path,
    socket_path: Path,
    log_dir: Path,
    programs: Mapping[str, str | Mapping[str, Any]],
    http_port: int | None,
    username: str,
    password: str,
    groups: Mapping[str, Iterable[str]] | None,
) -> str:
    lines = [
        "[unix_http_server]",
        f"file = {socket_path}",
        "chmod = 0700",
        "",
    ]
    if http_port is not None:
        lines += ["[inet_http_server]", f"port = 127.0.0.1:{http_port}"]
        if username:
            lines += [f"username = {username}", f"password = {password}"]
        lines.append("")
    lines += [
        "[supervisord]",
        f"logfile = {root / 'supervisord.log'}",
        f"pidfile = {root / 'supervisord.pid'}",
        f"childlogdir = {log_dir}",
        "nodaemon = true",
        "loglevel = info",
        # Low limits: supervisord refuses to start when the box allows fewer than it asks.
        "minfds = 64",
        "minprocs = 32",
        "",
        "[rpcinterface:supervisor]",
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        "",
        "[supervisorctl]",
        f"serverurl = unix://{socket_path}",
        "",
    ]
    for name, spec in programs.items():
        options: dict[str, Any] = dict(PROGRAM_DEFAULTS)
        options.update({"command": spec} if isinstance(spec, str) else dict(spec))
        options["command"] = str(options["command"]).replace("{python}", PYTHON)
        options.setdefault("stdout_logfile", str(log_dir / f"{name}.log"))
        if not options.get("redirect_stderr"):
            options.setdefault("stderr_logfile", str(log_dir / f"{name}.err.log"))
        lines.append(f"[program:{name}]")
        lines += [f"{key} = {_option(value)}" for key, value in options.items()]
        lines.append("")
    for group, members in (groups or {}).items():
        lines += [f"[group:{group}]", f"programs = {','.join(members)}", ""]
    return "\n".join(lines)


def _option(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        # supervisor's environment= syntax: KEY="value",KEY2="value2"
        return ",".join(f'{k}="{v}"' for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    # A literal % must be doubled: supervisord expands %(name)s in option values.
    return str(value).replace("%", "%%") if "%(" not in str(value) else str(value)


def _fullname(info: Mapping[str, Any]) -> str:
    group, name = info["group"], info["name"]
    return name if group == name else f"{group}:{name}"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=CALL_TIMEOUT)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(CALL_TIMEOUT)
        try:
            sock.connect(self.unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    """The helper's own transport, so that tests do not trust the client they test."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.unix_path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        return _UnixConnection(self.unix_path)


@contextlib.contextmanager
def supervisord(
    tmp_path: Path, programs: Mapping[str, str | Mapping[str, Any]], **kwargs: Any
) -> Iterator[Supervisord]:
    """start_supervisord as a `with` block (the returned object is one as well)."""
    sv = start_supervisord(tmp_path, programs, **kwargs)
    try:
        yield sv
    finally:
        sv.stop()


__all__ = [
    "FILEBROWSER_COMMAND",
    "ICEWM_ERROR",
    "PYTHON",
    "SEED_STATES",
    "SSHD_ERROR",
    "SUPERVISORCTL",
    "SUPERVISORD",
    "Supervisord",
    "filebrowser_missing_command",
    "free_port",
    "http_server",
    "icewm_no_display",
    "jupyter_stopped",
    "oneshot",
    "python_command",
    "seed_programs",
    "sleeper",
    "sshd_failing",
    "stamped_web_service",
    "start_supervisord",
    "supervisord",
    "visomaster_missing_module",
    "xtigervnc",
]
