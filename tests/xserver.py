"""Real X servers and window managers for tests: Xvfb, Xtigervnc, icewm.

    from xserver import start_xvfb, start_icewm, stop_process

    with start_xvfb() as x:              # x.number, x.display (":N"), x.proc
        wm = start_icewm(x.display)
        try:
            ...
        finally:
            stop_process(wm)

Display numbers start at 50 (well clear of a developer's :0 and the container's :1), and a
number is only taken when neither its lock file nor its socket (path or abstract) exists.
Every server is stopped on exit, and its lock and socket are gone afterwards.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from healthcheck import x11

FIRST_DISPLAY = 50
LAST_DISPLAY = 500
READY_TIMEOUT = 15.0  # seconds for a server to answer; generous for a loaded 2-core CI box
STOP_TIMEOUT = 5.0


def have(program: str) -> bool:
    """Whether `program` is on PATH (for skipif marks)."""
    return shutil.which(program) is not None


def display_in_use(number: int, base: str = x11.DEFAULT_BASE) -> bool:
    """A lock file, a socket file or an abstract socket claims display `number`."""
    if os.path.lexists(x11.lock_path(number, base)):
        return True
    if os.path.lexists(x11.socket_path(number, base)):
        return True
    abstract = "@" + x11.socket_path(number, base)
    try:
        with open("/proc/net/unix", encoding="ascii", errors="replace") as handle:
            return any(line.split()[-1] == abstract for line in handle if line.strip())
    except OSError:
        return False


def free_display_number(start: int = FIRST_DISPLAY, base: str = x11.DEFAULT_BASE) -> int:
    """The first display number from `start` that nothing claims."""
    for number in range(start, LAST_DISPLAY):
        if not display_in_use(number, base):
            return number
    raise RuntimeError(f"no free X display number in {start}..{LAST_DISPLAY - 1}")


def free_tcp_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class XServer:
    """A running X server started by a test."""

    number: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    args: tuple[str, ...] = ()
    rfbport: int | None = None  # Xtigervnc only

    @property
    def display(self) -> str:
        return f":{self.number}"

    @property
    def socket_path(self) -> str:
        return x11.socket_path(self.number)

    @property
    def lock_path(self) -> str:
        return x11.lock_path(self.number)

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def start_xvfb(
    display_number: int | None = None,
    *,
    auth_file: str | os.PathLike[str] | None = None,
    noreset: bool = True,
    extra_args: Sequence[str] = (),
) -> Iterator[XServer]:
    """Run `Xvfb :N -nolisten tcp -screen 0 640x480x16 -noreset` until the block ends.

    -noreset: an X server resets whenever its last client leaves, and drops clients that
    arrive meanwhile; a test that probes the server and then starts a window manager would
    fail now and then without it. With `auth_file` (an Xauthority file, see
    `write_xauthority`) the server only accepts clients that present its cookie.
    """
    extra = ["-noreset"] if noreset else []
    extra += list(extra_args)
    if auth_file is not None:
        extra += ["-auth", os.fspath(auth_file)]
    with _start_server(
        lambda n: ["Xvfb", f":{n}", "-nolisten", "tcp", "-screen", "0", "640x480x16", *extra],
        display_number,
    ) as server:
        yield server


@contextlib.contextmanager
def start_xtigervnc(
    display_number: int | None = None, rfbport: int | None = None
) -> Iterator[XServer]:
    """Run Xtigervnc on display :N, VNC on `rfbport` (a free port by default), localhost only,
    no VNC authentication, as the container's supervisor program does."""
    port = rfbport if rfbport is not None else free_tcp_port()
    with _start_server(
        lambda n: [
            "Xtigervnc",
            f":{n}",
            "-rfbport",
            str(port),
            "-localhost",
            "-SecurityTypes",
            "None",
            "-nolisten",
            "tcp",
            "-geometry",
            "640x480",
            "-depth",
            "16",
            "-noreset",  # see start_xvfb
        ],
        display_number,
    ) as server:
        server.rfbport = port
        _wait_for_tcp(port, server)
        yield server


@contextlib.contextmanager
def _start_server(
    command: Callable[[int], list[str]], display_number: int | None
) -> Iterator[XServer]:
    log_dir = Path(tempfile.mkdtemp(prefix="xserver-log-"))
    try:
        server = _launch(command, display_number, log_dir)
        try:
            yield server
        finally:
            _stop_server(server)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)


