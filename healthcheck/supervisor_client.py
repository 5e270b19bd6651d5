"""A small, bounded XML-RPC client for supervisord, and where to find supervisord.

Standard library only: `xmlrpc.client` over a transport that speaks to a `unix://` socket or
an `http://` address. Every call has a deadline that covers connecting, sending and reading
the whole answer, so a socket that accepts and never answers (or answers a byte at a time)
costs at most `timeout` seconds. Every failure is one exception, `SupervisorUnavailable`,
whose `reason` says what to check.

`discover_serverurls` finds the servers a box's supervisord actually offers: from the
`-c/--configuration` of running supervisord processes and the standard config paths.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import glob
import http.client
import os
import re
import socket
import time
import urllib.parse
import xml.parsers.expat
import xmlrpc.client
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, TypedDict, cast

import psutil

from healthcheck.lazyre import lazy
from healthcheck.processes import process_rows, shared
from healthcheck.record import Record
from healthcheck.text import cut_line

DEFAULT_TIMEOUT = 5.0
# Where supervisord and supervisorctl look when given no -c (relative ones: the cwd).
STANDARD_CONFIG_PATHS: tuple[str, ...] = (
    "/etc/supervisor/supervisord.conf",
    "/etc/supervisord.conf",
    "/etc/supervisor.conf",
    "supervisord.conf",
)
# A supervisord.conf is small; anything bigger is not one and is not read whole.
MAX_CONF_BYTES = 1024 * 1024
MAX_INCLUDED_FILES = 50

# What went wrong, for callers that act on it (the collector skips its supervisorctl fallback
# after "no-answer": supervisorctl would hang on that socket the same way).
KINDS = (
    "missing",  # no socket file
    "refused",  # nothing listens (a stale socket file, a closed port)
    "permission",  # the socket exists but this user may not use it
    "connect-timeout",  # the connection was not accepted in time
    "no-answer",  # accepted, then silence
    "auth",  # HTTP 401
    "http",  # another HTTP error
    "fault",  # an XML-RPC fault (a bad process name, a failed call)
    "garbage",  # an answer that is not HTTP or not XML-RPC
    "error",  # anything else (DNS, reset, bad URL)
)


class SupervisorUnavailable(Exception):
    """supervisord could not be asked, or did not answer usefully; `reason` says why."""

    def __init__(self, reason: str, kind: str = "error", fault_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.fault_code = fault_code

    def __str__(self) -> str:
        return self.reason


class ProcessInfo(TypedDict, total=False):
    """One entry of supervisor.getAllProcessInfo (supervisor 3.x and 4.x)."""

    name: str
    group: str
    description: str
    start: int
    stop: int
    now: int
    state: int
    statename: str
    spawnerr: str
    exitstatus: int
    logfile: str
    stdout_logfile: str
    stderr_logfile: str
    pid: int


class LogTail(NamedTuple):
    """What tailProcess*Log returned: the text, the log's size, and whether it was cut."""

    text: str
    offset: int  # the log's size in bytes (where the next read would start)
    overflow: bool  # the log is longer than what was returned


class _DeadlineSocket(socket.socket):
    """A socket whose every blocking operation gets only the time left until `deadline`.

    A plain socket timeout applies to each operation, so a server trickling one byte per
    second would keep a reader busy for ever; re-arming the timeout before each operation
    from one deadline bounds the whole exchange.
    """

    deadline: float = 0.0

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        self.settimeout(remaining)

    def connect(self, address: Any) -> None:
        self._arm()
        super().connect(address)

    def sendall(self, data: Any, flags: int = 0) -> None:
        self._arm()
        super().sendall(data, flags)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return super().recv_into(buffer, nbytes, flags)


class _Connection(http.client.HTTPConnection):
    """HTTP over a unix socket (`path`) or TCP, bounded by one deadline."""

    def __init__(self, host: str, port: int | None, path: str | None, deadline: float) -> None:
        super().__init__(host, port, timeout=max(0.001, deadline - time.monotonic()))
        self.unix_path = path
        self.deadline = deadline
        self.connected = False  # whether connect() succeeded: a later timeout is "no answer"

    def connect(self) -> None:
        if self.unix_path is not None:
            sock = _DeadlineSocket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.deadline = self.deadline
            try:
                sock.connect(self.unix_path)
            except BaseException:
                sock.close()
                raise
        else:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            raw = socket.create_connection((self.host, self.port), timeout=remaining)
            sock = _DeadlineSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
            sock.deadline = self.deadline
        self.sock = sock
        self.connected = True


