"""X11 without Xlib: parse a DISPLAY, speak the connection setup, read lock and auth files.

`probe_x_server` opens a real X11 connection (the 12-byte client setup and the server's
reply) over the display's unix socket, so "is the X server up" is answered by the server
itself, not guessed from a file that may be left over. Every step is bounded by a timeout.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import struct
import time
from typing import Any, NamedTuple

import psutil

from healthcheck.lazyre import lazy
from healthcheck.record import Record

DEFAULT_BASE = "/tmp"
X_TCP_PORT_BASE = 6000
MIT_COOKIE = "MIT-MAGIC-COOKIE-1"

# Probe results. The first three mean an X server answered; the rest that none did.
SUCCESS = "success"
FAILED = "failed"
AUTHENTICATE = "authenticate"
NO_SOCKET = "no-socket"
REFUSED = "refused"
TIMEOUT = "timeout"
ERROR = "error"
ANSWERED = frozenset({SUCCESS, FAILED, AUTHENTICATE})

# "host:N" or "host:N.S"; the host may be empty, "unix", a name, an IPv4 or IPv6 address.
_DISPLAY_RE = lazy(r"^(?P<host>.*?):(?P<number>\d+)(?:\.(?P<screen>\d+))?$")
_AUTH_REASON_RE = lazy(r"authori[sz]|authenticat", re.IGNORECASE)


class DisplaySpec(NamedTuple):
    """A parsed DISPLAY value."""

    host: str  # "" for the local unix socket
    number: int
    screen: int = 0

    @property
    def local(self) -> bool:
        """Reached through the unix socket (no host, or the explicit "unix" host)."""
        return self.host in ("", "unix") or self.host.endswith("/unix")

    def __str__(self) -> str:
        return f"{'' if self.host == 'unix' else self.host}:{self.number}"


def parse_display(value: str) -> DisplaySpec:
    """Parse "host:N.S", ":1", ":1.0", "unix:1", "localhost:10.0"; raise ValueError if invalid."""
    text = value.strip()
    if not text:
        raise ValueError("invalid X display '': it is empty (expected a value like ':1')")
    match = _DISPLAY_RE.match(text)
    if match is None:
        raise ValueError(
            f"invalid X display {value!r}: expected [host]:number[.screen], for example ':1'"
        )
    host = match["host"]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return DisplaySpec(host=host, number=int(match["number"]), screen=int(match["screen"] or 0))


def same_display(value: str | None, spec: DisplaySpec) -> bool:
    """Whether a client with DISPLAY=`value` reaches the display `spec` names."""
    if not value:
        return False
    try:
        other = parse_display(value)
    except ValueError:
        return False
    if other.number != spec.number or other.local != spec.local:
        return False
    return other.local or other.host == spec.host


def socket_path(number: int, base: str = DEFAULT_BASE) -> str:
    """Where the X server for display `number` listens: /tmp/.X11-unix/X<N>."""
    return os.path.join(base, ".X11-unix", f"X{number}")


def lock_path(number: int, base: str = DEFAULT_BASE) -> str:
    """The X server's lock file: /tmp/.X<N>-lock."""
    return os.path.join(base, f".X{number}-lock")


# --- the connection probe -----------------------------------------------------------------


class XAuthEntry(NamedTuple):
    """One record of an Xauthority file."""

    family: int
    address: bytes
    number: str  # the display number as text; "" matches any
    name: str  # e.g. MIT-MAGIC-COOKIE-1
    data: bytes


class XProbe(Record):
    """What a connection attempt found."""

    __slots__ = ("address", "dropped", "ok", "reason", "release", "result", "vendor")
    _not_compared = _not_shown = frozenset({"dropped"})

    def __init__(
        self,
        ok: bool,
        result: str,  # success | failed | authenticate | no-socket | refused | timeout | error
        reason: str | None = None,
        vendor: str | None = None,
        release: int | None = None,
        address: str | None = None,  # the socket that was reached ("@..." for an abstract one)
        # Dropped before any reply: what an X server does to a client that arrives while it
        # resets (it does so whenever its last client leaves, unless run with -noreset).
        dropped: bool = False,
    ) -> None:
        self.ok = ok
        self.result = result
        self.reason = reason
        self.vendor = vendor
        self.release = release
        self.address = address
        self.dropped = dropped

    @property
    def answered(self) -> bool:
        """An X server replied, even if it turned us away: it is running."""
        return self.result in ANSWERED

    @property
    def auth_required(self) -> bool:
        """The server turned us away for lack of credentials."""
        return self.result == AUTHENTICATE or (
            self.result == FAILED and bool(_AUTH_REASON_RE.search(self.reason or ""))
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "result": self.result,
            "reason": self.reason,
            "vendor": self.vendor,
            "release": self.release,
            "address": self.address,
        }


class _Timeout(Exception):
    pass


