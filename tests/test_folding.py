"""Folding keeps causes apart, and history is no alarm: the judging functions on fabricated
sections (the end-to-end versions with a real supervisord, Xvfb and icewm are in
test_diagnosis_e2e.py)."""

from __future__ import annotations

import calendar
import time

import pytest
from test_display import fabricated
from test_rules import closed_port

from healthcheck.collectors.display import assess
from healthcheck.collectors.supervisor.rules import explain_program
from healthcheck.config import Config
from healthcheck.diagnosis import diagnose, serving_program, unreached_display
from healthcheck.loglines import (
    ends_with_error,
    line_stamp,
    line_times,
    supervisord_line,
    written_before,
)
from healthcheck.logtail import looks_like_error
from healthcheck.model import Finding, Section, Status
from healthcheck.program import Program

from programs import program

START = "2026-11-28T10:00:00Z"
START_S = float(calendar.timegm((2026, 11, 28, 10, 0, 0)))


# --- which display a program could not reach -------------------------------------------------


@pytest.mark.parametrize(
    ("line", "target"),
    [
        ("IceWM: Can't open display: :1. X must be running and $DISPLAY set.", ":1"),
        ("xterm: Xt error: Can't open display: :1", ":1"),
        ("qt.qpa.xcb: could not connect to display :1", ":1"),
        ("(gedit:12): Gtk-WARNING **: 10:00:00.000: cannot open display: :0", ":0"),
        ('_tkinter.TclError: couldn\'t connect to display ":1.0"', ":1.0"),
        ('xdpyinfo:  unable to open display "localhost:10.0".', "localhost:10.0"),
        ('XOpenDisplay(":1") failed.', ":1"),
        ("Error: cannot open display", ""),
        # DISPLAY unset is a cause of its own, not "the server is not there".
        ("IceWM: Can't open display: <none>. X must be running and $DISPLAY set.", None),
        ("ImportError: libGL.so.1: cannot open shared object file: No such file", None),
        ("Listening on display :1 for clients", None),
    ],
)
def test_unreached_display(line: str, target: str | None) -> None:
    assert unreached_display(["starting", line]) == target


# --- X server down: what it absorbs, what keeps its own finding -------------------------------


def x_down_display(number: int = 1) -> Section:
    """The display section of a box whose X server is not running (no process, no lock)."""
    data = fabricated(
        connection={"ok": False, "result": "no-socket", "reason": "no socket", "answered": False},
        server=None,
        lock={"exists": False, "pid": None, "pid_alive": None, "pid_name": None},
        window_manager={"running": False, "processes": [], "elsewhere": []},
    )
    return Section.from_findings("display", data, assess(data, 5901))


def supervisor_section(*programs: Program) -> Section:
    findings = [explain_program(p, Config()) for p in programs]
    return Section.from_findings(
        "supervisor", {"programs": list(programs)}, [f for f in findings if f is not None]
    )


def by_id(*sections: Section) -> dict[str, Finding]:
    return {f.id: f for s in sections for f in s.findings}


def test_x_down_names_the_serving_program_and_its_state_in_its_fix() -> None:
    vnc = program("vnc", state="STOPPED", exitstatus=None, started=None)
    display, supervisor = x_down_display(), supervisor_section(vnc)
    diagnose([supervisor, display])
    (down,) = display.findings
    assert down.rule == "x-server-down"
    assert down.hint.startswith("vnc is STOPPED: supervisorctl start vnc")
    assert supervisor.findings == []  # no separate warning ranked below it


def test_x_down_absorbs_the_serving_programs_bare_crash() -> None:
    vnc = program("vnc", stderr="something went wrong")
    display, supervisor = x_down_display(), supervisor_section(vnc)
    diagnose([supervisor, display])
    (down,) = display.findings
    assert down.hint.startswith("vnc is FATAL: supervisorctl start vnc")
    assert "something went wrong" in down.evidence