class _Transport(xmlrpc.client.Transport):
    """One connection per call, so that each call has a fresh deadline and nothing lingers."""

    def __init__(self, factory: _ConnectionFactory, headers: list[tuple[str, str]]) -> None:
        super().__init__(headers=headers)
        self._factory = factory
        self.connection: http.client.HTTPConnection | None = None

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self.connection is None:
            self.connection = self._factory()
        return self.connection

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


class _TLSConnection(http.client.HTTPSConnection):
    """HTTPS (a proxy in front of supervisord): per-operation timeouts only."""

    connected = False

    def connect(self) -> None:
        super().connect()
        self.connected = True


class _ConnectionFactory:
    """Makes the connections of one call, all under the call's deadline."""

    def __init__(self, target: _Target, timeout: float) -> None:
        self.target = target
        self.deadline = time.monotonic() + timeout
        self.made: list[_Connection | _TLSConnection] = []

    def __call__(self) -> http.client.HTTPConnection:
        t = self.target
        connection: _Connection | _TLSConnection
        if t.scheme == "https":
            remaining = max(0.001, self.deadline - time.monotonic())
            connection = _TLSConnection(t.host, t.port, timeout=remaining)
        else:
            connection = _Connection(t.host, t.port, t.unix_path, self.deadline)
        self.made.append(connection)
        return connection

    @property
    def connected(self) -> bool:
        """Whether any connection of this call was accepted."""
        return any(c.connected for c in self.made)


# Never in a repr: one may reach a log or a traceback.
_CREDENTIALS = frozenset({"password", "username"})


class _Target(Record):
    __slots__ = (
        "display",
        "handler",
        "host",
        "password",
        "port",
        "scheme",
        "unix_path",
        "username",
    )
    _not_shown = _CREDENTIALS

    def __init__(
        self,
        scheme: str,  # "unix", "http" or "https"
        host: str,
        port: int | None,
        unix_path: str | None,
        handler: str,  # the XML-RPC path, /RPC2
        display: str,  # the URL without credentials
        username: str = "",
        password: str = "",
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.unix_path = unix_path
        self.handler = handler
        self.display = display
        self.username = username
        self.password = password


def _parse_url(url: str) -> _Target:
    if url.startswith("unix://"):
        path = url[len("unix://") :]
        if not path:
            raise SupervisorUnavailable(f"{url!r} names no socket file", "error")
        return _Target("unix", "localhost", None, path, "/RPC2", url)
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise SupervisorUnavailable(
            f"{url!r} is not a supervisord server URL (unix:///path or http://host:port)", "error"
        )
    try:
        port = parsed.port
    except ValueError:
        raise SupervisorUnavailable(f"{_strip_userinfo(url)!r} has a bad port", "error") from None
    handler = parsed.path.rstrip("/") + "/RPC2"
    return _Target(
        parsed.scheme,
        parsed.hostname,
        port,
        None,
        handler,
        _strip_userinfo(url),
        urllib.parse.unquote(parsed.username or ""),
        urllib.parse.unquote(parsed.password or ""),
    )


def _strip_userinfo(url: str) -> str:
    """The URL without user:password@, fit for a report."""
    parsed = urllib.parse.urlsplit(url)
    if "@" not in parsed.netloc:
        return url
    netloc = parsed.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parsed._replace(netloc=netloc))


def display_url(url: str) -> str:
    """`url` as it may be shown: credentials embedded in it are dropped."""
    return url if url.startswith("unix://") else _strip_userinfo(url)