class _Closed(Exception):
    pass


def probe_x_server(
    number: int,
    timeout: float = 2.0,
    base: str = DEFAULT_BASE,
    host: str | None = None,
    auth: XAuthEntry | None = None,
) -> XProbe:
    """Connect to display `number` and do the X11 connection setup; never hangs.

    Locally the socket file is tried first, then the abstract socket of the same name (which
    Xorg, Xvfb and Xtigervnc also listen on, and which survives a deleted /tmp/.X11-unix).
    With a `host` other than "" or "unix", TCP port 6000+N on that host is used instead.
    `timeout` bounds the whole attempt. `auth` is sent as the authorization, if given.

    A connection dropped before any reply is tried again while time is left: an X server
    with no clients left resets itself, and a client arriving just then is dropped.
    """
    deadline = time.monotonic() + timeout
    while True:
        probe = _probe_once(number, timeout, deadline, base, host, auth)
        if not probe.dropped or deadline - time.monotonic() < RETRY_PAUSE * 2:
            return probe
        time.sleep(RETRY_PAUSE)


RETRY_PAUSE = 0.05


def _probe_once(
    number: int,
    timeout: float,
    deadline: float,
    base: str,
    host: str | None,
    auth: XAuthEntry | None,
) -> XProbe:
    if host not in (None, "", "unix"):
        return _probe_tcp(host, number, deadline, timeout, auth)
    path = socket_path(number, base)
    attempts = [path, "\0" + path] if os.path.lexists(path) else ["\0" + path]
    failures: list[tuple[str, OSError]] = []
    for address in attempts:
        shown = "@" + address[1:] if address.startswith("\0") else address
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            try:
                sock.connect(address)
            except TimeoutError:
                return XProbe(False, TIMEOUT, f"connecting to {shown} timed out after {timeout:g}s")
            except OSError as exc:
                failures.append((shown, exc))
                continue
            return _handshake(sock, shown, deadline, timeout, auth)
        finally:
            sock.close()
    return _unreachable(path, failures)


def _unreachable(path: str, failures: list[tuple[str, OSError]]) -> XProbe:
    """The probe result when no local socket could be connected to."""
    missing = (errno.ENOENT, errno.ECONNREFUSED)
    if not os.path.lexists(path) and all(exc.errno in missing for _, exc in failures):
        return XProbe(False, NO_SOCKET, f"{path} does not exist and no abstract socket @{path}")
    if all(exc.errno in missing for _, exc in failures):
        return XProbe(
            False, REFUSED, f"{path} exists but nothing accepts connections on it (stale socket)"
        )
    shown, exc = next((s, e) for s, e in failures if e.errno not in missing)
    return XProbe(False, ERROR, f"cannot connect to {shown}: {exc.strerror or exc}")


def _probe_tcp(
    host: str, number: int, deadline: float, timeout: float, auth: XAuthEntry | None
) -> XProbe:
    address = f"{host}:{X_TCP_PORT_BASE + number}"
    try:
        sock = socket.create_connection((host, X_TCP_PORT_BASE + number), timeout=timeout)
    except TimeoutError:
        return XProbe(False, TIMEOUT, f"connecting to {address} timed out after {timeout:g}s")
    except ConnectionRefusedError:
        return XProbe(False, REFUSED, f"nothing listens on {address}")
    except OSError as exc:
        return XProbe(False, ERROR, f"cannot connect to {address}: {exc.strerror or exc}")
    with contextlib.closing(sock):
        return _handshake(sock, address, deadline, timeout, auth)


def client_setup(auth: XAuthEntry | None = None) -> bytes:
    """The client's connection setup request: little-endian, protocol 11.0, optional auth."""
    name = auth.name.encode("latin-1") if auth else b""
    data = auth.data if auth else b""
    head = struct.pack("<BxHHHH2x", ord("l"), 11, 0, len(name), len(data))
    return head + name + _pad(name) + data + _pad(data)


def _pad(chunk: bytes) -> bytes:
    return b"\0" * (-len(chunk) % 4)


def _handshake(
    sock: socket.socket, address: str, deadline: float, timeout: float, auth: XAuthEntry | None
) -> XProbe:
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.sendall(client_setup(auth))
        header = _recv_exact(sock, 8, deadline)
        status = header[0]
        extra = struct.unpack_from("<H", header, 6)[0] * 4
        if status == 0:
            body = _recv_exact(sock, extra, deadline)
            reason = body[: header[1]].decode("latin-1").strip()
            return XProbe(False, FAILED, reason or "refused without a reason", address=address)
        if status == 2:
            body = _recv_exact(sock, extra, deadline)
            reason = body.decode("latin-1").rstrip("\0").strip()
            return XProbe(
                False, AUTHENTICATE, reason or "further authentication required", address=address
            )
        if status == 1:
            return _parse_success(sock, extra, address, deadline)
        return XProbe(
            False, ERROR, f"unexpected reply byte {status}: not an X server?", address=address
        )
    except _Timeout:
        return XProbe(
            False,
            TIMEOUT,
            f"{address} accepted the connection but sent no setup reply within {timeout:g}s",
            address=address,
        )
    except (_Closed, ConnectionResetError):
        return XProbe(
            False,
            ERROR,
            f"{address} closed the connection during setup",
            address=address,
            dropped=True,
        )
    except OSError as exc:
        return XProbe(
            False, ERROR, f"setup on {address} failed: {exc.strerror or exc}", address=address
        )


