"""Alerts and the dead man's switch against real parts: a real supervisord whose program is
stopped between two real runs, real local HTTP receivers (Apprise's `json://` notification,
the ping), receivers that answer 500 or never answer, and the `notify test` command."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from healthcheck.cli import cli
from healthcheck.notify import (
    MESSAGE_CAP,
    Change,
    Plan,
    State,
    advance,
    build_message,
    ping_target,
    plan,
)

from secrets_corpus import FAKE_SECRETS
from supervisord_env import Supervisord, python_command, sleeper, start_supervisord

HOST = socket.gethostname()
# Every collector but supervisor: the runs stay quick, and the config (not --skip) says so,
# so they are full runs, the kind that alerts.
OTHERS = ["system", "env", "ports", "display", "gpu", "provisioning", "logs", "healthcheck"]


@dataclass
class Received:
    path: str
    body: bytes

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """A real HTTP server on a free loopback port, in a thread, recording every POST.

    Answers `status`; with `hang`, answers nothing until the test is over.
    """

    def __init__(self, status: int = 200, hang: bool = False) -> None:
        self.requests: list[Received] = []
        self.status = status
        self.hang = hang
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append(Received(self.path, body))
                if receiver.hang:
                    receiver.release.wait(60)
                    return
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def http(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def messages(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if r.path == "/hook"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def sv(tmp_path: Path) -> Iterator[Supervisord]:
    with start_supervisord(tmp_path / "sv", {"jupyter": sleeper(), "worker": sleeper()}) as s:
        s.wait_for_states({"jupyter": "RUNNING", "worker": "RUNNING"})
        yield s


def write_config(tmp_path: Path, sv: Supervisord, notify: str) -> Path:
    config = tmp_path / "hc.toml"
    config.write_text(
        f'[paths]\nworkspace = "{tmp_path / "ws"}"\n{sv.toml()}\n'
        f"[collectors]\ndisable = {json.dumps(OTHERS)}\n\n[notify]\n{notify}\n",
        encoding="utf-8",
    )
    return config


def run(config: Path, *args: str) -> Result:
    result = CliRunner().invoke(cli, ["run", "--config", str(config), "--no-docs", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def report(tmp_path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((tmp_path / "ws" / "system_status.json").read_text())
    return data


def python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter: what a command imports, or a module made missing."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def without_apprise(*args: str) -> subprocess.CompletedProcess[str]:
    """`healthcheck ARGS` in an interpreter where `import apprise` fails, as uninstalled."""
    return python(
        "import sys; sys.modules['apprise'] = None; from healthcheck.cli import main; "
        f"sys.argv = ['healthcheck', *{list(args)!r}]; main()"
    )


def stop(sv: Supervisord, name: str) -> None:
    sv.ctl("stop", name)
    sv.wait_for_states({name: "STOPPED"})


def start(sv: Supervisord, name: str) -> None:
    sv.ctl("start", name)
    sv.wait_for_states({name: "RUNNING"})


# -- alerts on change, against a real supervisord ------------------------------------------


def test_a_stopped_program_is_alerted_once_and_nothing_is_sent_when_nothing_changed(
    tmp_path: Path, sv: Supervisord, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sv, f'urls = ["{receiver.url()}"]')
    assert run(config).exit_code == 0
    assert run(config).exit_code == 0
    assert receiver.requests == []  # a healthy box, twice: nothing to say
    stop(sv, "jupyter")
    assert run(config).exit_code == 0
    (message,) = receiver.messages()
    md_path = tmp_path / "ws" / "system_status.md"
    assert message["title"] == f"healthcheck: {HOST} WARN (0 crit, 1 warn, 0 unknown)"
    assert message["type"] == "warning"
    lines = message["message"].splitlines()
    assert lines[0] == "- NEW WARN: jupyter is stopped [supervisor.program-stopped:jupyter]"
    assert any(
        line.startswith("  Fix: ") and "supervisorctl start jupyter" in line for line in lines
    )
    assert lines[-1] == f"Report: {md_path}"
    assert run(config).exit_code == 0
    assert len(receiver.messages()) == 1  # still stopped: no change, no second message
    # The alert state lives in the workspace, out of git like the lock.
    ws = tmp_path / "ws"
    assert (ws / ".healthcheck-notify.json").is_file()
    git = ["git", "-C", str(ws)]
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    assert ".healthcheck-notify.json" not in status.stdout
    ignored = subprocess.run([*git, "check-ignore", ".healthcheck-notify.json"], check=False)
    assert ignored.returncode == 0


def test_resolved_is_told_and_a_flapping_program_is_reported_once(
    tmp_path: Path, sv: Supervisord, receiver: Receiver
) -> None:
    flapping = write_config(tmp_path, sv, f'urls = ["{receiver.url()}"]\nmin_interval = 3600')
    run(flapping)
    stop(sv, "jupyter")
    run(flapping)
    start(sv, "jupyter")
    run(flapping)
    stop(sv, "jupyter")
    run(flapping)
    # Opened, resolved and opened again within min_interval: one message, the first.
    assert [m["message"].splitlines()[0] for m in receiver.messages()] == [
        "- NEW WARN: jupyter is stopped [supervisor.program-stopped:jupyter]"
    ]
    eager = write_config(tmp_path, sv, f'urls = ["{receiver.url()}"]\nmin_interval = 0')
    start(sv, "jupyter")
    run(eager)
    last = receiver.messages()[-1]
    assert last["title"] == f"healthcheck: {HOST} OK (0 crit, 0 warn, 0 unknown)"
    assert last["message"].splitlines()[0] == (
        "- RESOLVED: jupyter is stopped [supervisor.program-stopped:jupyter]"
    )
    assert last["type"] == "success"


def test_worse_ignores_a_resolution_and_always_sends_every_run(
    tmp_path: Path, sv: Supervisord, receiver: Receiver
) -> None:
    stop(sv, "jupyter")
    always = write_config(tmp_path, sv, f'urls = ["{receiver.url()}"]\non = "always"')
    run(always)
    run(always)
    first, second = receiver.messages()
    assert first["message"].startswith("- NEW WARN: jupyter is stopped")
    assert second["message"].splitlines()[:2] == [
        "No change since the last alert; 1 open finding.",
        "- WARN: jupyter is stopped [supervisor.program-stopped:jupyter]",
    ]
    worse = write_config(
        tmp_path, sv, f'urls = ["{receiver.url()}"]\non = "worse"\nmin_interval = 0'
    )
    start(sv, "jupyter")
    run(worse)
    assert len(receiver.messages()) == 2  # better is not worse
    stop(sv, "jupyter")
    run(worse)
    assert len(receiver.messages()) == 3  # and it opening again is told, not lost


def test_a_planted_secret_never_reaches_the_channel(tmp_path: Path, receiver: Receiver) -> None:
    token = FAKE_SECRETS["github-classic"]
    leaky = python_command(
        f"import sys; sys.stderr.write('fatal: authentication failed, token {token}' + chr(10));"
        " sys.exit(1)"
    )
    # startsecs: an exit within 5 s is a failed start however slow the machine, so FATAL.
    app = {"command": leaky, "autostart": False, "autorestart": True, "startsecs": 5}
    programs = {"worker": sleeper(), "app": app}
    with start_supervisord(tmp_path / "sv", programs) as box:
        box.wait_for_states({"worker": "RUNNING", "app": "STOPPED"})
        config = write_config(tmp_path, box, f'urls = ["{receiver.url()}"]')
        run(config)
        box.ctl("start", "app")
        box.wait_for_states({"app": "FATAL"})
        assert run(config).exit_code == 0
    (message,) = receiver.messages()
    assert "[redacted:github-token]" in message["message"]  # the decisive line did go out
    for request in receiver.requests:
        assert b"FAKE" not in request.body and b"fake0123" not in request.body


# -- failing and slow channels ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("answers-500", "Internal server error"),
        ("hangs", "no answer within 2 s (notify.timeout)"),
        ("is-down", "A Connection error occurred"),
    ],
)
def test_a_failing_channel_costs_at_most_the_timeout_and_is_a_warn_finding_next_run(
    tmp_path: Path, sv: Supervisord, mode: str, reason: str
) -> None:
    with Receiver(status=500, hang=mode == "hangs") as bad, Receiver() as good:
        if mode == "is-down":
            bad.server.server_close()  # the port refuses connections from now on
        urls = json.dumps([bad.url(), good.url()])
        config = write_config(tmp_path, sv, f"urls = {urls}\ntimeout = 2")
        run(config)
        stop(sv, "jupyter")
        started = time.monotonic()
        result = run(config)
        elapsed = time.monotonic() - started
        assert result.exit_code == 0, result.output
        assert elapsed < 2 + 8  # the timeout, plus the run itself on a loaded machine
        assert len(bad.requests) == (mode != "is-down") and len(good.messages()) == 1
        assert f"alert to channel 1 (json://127.0.0.1:{bad.port}/hook) failed: " in result.stderr
        assert not any(f["id"].startswith("notify.") for f in report(tmp_path)["findings"])
        start(sv, "jupyter")
        result = run(config)
        assert result.exit_code == 0
    (finding,) = [f for f in report(tmp_path)["findings"] if f["collector"] == "notify"]
    assert finding["id"] == "notify.delivery-failed:1"
    assert finding["severity"] == "warn"
    assert finding["title"] == (
        f"The last alert did not reach channel 1 (json://127.0.0.1:{bad.port}/hook)"
    )
    assert reason in finding["detail"]


def test_a_hanging_channel_costs_the_timeout_not_apprises_own(receiver: Receiver) -> None:
    from healthcheck.notify import send
    from healthcheck.redact import Redactor

    apprise = pytest.importorskip("apprise")
    apprise.Apprise().add(receiver.url())  # loads its plugins: not the part being timed
    with Receiver(hang=True) as hung:
        started = time.monotonic()
        deliveries = send([hung.url(), receiver.url()], "t", "b", Redactor(), timeout=1)
        elapsed = time.monotonic() - started
    # Apprise's own socket timeouts are 4 s: without our bound this took at least that long.
    assert elapsed < 2.5
    assert [(d.number, d.error) for d in deliveries] == [
        (1, "no answer within 1 s (notify.timeout)"),
        (2, None),
    ]
    assert len(hung.requests) == 1 and len(receiver.messages()) == 1


def test_a_hanging_channel_does_not_hold_the_process_open_at_exit(
    tmp_path: Path, receiver: Receiver
) -> None:
    with Receiver(hang=True) as hung:
        config = tmp_path / "hc.toml"
        config.write_text(f'[notify]\nurls = ["{hung.url()}"]\ntimeout = 1\n')
        command = [str(Path(sys.executable).parent / "healthcheck"), "notify", "test"]
        started = time.monotonic()
        done = subprocess.run(
            [*command, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        elapsed = time.monotonic() - started
    assert done.returncode == 1
    assert done.stdout.endswith("        no answer within 1 s (notify.timeout)\n")
    # Apprise joins its worker threads at exit; with its own 4 s socket timeouts that was 5 s.
    assert elapsed < 4


def test_alerts_without_apprise_are_a_warn_finding_not_a_failed_run(
    tmp_path: Path, sv: Supervisord, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sv, f'urls = ["{receiver.url()}"]')
    done = without_apprise("run", "--config", str(config), "--no-docs")
    assert done.returncode == 0, done.stderr
    ids = [f["id"] for f in report(tmp_path)["findings"]]
    assert ids == ["notify.unavailable"]
    assert receiver.requests == []


# -- the dead man's switch -------------------------------------------------------------------


def test_ping_start_then_success_with_the_summary(
    tmp_path: Path, sv: Supervisord, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sv, f'ping_url = "{receiver.http("ping/abc")}"')
    assert run(config).exit_code == 0
    md_path = tmp_path / "ws" / "system_status.md"
    assert [(r.path, r.body.decode()) for r in receiver.requests] == [
        ("/ping/abc/start", ""),
        ("/ping/abc", f"Status OK: 0 crit, 0 warn, 0 unknown. Report: {md_path}"),
    ]


def test_a_run_skipped_for_another_runs_lock_still_ends_its_ping(
    tmp_path: Path, sv: Supervisord, receiver: Receiver
) -> None:
    """A monitor that saw /start must hear how the run ended, or it reports the box down."""
    from healthcheck.lock import workspace_lock

    config = write_config(tmp_path, sv, f'ping_url = "{receiver.http("ping/abc")}"')
    config.write_text(config.read_text() + "\n[git]\nlock_timeout = 0\n")
    (tmp_path / "ws").mkdir()
    with workspace_lock(tmp_path / "ws", 0):  # another run holds the workspace
        result = run(config)
    assert result.exit_code == 0 and "skipped this run" in result.stderr
    assert [r.path for r in receiver.requests] == ["/ping/abc/start", "/ping/abc"]
    assert receiver.requests[1].body.decode().startswith("skipped: another healthcheck")


def test_ping_fail_when_the_status_reaches_fail_on_or_the_run_fails(
    tmp_path: Path, sv: Supervisord, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sv, f'ping_url = "{receiver.http("ping/abc?x=1")}"')
    stop(sv, "jupyter")
    assert run(config, "--fail-on", "warn").exit_code == 1
    md_path = tmp_path / "ws" / "system_status.md"
    assert [(r.path, r.body.decode()) for r in receiver.requests] == [
        ("/ping/abc/start?x=1", ""),
        ("/ping/abc/fail?x=1", f"Status WARN: 0 crit, 1 warn, 0 unknown. Report: {md_path}"),
    ]
    receiver.requests.clear()
    # A file where the report's directory should be, named like a token: the failure names
    # the path, and the ping carries the failure through the redactor.
    blocked = tmp_path / "ws" / FAKE_SECRETS["huggingface"]
    blocked.write_text("not a directory\n")
    result = run(config, "--output", str(blocked / "r.md"))
    assert result.exit_code == 3
    paths = [r.path for r in receiver.requests]
    assert paths == ["/ping/abc/start?x=1", "/ping/abc/fail?x=1"]
    body = receiver.requests[1].body.decode()
    assert body.startswith("run failed: ") and "[redacted:huggingface-token]" in body
    assert "FAKE" not in body


def test_a_failed_ping_is_a_warn_finding_in_the_next_report(
    tmp_path: Path, sv: Supervisord
) -> None:
    with Receiver(status=500) as down:
        config = write_config(tmp_path, sv, f'ping_url = "{down.http("ping")}"\ntimeout = 2')
        assert run(config).exit_code == 0
        assert [r.path for r in down.requests] == ["/ping/start", "/ping"]
        # The start ping's failure is in this run's report already; the end one's, next.
        assert [f["id"] for f in report(tmp_path)["findings"]] == ["notify.ping-failed"]
        down.status = 200
        assert run(config).exit_code == 0
        (finding,) = report(tmp_path)["findings"]
        assert finding["title"] == "The dead man's switch ping (success) did not get through"
        assert finding["detail"] == "HTTP 500 Internal Server Error"
        assert run(config).exit_code == 0
        assert report(tmp_path)["findings"] == []


def test_a_partial_run_neither_alerts_nor_pings(
    tmp_path: Path, sv: Supervisord, receiver: Receiver
) -> None:
    config = write_config(
        tmp_path, sv, f'urls = ["{receiver.url()}"]\nping_url = "{receiver.http("ping")}"'
    )
    stop(sv, "jupyter")
    assert run(config, "--only", "supervisor").exit_code == 0
    assert run(config, "--no-commit").exit_code == 0
    assert receiver.requests == []


# -- notify test ---------------------------------------------------------------------------


def notify_test(tmp_path: Path, notify: str) -> Result:
    config = tmp_path / "hc.toml"
    config.write_text(f'[paths]\nworkspace = "{tmp_path / "ws"}"\n[notify]\n{notify}\n')
    return CliRunner().invoke(cli, ["notify", "test", "--config", str(config)])


def test_notify_test_says_which_channel_worked(tmp_path: Path, receiver: Receiver) -> None:
    with Receiver(status=500) as down:
        urls = json.dumps([receiver.url(), down.url(), "bogus://x"])
        result = notify_test(tmp_path, f"urls = {urls}\ntimeout = 2")
    assert result.exit_code == 1
    assert result.stdout == (
        f"ok      1  json://127.0.0.1:{receiver.port}/hook\n"
        f"FAILED  2  json://127.0.0.1:{down.port}/hook\n"
        "        Failed to send JSON POST notification: Internal server error., error=500.\n"
        "FAILED  3  bogus://…\n"
        "        Apprise does not understand this URL (check its scheme)\n"
    )
    assert result.stderr == "1 of 3 channels took the test message.\n"
    (message,) = receiver.messages()
    assert message["title"] == f"healthcheck: test message from {HOST}"


def test_notify_test_never_prints_a_channel_token(tmp_path: Path, receiver: Receiver) -> None:
    token = FAKE_SECRETS["github-classic"]
    url = f"json://alerts:{token}@127.0.0.1:{receiver.port}/hook"
    result = notify_test(tmp_path, f'urls = ["{url}"]')
    assert result.exit_code == 0
    assert result.stdout.startswith("ok      1  json://alerts:")
    assert "FAKE" not in result.output
    (request,) = receiver.requests  # the token did its job: it went to the channel, as auth
    assert b"FAKE" not in request.body


def test_notify_test_exit_codes(tmp_path: Path, receiver: Receiver) -> None:
    result = notify_test(tmp_path, f'urls = ["{receiver.url()}"]')
    assert (result.exit_code, result.stdout) == (0, f"ok      1  {receiver.url()}\n")
    assert result.stderr == "1 of 1 channels took the test message.\n"
    result = notify_test(tmp_path, 'on = "change"')
    assert result.exit_code == 2
    assert result.stderr == (
        "healthcheck: notify test: no [notify] urls configured; nothing to test\n"
    )


def test_notify_test_without_apprise_exits_3(tmp_path: Path, receiver: Receiver) -> None:
    config = tmp_path / "hc.toml"
    config.write_text(f'[notify]\nurls = ["{receiver.url()}"]\n')
    done = without_apprise("notify", "test", "--config", str(config))
    assert done.returncode == 3
    assert done.stderr == (
        "healthcheck: notify test: Apprise is not installed (pip install 'healthcheck[notify]')\n"
    )
    assert receiver.requests == []


# -- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("colour = 1", "unknown key 'notify.colour'"),
        ('urls = "json://x"', "'notify.urls' must be a list of a string"),
        (
            f'urls = ["{FAKE_SECRETS["slack-webhook"].removeprefix("https://")}"]',
            "'notify.urls[0]' is not an Apprise URL (SCHEME://...)",
        ),
        (
            'on = "sometimes"',
            '\'notify.on\' must be "change", "worse" or "always", not \'sometimes\'',
        ),
        ("timeout = 0", "'notify.timeout' must be greater than 0"),
        ('timeout = "10"', "'notify.timeout' must be a number, not a string"),
        ("min_interval = -1", "'notify.min_interval' must be 0 or more"),
        ('ping_url = "ftp://hc/x"', "'notify.ping_url' must be an http:// or https:// URL"),
    ],
)
def test_bad_notify_config_is_one_line_and_exit_2(tmp_path: Path, table: str, message: str) -> None:
    config = tmp_path / "hc.toml"
    config.write_text(f"[notify]\n{table}\n")
    result = CliRunner().invoke(cli, ["notify", "test", "--config", str(config)])
    assert result.exit_code == 2
    assert result.stderr == f"healthcheck: config error: {config}: {message}\n"
    assert "FAKE" not in result.stderr


# -- deciding and wording, on their own ------------------------------------------------------


def finding(fid: str, severity: str, title: str = "t", hint: str = "", detail: str = "") -> Any:
    return {"id": fid, "severity": severity, "title": title, "hint": hint, "detail": detail}


def test_plan_compares_by_id_and_severity() -> None:
    state = State(
        told={
            "a": {"severity": "warn", "title": "A", "at": 0.0},
            "b": {"severity": "crit", "title": "B", "at": 0.0},
            "c": {"severity": "warn", "title": "C", "at": 0.0},
            "d": {"severity": "warn", "title": "D"},
        }
    )
    current = [
        finding("a", "crit"),
        finding("b", "warn"),
        finding("e", "warn"),
        finding("d", "warn"),
    ]
    planned = plan(current, state, "change", now=10_000.0, min_interval=3600)
    assert [(c.kind, c.id, c.was) for c in planned.changes] == [
        ("new", "e", ""),
        ("worse", "a", "warn"),
        ("better", "b", "crit"),
        ("resolved", "c", ""),
    ]
    assert planned.send and planned.held == []
    assert not plan([finding("a", "warn")], State(told={"a": state.told["a"]}), "change", 1, 0).send
    # Within min_interval: the way down and a reopening wait, getting worse does not.
    recently = State(
        told={"w": {"severity": "warn", "title": "W", "at": 9_000.0}, **state.told},
        resolved_at={"r": 9_500.0},
    )
    current = [finding("w", "crit"), finding("r", "warn"), finding("b", "warn")]
    flapping = plan(current, recently, "change", now=10_000.0, min_interval=3600)
    assert [(c.kind, c.id) for c in flapping.changes] == [
        ("worse", "w"),
        ("better", "b"),
        ("resolved", "a"),
        ("resolved", "c"),
        ("resolved", "d"),
    ]
    assert flapping.held == ["r"]
    only_better = plan([finding("b", "warn")], State(told={"b": state.told["b"]}), "worse", 1e4, 0)
    assert not only_better.send and [c.kind for c in only_better.changes] == ["better"]


def test_all_channels_failing_keeps_the_changes_for_the_next_message() -> None:
    state = State()
    planned = plan([finding("a", "crit")], state, "change", now=100.0, min_interval=0)
    advance(state, planned, told_now=False, now=100.0, min_interval=0)
    assert state.told == {}
    again = plan([finding("a", "crit")], state, "change", now=200.0, min_interval=0)
    assert [c.id for c in again.changes] == ["a"]
    advance(state, again, told_now=True, now=200.0, min_interval=0)
    assert state.told == {"a": {"severity": "crit", "title": "t", "at": 200.0}}


def test_a_long_message_is_cut_and_says_how_much_is_left() -> None:
    changes = [
        Change("new", f"logs.error:{i}", "warn", "x" * 300, hint="y" * 300, detail="z" * 300)
        for i in range(40)
    ]
    data = {"host": "box", "status": "warn", "counts": {"crit": 0, "warn": 40, "unknown": 0}}
    title, body = build_message(data, Plan(changes, [], True), "/ws/system_status.md")
    assert title == "healthcheck: box WARN (0 crit, 40 warn, 0 unknown)"
    assert len(title) + len(body) <= MESSAGE_CAP
    lines = body.splitlines()
    assert lines[-1] == "Report: /ws/system_status.md"
    assert lines[-2].startswith("… and ") and lines[-2].endswith(" more in the report")
    assert lines[0] == f"- NEW WARN: {'x' * 199}… [logs.error:0]"


def test_log_text_cannot_page_a_whole_chat_room() -> None:
    change = Change("new", "logs.error:app", "warn", "Errors in app.log", detail="@everyone hi")
    data = {"host": "box", "status": "warn", "counts": {}}
    _, body = build_message(data, Plan([change], [], True), "/r.md")
    assert "@everyone" not in body and "@\u200beveryone hi" in body


def test_ping_targets_follow_the_healthchecks_convention() -> None:
    url = "https://hc-ping.com/0a1b2c3d"
    assert ping_target(url, "start") == "https://hc-ping.com/0a1b2c3d/start"
    assert ping_target(url, "success") == url
    assert ping_target(url + "/", "fail") == "https://hc-ping.com/0a1b2c3d/fail"
    assert ping_target("https://kuma/api/push/T0k?status=up", "fail") == (
        "https://kuma/api/push/T0k/fail?status=up"
    )


# -- start-up and a damaged state ------------------------------------------------------------


def test_a_run_without_notify_does_not_load_it(tmp_path: Path) -> None:
    config = tmp_path / "hc.toml"
    others = [c for c in OTHERS if c != "provisioning"] + ["supervisor"]
    config.write_text(
        f'[paths]\nworkspace = "{tmp_path / "ws"}"\n[provisioning]\nscripts = []\n'
        f"[collectors]\ndisable = {json.dumps(others)}\n"
    )
    code = (
        "import sys; from healthcheck.cli import cli\n"
        f"try: cli(['run', '--config', {str(config)!r}, '--no-docs'])\n"
        "except SystemExit: pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('healthcheck.notify', 'apprise'))))"
    )
    done = python(code)
    assert done.stdout == "[]\n", done.stderr


def test_a_damaged_state_file_is_ignored_and_replaced(
    tmp_path: Path, sv: Supervisord, receiver: Receiver
) -> None:
    config = write_config(tmp_path, sv, f'urls = ["{receiver.url()}"]')
    assert run(config).exit_code == 0
    state = tmp_path / "ws" / ".healthcheck-notify.json"
    state.write_text('{"version": 1, "told": [')
    stop(sv, "jupyter")
    result = run(config, "-v")
    assert result.exit_code == 0
    assert f"ignoring unreadable {state}" in result.stderr
    assert len(receiver.messages()) == 1  # the previous report stood in for it
    assert json.loads(state.read_text())["told"].keys() == {"supervisor.program-stopped:jupyter"}


def test_a_state_holding_only_a_ping_failure_still_starts_from_the_previous_report(
    tmp_path: Path,
) -> None:
    from healthcheck.config import Config
    from healthcheck.notify import RunNotifier, ping_failed, record_failure

    previous = tmp_path / "system_status.json"
    seen = {"id": "ports.not-listening:ssh:22", "severity": "warn", "title": "A", "collector": "x"}
    previous.write_text(json.dumps({"findings": [seen]}))
    record_failure(tmp_path, 1, ping_failed("start", "Connection refused"))
    config = Config()
    config.notify.urls = ["json://127.0.0.1:9/hook"]
    notifier = RunNotifier(config, tmp_path, previous)
    assert notifier.state.told == {"ports.not-listening:ssh:22": {"severity": "warn", "title": "A"}}
    assert [f.id for f in notifier.carried_findings()] == ["notify.ping-failed"]
