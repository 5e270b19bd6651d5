"""`healthcheck run` against the seed box rebuilt from real parts: one cause, one finding.

A real supervisord runs the seed's programs (sshd exiting 255, VisoMaster without PySide6,
a missing filebrowser binary, a stopped Jupyter, a healthy noVNC) and a real icewm, beside a
real Xvfb. Each scenario runs the whole command and reads the JSON and Markdown it wrote.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from healthcheck import x11
from healthcheck.cli import cli

from supervisord_env import (
    SEED_STATES,
    free_port,
    http_server,
    oneshot,
    python_command,
    real_icewm,
    seed_programs,
    sleeper,
    stamped_web_service,
    start_supervisord,
    xtigervnc,
)
from xserver import free_display_number, have, running_icewm, start_xvfb, wait_until

pytestmark = pytest.mark.skipif(
    not (have("Xvfb") and have("icewm")), reason="needs Debian's xvfb and icewm"
)
SKIP = "system,env,provisioning,healthcheck,gpu"  # not what these scenarios are about


def write_config(
    root: Path,
    url: str,
    display: str,
    ports: dict[str, int],
    log_dir: Path,
    timeout: float = 10,
    tail_lines: int = 10,
) -> Path:
    lines = "\n".join(f"{name} = {port}" for name, port in ports.items())
    config = root / "healthcheck.toml"
    config.write_text(
        f"""
[paths]
workspace = "{root / "workspace"}"

[logs]
dirs = ["{log_dir}"]
patterns = ["*.log"]
tail_lines = {tail_lines}

[supervisor]
serverurl = "{url}"

[display]
display = "{display}"
window_manager = "icewm"

[services.ports]
{lines}

[collectors]
timeout = {timeout}
""",
        encoding="utf-8",
    )
    return config


def run(config: Path, *select: str) -> tuple[dict[str, Any], str]:
    """`healthcheck run` with `select` (default: --skip SKIP); the JSON and Markdown written."""
    chosen = list(select) or ["--skip", SKIP]
    result = CliRunner().invoke(cli, ["run", "--config", str(config), *chosen, "--no-docs"])
    assert result.exit_code == 0, result.output
    report = json.loads((config.parent / "workspace" / "system_status.json").read_text())
    markdown = (config.parent / "workspace" / "system_status.md").read_text()
    return report, markdown


def findings_by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in report["findings"]}


@pytest.fixture(scope="module")
def seed_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], str, Any]]:
    """The seed's failures, all at once: the report written by one `healthcheck run`."""
    root = tmp_path_factory.mktemp("seed")
    novnc_port = free_port()
    programs = seed_programs(novnc_port)
    programs["icewm"] = real_icewm(root / "home", None)
    with start_xvfb() as xvfb, start_supervisord(root / "sv", programs) as sv:
        sv.wait_for_states(SEED_STATES, timeout=30)
        ports = {
            "ssh": free_port(),
            "jupyter": free_port(),
            "novnc": novnc_port,
            "filebrowser": free_port(),
        }
        config = write_config(root, sv.url, xvfb.display, ports, sv.log_dir)
        report, markdown = run(config)
        yield report, markdown, {"display": xvfb.display, "ports": ports}


