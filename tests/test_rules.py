"""How a supervisor program's state becomes a finding, and how findings are joined.

The known failures themselves are the catalogue's (healthcheck/knowledge/failures), run on
their own cases by tests/test_catalogue.py.
"""

from __future__ import annotations

import pytest

from healthcheck.collectors.supervisor.rules import explain_program, pip_package
from healthcheck.config import Config
from healthcheck.diagnosis import diagnose, program_for_service
from healthcheck.model import Finding, Section, Status

from programs import program


@pytest.mark.parametrize(
    ("state", "exitstatus", "started", "expected"),
    [
        ("RUNNING", None, "t", None),
        ("STARTING", None, "t", None),
        ("EXITED", 0, "t", None),
        ("EXITED", 3, "t", (Status.CRIT, "program-down")),
        ("BACKOFF", 1, "t", (Status.CRIT, "program-down")),
        ("STOPPED", 0, None, None),
        ("STOPPED", 0, "t", (Status.WARN, "program-stopped")),
        ("UNKNOWN", None, "t", (Status.UNKNOWN, "program-down")),
    ],
)
def test_states(
    state: str, exitstatus: int | None, started: str | None, expected: tuple[Status, str] | None
) -> None:
    finding = explain_program(program("jupyter", state, exitstatus, started=started), Config())
    assert (None if finding is None else (finding.severity, finding.rule)) == expected


def test_pip_package_names() -> None:
    assert pip_package("PySide6.QtWidgets") == "PySide6"
    assert pip_package("cv2") == "opencv-python"
    assert pip_package("tqdm") == "tqdm"


def test_program_for_service() -> None:
    programs = [program("sshd"), program("jupyterlab"), program("websockify")]
    assert program_for_service("ssh", programs).name == "sshd"
    assert program_for_service("jupyter", programs).name == "jupyterlab"
    assert program_for_service("novnc", programs).name == "websockify"
    assert program_for_service("filebrowser", programs) is None


def closed_port(service: str, port: int) -> Finding:
    return Finding(
        "ports",
        "not-listening",
        f"{service}:{port}",
        Status.WARN,
        f"Nothing listens on port {port} ({service})",
    )


def test_a_closed_port_folds_into_its_crashed_program() -> None:
    sshd = program(
        "sshd", exitstatus=255, stderr="Missing privilege separation directory: /run/sshd"
    )
    crash = explain_program(sshd, Config())
    assert crash is not None
    supervisor = Section.from_findings("supervisor", {"programs": [sshd]}, [crash])
    ports = Section.from_findings(
        "ports", {}, [closed_port("ssh", 22), closed_port("filebrowser", 8585)]
    )
    diagnose([supervisor, ports])
    assert [f.id for f in ports.findings] == ["ports.not-listening:filebrowser:8585"]
    (merged,) = supervisor.findings
    assert merged.rule == "sshd-privsep-dir"
    assert merged.detail.endswith("As a result nothing listens on port 22 (ssh).")


def test_x_server_down_explains_vnc_and_the_window_manager() -> None:
    x_down = Finding(
        "display", "x-server-down", ":1", Status.CRIT, "The X server for display :1 is not running"
    )
    wm = Finding("display", "wm-not-running", "icewm", Status.WARN, "icewm is not running")
    display = Section.from_findings("display", {"window_manager": {"name": "icewm"}}, [x_down, wm])
    gui = program("visomaster", stderr="qt.qpa.xcb: could not connect to display :1")
    novnc = program("novnc", stderr="websockify: connection refused")
    icewm = program("icewm", stderr="IceWM: Can't open display: <none>. X must be running")
    findings = [explain_program(p, Config()) for p in (gui, novnc, icewm)]
    supervisor = Section.from_findings(
        "supervisor", {"programs": [gui, novnc, icewm]}, [f for f in findings if f]
    )
    ports = Section.from_findings(
        "ports",
        {},
        [closed_port("vnc", 5901), closed_port("novnc", 6901), closed_port("jupyter", 8080)],
    )
    diagnose([supervisor, ports, display])
    (merged,) = display.findings
    assert merged.rule == "x-server-down"
    assert "visomaster: visomaster cannot reach the X display :1." in merged.detail
    assert "Port vnc:5901 has no listener." in merged.detail
    assert "Port novnc:6901 has no listener." in merged.detail
    assert "icewm is not running" in merged.detail
    # DISPLAY unset is a cause of its own: it stays, and so does an unrelated port
    assert [f.rule for f in supervisor.findings] == ["display-unset"]
    assert [f.subject for f in ports.findings] == ["jupyter:8080"]
    assert display.status is Status.CRIT


def test_a_crashed_programs_log_is_not_a_second_finding() -> None:
    sshd = program(
        "sshd", exitstatus=255, stderr="Missing privilege separation directory: /run/sshd"
    )
    sshd.stdout_logfile = "/logs/sshd.log"
    other = Finding("logs", "log-ends-with-error", "/logs/jupyter.log", Status.WARN, "jupyter")
    mine = Finding("logs", "log-ends-with-error", "/logs/sshd.log", Status.WARN, "sshd")
    crash = explain_program(sshd, Config())
    assert crash is not None
    supervisor = Section.from_findings("supervisor", {"programs": [sshd]}, [crash])
    logs = Section.from_findings("logs", {}, [other, mine])
    diagnose([supervisor, logs])
    assert logs.findings == [other]


def test_a_log_ending_in_cuda_out_of_memory_is_the_gpu_finding_only() -> None:
    oom = Finding("gpu", "cuda-oom", "/logs/train.log", Status.WARN, "train: CUDA out of memory")
    ends = Finding("logs", "log-ends-with-error", "/logs/train.log", Status.WARN, "train.log")
    other = Finding("logs", "log-ends-with-error", "/logs/web.log", Status.WARN, "web.log")
    gpu = Section.from_findings("gpu", {}, [oom])
    logs = Section.from_findings("logs", {}, [ends, other])
    diagnose([gpu, logs])
    assert logs.findings == [other]
    assert gpu.findings == [oom]


def test_evidence_is_the_last_traceback_from_its_start() -> None:
    tries = "".join(
        f'Traceback (most recent call last):\n  File "app.py", line {n}, in <module>\n'
        "ModuleNotFoundError: No module named 'PySide6'\n"
        for n in (1, 2)
    )
    finding = explain_program(program("visomaster", stderr=tries), Config())
    assert finding is not None
    assert finding.evidence == (
        "Traceback (most recent call last):",
        '  File "app.py", line 2, in <module>',
        "ModuleNotFoundError: No module named 'PySide6'",
    )