class SupervisorClient:
    """supervisord's XML-RPC interface, each call bounded by `timeout` seconds.

    `url` is unix:///path/to/supervisor.sock or http://host:port; `username` and `password`
    (or user:password@ in an http URL) are sent as HTTP basic auth on either transport.
    """

    def __init__(
        self, url: str, username: str = "", password: str = "", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.url = url
        self.timeout = timeout
        self._target = _parse_url(url)
        self._username = username or self._target.username
        self._password = password or self._target.password

    @property
    def display_url(self) -> str:
        return self._target.display

    def with_timeout(self, timeout: float) -> SupervisorClient:
        """The same server and credentials, with another per-call limit."""
        return SupervisorClient(self.url, self._username, self._password, timeout)

    def get_state(self) -> dict[str, Any]:
        """{"statecode": 1, "statename": "RUNNING"}."""
        state = self._call("supervisor.getState")
        if not isinstance(state, dict) or not isinstance(state.get("statename"), str):
            raise self._garbage(f"getState returned {type(state).__name__}")
        return state

    def get_supervisor_version(self) -> str:
        version = self._call("supervisor.getSupervisorVersion")
        if not isinstance(version, str):
            raise self._garbage(f"getSupervisorVersion returned {type(version).__name__}")
        return version

    def get_pid(self) -> int:
        pid = self._call("supervisor.getPID")
        if not isinstance(pid, int):
            raise self._garbage(f"getPID returned {type(pid).__name__}")
        return pid

    def get_all_process_info(self) -> list[ProcessInfo]:
        infos = self._call("supervisor.getAllProcessInfo")
        if not isinstance(infos, list) or not all(
            isinstance(i, dict) and isinstance(i.get("name"), str) for i in infos
        ):
            raise self._garbage("getAllProcessInfo did not return a list of processes")
        return cast("list[ProcessInfo]", infos)

    def read_log(self, length: int) -> str:
        """The last `length` bytes of supervisord's own (main) log."""
        text = self._call("supervisor.readLog", -abs(length), 0)
        if not isinstance(text, str):
            raise self._garbage(f"readLog returned {type(text).__name__}")
        return text

    def tail_process_stdout_log(self, name: str, length: int, offset: int = 0) -> LogTail:
        """The last `length` bytes of `name`'s stdout log (with offset 0)."""
        return self._tail("supervisor.tailProcessStdoutLog", name, length, offset)

    def tail_process_stderr_log(self, name: str, length: int, offset: int = 0) -> LogTail:
        """The last `length` bytes of `name`'s stderr log (with offset 0)."""
        return self._tail("supervisor.tailProcessStderrLog", name, length, offset)

    def tail_process_log(self, name: str, stream: str, length: int) -> LogTail:
        """`stream` is "stdout" or "stderr"."""
        if stream == "stdout":
            return self.tail_process_stdout_log(name, length)
        if stream == "stderr":
            return self.tail_process_stderr_log(name, length)
        raise ValueError(f"stream must be stdout or stderr, not {stream!r}")

    def _tail(self, method: str, name: str, length: int, offset: int) -> LogTail:
        answer = self._call(method, name, offset, length)
        if (
            not isinstance(answer, list)
            or len(answer) != 3
            or not isinstance(answer[0], str)
            or not isinstance(answer[1], int)
        ):
            raise self._garbage(f"{method.split('.')[-1]} returned no [text, offset, overflow]")
        return LogTail(text=answer[0], offset=answer[1], overflow=bool(answer[2]))

    def _garbage(self, what: str) -> SupervisorUnavailable:
        return SupervisorUnavailable(
            f"{self.display_url} answered, but not as supervisord does: {what}", "garbage"
        )

    def _headers(self) -> list[tuple[str, str]]:
        if not (self._username or self._password):
            return []
        token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode("ascii")
        return [("Authorization", f"Basic {token}")]

    def _call(self, method: str, *args: Any) -> Any:
        factory = _ConnectionFactory(self._target, self.timeout)
        transport = _Transport(factory, self._headers())
        # The host part is only what the Host header says; the factory decides where to go.
        host = "localhost" if self._target.scheme == "unix" else self._target.host
        if self._target.port is not None:
            host = f"{host}:{self._target.port}"
        scheme = "https" if self._target.scheme == "https" else "http"
        proxy = xmlrpc.client.ServerProxy(
            f"{scheme}://{host}{self._target.handler}", transport=transport, allow_none=True
        )
        try:
            return getattr(proxy, method)(*args)
        except Exception as exc:
            raise self._explain(exc, factory.connected) from exc
        finally:
            transport.close()

    def _explain(self, exc: BaseException, connected: bool) -> SupervisorUnavailable:
        """One clear reason for whatever `exc` is."""
        url = self.display_url
        path = self._target.unix_path
        seconds = f"{self.timeout:g}s"
        if isinstance(exc, SupervisorUnavailable):
            return exc
        if isinstance(exc, xmlrpc.client.Fault):
            return SupervisorUnavailable(
                f"{url} answered with XML-RPC fault {exc.faultCode}: {exc.faultString}",
                "fault",
                exc.faultCode,
            )
        if isinstance(exc, xmlrpc.client.ProtocolError):
            if exc.errcode == 401:
                return SupervisorUnavailable(
                    f"{url}: authentication failed: check supervisor.username / password",
                    "auth",
                )
            return SupervisorUnavailable(
                f"{url} answered HTTP {exc.errcode} {exc.errmsg} "
                "(is this supervisord's XML-RPC interface?)",
                "http",
            )
        if isinstance(exc, FileNotFoundError) and path is not None:
            return SupervisorUnavailable(
                f"no supervisord socket at {path} (is supervisord running?)", "missing"
            )
        if isinstance(exc, ConnectionRefusedError):
            if path is not None:
                return SupervisorUnavailable(
                    f"supervisord socket {path} refused the connection (a stale socket file: "
                    "supervisord is not running?)",
                    "refused",
                )
            return SupervisorUnavailable(
                f"{url} refused the connection (is supervisord's [inet_http_server] enabled "
                "on that port?)",
                "refused",
            )
        if isinstance(exc, PermissionError):
            where = path if path is not None else url
            return SupervisorUnavailable(
                f"permission denied on {where} (run as root, or see chmod/chown in "
                "supervisord's [unix_http_server])",
                "permission",
            )
        if isinstance(exc, (TimeoutError, socket.timeout)):
            if connected:
                return SupervisorUnavailable(
                    f"{url} accepted the connection but did not answer within {seconds}",
                    "no-answer",
                )
            return SupervisorUnavailable(
                f"{url} did not accept the connection within {seconds}", "connect-timeout"
            )
        if isinstance(exc, http.client.RemoteDisconnected):
            return SupervisorUnavailable(
                f"{url} closed the connection without answering (not supervisord?)", "garbage"
            )
        if isinstance(exc, http.client.HTTPException):
            return SupervisorUnavailable(
                f"{url} answered with something that is not HTTP ({type(exc).__name__})",
                "garbage",
            )
        if isinstance(
            exc,
            (
                xml.parsers.expat.ExpatError,
                xmlrpc.client.ResponseError,
                ValueError,
                TypeError,
                UnicodeError,
            ),
        ):
            return SupervisorUnavailable(
                f"{url} answered with something that is not XML-RPC ({type(exc).__name__}: "
                f"{_short(str(exc))})",
                "garbage",
            )
        if isinstance(exc, socket.gaierror):
            return SupervisorUnavailable(f"{url}: cannot resolve the host name", "error")
        if isinstance(exc, OSError):
            why = exc.strerror or str(exc) or type(exc).__name__
            return SupervisorUnavailable(f"cannot talk to {url}: {why}", "error")
        return SupervisorUnavailable(
            f"cannot talk to {url}: {type(exc).__name__}: {_short(str(exc))}", "error"
        )


def _short(text: str, limit: int = 200) -> str:
    return cut_line(text, limit)


# --- discovery ------------------------------------------------------------------------------


class DiscoveredServer(Record):
    """A server URL a supervisord.conf declares, with the credentials to use it."""

    __slots__ = ("config_path", "password", "section", "source", "url", "username")
    _not_shown = _CREDENTIALS

    def __init__(
        self,
        url: str,
        username: str = "",
        password: str = "",
        source: str = "",  # "/etc/supervisor/supervisord.conf [unix_http_server] file"
        config_path: str = "",  # the conf file it came from (for supervisorctl -c)
        section: str = "",  # "supervisorctl", "unix_http_server" or "inet_http_server"
    ) -> None:
        self.url = url
        self.username = username
        self.password = password
        self.source = source
        self.config_path = config_path
        self.section = section


_EXPANSION = lazy(r"%\((\w+)\)s")


def read_serverurls(path: str | os.PathLike[str]) -> list[DiscoveredServer]:
    """The server URLs one supervisord.conf declares, in the order supervisorctl prefers them.

    `[supervisorctl] serverurl`, then `[unix_http_server] file` as unix://FILE, then
    `[inet_http_server] port` as http://HOST:PORT. Credentials come from `[supervisorctl]`,
    else from the server's own section. `[include]` files are read too (one level), and
    `%(here)s` / `%(ENV_X)s` are expanded as supervisord does. Unreadable or malformed
    files give what could be read, never an exception.
    """
    name = os.fspath(path)
    sections = _read_conf(name)
    if not sections:
        return []
    ctl = sections.get("supervisorctl", {})
    unix = sections.get("unix_http_server", {})
    inet = sections.get("inet_http_server", {})
    found: list[DiscoveredServer] = []

    def creds(server: dict[str, str]) -> tuple[str, str]:
        if ctl.get("username") or ctl.get("password"):
            return ctl.get("username", ""), ctl.get("password", "")
        return server.get("username", ""), server.get("password", "")

    url = ctl.get("serverurl", "").strip()
    if url.startswith(("unix://", "http://", "https://")):
        # supervisorctl pairs its serverurl with its own credentials only.
        found.append(
            DiscoveredServer(
                url,
                ctl.get("username", ""),
                ctl.get("password", ""),
                f"{name} [supervisorctl] serverurl",
                name,
                "supervisorctl",
            )
        )
    sock = unix.get("file", "").strip()
    if sock:
        user, password = creds(unix)
        found.append(
            DiscoveredServer(
                f"unix://{sock}",
                user,
                password,
                f"{name} [unix_http_server] file",
                name,
                "unix_http_server",
            )
        )
    port = inet.get("port", "").strip()
    if port:
        host, _, number = port.rpartition(":")
        if number.isdigit():
            host = host.strip("[]")
            host = "localhost" if host in ("", "*", "0.0.0.0", "::") else host
            host = f"[{host}]" if ":" in host else host
            user, password = creds(inet)
            found.append(
                DiscoveredServer(
                    f"http://{host}:{number}",
                    user,
                    password,
                    f"{name} [inet_http_server] port",
                    name,
                    "inet_http_server",
                )
            )
    return _unique(found)


def running_config_paths() -> list[str]:
    """The config files of running supervisord processes (their -c, else their defaults)."""
    paths: list[str] = []
    for row in process_rows():
        if _is_supervisord(row.name, row.cmdline):
            paths.extend(_config_paths_of(row.pid, list(row.cmdline)))
    return _unique_strings(paths)


def _config_paths_of(pid: int, cmdline: list[str]) -> list[str]:
    """Where one supervisord read its config: its -c, else the files it searches first."""
    conf = _configuration_arg(cmdline)
    cwd: str | None
    try:
        cwd = psutil.Process(pid).cwd()
    except (psutil.Error, OSError):
        cwd = None
    if conf is not None:
        if not os.path.isabs(conf) and cwd:
            conf = os.path.join(cwd, conf)
        return [os.path.normpath(conf)]
    if cwd:
        # Without -c, supervisord searches its working directory first.
        return [os.path.join(cwd, p) for p in ("supervisord.conf", "etc/supervisord.conf")]
    return []


def own_supervisord_pids(serverurl: str) -> frozenset[int]:
    """The supervisord(s) serving `serverurl`: the box's own process tree starts there.

    Matched by the server URLs each running supervisord's config declares. Empty when it
    cannot be told (none runs, or none declares the URL: on a shared host the one supervisord
    that runs may well be another box's): callers then look at every process.
    """
    # Asked by the redactor's environment, the display and supervisor collectors: one answer
    # per run (a look at every process's command line, 30 ms on a box of 5,000).
    return shared(("own-supervisord", serverurl), lambda: _own_supervisord_pids(serverurl))


def _own_supervisord_pids(serverurl: str) -> frozenset[int]:
    rows = [r for r in process_rows() if _is_supervisord(r.name, r.cmdline)]
    wanted = _url_key(serverurl)
    matches = set()
    for row in rows:
        for path in _config_paths_of(row.pid, list(row.cmdline)):
            if os.path.isfile(path) and any(
                _url_key(s.url) == wanted for s in read_serverurls(path)
            ):
                matches.add(row.pid)
    return frozenset(matches)


def _url_key(url: str) -> tuple[str, str]:
    """A server URL reduced to what identifies the server: the socket's real path, or the
    port (localhost, 127.0.0.1 and the host's name all reach the same inet_http_server)."""
    if url.startswith("unix://"):
        return ("unix", os.path.realpath(url[len("unix://") :]))
    parsed = urllib.parse.urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    return (parsed.scheme, str(port or ""))


def discover_serverurls(
    config_paths: Sequence[str] | None = None, processes: bool = True
) -> list[DiscoveredServer]:
    """Servers declared by the running supervisord's config, then by the standard configs.

    `config_paths` replaces the standard paths (tests, or a caller that knows better);
    `processes=False` skips looking at running processes.
    """
    paths: list[str] = []
    if processes:
        paths.extend(running_config_paths())
    paths.extend(STANDARD_CONFIG_PATHS if config_paths is None else config_paths)
    found: list[DiscoveredServer] = []
    for path in _unique_strings(os.path.abspath(p) for p in paths):
        if os.path.isfile(path):
            found.extend(read_serverurls(path))
    return _unique(found)


def _is_supervisord(name: str, cmdline: Sequence[str]) -> bool:
    if name == "supervisord":
        return True
    if "supervisord" not in "\0".join(cmdline[:2]):
        return False  # the usual process, told at C speed
    # `python /usr/bin/supervisord ...`: the script is the first or second word.
    return any(os.path.basename(arg) == "supervisord" for arg in cmdline[:2])


def _configuration_arg(cmdline: list[str]) -> str | None:
    """The value of -c/--configuration in a supervisord command line."""
    for index, arg in enumerate(cmdline):
        if arg in ("-c", "--configuration"):
            return cmdline[index + 1] if index + 1 < len(cmdline) else None
        if arg.startswith("--configuration="):
            return arg.split("=", 1)[1]
        if arg.startswith("-c") and len(arg) > 2 and not arg.startswith("--"):
            return arg[2:]
    return None


def _read_conf(path: str, depth: int = 0) -> dict[str, dict[str, str]]:
    """Sections of a supervisord.conf (and its includes), earlier files winning."""
    parser = configparser.RawConfigParser(
        strict=False, interpolation=None, inline_comment_prefixes=(";", "#")
    )
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_CONF_BYTES)
    except OSError:
        return {}
    text = raw.decode("utf-8", "replace")
    # Keys before the first [section] would make configparser give up on the whole file.
    # A ParsingError comes after the whole file was read: what parsed is kept.
    with contextlib.suppress(configparser.Error):
        parser.read_string("[__top__]\n" + text, source=path)
    here = os.path.dirname(os.path.abspath(path))
    sections: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        values: dict[str, str] = {}
        with contextlib.suppress(configparser.Error):
            for key, value in parser.items(section):
                values[key] = _expand(value or "", here)
        sections[section] = values
    if depth == 0:
        for included in _included_files(sections.get("include", {}).get("files", ""), here):
            for section, values in _read_conf(included, depth + 1).items():
                sections.setdefault(section, values)
    return sections


def _included_files(spec: str, here: str) -> list[str]:
    files: list[str] = []
    for pattern in spec.split():
        full = pattern if os.path.isabs(pattern) else os.path.join(here, pattern)
        files.extend(sorted(glob.glob(full)))
    return files[:MAX_INCLUDED_FILES]


def _expand(value: str, here: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key == "here":
            return here
        if key.startswith("ENV_"):
            return os.environ.get(key[4:], "")
        if key == "host_node_name":
            return socket.gethostname()
        return match.group(0)

    return _EXPANSION.sub(replace, value)


def _unique(found: Iterable[DiscoveredServer]) -> list[DiscoveredServer]:
    seen: set[str] = set()
    out: list[DiscoveredServer] = []
    for server in found:
        if server.url not in seen:
            seen.add(server.url)
            out.append(server)
    return out


def _unique_strings(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


__all__ = [
    "DEFAULT_TIMEOUT",
    "STANDARD_CONFIG_PATHS",
    "DiscoveredServer",
    "LogTail",
    "ProcessInfo",
    "SupervisorClient",
    "SupervisorUnavailable",
    "discover_serverurls",
    "display_url",
    "read_serverurls",
    "running_config_paths",
]