def test_seed_failures_each_one_finding_with_cause_and_fix(seed_box: Any) -> None:
    report, _, facts = seed_box
    ports = facts["ports"]
    found = findings_by_id(report)
    assert report["status"] == "crit"
    assert {i: f["severity"] for i, f in found.items()} == {
        "supervisor.sshd-privsep-dir:sshd": "crit",
        "supervisor.missing-python-module:visomaster": "crit",
        "supervisor.command-not-found:filebrowser": "crit",
        "supervisor.display-unset:icewm": "crit",
        f"ports.not-listening:jupyter:{ports['jupyter']}": "warn",
    }
    # Ranked: the four crashes first, the stopped service's closed port last.
    assert [f["severity"] for f in report["findings"]] == ["crit"] * 4 + ["warn"]

    sshd = found["supervisor.sshd-privsep-dir:sshd"]
    assert "exit status 255" in sshd["detail"]
    assert "Missing privilege separation directory: /run/sshd" in sshd["detail"]
    assert sshd["detail"].endswith(f"As a result nothing listens on port {ports['ssh']} (ssh).")
    assert sshd["hint"].startswith("mkdir -p /run/sshd")

    visomaster = found["supervisor.missing-python-module:visomaster"]
    assert "'PySide6'" in visomaster["title"]
    assert visomaster["hint"].endswith("pip install PySide6")

    filebrowser = found["supervisor.command-not-found:filebrowser"]
    assert "/opt/filebrowser/bin/filebrowser" in filebrowser["title"]
    assert f"port {ports['filebrowser']} (filebrowser)" in filebrowser["detail"]

    # The real icewm's own words, and the supervisor line that fixes it. The display
    # collector saw the window manager missing too: that symptom is folded in, not repeated.
    icewm = found["supervisor.display-unset:icewm"]
    assert "Can't open display" in icewm["detail"]
    assert f'environment=DISPLAY="{facts["display"]}"' in icewm["hint"]
    assert report["sections"]["display"]["status"] == "ok"
    assert report["sections"]["display"]["data"]["connection"]["ok"] is True

    jupyter = found[f"ports.not-listening:jupyter:{ports['jupyter']}"]
    assert "Its program jupyter is STOPPED, never started" in jupyter["detail"]
    assert jupyter["hint"].startswith("supervisorctl start jupyter")


def test_seed_failures_read_as_one_line_each_in_the_markdown(seed_box: Any) -> None:
    report, markdown, _ = seed_box
    for finding in report["findings"]:
        assert markdown.count(finding["title"]) >= 1
    # The healthy service and the one-shot that finished are in the table, not in findings.
    assert "| novnc | RUNNING |" in markdown
    assert "| provision | **EXITED** |" in markdown
    assert "log-ends-with-error" not in json.dumps(report["findings"])


def test_healthy_display_and_window_manager(tmp_path: Path) -> None:
    """icewm with DISPLAY set, the X server up, the expected port open: nothing to report."""
    novnc_port = free_port()
    with start_xvfb() as xvfb:
        programs = {
            "icewm": real_icewm(tmp_path / "home", xvfb.display),
            "novnc": http_server(novnc_port),
        }
        with start_supervisord(tmp_path / "sv", programs) as sv:
            sv.wait_for_states({"icewm": "RUNNING", "novnc": "RUNNING"}, timeout=20)
            config = write_config(tmp_path, sv.url, xvfb.display, {"novnc": novnc_port}, sv.log_dir)
            report, markdown = run(config)
            icewm_pid = sv.info()["icewm"]["pid"]
    assert report["status"] == "ok", report["findings"]
    assert report["findings"] == []
    wm = report["sections"]["display"]["data"]["window_manager"]
    assert [(p["pid"], p["display"]) for p in wm["processes"]] == [(icewm_pid, xvfb.display)]
    assert "No findings" in markdown or "## Findings" not in markdown


def test_x_server_down_is_one_finding_naming_the_stale_lock(tmp_path: Path) -> None:
    """No X server, a lock file left by a dead one: the window manager's failure is folded in,
    and the hint says which file to remove."""
    number = free_display_number()
    display = f":{number}"
    lock = Path(x11.lock_path(number))
    dead = os.fork()
    if dead == 0:  # pragma: no cover - the child exits at once
        os._exit(0)
    os.waitpid(dead, 0)
    lock.write_text(f"{dead:>10}\n", encoding="ascii")
    try:
        programs = {"icewm": real_icewm(tmp_path / "home", display)}
        with start_supervisord(tmp_path / "sv", programs) as sv:
            sv.wait_for_states({"icewm": "FATAL"}, timeout=20)
            config = write_config(tmp_path, sv.url, display, {}, sv.log_dir)
            report, _ = run(config)
    finally:
        lock.unlink(missing_ok=True)
    (finding,) = report["findings"]
    assert finding["id"] == f"display.x-server-down:{display}"
    assert finding["severity"] == "crit"
    assert str(lock) in finding["hint"]
    assert "icewm" in finding["detail"]