def test_serving_programs_own_cause_stays_and_the_x_down_fix_points_at_it() -> None:
    vnc = program("tigervnc", stderr="Missing privilege separation directory: /run/sshd")
    vnc.log["stderr"] = ["Fatal server error:", "/tmp/x: Permission denied"]
    display, supervisor = x_down_display(), supervisor_section(vnc)
    diagnose([supervisor, display])
    found = by_id(supervisor, display)
    assert set(found) == {"supervisor.permission-denied:tigervnc", "display.x-server-down::1"}
    assert found["display.x-server-down::1"].hint == (
        "tigervnc is FATAL: tigervnc is denied access to /tmp/x. Fix that first (its own "
        "finding), then supervisorctl start tigervnc."
    )


def test_a_missing_library_keeps_its_own_finding_while_x_is_down() -> None:
    gui = program(
        "gui",
        stderr="ImportError: libGL.so.1: cannot open shared object file: No such file or directory",
    )
    wm = program("wm", stderr="IceWM: Can't open display: :1. X must be running and $DISPLAY set.")
    display, supervisor = x_down_display(), supervisor_section(gui, wm)
    diagnose([supervisor, display])
    assert [f.subject for f in supervisor.findings] == ["gui"]
    (down,) = display.findings
    assert "wm: wm cannot reach the X display :1." in down.detail
    assert "gui" not in down.detail


def test_a_program_aiming_at_another_display_keeps_its_own_finding() -> None:
    wm = program("wm", stderr="IceWM: Can't open display: :7. X must be running and $DISPLAY set.")
    display, supervisor = x_down_display(), supervisor_section(wm)
    diagnose([supervisor, display])
    (finding,) = supervisor.findings
    assert (finding.rule, finding.subject) == ("display-unreachable", "wm")
    assert finding.hint == (
        'wm aims at display :7, but this box\'s X server is :1: set environment=DISPLAY=":1" '
        "in [program:wm] (or unset the DISPLAY it inherits), then supervisorctl update; "
        "supervisorctl start wm."
    )


def test_a_gui_program_that_names_no_cause_is_folded_into_x_down() -> None:
    gui = program("visomaster", stderr="Loading models...")
    jupyter = program("jupyter", stderr="Loading models...")  # needs no display: its own
    display, supervisor = x_down_display(), supervisor_section(gui, jupyter)
    diagnose([supervisor, display])
    assert [f.subject for f in supervisor.findings] == ["jupyter"]


def test_which_program_clients_are_is_configuration() -> None:
    gui = program("studio", stderr="Loading models...")
    config = Config()
    config.display.clients = ["studio"]
    display, supervisor = x_down_display(), supervisor_section(gui)
    diagnose([supervisor, display], config)
    assert supervisor.findings == []


def test_serving_program_by_process_then_name_then_banner() -> None:
    data = {"server": {"pid": 42, "program": None}}
    desktop = program("desktop", state="RUNNING", pid=42)
    assert serving_program(data, [program("xvfb"), desktop], Config()) is desktop
    assert serving_program({"server": None}, [program("xvfb")], Config()) == program("xvfb")
    banner = program("screen", stderr="Xvnc TigerVNC 1.12.0 - built Jan  1 2023")
    assert serving_program({"server": None}, [program("app"), banner], Config()) is banner
    assert serving_program({"server": None}, [program("app")], Config()) is None


# --- the window manager: its supervisor name in every fix -------------------------------------


def test_window_manager_fix_names_its_supervisor_program_not_its_binary() -> None:
    data = fabricated(window_manager={"running": False, "processes": [], "elsewhere": []})
    display = Section.from_findings("display", data, assess(data, 5901))
    wm = program("wm", state="STOPPED", exitstatus=0, started=START)
    wm.state = "EXITED"
    diagnose([supervisor_section(wm), display])
    (finding,) = display.findings
    assert finding.rule == "wm-not-running"
    assert finding.hint.startswith("wm is EXITED: supervisorctl start wm.")
    assert "supervisorctl tail wm stderr" in finding.hint and "[program:wm]" in finding.hint
    assert "supervisorctl tail icewm" not in finding.hint


