"""`healthcheck serve`: the last report over HTTP, read-only.

Endpoints (a fixed route table: no part of a request is ever used as a file name):
`/metrics` (Prometheus), `/healthz` (200 below --fail-on, else 503; Goss's convention),
`/status.json`, `/report.md`, and `/` (the report as an HTML page). The report files are read
again only when they change on disk; nothing here writes a file. `?fresh=1` on `/healthz`
runs the collectors afresh (nothing written, nothing committed), at most once per
`serve.min_interval` seconds. Every response body passes through the redactor.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from healthcheck.metrics import MetricsUnavailable  # light: prometheus_client comes later
from healthcheck.model import Status
from healthcheck.output import is_report
from healthcheck.redact import Redactor

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 8192  # bytes; a longer request line is refused (400)
MAX_QUERY_FIELDS = 16
IDLE_TIMEOUT_S = 15.0  # a connection that sends nothing for this long is closed
MAX_CONNECTIONS = 128  # open at once; the next one is answered 503 and closed
ROUTES = ("/", "/metrics", "/healthz", "/status.json", "/report.md")
_TRUE = {"1", "true", "yes"}


class NoReport(Exception):
    """There is no last report to serve (yet), or it cannot be read; one line says why."""


def summary_line(data: dict[str, Any]) -> str:
    """`CRIT: 4 crit, 2 warn, 1 unknown (host vm, report of 2026-11-29T04:32:59Z)`."""
    counts = data.get("counts", {})
    return (
        f"{str(data.get('status', 'unknown')).upper()}: {counts.get('crit', 0)} crit, "
        f"{counts.get('warn', 0)} warn, {counts.get('unknown', 0)} unknown "
        f"(host {data.get('host', '?')}, report of {data.get('generated_at', '?')})"
    )


def failing(data: dict[str, Any], fail_on: Status) -> bool:
    try:
        status = Status(data.get("status"))
    except ValueError:
        return True  # a report whose status we cannot read is not a healthy one
    return status.rank >= fail_on.rank


@dataclass
class Snapshot:
    """One version of the last report, with what is made from it, made once."""

    data: dict[str, Any]  # redacted
    markdown: str  # redacted
    _made: dict[str, bytes] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def made(self, kind: str, make: Callable[[], bytes]) -> bytes:
        with self._lock:
            if kind not in self._made:
                self._made[kind] = make()
            return self._made[kind]


class ReportStore:
    """The last report on disk, parsed again only when one of its files changes."""

    def __init__(self, markdown_path: Path, json_path: Path, redactor: Redactor) -> None:
        self.markdown_path = markdown_path
        self.json_path = json_path
        self.redactor = redactor
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] | None = None
        self._snapshot: Snapshot | None = None

    def _stat(self) -> tuple[Any, ...]:
        signature: list[Any] = []
        for path in (self.json_path, self.markdown_path):
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise NoReport(f"no report at {path} yet (`healthcheck run` writes it)") from None
            except OSError as exc:
                raise NoReport(f"cannot read {path}: {exc.strerror or exc}") from None
            signature += [st.st_ino, st.st_size, st.st_mtime_ns]
        return tuple(signature)

    def current(self) -> Snapshot:
        signature = self._stat()
        with self._lock:
            if self._snapshot is not None and signature == self._signature:
                return self._snapshot
            try:
                data = json.loads(self.json_path.read_text(encoding="utf-8"))
                markdown = self.markdown_path.read_text(encoding="utf-8", errors="replace")
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise NoReport(f"cannot read the last report: {exc}") from None
            if not is_report(data):
                raise NoReport(f"{self.json_path} is not a healthcheck JSON report")
            self._snapshot = Snapshot(self.redactor.obj(data), self.redactor.text(markdown))
            self._signature = signature
            return self._snapshot


class FreshRuns:
    """`?fresh=1`: a new collection at most once per `min_interval` seconds, one at a time."""

    def __init__(self, collect: Callable[[], dict[str, Any]], min_interval: float) -> None:
        self._collect = collect
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._last_start: float | None = None

    def run(self) -> tuple[dict[str, Any] | None, str]:
        """The fresh report's data, or None and why the last report has to do."""
        if not self._lock.acquire(blocking=False):
            return None, "a fresh run is already under way"
        try:
            now = time.monotonic()
            if self._last_start is not None and now - self._last_start < self.min_interval:
                wait = self.min_interval - (now - self._last_start)
                return None, (
                    f"a fresh run is allowed once every {self.min_interval:g} s "
                    f"(serve.min_interval); the next in {wait:.0f} s"
                )
            self._last_start = now
            return self._collect(), ""
        finally:
            self._lock.release()


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