def test_a_hung_supervisor_socket_costs_the_time_limit_not_the_run(tmp_path: Path) -> None:
    """A socket that accepts and never answers: supervisor is unknown, within its limit."""
    sock_dir = Path(os.path.realpath("/tmp")) / f"hc-hung-{os.getpid()}"
    sock_dir.mkdir(exist_ok=True)
    path = sock_dir / "supervisor.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(8)
        config = write_config(tmp_path, f"unix://{path}", ":99", {}, tmp_path, timeout=2)
        started = time.monotonic()
        result = CliRunner().invoke(
            cli, ["run", "--config", str(config), "--only", "supervisor,ports", "--no-docs"]
        )
        elapsed = time.monotonic() - started
    finally:
        listener.close()
        path.unlink(missing_ok=True)
        sock_dir.rmdir()
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "workspace" / "system_status.json").read_text())
    section = report["sections"]["supervisor"]
    assert section["status"] == "unknown"
    (finding,) = report["findings"]
    assert finding["id"] == f"supervisor.unreachable:unix://{path}"
    assert finding["title"].endswith("accepted the connection but did not answer within 1s")
    assert elapsed < 2 * 2 + 3  # the limit, with room for a loaded CI box


def by_port(item: tuple[str, int]) -> int:
    return item[1]


def test_supervisord_down_with_its_ports_closed_is_one_crit_finding(tmp_path: Path) -> None:
    """No socket and nothing listening where its services should: supervisord is down, and
    that is the one finding; the closed ports are its evidence, not warnings of their own."""
    ports = {"jupyter": free_port(), "novnc": free_port()}
    url = f"unix://{tmp_path}/supervisor.sock"  # no supervisord made it
    config = write_config(tmp_path, url, ":99", ports, tmp_path)
    report, _ = run(config, "--only", "supervisor,ports")
    (finding,) = report["findings"]
    assert finding["id"] == f"supervisor.unreachable:{url}"
    assert finding["severity"] == "crit"
    in_port_order = sorted(ports.items(), key=by_port)
    closed = ", ".join(f"{name} on port {port}" for name, port in in_port_order)
    assert finding["detail"].endswith(
        f"Nothing listens for {closed} either: the services supervisord starts are down with it."
    )
    assert finding["hint"].startswith("Start supervisord")


def test_supervisord_unreachable_but_its_services_up_stays_unknown(tmp_path: Path) -> None:
    """A wrong socket path while the services listen: a config problem, not an outage."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        url = f"unix://{tmp_path}/supervisor.sock"
        config = write_config(tmp_path, url, ":99", {"jupyter": port}, tmp_path)
        report, _ = run(config, "--only", "supervisor,ports")
    (finding,) = report["findings"]
    assert finding["id"] == f"supervisor.unreachable:{url}"
    assert finding["severity"] == "unknown"


# --- a healthy box, with another X server and window manager on the host ---------------------


def quiet_display_number() -> int:
    """A free display far above the numbers tests take one after another from 50, so that no
    parallel run starts a server there between our choice and our supervisord's start (or
    while it must stay down)."""
    return free_display_number(400 + os.getpid() % 80)


JUDGED = ("supervisor", "display", "logs", "ports")


def alarms(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The warn and crit findings of the sections a healthy box must keep quiet."""
    return [
        f
        for f in report["findings"]
        if f["collector"] in JUDGED and f["severity"] in ("warn", "crit")
    ]


