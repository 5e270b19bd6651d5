"""`healthcheck serve` as a real process on a free loopback port, answering real HTTP.

The reports it serves are real: the sample reports (real runs of the test environment's
healthy and faulty boxes) and reports written by `healthcheck run` on the tests' box. Raw
sockets send what no well-behaved client would. The HTML page is loaded in headless Chromium
(Debian's chromium; CI installs it).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from healthcheck.cli import cli

from secrets_corpus import FAKE_SECRETS
from supervisord_env import free_port, http_server, sshd_failing, start_supervisord
from support import Box

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_reports"
PROMTOOL = shutil.which("promtool")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "hc-test-serve-token-FAKE-0123456789"
UNAUTHORIZED = (
    b"401 unauthorized: this server wants the [serve] token in the Authorization header "
    b"(Bearer scheme)\n"
)
ENDPOINTS = ["/", "/metrics", "/healthz", "/status.json", "/report.md"]


def serve_process(config: Path, *args: str) -> subprocess.Popen[str]:
    """`healthcheck serve --port 0 ARGS` in its own process, stderr piped."""
    env = {k: v for k, v in os.environ.items() if k != "HEALTHCHECK_CONFIG"}
    command = [sys.executable, "-m", "healthcheck", "serve", "--config", str(config)]
    return subprocess.Popen(
        [*command, "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@contextmanager
def serving(config: Path, *args: str, stop_with: int = signal.SIGTERM) -> Iterator[int]:
    """`healthcheck serve` on a free port (see serve_process); yields the port it printed.

    On the way out it is stopped with `stop_with` (SIGTERM, or Ctrl-C's SIGINT), and must
    exit 0 without a traceback or the "interrupted" line of a run cut short.
    """
    proc = serve_process(config, *args)
    assert proc.stderr is not None
    lines = []
    port = None
    while port is None:
        line = proc.stderr.readline()
        if not line:
            proc.wait(timeout=10)
            raise AssertionError(f"serve exited {proc.returncode}: {''.join(lines)}")
        lines.append(line)
        if line.startswith("Serving http://127.0.0.1:"):
            port = int(line.split(":")[2].split("/")[0])
    try:
        yield port
    finally:
        proc.send_signal(stop_with)
        _, rest = proc.communicate(timeout=15)
        assert proc.returncode == 0, "".join(lines) + rest
        assert "Traceback" not in rest and "interrupted" not in rest, rest


def request(
    port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request, the path sent exactly as given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(
            method, path, skip_accept_encoding=True, skip_host="Host" in (headers or {})
        )
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def raw(port: int, data: bytes) -> bytes:
    """Bytes in, everything the server says until it closes (or 10 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def install_report(workspace: Path, box: str) -> dict[str, Any]:
    """The sample report of `box` (a real run) as the workspace's last report."""
    workspace.mkdir(parents=True, exist_ok=True)
    for name in ("system_status.md", "system_status.json"):
        shutil.copyfile(SAMPLES / box / name, workspace / name)
    return json.loads((workspace / "system_status.json").read_text())


def write_config(root: Path, extra: str = "") -> Path:
    config = root / "healthcheck.toml"
    config.write_text(
        f'[paths]\nworkspace = "{root / "workspace"}"\n\n[env]\nsource = "self"\n{extra}',
        encoding="utf-8",
    )
    return config


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[tuple[int, Path, dict[str, Any]]]:
    report = install_report(tmp_path / "workspace", "faulty")
    with serving(write_config(tmp_path)) as port:
        yield port, tmp_path / "workspace", report


# --- /healthz: Goss's convention -----------------------------------------------------------


def test_healthz_is_503_on_the_faulty_box_and_200_on_the_healthy_one(
    faulty: tuple[int, Path, dict[str, Any]],
) -> None:
    port, workspace, report = faulty
    status, headers, body = request(port, "/healthz")
    assert status == 503
    assert (
        body
        == (
            f"CRIT: 4 crit, 2 warn, 1 unknown (host {report['host']}, "
            f"report of {report['generated_at']})\n"
        ).encode()
    )
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["X-Healthcheck-Source"] == "last-report"

    # The report is replaced on disk (as a run does): the next answer reads the new one.
    healthy = install_report(workspace, "healthy")
    status, _, body = request(port, "/healthz")
    assert status == 200
    assert body.decode().startswith("UNKNOWN: 0 crit, 1 warn, 1 unknown")
    assert healthy["generated_at"] in body.decode()


def test_fail_on_warn_makes_a_warning_fail_healthz(tmp_path: Path) -> None:
    install_report(tmp_path / "workspace", "healthy")
    with serving(write_config(tmp_path), "--fail-on", "warn") as port:
        assert request(port, "/healthz")[0] == 503
    # --workspace points at another report than the config's.
    install_report(tmp_path / "other", "faulty")
    with serving(write_config(tmp_path), "--workspace", str(tmp_path / "other")) as port:
        assert request(port, "/healthz")[2].startswith(b"CRIT: 4 crit")


# --- the other endpoints -------------------------------------------------------------------


def test_endpoints_serve_the_last_report(faulty: tuple[int, Path, dict[str, Any]]) -> None:
    port, workspace, report = faulty
    status, headers, body = request(port, "/status.json")
    assert (status, headers["Content-Type"]) == (200, "application/json")
    assert json.loads(body) == report
    status, headers, body = request(port, "/report.md")
    assert (status, headers["Content-Type"]) == (200, "text/markdown; charset=utf-8")
    assert body == (workspace / "system_status.md").read_bytes()
    status, headers, body = request(port, "/")
    assert (status, headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert headers["Content-Security-Policy"] == "default-src 'none'; style-src 'unsafe-inline'"
    assert b"<script" not in body
    for finding in report["findings"]:
        assert finding["title"].replace("'", "&#x27;").encode() in body or (
            finding["title"].encode() in body
        )
    # HEAD: the same headers, no body.
    head_status, head_headers, head_body = request(port, "/", method="HEAD")
    assert (head_status, head_body) == (200, b"")
    assert head_headers["Content-Length"] == str(len(body))


def test_metrics_parse_and_pass_promtool(faulty: tuple[int, Path, dict[str, Any]]) -> None:
    port, _, report = faulty
    status, headers, body = request(port, "/metrics")
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    assert samples[("healthcheck_status", ())] == 3
    assert samples[("healthcheck_report_available", ())] == 1
    assert samples[("healthcheck_program_up", (("program", "sshd"),))] == 0
    assert {labels for name, labels in samples if name == "healthcheck_finding"} == {
        (("id", f["id"]), ("severity", f["severity"])) for f in report["findings"]
    }
    if PROMTOOL is None:
        pytest.skip("promtool not installed (apt-get install prometheus): parsed only")
    check = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=60
    )
    assert check.returncode == 0, (check.stdout + check.stderr).decode()


def test_no_report_yet_then_a_real_run(box: Box) -> None:
    """Before any run: 503 with the reason, metrics say so. After `healthcheck run` on the
    tests' box (a closed port and a missing script: two warnings): 200 below crit."""
    box.write_config('disable = ["supervisor", "display", "gpu", "healthcheck", "system"]\n')
    with serving(box.config) as port:
        status, _, body = request(port, "/healthz")
        assert status == 503
        report_path = box.workspace / "system_status.json"
        assert (
            body
            == f"UNKNOWN: no report at {report_path} yet (`healthcheck run` writes it)\n".encode()
        )
        status, _, body = request(port, "/metrics")
        assert status == 200 and b"\nhealthcheck_report_available 0\n" in body
        assert request(port, "/status.json")[0] == 503

        result = CliRunner().invoke(cli, ["run", "--config", str(box.config), "--no-commit"])
        assert result.exit_code == 0, result.output
        report = json.loads(report_path.read_text())
        assert report["status"] == "warn"
        status, _, body = request(port, "/healthz")
        assert status == 200
        counts = report["counts"]
        assert body.decode() == (
            f"WARN: 0 crit, {counts['warn']} warn, {counts['unknown']} unknown "
            f"(host {report['host']}, report of {report['generated_at']})\n"
        )
    with serving(box.config, "--fail-on", "warn") as port:
        assert request(port, "/healthz")[0] == 503


# --- ?fresh=1: a new collection, rate-limited, nothing written -----------------------------


def tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file()
    }


def test_fresh_runs_collectors_at_most_once_per_min_interval_and_writes_nothing(
    box: Box,
) -> None:
    box.write_config(
        'disable = ["supervisor", "display", "gpu", "healthcheck", "system"]\n'
        "[serve]\nmin_interval = 3600\n"
    )
    assert CliRunner().invoke(cli, ["run", "--config", str(box.config)]).exit_code == 0
    last = json.loads((box.workspace / "system_status.json").read_text())
    before = tree(box.root)
    time.sleep(1.1)  # the fresh report's time differs from the last one's
    with serving(box.config) as port:
        status, headers, body = request(port, "/healthz?fresh=1")
        assert headers["X-Healthcheck-Source"] == "fresh"
        assert status == 200
        assert body.decode().endswith("; fresh run\n")
        assert last["generated_at"] not in body.decode()

        status, headers, body = request(port, "/healthz?fresh=1")
        assert headers["X-Healthcheck-Source"] == "last-report"
        assert status == 200
        text = body.decode()
        assert text.startswith(f"WARN: 0 crit, {last['counts']['warn']} warn")
        assert f"report of {last['generated_at']})" in text
        assert "; from the last report: a fresh run is allowed once every 3600 s " in text
        # Without ?fresh=1, the last report as always.
        assert request(port, "/healthz")[2].decode().endswith(f"{last['generated_at']})\n")
    assert tree(box.root) == before  # no report, no commit, no lock file: nothing written


# --- bad input: 404, 400, 405, 401; the server keeps serving -------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/nope",
        "/system_status.json",  # a real file in the workspace, but not a route
        "/../system_status.json",
        "/../../../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/report.md/../../canary.txt",
        "/status.json/",
        "/./metrics",
        "/metrics%00.txt",
        "/canary.txt",
        "//etc/passwd",
        "/\\..\\canary.txt",
    ],
)
def test_unknown_paths_are_404_and_nothing_is_read_from_disk(
    faulty: tuple[int, Path, dict[str, Any]], target: str
) -> None:
    port, workspace, _ = faulty
    (workspace / "canary.txt").write_text("CANARY-WORKSPACE\n")
    (workspace.parent / "canary.txt").write_text("CANARY-PARENT\n")
    status, _, body = request(port, target)
    assert status == 404
    assert body == b"404 not found; endpoints: / /metrics /healthz /status.json /report.md\n"