def test_crashed_window_manager_program_absorbs_the_display_symptom() -> None:
    data = fabricated(window_manager={"running": False, "processes": [], "elsewhere": []})
    display = Section.from_findings("display", data, assess(data, 5901))
    wm = program("wm", stderr="IceWM: Can't open display: <none>. X must be running")
    supervisor = supervisor_section(wm)
    diagnose([supervisor, display])
    assert display.findings == []
    (finding,) = supervisor.findings
    assert finding.rule == "display-unset" and "[program:wm]" in finding.hint


def test_wrong_display_only_when_none_is_on_ours() -> None:
    ours = {"pid": 20, "name": "icewm", "display": ":1", "xauthority": None, "program": "wm"}
    other = {"pid": 21, "name": "icewm", "display": ":5", "xauthority": None, "program": None}
    both = fabricated(window_manager={"processes": [other, ours]})
    assert assess(both, 5901) == []
    (wrong,) = assess(fabricated(window_manager={"processes": [{**ours, "display": ":5"}]}), 5901)
    assert wrong.rule == "wm-wrong-display"
    assert wrong.hint.endswith(
        "to [program:wm] in the supervisor configuration, then "
        "supervisorctl update; supervisorctl restart wm."
    )


def test_novnc_mismatch_only_when_none_reaches_vnc() -> None:
    right = {"pid": 30, "name": "websockify", "ports": [6901], "target": "localhost:5901"}
    wrong = {"pid": 31, "name": "websockify", "ports": [7000], "target": "localhost:5999"}
    assert assess(fabricated(novnc={"processes": [wrong, right]}), 5901) == []
    assert [f.rule for f in assess(fabricated(novnc={"processes": [wrong]}), 5901)] == [
        "novnc-target-mismatch"
    ]


# --- history: time stamps and the program's start ---------------------------------------------


@pytest.mark.parametrize(
    ("line", "seconds", "zoned"),
    [
        ("2026-11-28 10:00:00,123 WARN exited: x (exit status 1; not expected)", START_S, False),
        ("[E 2026-11-28 10:00:00.123 ServerApp] Exception in handler", START_S, False),
        ("2026-11-28T10:00:00Z ERROR boom", START_S, True),
        ("2026-11-28T12:00:00+02:00 ERROR boom", START_S, True),
        ("Sat Nov 28 10:00:00 2026", START_S, False),
        ("2026/11/28 10:00:00 [error] 7#7: *1 connect() failed", START_S, False),
        (
            "ERROR at the end of a long line, not a stamp: " + "x" * 40 + " 2026-11-28 10:00:00",
            None,
            None,
        ),
    ],
)
def test_line_stamp(line: str, seconds: float | None, zoned: bool | None) -> None:
    assert line_stamp(line) == (None if seconds is None else (seconds, zoned))


def test_lines_of_a_log_untouched_since_the_start_are_all_history() -> None:
    lines = ["Traceback (most recent call last):", "RuntimeError: old crash"]
    assert written_before(lines, START_S, mtime=START_S - 1) == 2
    assert written_before(lines, START_S, mtime=START_S) == 0  # written since: no stamps


def test_stamped_lines_before_the_start_are_history_with_their_traceback() -> None:
    lines = [
        "2026-11-28T09:00:00Z ERROR handler crashed",
        "Traceback (most recent call last):",
        "RuntimeError: old crash",
        "2026-11-28T10:00:05Z INFO serving on port 8080",
    ]
    assert written_before(lines, START_S, mtime=START_S + 10) == 3
    # No stamped line since the start: which unstamped line is new is unknown, so only the
    # stamped old one is history.
    assert written_before(lines[:3], START_S, mtime=START_S + 10) == 1


