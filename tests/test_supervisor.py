"""The supervisor collector and its XML-RPC client, against a real supervisord."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from healthcheck.collectors import supervisor as collector_module
from healthcheck.collectors.supervisor import (
    SupervisorCollector,
    clean_log_text,
    parse_status,
)
from healthcheck.config import Config
from healthcheck.logtail import Tail, clean_line
from healthcheck.model import Collector, Section, Status
from healthcheck.program import Program
from healthcheck.supervisor_client import (
    SupervisorClient,
    SupervisorUnavailable,
    discover_serverurls,
    read_serverurls,
    running_config_paths,
)

from supervisord_env import (
    FILEBROWSER_COMMAND,
    SEED_STATES,
    SSHD_ERROR,
    SUPERVISORCTL,
    Supervisord,
    free_port,
    python_command,
    seed_programs,
    sleeper,
    start_supervisord,
)

USERNAME = "healthcheck"
PASSWORD = "s3cret-pw"
EXPECTED_STATES = {**SEED_STATES, "batch:worker": "RUNNING"}
NO_SUPERVISORCTL = "healthcheck-test-no-such-supervisorctl"


@pytest.fixture(scope="module")
def sv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Supervisord]:
    """One supervisord with the seed's programs, shared by the module (it starts in ~2 s)."""
    assert not Path(FILEBROWSER_COMMAND).exists(), "the missing command must be missing"
    programs: dict[str, Any] = seed_programs(free_port())
    programs["worker"] = sleeper()
    server = start_supervisord(
        tmp_path_factory.mktemp("sv"),
        programs,
        http=True,
        username=USERNAME,
        password=PASSWORD,
        groups={"batch": ["worker"]},
    )
    try:
        server.wait_for_states(EXPECTED_STATES)
        yield server
    finally:
        server.stop()


def config_for(url: str, timeout: float = 10.0, tail_lines: int = 20, **supervisor: str) -> Config:
    config = Config()
    config.supervisor.serverurl = url
    for key, value in supervisor.items():
        setattr(config.supervisor, key, value)
    config.collectors.timeout = timeout
    config.logs.tail_lines = tail_lines
    return config


def isolated() -> SupervisorCollector:
    """A collector that discovers nothing and has no supervisorctl: XML-RPC or nothing."""
    return SupervisorCollector(discover=list, supervisorctl=NO_SUPERVISORCTL)


@pytest.fixture(scope="module")
def section(sv: Supervisord) -> Section:
    return isolated().collect(config_for(sv.url))


def programs_of(section: Section) -> dict[str, Program]:
    return {p.fullname: p for p in section.data["programs"]}


# --- a real supervisord over its unix socket ------------------------------------------------


def test_reports_supervisord_and_every_program_state(sv: Supervisord, section: Section) -> None:
    assert isinstance(SupervisorCollector(), Collector)
    assert section.status is Status.CRIT and section.error is None
    # One finding per crashed program, named by its cause (the supervisor's rules); the stopped
    # jupyter never started and the one-shot exited 0: neither is a fault.
    assert {f.id: f.severity for f in section.findings} == {
        "supervisor.command-not-found:filebrowser": Status.CRIT,
        "supervisor.display-unset:icewm": Status.CRIT,
        "supervisor.sshd-privsep-dir:sshd": Status.CRIT,
        "supervisor.missing-python-module:visomaster": Status.CRIT,
    }
    data = section.data
    assert (data["url"], data["via"], data["state"]) == (sv.url, "xmlrpc", "RUNNING")
    assert data["version"] == importlib.metadata.version("supervisor")
    states = {name: p.state for name, p in programs_of(section).items()}
    assert states == EXPECTED_STATES