class HealthApp:
    """What the server answers, independent of the socket: route -> Response."""

    def __init__(
        self,
        store: ReportStore,
        redactor: Redactor,
        fail_on: Status,
        fresh: FreshRuns | None = None,
        token: str = "",
    ) -> None:
        self.store = store
        self.redactor = redactor
        self.fail_on = fail_on
        self.fresh = fresh
        # Compared as digests: equal lengths, so the comparison's time says nothing either.
        self._token_digest = hashlib.sha256(f"Bearer {token}".encode()).digest() if token else None
        self.routes: dict[str, Callable[[dict[str, list[str]]], Response]] = {
            "/": self.page,
            "/metrics": self.metrics,
            "/healthz": self.healthz,
            "/status.json": self.status_json,
            "/report.md": self.report_md,
        }

    def text(self, status: int, message: str, **headers: str) -> Response:
        return Response(
            status, (self.redactor.text(message) + "\n").encode("utf-8"), headers=headers
        )

    def authorized(self, header: str | None) -> bool:
        if self._token_digest is None:
            return True
        offered = hashlib.sha256((header or "").strip().encode("utf-8", "replace")).digest()
        return hmac.compare_digest(offered, self._token_digest)

    def handle(self, target: str, authorization: str | None) -> Response:
        if not self.authorized(authorization):
            return self.text(
                HTTPStatus.UNAUTHORIZED,
                "401 unauthorized: this server wants the [serve] token in the Authorization header "
                "(Bearer scheme)",
                **{"WWW-Authenticate": 'Bearer realm="healthcheck"'},
            )
        if not target.startswith("/"):
            return self.text(HTTPStatus.BAD_REQUEST, "400 bad request: the target must be a path")
        path, _, query = target.partition("#")[0].partition("?")
        route = self.routes.get(path)
        if route is None:
            return self.text(HTTPStatus.NOT_FOUND, "404 not found; endpoints: " + " ".join(ROUTES))
        try:
            params = parse_qs(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
        except ValueError:
            return self.text(HTTPStatus.BAD_REQUEST, "400 bad request: too many query fields")
        try:
            return route(params)
        except NoReport as exc:
            return self.text(HTTPStatus.SERVICE_UNAVAILABLE, f"503 no report: {exc}")
        except MetricsUnavailable as exc:
            return self.text(HTTPStatus.SERVICE_UNAVAILABLE, f"503 {exc}")
        except Exception as exc:
            # A bug, not a foreseeable condition: one line to the client, the server goes on.
            log.error("internal error on %s: %s: %s", path, type(exc).__name__, exc)
            return self.text(HTTPStatus.INTERNAL_SERVER_ERROR, "500 internal error (see the log)")

    # --- endpoints ------------------------------------------------------------------------

    def healthz(self, params: dict[str, list[str]]) -> Response:
        if params.get("fresh", [""])[-1].lower() in _TRUE and self.fresh is not None:
            data, why = self.fresh.run()
            if data is not None:
                return self._health(self.redactor.obj(data), "fresh run")
            snapshot = self.store.current()
            return self._health(snapshot.data, f"from the last report: {why}")
        try:
            snapshot = self.store.current()
        except NoReport as exc:
            return self.text(HTTPStatus.SERVICE_UNAVAILABLE, f"UNKNOWN: {exc}")
        return self._health(snapshot.data, "")

    def _health(self, data: dict[str, Any], note: str) -> Response:
        code = HTTPStatus.SERVICE_UNAVAILABLE if failing(data, self.fail_on) else HTTPStatus.OK
        line = summary_line(data) + (f"; {note}" if note else "")
        source = "fresh" if note == "fresh run" else "last-report"
        return self.text(code, line, **{"X-Healthcheck-Source": source})

    def metrics(self, params: dict[str, list[str]]) -> Response:
        from healthcheck.metrics import exposition

        try:
            snapshot = self.store.current()
        except NoReport as exc:
            reason = " ".join(str(exc).split())  # one comment line, whatever the path holds
            body = (
                f"# {reason}\n# HELP healthcheck_report_available 1 when serve could read the "
                "last report, else 0.\n# TYPE healthcheck_report_available gauge\n"
                "healthcheck_report_available 0\n"
            )
            return Response(HTTPStatus.OK, self.redactor.text(body).encode(), METRICS_TYPE)

        def make() -> bytes:
            return exposition(snapshot.data, self.redactor) + (
                b"# HELP healthcheck_report_available 1 when serve could read the last report, "
                b"else 0.\n# TYPE healthcheck_report_available gauge\n"
                b"healthcheck_report_available 1\n"
            )

        return Response(HTTPStatus.OK, snapshot.made("metrics", make), METRICS_TYPE)

    def status_json(self, params: dict[str, list[str]]) -> Response:
        snapshot = self.store.current()

        def make() -> bytes:
            text = json.dumps(snapshot.data, indent=2, sort_keys=True, ensure_ascii=False)
            return (text + "\n").encode("utf-8")

        return Response(HTTPStatus.OK, snapshot.made("json", make), "application/json")

    def report_md(self, params: dict[str, list[str]]) -> Response:
        snapshot = self.store.current()
        body = snapshot.made("markdown", lambda: snapshot.markdown.encode("utf-8"))
        return Response(HTTPStatus.OK, body, "text/markdown; charset=utf-8")

    def page(self, params: dict[str, list[str]]) -> Response:
        from healthcheck.html_report import render_html

        snapshot = self.store.current()

        def make() -> bytes:
            data = snapshot.data
            title = f"{data.get('host', '?')}: {str(data.get('status', '?')).upper()}"
            page = render_html(snapshot.markdown, title, str(data.get("status", "unknown")))
            return self.redactor.text(page).encode("utf-8")

        return Response(
            HTTPStatus.OK,
            snapshot.made("html", make),
            "text/html; charset=utf-8",
            {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )


METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive; GET and HEAD only; no request body accepted."""

    protocol_version = "HTTP/1.1"
    server_version = "healthcheck"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    # Headers and body are two writes: without TCP_NODELAY a kept-alive client's delayed ACK
    # holds the body back for tens of milliseconds.
    disable_nagle_algorithm = True
    app: HealthApp  # set on the subclass the server makes

    def version_string(self) -> str:
        return self.server_version  # no Python version on the wire

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._send(
            self.app.text(HTTPStatus.METHOD_NOT_ALLOWED, "405 method not allowed: GET or HEAD"),
            head=False,
            extra={"Allow": "GET, HEAD"},
        )

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    def _answer(self, head: bool) -> None:
        if len(self.requestline) > MAX_REQUEST_LINE:
            self.close_connection = True
            response = self.app.text(HTTPStatus.BAD_REQUEST, "400 bad request: request too long")
        elif self.headers.get("Content-Length", "0").strip() not in ("", "0") or self.headers.get(
            "Transfer-Encoding"
        ):
            # A body we would not read would be taken for the next request: refuse, and close.
            self.close_connection = True
            response = self.app.text(HTTPStatus.BAD_REQUEST, "400 bad request: no body accepted")
        elif self.server_on_loopback() and not is_loopback(
            host_header_name(self.headers.get("Host") or "localhost")
        ):
            # A page elsewhere in the box's browser could rebind its own name to 127.0.0.1
            # and read this server; its requests still carry its own name as Host.
            response = self.app.text(
                HTTPStatus.BAD_REQUEST,
                "400 bad request: this server listens on loopback and answers only requests "
                "addressed to it (Host: localhost or 127.0.0.1)",
            )
        else:
            response = self.app.handle(self.path, self.headers.get("Authorization"))
        self._send(response, head)

    def server_on_loopback(self) -> bool:
        address = self.server.server_address
        return isinstance(address, tuple) and is_loopback(str(address[0]))

    def _send(self, response: Response, head: bool, extra: dict[str, str] | None = None) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        for name, value in {**response.headers, **(extra or {})}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head:
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (a malformed request line, an oversized header): a
        plain, redacted 400 (414 and 431 included), and the connection closed."""
        if code in (HTTPStatus.REQUEST_URI_TOO_LONG, HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE):
            code = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        text = f"{int(code)} {message or HTTPStatus(code).phrase}"
        # A line too garbled to name its version is taken for HTTP/0.9, which has no status
        # line: say 400 in one all the same.
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        response = self.app.text(code, text)
        with contextlib.suppress(OSError):
            self._send(response, head=self.command == "HEAD")

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a slow or kept-alive client never keeps the server from stopping
    # socketserver's default backlog of 5 drops connections under a burst of clients, who
    # then wait a whole SYN retransmit (1 s, then 3 s) before they are heard.
    request_queue_size = 128
    busy_reply = b""  # what a connection beyond MAX_CONNECTIONS gets (set by make_server)

    def server_activate(self) -> None:
        super().server_activate()
        # One thread per connection: a cap, so that idle or slow clients cannot exhaust
        # threads and memory; the one over it gets a 503 and is closed at once.
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(self.busy_reply)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            # No thread to give the slot back (cannot start one). Not on KeyboardInterrupt:
            # it may interrupt start() after the thread began, and that thread releases it.
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One log line, not socketserver's traceback on stderr: a client that hangs up
        mid-answer is routine, and whatever else it is, the server goes on."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            log.debug("client %s went away: %s", client_address[0], exc)
        else:
            log.error("request from %s failed: %s: %s", client_address[0], type(exc).__name__, exc)


class _ServerV6(_Server):
    address_family = socket.AF_INET6


def make_server(app: HealthApp, host: str, port: int) -> ThreadingHTTPServer:
    """The server bound to host:port (port 0: any free one); raises OSError."""
    handler = type("Handler", (_Handler,), {"app": app})
    busy = app.text(HTTPStatus.SERVICE_UNAVAILABLE, "503 busy: too many open connections").body
    server = (_ServerV6 if ":" in host else _Server)((host, port), handler)
    server.busy_reply = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s" % (len(busy), busy)
    )
    return server


def is_loopback(host: str) -> bool:
    """localhost, or an IP address on the loopback network (127.0.0.0/8, ::1)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_header_name(value: str) -> str:
    """The host of a Host header: `localhost:9839` -> localhost, `[::1]:9839` -> ::1."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def serve_until_stopped(server: ThreadingHTTPServer, announce: Callable[[], None]) -> None:
    """Serve until Ctrl-C or SIGTERM, then close the socket. `announce` runs once SIGTERM
    is handled, so that whoever reads it may stop the server from then on."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # Ctrl-C too: the CLI's own SIGINT handler means "a run was interrupted" (exit 130), but
    # stopping a server is its normal end.
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        announce()
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