def test_unzoned_stamps_are_placed_by_the_files_modification_time() -> None:
    offset = time.localtime(START_S).tm_gmtoff
    local = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(START_S + 5 + offset))
    (placed,) = line_times([f"{local},000 INFO started"], mtime=START_S + 5)
    assert placed == START_S + 5
    # A stamp after the file was last written fits no zone: not used.
    assert line_times(["2030-01-01 00:00:00,000 ERROR x"], mtime=START_S) == [None]


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        (
            "2026-11-28 10:00:00,001 CRIT Supervisor is running as root.  Privileges were not "
            "dropped because no user is specified in the config file.",
            "",
        ),
        (
            "2026-11-28 10:00:00,002 CRIT Server 'unix_http_server' running without any HTTP "
            "authentication checking",
            "",
        ),
        ("2026-11-28 10:00:00,003 CRIT reaped unknown pid 4242 (exit status 0)", ""),
        ("2026-11-28 10:00:01,000 WARN exited: sshd (exit status 255; not expected)", "sshd"),
        ("2026-11-28 10:00:02,000 INFO gave up: sshd entered FATAL state, too many", "sshd"),
        ("2026-11-28 10:00:02,000 INFO spawnerr: can't find command '/opt/x'", None),
        ("ERROR not supervisord's", "not"),
    ],
)
def test_supervisord_line(line: str, parsed: str | None) -> None:
    if parsed == "not":
        assert supervisord_line(line) is None
    else:
        result = supervisord_line(line)
        assert result is not None and result[1] == parsed


def logs_section(path: str, lines: list[str], mtime: str) -> Section:
    flagged = [i for i, line in enumerate(lines) if looks_like_error(line)]
    finding = ends_with_error(path, lines, flagged)
    files = [{"path": path, "mtime": mtime, "lines": lines, "error_lines": flagged}]
    return Section.from_findings("logs", {"files": files}, [finding] if finding else [])


def test_old_error_lines_of_a_running_program_are_history_not_a_finding() -> None:
    jupyter = program("jupyter", state="RUNNING", exitstatus=None, started=START)
    jupyter.stdout_logfile = "/logs/jupyter.log"
    lines = ["[E 2026-11-28 09:00:00.000 ServerApp] Exception: old", "RuntimeError: old"]
    logs = logs_section("/logs/jupyter.log", lines, mtime="2026-11-28T09:00:01Z")
    assert [f.rule for f in logs.findings] == ["log-ends-with-error"]
    diagnose([supervisor_section(jupyter), logs])
    assert logs.findings == []
    assert logs.data["files"][0]["history"] == {
        "lines": 2,
        "program": "jupyter",
        "started": START,
    }


def test_error_lines_written_since_the_start_still_fire() -> None:
    jupyter = program("jupyter", state="RUNNING", exitstatus=None, started=START)
    lines = [
        "[E 2026-11-28 09:00:00.000 ServerApp] Exception: old",
        "[E 2026-11-28 10:00:30.000 ServerApp] Exception: new",
    ]
    logs = logs_section("/logs/jupyter.log", lines, mtime="2026-11-28T10:00:30Z")
    diagnose([supervisor_section(jupyter), logs])  # owner by its name: jupyter.log
    (finding,) = logs.findings
    assert finding.evidence == (lines[1],)


def test_supervisords_lines_about_explained_programs_are_not_another_finding() -> None:
    sshd = program("sshd", exitstatus=255, stderr="Missing privilege separation directory: /x")
    jupyter = program("jupyter", state="RUNNING", exitstatus=None, started=START)
    lines = [
        "2026-11-28 09:00:00,000 WARN exited: jupyter (exit status 1; not expected)",
        "2026-11-28 09:00:00,000 INFO gave up: jupyter entered FATAL state, too many start "
        "retries too quickly",
        "2026-11-28 10:00:00,000 INFO spawned: 'jupyter' with pid 12",
        "2026-11-28 10:00:01,000 WARN exited: sshd (exit status 255; not expected)",
        "2026-11-28 10:00:02,000 INFO gave up: sshd entered FATAL state, too many start "
        "retries too quickly",
    ]
    logs = logs_section("/logs/supervisord.log", lines, mtime="2026-11-28T10:00:02Z")
    assert [f.rule for f in logs.findings] == ["log-ends-with-error"]
    supervisor = supervisor_section(sshd, jupyter)
    diagnose([supervisor, logs])
    assert logs.findings == []
    assert logs.data["files"][0]["explained_lines"] == [0, 1, 3, 4]
    assert [f.subject for f in supervisor.findings] == ["sshd"]