def test_running_programs_have_pid_and_start_but_no_ticking_description(
    sv: Supervisord, section: Section
) -> None:
    infos = sv.info()
    programs = programs_of(section)
    for name in ("novnc", "batch:worker"):
        program = programs[name]
        assert program.pid == infos[name]["pid"] > 0
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", program.started)
        assert program.description is None  # "pid N, uptime 0:00:07" would tick
        assert program.exitstatus is None
    worker = programs["batch:worker"]
    assert (worker.group, worker.name) == ("batch", "worker")
    novnc = programs["novnc"]
    assert (novnc.group, novnc.name) == ("novnc", "novnc")
    assert novnc.log["stdout"][-1].startswith("Serving HTTP on 127.0.0.1")
    assert novnc.stdout_logfile == str(sv.log("novnc", "stdout"))
    assert novnc.stderr_logfile == str(sv.log("novnc", "stderr"))


def test_uptime_is_volatile_never_data(section: Section) -> None:
    uptimes = section.volatile["uptime_s"]
    assert set(uptimes) == {"novnc", "batch:worker"}
    assert all(isinstance(v, int) and v >= 0 for v in uptimes.values())
    assert "uptime" not in json.dumps(section.to_dict()["data"])


def test_sshd_exit_status_255_comes_from_supervisords_log(
    sv: Supervisord, section: Section
) -> None:
    sshd = programs_of(section)["sshd"]
    # supervisord forgets the status of a process that "exited too quickly"; its log keeps it.
    assert sv.info()["sshd"]["exitstatus"] == 0
    assert sshd.exitstatus == 255
    assert sshd.exitstatus_source == "supervisord log"
    assert sshd.spawnerr == "Exited too quickly (process log may have details)"
    assert sshd.pid is None
    assert sshd.log["stderr"][-1] == SSHD_ERROR
    assert sshd.log_source == "file"
    assert any("exited: sshd (exit status 255; not expected)" in x for x in sshd.supervisord_log)
    assert "gave up: sshd entered FATAL state" in sshd.supervisord_log[-1]


def test_missing_command_is_a_spawn_error_without_exit_status(section: Section) -> None:
    filebrowser = programs_of(section)["filebrowser"]
    assert filebrowser.state == "FATAL"
    assert filebrowser.spawnerr == f"can't find command '{FILEBROWSER_COMMAND}'"
    assert filebrowser.exitstatus is None  # it never ran
    assert filebrowser.pid is None


def test_missing_module_line_is_in_the_log_and_flagged(section: Section) -> None:
    visomaster = programs_of(section)["visomaster"]
    assert visomaster.exitstatus == 1
    stderr = visomaster.log["stderr"]
    line = "ModuleNotFoundError: No module named 'PySide6'"
    assert stderr[-1] == line
    assert len(stderr) - 1 in visomaster.error_lines["stderr"]
    assert stderr.index("Traceback (most recent call last):") in visomaster.error_lines["stderr"]
    assert visomaster.log["stdout"] == [] and visomaster.error_lines["stdout"] == []


def test_window_manager_runs_without_display(section: Section) -> None:
    icewm = programs_of(section)["icewm"]
    assert icewm.state == "FATAL"
    assert "Can't open display: <none>" in icewm.log["stderr"][-1]
    assert icewm.error_lines["stderr"]


def test_stopped_program_that_never_started(section: Section) -> None:
    jupyter = programs_of(section)["jupyter"]
    assert jupyter.state == "STOPPED"
    assert jupyter.started is None and jupyter.pid is None
    assert jupyter.exitstatus is None
    assert jupyter.description == "Not started"
    assert jupyter.log == {"stdout": [], "stderr": []}
    assert jupyter.log_source is None and jupyter.log_errors == {}


def test_oneshot_that_exited_as_expected(section: Section) -> None:
    provision = programs_of(section)["provision"]
    assert provision.state == "EXITED"
    assert provision.exitstatus == 0 and provision.exitstatus_source == "xmlrpc"
    assert provision.stderr_logfile is None  # redirect_stderr
    assert provision.log == {"stdout": ["provisioning done"], "stderr": []}
    assert provision.error_lines == {"stdout": [], "stderr": []}