def local_stamp(seconds: float) -> str:
    """A time as Jupyter and supervisord write it: local time, no zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def write_history(log_dir: Path, sv_root: Path, an_hour_ago: float) -> None:
    """What the box logged before this start: a Jupyter crash (stamped), a worker's traceback
    (unstamped, the file untouched since), supervisord's words about the Jupyter crash."""
    stamp = local_stamp(an_hour_ago)
    (log_dir / "jupyter.log").write_text(
        f"[E {stamp}.000 ServerApp] Uncaught exception in the kernel handler\n"
        "Traceback (most recent call last):\n"
        "RuntimeError: kernel died\n",
        encoding="utf-8",
    )
    worker_log = log_dir / "worker.err.log"
    worker_log.write_text(
        "Traceback (most recent call last):\nConnectionError: could not reach the queue\n",
        encoding="utf-8",
    )
    os.utime(worker_log, (an_hour_ago, an_hour_ago))
    (sv_root / "supervisord.log").write_text(
        f"{stamp},000 WARN exited: jupyter (exit status 1; not expected)\n"
        f"{stamp},001 INFO gave up: jupyter entered FATAL state, too many start retries too "
        "quickly\n",
        encoding="utf-8",
    )


@pytest.mark.skipif(not have("Xtigervnc"), reason="needs Debian's tigervnc-standalone-server")
def test_healthy_box_raises_no_alarm_beside_another_x_server_and_window_manager(
    tmp_path: Path,
) -> None:
    """Every program RUNNING, X answering, the expected ports listening: no warn or crit from
    supervisor, display, logs or ports, while another Xvfb and icewm run on the host outside
    this box's supervisord, and its logs hold errors from before the programs' start."""
    sv_root = tmp_path / "sv"
    log_dir = sv_root / "logs"
    log_dir.mkdir(parents=True)
    write_history(log_dir, sv_root, time.time() - 3600)
    ports = {"vnc": free_port(), "novnc": free_port(), "jupyter": free_port()}
    with start_xvfb() as other, running_icewm(other.display) as foreign_wm:
        number = quiet_display_number()
        display = f":{number}"
        programs = {
            "vnc": xtigervnc(number, ports["vnc"]),
            # Started once X answers, as a priority= and autorestart would make it on the box.
            "wm": {**real_icewm(tmp_path / "home", display), "autostart": False},
            "novnc": http_server(ports["novnc"]),
            "jupyter": stamped_web_service(ports["jupyter"]),
            "worker": sleeper(),
            "provision": oneshot(),
        }
        with start_supervisord(sv_root, programs) as sv:
            sv.wait_for_states({"vnc": "RUNNING"}, timeout=30)
            assert wait_until(lambda: x11.probe_x_server(number, 1.0).answered, timeout=20)
            assert sv.ctl("start", "wm").returncode == 0
            infos = sv.wait_for_states(
                {
                    "wm": "RUNNING",
                    "novnc": "RUNNING",
                    "jupyter": "RUNNING",
                    "worker": "RUNNING",
                    "provision": "EXITED",
                },
                timeout=30,
            )
            for port in ports.values():
                assert wait_until(lambda p=port: port_open(p), timeout=20), port
            # Enough lines to reach supervisord's start-up words and the old crash's.
            config = write_config(tmp_path, sv.url, display, ports, sv_root, tail_lines=40)
            report, markdown = run(config, "--only", ",".join(JUDGED))
        assert foreign_wm.poll() is None
    assert alarms(report) == []
    for name in JUDGED:
        assert report["sections"][name]["status"] in ("ok", "unknown"), name
    wm = report["sections"]["display"]["data"]["window_manager"]
    assert [(p["pid"], p["program"]) for p in wm["processes"]] == [(infos["wm"]["pid"], "wm")]
    # Other runs on this host may have icewms of their own: ours is among them.
    assert foreign_wm.pid in [p["pid"] for p in wm["elsewhere"]]
    assert "outside this box's supervisord, not this box's: pid " in markdown
    assert f"pid {foreign_wm.pid} with DISPLAY={other.display}" in markdown
    files = {Path(f["path"]).name: f for f in report["sections"]["logs"]["data"]["files"]}
    assert files["jupyter.log"]["history"]["lines"] == 3
    assert files["worker.err.log"]["history"]["lines"] == 2
    assert "the first 3 lines predate the start of jupyter" in markdown
    # supervisord's routine CRIT lines and its words about the old Jupyter crash.
    main_log = files["supervisord.log"]
    assert main_log["explained_lines"] == main_log["error_lines"]
    assert len(main_log["error_lines"]) >= 4


def port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