def _launch(
    command: Callable[[int], list[str]], display_number: int | None, log_dir: Path
) -> XServer:
    # Another test run may grab a number between our check and the server's start; the
    # server then exits ("Server is already active"), and we move on to the next number.
    number = display_number if display_number is not None else free_display_number()
    for _attempt in range(5):
        log_path = log_dir / f"X{number}.log"
        args = command(number)
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal must not reach it first
            )
        server = XServer(number, proc, log_path, tuple(args))
        if _wait_ready(server):
            return server
        _stop_server(server)
        if display_number is not None:
            break
        number = free_display_number(number + 1)
    raise RuntimeError(
        f"{args[0]} did not start on :{number} (exit {proc.returncode}):\n{server.log()}"
    )


def _wait_ready(server: XServer) -> bool:
    """Poll with a real connection until the server answers, or it exits, or time runs out."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return False
        # The socket may belong to someone else until our server has written its lock.
        if _lock_pid(server.number) == server.proc.pid:
            probe = x11.probe_x_server(server.number, timeout=1.0)
            if probe.answered:
                return True
        time.sleep(0.02)
    return False


def _wait_for_tcp(port: int, server: XServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1.0):
            return
        time.sleep(0.02)
    raise RuntimeError(f"Xtigervnc never listened on port {port}:\n{server.log()}")


def _lock_pid(number: int) -> int | None:
    try:
        return x11.parse_lock(Path(x11.lock_path(number)).read_text(encoding="ascii"))
    except (OSError, UnicodeDecodeError):
        return None


def _stop_server(server: XServer) -> None:
    stop_process(server.proc)
    # A server killed with SIGKILL leaves its lock and socket: remove them if they are ours.
    if _lock_pid(server.number) == server.proc.pid:
        for path in (server.lock_path, server.socket_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """Terminate `proc` (and its process group if it leads one), wait, kill if it lingers."""
    if proc.poll() is None:
        _signal(proc, signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal(proc, signal.SIGKILL)
            proc.wait(STOP_TIMEOUT)
    elif _leads_group(proc):
        # Its children (if any) may outlive it in the group it led.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _signal(proc: subprocess.Popen[bytes] | subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if _leads_group(proc):
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def _leads_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> bool:
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return False


# --- the window manager -------------------------------------------------------------------


@dataclass
class _Scratch:
    dirs: list[str] = field(default_factory=list)

    def new(self, prefix: str) -> str:
        path = tempfile.mkdtemp(prefix=prefix)
        self.dirs.append(path)
        return path

    def cleanup(self) -> None:
        for path in self.dirs:
            shutil.rmtree(path, ignore_errors=True)


_scratch = _Scratch()
atexit.register(_scratch.cleanup)


def start_icewm(
    display: str | None,
    home: str | os.PathLike[str] | None = None,
    program: str = "icewm",
    env: dict[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start a real window manager on `display`; with None its environment has no DISPLAY
    (icewm then exits: "Can't open display: <none>. X must be running and $DISPLAY set.").

    HOME (and XDG_CONFIG_HOME) point at a scratch directory, so it reads and writes no
    real user's configuration. stderr is a text pipe: read it with `communicate()` once the
    process has exited; stop a running one with `stop_process()`. It leads its own process
    group, so stopping it also stops anything it started.
    """
    home_dir = os.fspath(home) if home is not None else _scratch.new("icewm-home-")
    child_env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DISPLAY", "XAUTHORITY", "WAYLAND_DISPLAY")
    }
    child_env.update(HOME=home_dir, XDG_CONFIG_HOME=os.path.join(home_dir, ".config"))
    if display is not None:
        child_env["DISPLAY"] = display
    child_env.update(env or {})
    return subprocess.Popen(
        [program],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env,
        start_new_session=True,
    )


@contextlib.contextmanager
def running_icewm(
    display: str | None, home: str | os.PathLike[str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`start_icewm` for the length of a with-block."""
    proc = start_icewm(display, home)
    try:
        yield proc
    finally:
        stop_process(proc)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- Xauthority ---------------------------------------------------------------------------


def write_xauthority(path: str | os.PathLike[str], number: int, cookie: bytes) -> None:
    """An Xauthority file with one MIT-MAGIC-COOKIE-1 for display `number`, as `xauth add`
    writes it (family local, this host's name)."""

    def counted(chunk: bytes) -> bytes:
        return len(chunk).to_bytes(2, "big") + chunk

    record = (
        (256).to_bytes(2, "big")  # FamilyLocal
        + counted(socket.gethostname().encode())
        + counted(str(number).encode())
        + counted(x11.MIT_COOKIE.encode())
        + counted(cookie)
    )
    Path(path).write_bytes(record)
    os.chmod(path, 0o600)