def test_data_is_json_sorted_and_the_same_on_an_idle_box(sv: Supervisord, section: Section) -> None:
    names = [p.fullname for p in section.data["programs"]]
    assert names == sorted(names)
    again = isolated().collect(config_for(sv.url))
    assert json.dumps(again.to_dict()["data"], sort_keys=True) == json.dumps(
        section.to_dict()["data"], sort_keys=True
    )
    for program in section.data["programs"]:
        assert set(program.log) == set(program.error_lines) == {"stdout", "stderr"}


def test_tail_lines_limits_every_log(sv: Supervisord) -> None:
    section = isolated().collect(config_for(sv.url, tail_lines=1))
    sshd = programs_of(section)["sshd"]
    assert sshd.log["stderr"] == [SSHD_ERROR]
    assert all(len(lines) <= 1 for p in section.data["programs"] for lines in p.log.values())


def test_logs_come_through_the_api_when_the_files_cannot_be_read(
    sv: Supervisord, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Running as an unprivileged user against root's 0600 logs: the files cannot be read.
    real_read_tail = collector_module.gather.read_tail

    def unreadable(path: str, lines: int, max_line_bytes: int = 4096) -> Tail:
        tail = real_read_tail(path, lines, max_line_bytes)
        return tail if tail.error else Tail(path=str(path), error="permission denied")

    monkeypatch.setattr(collector_module.gather, "read_tail", unreadable)
    section = isolated().collect(config_for(sv.url, tail_lines=3))
    programs = programs_of(section)
    visomaster = programs["visomaster"]
    assert visomaster.log_source == "xmlrpc"
    assert visomaster.log["stderr"] == [
        "Traceback (most recent call last):",
        '  File "<string>", line 1, in <module>',
        "ModuleNotFoundError: No module named 'PySide6'",
    ]
    assert visomaster.error_lines["stderr"] == [0, 2]
    assert visomaster.log_errors == {}
    assert programs["sshd"].log["stderr"][-1] == SSHD_ERROR
    # Never started: no log either way, and nothing to complain about.
    assert programs["jupyter"].log_source is None
    assert programs["jupyter"].log_errors == {}


def test_client_tail_returns_the_last_bytes(sv: Supervisord) -> None:
    client = SupervisorClient(sv.url, timeout=5)
    whole = sv.log("visomaster", "stderr").read_bytes()
    tail = client.tail_process_stderr_log("visomaster", 20)
    assert tail.text.encode() == whole[-20:]
    assert tail.overflow is True and tail.offset == len(whole)
    everything = client.tail_process_stderr_log("visomaster", len(whole) + 100)
    assert everything.text.encode() == whole and everything.overflow is False
    assert client.tail_process_log("sshd", "stderr", 1000).text.endswith(SSHD_ERROR + "\n")
    assert client.get_state()["statename"] == "RUNNING"


def test_client_maps_an_xmlrpc_fault(sv: Supervisord) -> None:
    client = SupervisorClient(sv.url, timeout=5)
    with pytest.raises(SupervisorUnavailable) as caught:
        client.tail_process_stdout_log("no-such-program", 100)
    assert caught.value.kind == "fault"
    assert "BAD_NAME" in caught.value.reason


# --- http:// with basic auth ----------------------------------------------------------------


def test_http_with_the_right_credentials(sv: Supervisord, section: Section) -> None:
    assert sv.http_url is not None
    config = config_for(sv.http_url, username=USERNAME, password=PASSWORD)
    over_http = isolated().collect(config)
    assert over_http.status is section.status
    assert over_http.findings == section.findings
    assert over_http.data["url"] == sv.http_url
    assert over_http.data["programs"] == section.data["programs"]
    # Credentials in the URL work too, and never show in the report.
    url = sv.http_url.replace("http://", f"http://{USERNAME}:{PASSWORD}@")
    in_url = isolated().collect(config_for(url))
    assert in_url.data["url"] == sv.http_url
    assert PASSWORD not in json.dumps(in_url.to_dict()["data"])
    assert PASSWORD not in repr(SupervisorClient(url)._target)  # nor in a log or traceback


def test_http_with_a_wrong_password(sv: Supervisord) -> None:
    assert sv.http_url is not None
    with pytest.raises(SupervisorUnavailable) as caught:
        SupervisorClient(sv.http_url, USERNAME, "wrong", timeout=5).get_state()
    assert caught.value.kind == "auth"
    section = isolated().collect(config_for(sv.http_url, username=USERNAME, password="wrong"))
    assert section.status is Status.UNKNOWN
    assert section.error is not None
    assert "authentication failed: check supervisor.username / password" in section.error
    (finding,) = section.findings
    assert finding.rule == "unreachable" and finding.severity is Status.UNKNOWN
    assert sv.http_url in finding.title and "authentication failed" in finding.title
    assert "wrong" not in json.dumps(section.to_dict()["data"])


# --- supervisord that cannot be reached -----------------------------------------------------


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory for unix sockets (pytest's tmp paths can exceed AF_UNIX's limit)."""
    path = Path(tempfile.mkdtemp(prefix="hc", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_missing_socket(short_dir: Path) -> None:
    url = f"unix://{short_dir}/supervisor.sock"
    section = isolated().collect(config_for(url))
    assert section.status is Status.UNKNOWN
    assert section.error == (
        f"no supervisord socket at {short_dir}/supervisor.sock (is supervisord running?)"
    )
    (finding,) = section.findings
    assert (finding.rule, finding.severity, finding.subject) == ("unreachable", Status.UNKNOWN, url)
    assert url in finding.title
    assert "supervisorctl status" in finding.hint and "serverurl" in finding.hint
    assert section.data["programs"] == [] and section.data["via"] is None
    assert NO_SUPERVISORCTL in section.data["fallback_error"]


def test_stale_socket_file_refuses(short_dir: Path) -> None:
    path = short_dir / "supervisor.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nothing listens: what a killed supervisord leaves
    assert path.exists()
    section = isolated().collect(config_for(f"unix://{path}"))
    assert section.status is Status.UNKNOWN
    assert section.error is not None and "refused" in section.error
    assert section.data["attempts"][0]["error"] == section.error


@pytest.mark.skipif(os.geteuid() == 0, reason="root may use any socket")
def test_socket_without_permission(short_dir: Path) -> None:  # pragma: no cover - non-root
    path = short_dir / "supervisor.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    try:
        path.chmod(0)
        with pytest.raises(SupervisorUnavailable) as caught:
            SupervisorClient(f"unix://{path}", timeout=2).get_state()
        assert caught.value.kind == "permission"
        assert "permission denied" in caught.value.reason
    finally:
        listener.close()


class FakeServer:
    """A unix socket server that answers each connection with `handler` (in a thread)."""

    def __init__(self, path: Path, handler: Callable[[socket.socket, threading.Event], None]):
        self.path = path
        self.stop = threading.Event()
        self.accepted = 0
        self._handler = handler
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen()
        self._listener.settimeout(0.1)
        self._threads = [threading.Thread(target=self._serve, daemon=True)]
        self._threads[0].start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.accepted += 1
            thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            self._handler(conn, self.stop)

    def close(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()


@pytest.fixture
def fake_server(short_dir: Path) -> Iterator[Callable[..., FakeServer]]:
    servers: list[FakeServer] = []

    def make(handler: Callable[[socket.socket, threading.Event], None]) -> FakeServer:
        server = FakeServer(short_dir / f"s{len(servers)}.sock", handler)
        servers.append(server)
        return server

    try:
        yield make
    finally:
        for server in servers:
            server.close()


def silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(30)  # accepts, reads nothing, answers nothing


def test_socket_that_accepts_and_never_answers(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(silent)
    # supervisorctl would hang on this socket the same way: the fallback must be skipped.
    collector = SupervisorCollector(discover=list, supervisorctl=SUPERVISORCTL)
    config = config_for(server.url, timeout=2)  # 1 s per call: half the budget
    result: list[Section] = []
    thread = threading.Thread(target=lambda: result.append(collector.collect(config)))
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "the collector hung on a silent socket"
    (section,) = result
    assert section.status is Status.UNKNOWN
    assert section.error == f"{server.url} accepted the connection but did not answer within 1s"
    assert "not tried" in section.data["fallback_error"]
    assert server.accepted == 1


def trickle(conn: socket.socket, stop: threading.Event) -> None:
    """An answer that never ends, one byte at a time: a per-read timeout never fires."""
    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\n<?xml version='1.0'?>")
    while not stop.wait(0.05):
        try:
            conn.sendall(b" ")
        except OSError:
            return


def test_a_trickling_answer_is_bounded_too(fake_server: Callable[..., FakeServer]) -> None:
    server = fake_server(trickle)
    with pytest.raises(SupervisorUnavailable) as caught:
        SupervisorClient(server.url, timeout=1).get_state()
    assert caught.value.kind == "no-answer"
    assert "did not answer within 1s" in caught.value.reason


def replying(payload: bytes) -> Callable[[socket.socket, threading.Event], None]:
    def handler(conn: socket.socket, stop: threading.Event) -> None:
        conn.settimeout(2)
        with_timeout_read(conn)
        conn.sendall(payload)

    return handler


def with_timeout_read(conn: socket.socket) -> None:
    """Read the request's headers and body (small) so that the reply is not a reset."""
    data = b""
    while b"</methodCall>" not in data:
        try:
            chunk = conn.recv(4096)
        except OSError:
            return
        if not chunk:
            return
        data += chunk


@pytest.mark.parametrize(
    ("payload", "kind", "words"),
    [
        (b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\n\r\nthis is no XML", "garbage", "XML-RPC"),
        (b"SSH-2.0-OpenSSH_8.9\r\n", "garbage", "not HTTP"),
        (b"", "garbage", "closed the connection"),
        (b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n", "http", "HTTP 404"),
        (b"HTTP/1.0 401 Unauthorized\r\nContent-Length: 0\r\n\r\n", "auth", "authentication"),
    ],
)
def test_answers_that_are_not_supervisord(
    fake_server: Callable[..., FakeServer], payload: bytes, kind: str, words: str
) -> None:
    server = fake_server(replying(payload))
    with pytest.raises(SupervisorUnavailable) as caught:
        SupervisorClient(server.url, timeout=3).get_state()
    assert caught.value.kind == kind
    assert words in caught.value.reason


def test_supervisord_not_running_is_a_warning(tmp_path: Path) -> None:
    # A program that ignores SIGTERM keeps supervisord in SHUTDOWN, still answering.
    stubborn = {
        "command": python_command(
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(3600)"
        ),
        "stopwaitsecs": 60,
    }
    with start_supervisord(tmp_path, {"stubborn": stubborn}) as server:
        server.wait_for_states({"stubborn": "RUNNING"})
        deadline = time.monotonic() + 20
        while "ready" not in server.log("stubborn").read_text():  # SIGTERM is ignored now
            assert time.monotonic() < deadline, "the program never got ready"
            time.sleep(0.05)
        server.rpc("supervisor.shutdown")
        # From now on it answers every call with the SHUTDOWN_STATE fault, getState included.
        with pytest.raises(xmlrpc.client.Fault, match="SHUTDOWN_STATE"):
            server.rpc("supervisor.getState")
        section = isolated().collect(config_for(server.url))
    assert (section.data["via"], section.data["state"]) == ("xmlrpc", "SHUTDOWN"), section.error
    assert section.data["programs"] == [] and section.error is None
    (finding,) = section.findings
    assert (finding.rule, finding.severity) == ("not-running", Status.WARN)
    assert "shutting down" in finding.title
    assert section.status is Status.WARN


# --- where supervisord is: discovery --------------------------------------------------------


def test_read_serverurls_from_the_conf(sv: Supervisord) -> None:
    found = read_serverurls(sv.conf_path)
    assert [(f.url, f.section) for f in found] == [
        (sv.url, "supervisorctl"),
        (sv.http_url, "inet_http_server"),
    ]
    assert all(f.config_path == str(sv.conf_path) for f in found)
    http = found[1]
    assert (http.username, http.password) == (USERNAME, PASSWORD)
    assert PASSWORD not in repr(http)
    assert found[0].source == f"{sv.conf_path} [supervisorctl] serverurl"


def test_read_serverurls_tolerates_junk_and_follows_includes(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "web.conf").write_text(
        "[inet_http_server]\nport = *:9001\nusername = admin\npassword = pw%%1\n"
    )
    conf = tmp_path / "supervisord.conf"
    conf.write_bytes(
        b"stray = before any section\n"
        b"[unix_http_server]\n"
        b"file = %(here)s/run/supervisor.sock ; inline comment\n"
        b"this line is junk\n"
        b"[supervisorctl]\n"
        b"username = ops\n"
        b"password = \xff\xfe\n"
        b"[include]\n"
        b"files = conf.d/*.conf\n"
    )
    found = read_serverurls(conf)
    assert [f.url for f in found] == [
        f"unix://{tmp_path}/run/supervisor.sock",
        "http://localhost:9001",
    ]
    # supervisorctl's credentials win: it is what an operator's supervisorctl would use.
    assert [f.username for f in found] == ["ops", "ops"]
    assert read_serverurls(tmp_path / "absent.conf") == []
    (tmp_path / "binary.conf").write_bytes(os.urandom(2048))
    assert read_serverurls(tmp_path / "binary.conf") == []


def test_discover_from_the_running_supervisord(sv: Supervisord) -> None:
    assert str(sv.conf_path) in running_config_paths()
    found = discover_serverurls(config_paths=[])
    assert any(f.url == sv.url and f.config_path == str(sv.conf_path) for f in found)
    explicit = discover_serverurls(config_paths=[str(sv.conf_path)], processes=False)
    assert [f.url for f in explicit] == [sv.url, sv.http_url]


@pytest.mark.skipif(
    os.path.exists("/var/run/supervisor.sock"), reason="a real supervisord owns the default"
)
def test_the_default_url_falls_back_to_discovered_servers(sv: Supervisord) -> None:
    def discover() -> list[Any]:
        return discover_serverurls(config_paths=[str(sv.conf_path)], processes=False)

    collector = SupervisorCollector(discover=discover, supervisorctl=NO_SUPERVISORCTL)
    section = collector.collect(Config())
    assert section.data["via"] == "xmlrpc"
    assert section.data["url"] == sv.url
    assert section.data["source"] == f"{sv.conf_path} [supervisorctl] serverurl"
    assert (
        "no supervisord socket at /var/run/supervisor.sock"
        in (section.data["attempts"][0]["error"])
    )
    assert {p.fullname: p.state for p in section.data["programs"]} == EXPECTED_STATES


def test_a_custom_url_is_not_second_guessed_over_xmlrpc(sv: Supervisord, short_dir: Path) -> None:
    def discover() -> list[Any]:
        return discover_serverurls(config_paths=[str(sv.conf_path)], processes=False)

    url = f"unix://{short_dir}/elsewhere.sock"
    section = SupervisorCollector(discover=discover, supervisorctl=NO_SUPERVISORCTL).collect(
        config_for(url)
    )
    assert section.status is Status.UNKNOWN
    assert [a["url"] for a in section.data["attempts"]] == [url]


# --- the supervisorctl fallback -------------------------------------------------------------


def test_supervisorctl_fallback(sv: Supervisord, short_dir: Path) -> None:
    def discover() -> list[Any]:
        return discover_serverurls(config_paths=[str(sv.conf_path)], processes=False)

    url = f"unix://{short_dir}/wrong.sock"  # a configured URL that does not work
    collector = SupervisorCollector(discover=discover, supervisorctl=SUPERVISORCTL)
    section = collector.collect(config_for(url, tail_lines=5))
    data = section.data
    assert data["via"] == "supervisorctl"
    assert data["source"] == str(sv.conf_path)
    assert data["url"] == sv.url
    programs = programs_of(section)
    assert {name: p.state for name, p in programs.items()} == EXPECTED_STATES
    assert programs["novnc"].pid == sv.info()["novnc"]["pid"]
    assert programs["novnc"].description is None
    assert programs["filebrowser"].spawnerr == f"can't find command '{FILEBROWSER_COMMAND}'"
    assert programs["jupyter"].description == "Not started"
    visomaster = programs["visomaster"]
    assert visomaster.log_source == "supervisorctl"
    assert visomaster.log["stderr"][-1] == "ModuleNotFoundError: No module named 'PySide6'"
    assert len(visomaster.log["stderr"]) - 1 in visomaster.error_lines["stderr"]
    assert programs["sshd"].log["stderr"][-1] == SSHD_ERROR
    assert all(p.exitstatus is None and p.started is None for p in programs.values())
    assert set(section.volatile["uptime_s"]) == {"novnc", "batch:worker"}
    assert "uptime" not in json.dumps(section.to_dict()["data"])
    *causes, finding = section.findings
    assert finding.rule == "xmlrpc-unavailable" and finding.severity is Status.UNKNOWN
    assert "no supervisord socket" in finding.title
    # Without exit statuses, the logs supervisorctl tails still name each crash's cause.
    assert sorted(f.id for f in causes) == [
        "supervisor.command-not-found:filebrowser",
        "supervisor.display-unset:icewm",
        "supervisor.missing-python-module:visomaster",
        "supervisor.sshd-privsep-dir:sshd",
    ]


def test_no_fallback_without_supervisorctl(short_dir: Path) -> None:
    section = isolated().collect(config_for(f"unix://{short_dir}/x.sock"))
    assert section.data["fallback_error"] == f"no {NO_SUPERVISORCTL} on PATH"


# --- parsing and cleaning -------------------------------------------------------------------


def test_parse_status_lines() -> None:
    output = (
        "batch:worker                     RUNNING   pid 4242, uptime 1 day, 2:03:04\n"
        "novnc                            RUNNING   pid 77, uptime 0:00:09\n"
        "sshd                             FATAL     Exited too quickly (process log may have "
        "details)\n"
        'visomaster                       BACKOFF   unknown error (try "tail visomaster")\n'
        "jupyter                          STOPPED   Not started\n"
        "unix:///var/run/supervisor.sock no such file\n"
    )
    programs, uptimes = parse_status(output)
    by_name = {p.fullname: p for p in programs}
    assert list(by_name) == ["batch:worker", "novnc", "sshd", "visomaster", "jupyter"]
    assert (by_name["batch:worker"].group, by_name["batch:worker"].name) == (
        "batch",
        "worker",
    )
    assert by_name["batch:worker"].pid == 4242
    assert uptimes == {"batch:worker": 86400 + 2 * 3600 + 3 * 60 + 4, "novnc": 9}
    assert by_name["sshd"].spawnerr.startswith("Exited too quickly")
    assert by_name["visomaster"].spawnerr is None
    assert by_name["jupyter"].description == "Not started"


def test_clean_log_lines() -> None:
    assert clean_line("\x1b[31mERROR\x1b[0m: boom\r", 100) == "ERROR: boom"
    assert clean_line("10%\r50%\r100%\r", 100) == "100%"
    assert clean_line("a\x07b\x00c", 100) == "abc"
    assert clean_line("\x00\x00", 100) is None
    cut = clean_line("é" * 10, 5)
    assert cut == "éé … [line cut: 20 bytes]"
    text = "tail of a line\nfirst\nsecond\nthird\n"
    assert clean_log_text(text, 2, 100, partial_first=True) == ["second", "third"]
    assert clean_log_text(text, 10, 100, partial_first=True) == ["first", "second", "third"]
    assert clean_log_text(text, 10, 100, partial_first=False)[0] == "tail of a line"
    assert clean_log_text("", 5, 100, partial_first=False) == []