def test_absolute_form_targets_are_refused(faulty: tuple[int, Path, dict[str, Any]]) -> None:
    port = faulty[0]
    reply = raw(port, b"GET file:///etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"root:" not in reply


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("garbage", b"GARBAGE\r\n\r\n"),
        ("bad version", b"GET / HTTP/9\r\n\r\n"),
        ("request line over 64 KiB", b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"),
        ("request line over 8 KiB", b"GET /healthz?" + b"a" * 9_000 + b" HTTP/1.1\r\n\r\n"),
        ("header over 64 KiB", b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 70_000 + b"\r\n\r\n"),
        (
            "too many headers",
            b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n",
        ),
        ("a body", b"GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"),
        ("chunked", b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        (
            "too many query fields",
            b"GET /healthz?" + b"&".join([b"a=1"] * 40) + b" HTTP/1.1\r\n\r\n",
        ),
    ],
)
def test_malformed_or_oversized_requests_get_400_and_the_server_goes_on(
    faulty: tuple[int, Path, dict[str, Any]], name: str, data: bytes
) -> None:
    port = faulty[0]
    reply = raw(port, data)
    assert reply.startswith(b"HTTP/1.1 400 "), (name, reply[:200])
    assert b"Traceback" not in reply
    assert request(port, "/healthz")[0] == 503  # still serving


def test_a_client_that_disconnects_mid_request_does_not_stop_the_server(
    faulty: tuple[int, Path, dict[str, Any]],
) -> None:
    port = faulty[0]
    for partial in (b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b""):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(partial)
    # Whole requests, then a reset before the answer is read: the server's writes fail.
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(b"GET /status.json HTTP/1.1\r\nHost: x\r\n\r\n")
    assert request(port, "/healthz")[0] == 503


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head(faulty: tuple[int, Path, dict[str, Any]], method: str) -> None:
    status, headers, body = request(faulty[0], "/healthz", method=method)
    assert (status, headers["Allow"], body) == (
        405,
        "GET, HEAD",
        b"405 method not allowed: GET or HEAD\n",
    )


def test_token_required_on_every_request(tmp_path: Path) -> None:
    install_report(tmp_path / "workspace", "faulty")
    config = write_config(tmp_path, f'\n[serve]\ntoken = "{TOKEN}"\n')
    with serving(config) as port:
        for path in [*ENDPOINTS, "/nope", "/healthz?fresh=1"]:
            for auth in (
                None,
                "Bearer wrong-token",
                f"Basic {TOKEN}",
                f"Bearer {TOKEN}x",
                "Bearer ",
            ):
                headers = {"Authorization": auth} if auth is not None else {}
                status, reply_headers, body = request(port, path, headers=headers)
                assert status == 401, (path, auth)
                assert reply_headers["WWW-Authenticate"] == 'Bearer realm="healthcheck"'
                assert body == UNAUTHORIZED
        good = {"Authorization": f"Bearer {TOKEN}"}
        assert request(port, "/healthz", headers=good)[0] == 503
        assert request(port, "/nope", headers=good)[0] == 404
        for path in ENDPOINTS:
            status, _, body = request(port, path, headers=good)
            assert status in (200, 503) and TOKEN.encode() not in body


def test_non_loopback_without_token_is_warned(tmp_path: Path) -> None:
    install_report(tmp_path / "workspace", "faulty")
    proc = serve_process(write_config(tmp_path), "--host", "0.0.0.0")
    assert proc.stderr is not None
    try:
        first = proc.stderr.readline()
        second = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert first == (
        "healthcheck: warning: serving on 0.0.0.0 with no [serve] token set, so anyone who "
        "can reach this port can read the report\n"
    )
    assert second.startswith("Serving http://0.0.0.0:")


def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    install_report(tmp_path / "workspace", "faulty")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            cli, ["serve", "--config", str(write_config(tmp_path)), "--port", str(port)]
        )
    assert result.exit_code == 2
    assert result.stderr == (
        f"healthcheck: --host 127.0.0.1 --port {port}: cannot listen: Address already in use\n"
    )