def test_supervisords_line_about_an_unexplained_crash_still_fires() -> None:
    worker = program("worker", state="RUNNING", exitstatus=None, started=START)
    lines = [
        "2026-11-28 10:00:00,000 INFO spawned: 'worker' with pid 12",
        "2026-11-28 10:00:01,000 INFO success: worker entered RUNNING state",
        "2026-11-28 10:05:00,000 ERRO pool-manager: could not write /run/x.pid",
    ]
    logs = logs_section("/logs/supervisord.log", lines, mtime="2026-11-28T10:05:00Z")
    diagnose([supervisor_section(worker), logs])
    assert [f.rule for f in logs.findings] == ["log-ends-with-error"]


def test_x_down_status_is_crit_and_sections_rejudged() -> None:
    display = x_down_display()
    diagnose([supervisor_section(), display])
    assert display.status is Status.CRIT


def test_a_program_that_gave_up_before_x_was_ready_is_told_to_start_again() -> None:
    data = fabricated(window_manager={"running": False, "processes": [], "elsewhere": []})
    display = Section.from_findings("display", data, assess(data, 5901))
    vnc = program("vnc", state="RUNNING", exitstatus=None, pid=10)
    wm = program("wm", stderr="IceWM: Can't open display: :1. X must be running and $DISPLAY set.")
    supervisor = supervisor_section(vnc, wm)
    diagnose([supervisor, display])
    assert display.findings == []  # the window manager's absence is wm's finding
    (finding,) = supervisor.findings
    assert finding.rule == "display-unreachable"
    assert finding.hint == (
        "The X server for :1 answers now: wm started before it was ready. supervisorctl start "
        "wm; so that it does not happen again, give [program:vnc] a lower priority= than it, "
        "and set autorestart=true in [program:wm]."
    )


# A healthy Xtigervnc's log at start-up, as users post it (TigerVNC issues #876, #1941).
XTIGERVNC_START = """\
Xvnc TigerVNC 1.12.0 - built Mar 23 2023 11:33:02
Underlying X server release 12101006, The X.Org Foundation

Tue Dec  1 01:00:00 2026
 vncext:      VNC extension running!
 vncext:      Listening for VNC connections on local interface(s), port 5901
 vncext:      created VNC server for screen 0
[dix] Could not init font path element /usr/share/fonts/X11/cyrillic, removing from list!
The XKEYBOARD keymap compiler (xkbcomp) reports:
> Warning:          Could not resolve keysym XF86CameraAccessEnable
> Internal error:   Could not resolve keysym XF86WWAN
Errors from xkbcomp are not fatal to the X server
"""


def test_a_healthy_x_servers_start_up_words_are_not_errors() -> None:
    lines = XTIGERVNC_START.splitlines()
    flagged = [i for i, line in enumerate(lines) if looks_like_error(line)]
    assert flagged == []
    assert ends_with_error("/logs/vnc.err.log", lines, flagged) is None


@pytest.mark.parametrize(
    "line",
    [
        "(EE) Fatal server error:",
        "(EE) Cannot establish any listening sockets - Make sure an X server isn't already running",
        "xkbcomp: Could not open keymap file",
        "Error: Could not resolve keysym XF86WWAN and then the server died",
    ],
)
def test_x_server_failures_are_still_errors(line: str) -> None:
    assert looks_like_error(line)