@pytest.mark.skipif(not have("Xtigervnc"), reason="needs Debian's tigervnc-standalone-server")
def test_x_server_down_keeps_other_causes_and_names_the_stopped_vnc_program(
    tmp_path: Path,
) -> None:
    """The VNC program stopped: the X-down finding says so in its fix and absorbs the window
    manager that cannot reach the display; a GUI app missing a library and a window manager
    aimed at another display keep findings of their own."""
    number = quiet_display_number()
    display = f":{number}"
    elsewhere = f":{free_display_number(number + 1)}"
    gui_error = "ImportError: libGL.so.1: cannot open shared object file: No such file or directory"
    programs = {
        "vnc": xtigervnc(number, free_port(), autostart=False),
        "wm": real_icewm(tmp_path / "home", display),
        "wm2": real_icewm(tmp_path / "home2", elsewhere),
        "gui": python_command(
            f"import sys; sys.stderr.write({gui_error!r} + chr(10)); sys.exit(1)"
        ),
    }
    with start_supervisord(tmp_path / "sv", programs) as sv:
        sv.wait_for_states({"vnc": "STOPPED", "wm": "FATAL", "wm2": "FATAL", "gui": "FATAL"})
        config = write_config(tmp_path, sv.url, display, {}, sv.log_dir)
        report, _ = run(config, "--only", "supervisor,display,logs,ports")
    found = findings_by_id(report)
    down = found[f"display.x-server-down:{display}"]
    assert down["severity"] == "crit"
    assert down["hint"].startswith("vnc is STOPPED: supervisorctl start vnc")
    assert f"wm: wm cannot reach the X display {display}." in down["detail"]
    assert "wm2" not in down["detail"] and "gui" not in down["detail"]
    # Each keeps its own finding, named by its supervisor name.
    assert {i.rpartition(":")[2] for i in found if i.startswith("supervisor.")} == {"gui", "wm2"}
    gui = next(f for i, f in found.items() if i.startswith("supervisor.") and i.endswith(":gui"))
    assert gui["severity"] == "crit" and gui_error in gui["detail"]
    wm2 = found["supervisor.display-unreachable:wm2"]
    assert elsewhere in wm2["title"]
    assert wm2["hint"].startswith(
        f"wm2 aims at display {elsewhere}, but this box's X server is {display}: set "
        f'environment=DISPLAY="{display}" in [program:wm2]'
    )
    assert not any(f["id"].startswith("supervisor.") and ":vnc" in f["id"] for f in found.values())
    # Programs are named by their supervisor names (wm, wm2, vnc), never by their binaries.
    for finding in found.values():
        assert "icewm" not in finding["hint"] and "Xtigervnc" not in finding["hint"], finding


def test_foreign_window_manager_on_another_display_is_not_this_boxs(tmp_path: Path) -> None:
    """This box's supervisord runs X but no window manager; someone else's icewm runs on
    another display. The box's window manager is not running (its one finding), and the other
    icewm is listed as not this box's, never taken for a window manager on the wrong display."""
    with start_xvfb() as other, running_icewm(other.display) as foreign_wm:
        number = quiet_display_number()
        display = f":{number}"
        xvfb = f"Xvfb {display} -nolisten tcp -screen 0 640x480x16 -noreset"
        programs = {"vnc": {"command": xvfb, "autorestart": True}}
        with start_supervisord(tmp_path / "sv", programs) as sv:
            sv.wait_for_states({"vnc": "RUNNING"})
            assert wait_until(lambda: x11.probe_x_server(number, 1.0).answered, timeout=20)
            config = write_config(tmp_path, sv.url, display, {}, sv.log_dir)
            report, _ = run(config, "--only", "display")
        assert foreign_wm.poll() is None
    (finding,) = report["findings"]
    assert finding["id"] == "display.wm-not-running:icewm"
    assert "An icewm outside this box's supervisord (pid " in finding["detail"]
    assert finding["detail"].endswith(") belongs to someone else.")
    wm = report["sections"]["display"]["data"]["window_manager"]
    assert wm["processes"] == [] and foreign_wm.pid in [p["pid"] for p in wm["elsewhere"]]