# --- secrets: every body passes through the redactor ---------------------------------------


def test_a_secret_planted_in_the_report_never_leaves(tmp_path: Path) -> None:
    workspace = tmp_path / "workspace"
    report = install_report(workspace, "faulty")
    planted = [FAKE_SECRETS["github-classic"], FAKE_SECRETS["huggingface"]]
    report["findings"][0]["evidence"].append(f"export GITHUB_TOKEN={planted[0]}")
    report["findings"][0]["id"] = f"supervisor.odd:{planted[1]}"
    (workspace / "system_status.json").write_text(json.dumps(report))
    with (workspace / "system_status.md").open("a") as md:
        md.write(f"\n```\nHF_TOKEN={planted[1]}\nuser {planted[0]}\n```\n")
    with serving(write_config(tmp_path)) as port:
        for path in ENDPOINTS:
            status, _, body = request(port, path)
            assert status in (200, 503), path
            for secret in planted:
                assert secret.encode() not in body, path
            assert b"FAKE" not in body, path


# --- the HTML page in a real browser -------------------------------------------------------


class _Dom(HTMLParser):
    """Elements with an id, text outside <pre>/<code>, and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[str] = []
        self.code_depth = 0
        self.outside_code: list[str] = []
        self.inside_code: list[str] = []
        self.findings = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
            if str(attributes["id"]).startswith("finding-"):
                self.findings += 1
        if tag in ("pre", "code"):
            self.code_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("pre", "code"):
            self.code_depth -= 1

    def handle_data(self, data: str) -> None:
        (self.inside_code if self.code_depth else self.outside_code).append(data)


# Five lines: the tests' box shows the last five of each log.
ATTACK = [
    "```",
    '</code></pre><h1 id="escaped">ESCAPED-HEADING</h1><pre><code>',
    "<script>document.title='pwned'</script>",
    "# FORGED-HEADING",
    "ERROR: the service failed <img src=x onerror=alert(1)>",
]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_html_page_in_headless_chromium_keeps_log_text_in_its_code_blocks(
    box: Box, tmp_path: Path
) -> None:
    """A real run over a log whose last lines try to break out of their code block; the
    page, rendered by Chromium, shows the findings and keeps those lines as text in <pre>."""
    (box.logs / "evil.log").write_text("\n".join(ATTACK) + "\n")
    box.write_config('disable = ["supervisor", "display", "gpu", "healthcheck", "system"]\n')
    assert (
        CliRunner().invoke(cli, ["run", "--config", str(box.config), "--no-commit"]).exit_code == 0
    )
    report = json.loads((box.workspace / "system_status.json").read_text())
    assert any(f["id"].startswith("logs.log-ends-with-error") for f in report["findings"])
    with serving(box.config) as port:
        url = f"http://127.0.0.1:{port}/"
        common = [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-proxy-server",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium'}",
        ]
        dumped = subprocess.run(
            [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120
        )
        assert dumped.returncode == 0, dumped.stderr[-2000:]
        shot = tmp_path / "report.png"
        subprocess.run(
            [*common, "--window-size=1200,1600", f"--screenshot={shot}", url],
            capture_output=True,
            timeout=120,
        )
    dom = _Dom()
    dom.feed(dumped.stdout)
    assert dom.findings == len(report["findings"])
    assert "escaped" not in dom.ids and "script" not in dom.tags and "img" not in dom.tags
    outside = "".join(dom.outside_code)
    inside = "".join(dom.inside_code)
    for marker in ("ESCAPED-HEADING", "FORGED-HEADING", "pwned", "onerror"):
        assert marker not in outside, marker
        assert marker in inside, marker
    assert "<title>" in dumped.stdout and "pwned</title>" not in dumped.stdout
    # Each finding links to its collector's section, which exists on the page.
    assert "section-logs" in dom.ids and 'href="#section-logs"' in dumped.stdout
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_html_is_redacted_and_cached_per_report(faulty: tuple[int, Path, dict[str, Any]]) -> None:
    """The same report gives the same page; a new report a new one."""
    port, workspace, _ = faulty
    first = request(port, "/")[2]
    assert request(port, "/")[2] == first
    install_report(workspace, "healthy")
    second = request(port, "/")[2]
    assert hashlib.sha256(second).digest() != hashlib.sha256(first).digest()
    assert b"Overall: UNKNOWN" in second  # no NVML on the sample box: unknown ranks above warn


def test_fresh_run_sees_a_program_crash_on_a_real_supervisord(tmp_path: Path) -> None:
    """A real supervisord: the last report is healthy (200); sshd is then started and
    crashes; /healthz?fresh=1 collects afresh and says 503, while plain /healthz still
    answers from the last report (200) until the next run."""
    web_port = free_port()
    programs = {"web": http_server(web_port), "sshd": {**sshd_failing(), "autostart": False}}
    with start_supervisord(tmp_path / "sv", programs) as sv:
        sv.wait_for_states({"web": "RUNNING", "sshd": "STOPPED"}, timeout=30)
        config = write_config(
            tmp_path,
            f'\n[supervisor]\nserverurl = "{sv.url}"\n\n[logs]\ndirs = ["{sv.log_dir}"]\n\n'
            f"[services.ports]\nweb = {web_port}\n\n[collectors]\n"
            'disable = ["display", "gpu", "healthcheck", "system", "provisioning"]\n',
        )
        result = CliRunner().invoke(
            cli, ["run", "--config", str(config), "--no-commit", "--no-docs"]
        )
        assert result.exit_code == 0, result.output
        with serving(config) as port:
            status, _, body = request(port, "/healthz")
            assert (status, body[:30]) == (200, b"OK: 0 crit, 0 warn, 0 unknown ")
            sv.ctl("start", "sshd")
            sv.wait_for_states({"sshd": "FATAL"}, timeout=30)
            status, headers, body = request(port, "/healthz?fresh=1")
            assert (status, headers["X-Healthcheck-Source"]) == (503, "fresh")
            assert body.startswith(b"CRIT: 1 crit, 0 warn, 0 unknown ")
            assert request(port, "/healthz")[0] == 200
            metrics = request(port, "/metrics")[2]
            assert b'healthcheck_program_up{program="web"} 1.0' in metrics


def test_connections_beyond_the_cap_get_503_and_the_server_recovers(
    faulty: tuple[int, Path, dict[str, Any]],
) -> None:
    from healthcheck.serve import MAX_CONNECTIONS

    port = faulty[0]
    idle = [
        socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(MAX_CONNECTIONS)
    ]
    try:
        time.sleep(0.5)  # every one accepted and holding its thread
        reply = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 503 ")
        assert reply.endswith(b"\r\n\r\n503 busy: too many open connections\n")
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 10
    while request(port, "/healthz")[2].startswith(b"503 busy") and time.monotonic() < deadline:
        time.sleep(0.1)
    status, _, body = request(port, "/healthz")
    assert status == 503 and body.startswith(b"CRIT: 4 crit")


def test_sigterm_stops_at_once_with_a_connection_still_open(tmp_path: Path) -> None:
    install_report(tmp_path / "workspace", "faulty")
    with serving(write_config(tmp_path)) as port:
        kept = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        kept.request("GET", "/healthz")  # kept alive: its thread waits for the next request
        assert kept.getresponse().read().startswith(b"CRIT")
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        began = time.monotonic()
    assert time.monotonic() - began < 5  # not the 15 s an idle connection may wait
    kept.close()
    idle.close()


def test_a_report_of_the_wrong_shape_is_no_report_not_a_500(tmp_path: Path) -> None:
    """The same rule as `context --last` and the MCP server (output.is_report)."""
    workspace = tmp_path / "workspace"
    install_report(workspace, "faulty")
    (workspace / "system_status.json").write_text('{"sections": {"gpu": 1}, "findings": []}')
    with serving(write_config(tmp_path)) as port:
        status, _, body = request(port, "/healthz")
        assert (status, body.decode().split(":")[0]) == (503, "UNKNOWN")
        assert b"is not a healthcheck JSON report" in body
        status, _, body = request(port, "/metrics")
        assert status == 200 and b"healthcheck_report_available 0" in body


def test_ctrl_c_stops_the_server_as_its_normal_end(tmp_path: Path) -> None:
    install_report(tmp_path / "workspace", "faulty")
    with serving(write_config(tmp_path), stop_with=signal.SIGINT) as port:
        assert request(port, "/healthz")[0] == 503


def test_sigterm_under_load_stops_the_server(tmp_path: Path) -> None:
    """SIGTERM while connections keep arriving: it may land mid-accept or mid-thread-start,
    and the server must still stop, cleanly (serving() checks exit 0 and no traceback)."""
    install_report(tmp_path / "workspace", "faulty")

    def hammer(port: int, stop: threading.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError, http.client.HTTPException):
                request(port, "/healthz")

    for _ in range(3):
        stop = threading.Event()
        with serving(write_config(tmp_path)) as port:
            workers = [threading.Thread(target=hammer, args=(port, stop)) for _ in range(4)]
            for worker in workers:
                worker.start()
            time.sleep(0.5)
            began = time.monotonic()
        elapsed = time.monotonic() - began
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        assert elapsed < 5


def test_loopback_server_refuses_other_host_names(
    faulty: tuple[int, Path, dict[str, Any]],
) -> None:
    """DNS rebinding: a page in the box's browser whose name now points at 127.0.0.1 still
    sends its own name as Host, and is refused."""
    port = faulty[0]
    for host in ("evil.example", f"evil.example:{port}", "10.0.0.5", "127.0.0.1.nip.io"):
        status, _, body = request(port, "/status.json", headers={"Host": host})
        assert status == 400, host
        assert body.startswith(b"400 bad request: this server listens on loopback")
    for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert request(port, "/status.json", headers={"Host": host})[0] == 200, host


def test_without_prometheus_client_metrics_say_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed without the serve extra: /metrics is a 503 naming the extra; the rest works."""
    from healthcheck.model import Status
    from healthcheck.redact import Redactor
    from healthcheck.serve import HealthApp, ReportStore

    workspace = tmp_path / "workspace"
    install_report(workspace, "faulty")
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    store = ReportStore(
        workspace / "system_status.md", workspace / "system_status.json", Redactor()
    )
    app = HealthApp(store, Redactor(), Status.CRIT)
    response = app.handle("/metrics", None)
    assert (response.status, response.body) == (
        503,
        b"503 Prometheus metrics need prometheus_client: pip install 'healthcheck[serve]'\n",
    )
    assert app.handle("/healthz", None).status == 503
    assert app.handle("/", None).status == 200