def test_a_log_findings_fix_names_the_program_that_writes_the_log() -> None:
    hint = "Lower the batch size, then restart it (supervisorctl restart comfyui_stderr)."
    oom = Finding("gpu", "cuda-oom", "/logs/comfyui_stderr.log", Status.WARN, "OOM", "", hint)
    gpu = Section.from_findings("gpu", {}, [oom])
    comfy = program("comfy", state="RUNNING", exitstatus=None)
    comfy.stderr_logfile = "/logs/comfyui_stderr.log"
    diagnose([supervisor_section(comfy), gpu])
    (finding,) = gpu.findings
    assert finding.hint == "Lower the batch size, then restart it (supervisorctl restart comfy)."


# --- program names come from configuration, not from the seed ---------------------------------


def _renamed_box() -> Config:
    """A box whose programs share none of the seed's names: dropbear serves ssh, uvicorn-main
    the api, a program called `session` runs the window manager, `remote-desktop` is VNC."""
    config = Config()
    config.services.ports = {"ssh": 2222, "api": 8000, "remote-desktop": 5905}
    config.services.programs = {"ssh": ["dropbear"], "api": ["uvicorn-main"]}
    config.display.window_manager_programs = ["session"]
    config.display.clients = ["remote-desktop", "session"]
    return config


@pytest.mark.parametrize(
    ("config", "ssh", "api"),
    [(Config(), "sshd", "jupyter"), (_renamed_box(), "dropbear", "uvicorn-main")],
    ids=["seed", "renamed"],
)
def test_closed_ports_fold_into_their_programs_whatever_the_programs_are_called(
    config: Config, ssh: str, api: str
) -> None:
    service = "jupyter" if api == "jupyter" else "api"
    down = program(ssh, exitstatus=255, stderr="Missing privilege separation directory: /x")
    crashed = program(api, stderr="ModuleNotFoundError: No module named 'fastapi'")
    supervisor = supervisor_section(down, crashed)
    ports = Section.from_findings("ports", {}, [closed_port("ssh", 22), closed_port(service, 8000)])
    diagnose([supervisor, ports], config)
    assert ports.findings == []
    details = {f.subject: f.detail for f in supervisor.findings}
    assert details[ssh].endswith("As a result nothing listens on port 22 (ssh).")
    assert details[api].endswith(f"As a result nothing listens on port 8000 ({service}).")


def test_a_renamed_box_is_not_matched_by_the_seeds_names() -> None:
    """Without its configuration, the renamed box's ports stay findings of their own."""
    down = program("dropbear", exitstatus=255, stderr="Missing privilege separation directory")
    ports = Section.from_findings("ports", {}, [closed_port("ssh", 22)])
    diagnose([supervisor_section(down), ports], Config())
    assert [f.subject for f in ports.findings] == ["ssh:22"]


@pytest.mark.parametrize(("config", "name"), [(Config(), "wm"), (_renamed_box(), "session")])
def test_the_window_manager_program_is_found_by_its_configured_name(
    config: Config, name: str
) -> None:
    data = fabricated(window_manager={"running": False, "processes": [], "elsewhere": []})
    display = Section.from_findings("display", data, assess(data, 5901))
    wm = program(name, stderr="IceWM: Can't open display: <none>. X must be running")
    supervisor = supervisor_section(wm)
    diagnose([supervisor, display], config)
    assert display.findings == []
    (finding,) = supervisor.findings
    assert finding.rule == "display-unset" and f"[program:{name}]" in finding.hint


@pytest.mark.parametrize(
    ("config", "service"), [(Config(), "vnc"), (_renamed_box(), "remote-desktop")]
)
def test_x_down_takes_the_vnc_port_with_it_whatever_the_service_is_called(
    config: Config, service: str
) -> None:
    display = x_down_display()
    ports = Section.from_findings("ports", {}, [closed_port(service, 5901), closed_port("ssh", 22)])
    diagnose([supervisor_section(), display, ports], config)
    assert [f.subject for f in ports.findings] == ["ssh:22"]
    (down,) = display.findings
    assert f"Port {service}:5901 has no listener." in down.detail