def _parse_success(sock: socket.socket, extra: int, address: str, deadline: float) -> XProbe:
    # The fixed part of a success reply is 40 bytes (8 read already); the vendor string
    # follows. The rest (formats, screens, visuals) is of no interest: we stop reading there.
    if extra < 32:
        return XProbe(False, ERROR, "setup reply too short to be an X server's", address=address)
    fixed = _recv_exact(sock, 32, deadline)
    release = struct.unpack_from("<I", fixed, 0)[0]
    vendor_length = struct.unpack_from("<H", fixed, 16)[0]
    vendor_raw = _recv_exact(sock, min(vendor_length, extra - 32), deadline)
    vendor = vendor_raw.decode("latin-1").rstrip("\0").strip()
    return XProbe(True, SUCCESS, None, vendor or None, release, address)


def _recv_exact(sock: socket.socket, size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    left = size
    while left > 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(min(left, 65536))
        except TimeoutError:
            raise _Timeout from None
        if not chunk:
            raise _Closed
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --- Xauthority files ---------------------------------------------------------------------


def parse_xauthority(raw: bytes) -> list[XAuthEntry]:
    """The records of an Xauthority file (big-endian, length-prefixed); a torn tail is dropped."""
    entries: list[XAuthEntry] = []
    offset = 0
    while offset + 2 <= len(raw):
        family = struct.unpack_from(">H", raw, offset)[0]
        offset += 2
        fields: list[bytes] = []
        for _ in range(4):
            if offset + 2 > len(raw):
                return entries
            length = struct.unpack_from(">H", raw, offset)[0]
            offset += 2
            if offset + length > len(raw):
                return entries
            fields.append(raw[offset : offset + length])
            offset += length
        address, number, name, data = fields
        entries.append(
            XAuthEntry(family, address, number.decode("latin-1"), name.decode("latin-1"), data)
        )
    return entries


def find_cookie(entries: list[XAuthEntry], number: int) -> XAuthEntry | None:
    """The MIT-MAGIC-COOKIE-1 record for display `number` (or one for any display)."""
    cookies = [e for e in entries if e.name == MIT_COOKIE]
    exact = [e for e in cookies if e.number == str(number)]
    wild = [e for e in cookies if e.number == ""]
    found = exact or wild
    return found[0] if found else None


def read_cookie(path: str, number: int) -> XAuthEntry | None:
    """The cookie for display `number` in the Xauthority file `path`; None if none or unreadable."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(1 << 20)
    except OSError:
        return None
    return find_cookie(parse_xauthority(raw), number)


# --- the lock file ------------------------------------------------------------------------


class LockInfo(NamedTuple):
    """The X server's lock file: who claims the display."""

    path: str
    exists: bool
    pid: int | None = None
    pid_alive: bool | None = None  # None when there is no pid to check
    pid_name: str | None = None  # the live pid's process name (pids get reused)

    def to_dict(self) -> dict[str, Any]:
        return self._asdict()


def parse_lock(text: str) -> int | None:
    """The pid in a lock file: ASCII, space padded ("%10d\\n"); None if there is none."""
    stripped = text.strip()
    if not stripped.isdigit() or not stripped.isascii():
        return None
    pid = int(stripped)
    return pid if pid > 0 else None


def read_lock(number: int, base: str = DEFAULT_BASE) -> LockInfo:
    """Read /tmp/.X<N>-lock and whether the pid in it still lives."""
    path = lock_path(number, base)
    try:
        with open(path, "rb") as handle:
            text = handle.read(64).decode("ascii", "replace")
    except FileNotFoundError:
        return LockInfo(path, False)
    except OSError:
        # It is there, but we cannot tell whose it is.
        return LockInfo(path, True)
    pid = parse_lock(text)
    if pid is None:
        return LockInfo(path, True)
    alive, name = pid_status(pid)
    return LockInfo(path, True, pid, alive, name)


def pid_status(pid: int) -> tuple[bool, str | None]:
    """(alive, name) of `pid`; a zombie is not alive (its program has exited)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False, proc.name()
        return True, proc.name()
    except psutil.NoSuchProcess:
        return False, None
    except psutil.Error:
        return psutil.pid_exists(pid), None
