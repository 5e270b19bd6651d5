"""Each family of known failures, end to end: a real supervisord runs programs that fail as
real ones do (their own words, exit statuses and signals), `healthcheck run` reads them, and
the report names the cause and the exact fix.

Where the failure can be caused for real it is (a self-inflicted SIGKILL, a port held by the
test, /dev/full, a non-executable command, real Xvfb servers fighting over a display, icewm
aiming at a display with no server, an X client without the server's cookie); where it needs
hardware or a broken image (CUDA, a missing system library) the program writes the words real
programs write, as posted in public issue trackers. All programs share one supervisord.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_diagnosis_e2e import write_config

from healthcheck.cli import cli

from supervisord_env import free_port, python_command, start_supervisord
from xserver import free_display_number, have, start_xvfb

pytestmark = pytest.mark.skipif(
    not (have("Xvfb") and have("icewm") and have("xauth")),
    reason="needs Debian's xvfb, icewm and xauth",
)


def says(*lines: str, exit: int = 1, stream: str = "stderr") -> dict[str, Any]:
    """A program that writes `lines` and exits with status `exit`."""
    text = chr(10).join(lines)
    code = f"import sys; sys.{stream}.write({text!r} + chr(10)); sys.exit({exit})"
    return {"command": python_command(code)}


def exits_by(signal_number: int) -> dict[str, Any]:
    """A program that runs for a moment, then dies by a signal (EXITED, not a spawn failure)."""
    code = (
        "import os, sys, time; print('processing job 17', flush=True); time.sleep(0.3); "
        f"os.kill(os.getpid(), {signal_number})"
    )
    return {"command": python_command(code), "startsecs": 0}


CUDA_BOILERPLATE = (
    "CUDA kernel errors might be asynchronously reported at some other API call, so the "
    "stacktrace below might be incorrect.",
    "For debugging consider passing CUDA_LAUNCH_BLOCKING=1",
    "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.",
)


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("families")
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    held_port = held.getsockname()[1]
    vnc_target = free_port()
    not_executable = root / "provision.sh"
    not_executable.write_text("#!/bin/sh\necho provisioned\n", encoding="ascii")
    not_executable.chmod(0o644)
    cookie = root / "xauth"
    subprocess.run(
        ["xauth", "-f", str(cookie), "add", ":0", ".", "0123456789abcdef0123456789abcdef"],
        check=True,
        capture_output=True,
    )
    # A lock file naming a live process that is no X server: stale, as after a restart.
    stale_number = free_display_number(start=350)
    stale_lock = Path(f"/tmp/.X{stale_number}-lock")
    impostor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    stale_lock.write_text(f"{impostor.pid:>10}\n", encoding="ascii")
    nowhere = f":{free_display_number(start=stale_number + 1)}"
    try:
        with start_xvfb(auth_file=cookie) as xvfb:
            display = xvfb.display
            number = display.lstrip(":")
            programs: dict[str, Any] = {
                # Killed: a wrapper script whose child the kernel killed (137, "Killed")...
                "trainer": {
                    "command": "sh -c '"
                    + sys.executable
                    + ' -c "import os; os.kill(os.getpid(), 9)"'
                    + "'",
                },
                # ... a program killed by SIGKILL itself, and one stopped by SIGTERM.
                "worker": exits_by(9),
                "stopper": exits_by(15),
                # CUDA, in an application's own words.
                "cudaapp": says(
                    "UserWarning: NVIDIA GeForce RTX 5090 with CUDA capability sm_120 is not "
                    "compatible with the current PyTorch installation.",
                    "Traceback (most recent call last):",
                    '  File "/app/main.py", line 12, in <module>',
                    "RuntimeError: CUDA error: no kernel image is available for execution on "
                    "the device",
                    *CUDA_BOILERPLATE,
                ),
                "oomapp": says(
                    "Traceback (most recent call last):",
                    '  File "/app/infer.py", line 40, in <module>',
                    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.50 GiB. "
                    "GPU 0 has a total capacity of 23.64 GiB of which 1.02 GiB is free.",
                ),
                "assertapp": says(
                    "../aten/src/ATen/native/cuda/IndexKernel.cu:92: operator(): block: [0,0,0],"
                    " thread: [3,0,0] Assertion `-sizes[i] <= index && index < sizes[i] && "
                    '"index out of bounds"` failed.',
                    "RuntimeError: CUDA error: device-side assert triggered",
                    *CUDA_BOILERPLATE,
                ),
                "nvmlapp": says(
                    "Failed to initialize NVML: Driver/library version mismatch",
                    "NVML library version: 550.144",
                ),
                "nogpu": {
                    **says("RuntimeError: No CUDA GPUs are available"),
                    "environment": {"CUDA_VISIBLE_DEVICES": "3"},
                },
                # X and VNC start-up, with real X servers and clients.
                "vnc": {"command": f"Xvfb {display} -nolisten tcp"},
                "xvfb2": {"command": f"Xvfb :{stale_number} -nolisten tcp"},
                "wm": {
                    "command": "icewm",
                    "environment": {"DISPLAY": nowhere, "HOME": str(root)},
                },
                "xclient": {
                    "command": "icewm",  # an X client that presents no cookie
                    "environment": {"DISPLAY": display, "HOME": str(root)},
                },
                # x11vnc's failure, its decisive line above forty lines of tips: further
                # back than the report shows, not too far for the diagnosis.
                "x11vnc": says(
                    f'01/12/2026 10:00:00 XOpenDisplay("{nowhere}") failed.',
                    "01/12/2026 10:00:00 Trying again with XAUTHLOCALHOSTNAME=localhost ...",
                    "",
                    "01/12/2026 10:00:00 ***************************************",
                    f"01/12/2026 10:00:00 *** XOpenDisplay failed ({nowhere})",
                    "",
                    f'*** x11vnc was unable to open the X DISPLAY: "{nowhere}", it cannot '
                    "continue.",
                    '*** There may be "Xlib:" error messages above with details about the failure.',
                    "",
                    "Some tips and guidelines:",
                    *[f"** tip {n}: see the x11vnc documentation, section {n}." for n in range(40)],
                ),
                # GUI libraries missing from the image.
                "qtapp": says(
                    "qt.qpa.plugin: From 6.5.0, xcb-cursor0 or libxcb-cursor0 is needed to load "
                    "the Qt xcb platform plugin.",
                    'qt.qpa.plugin: Could not load the Qt platform plugin "xcb" in "" even '
                    "though it was found.",
                    "This application failed to start because no Qt platform plugin could be "
                    "initialized. Reinstalling the application may fix this problem.",
                    exit=-6 & 0xFF,
                ),
                "cvapp": says(
                    "Traceback (most recent call last):",
                    '  File "/app/run.py", line 3, in <module>',
                    "    import cv2",
                    "ImportError: libGL.so.1: cannot open shared object file: No such file or "
                    "directory",
                ),
                # Services.
                "jupyter": says(
                    "[C 2024-05-01 10:00:00.123 ServerApp] Running as root is not recommended. "
                    "Use --allow-root to bypass.",
                ),
                "api": {
                    "command": python_command(
                        f"import socket; print('Listening on :{held_port}', flush=True); "
                        f"socket.create_server(('127.0.0.1', {held_port}))"
                    )
                },
                "writer": {
                    "command": python_command(
                        "f = open('/dev/full', 'w'); f.write('checkpoint'); f.flush()"
                    )
                },
                "provision": {"command": str(not_executable)},
                "filebrowser": says(
                    "2025/05/27 11:39:21 Using database: /workspace/filebrowser.db",
                    "2025/05/27 11:39:22 timeout",
                ),
                "novnc": {
                    "command": python_command(
                        "import sys, time; "
                        f"print('  - proxying from :6901 to localhost:{vnc_target}'); "
                        f"print('connecting to: localhost:{vnc_target}'); "
                        "print('handler exception: [Errno 111] Connection refused', "
                        "flush=True); time.sleep(3600)"
                    ),
                    "autorestart": True,
                },
                "webui": says(
                    "Traceback (most recent call last):",
                    "PermissionError: [Errno 13] Permission denied: '/workspace/outputs'",
                ),
                # The decisive line: the traceback's end, not a later error or supervisord.
                "train": says(
                    "Traceback (most recent call last):",
                    '  File "/app/error_handler.py", line 3, in <module>',
                    "ValueError: learning rate must be positive",
                    "wandb: ERROR run failed to sync",
                ),
            }
            with start_supervisord(root / "sv", programs) as sv:
                sv.wait_for_states(
                    {
                        **{name: ("FATAL", "EXITED") for name in programs if name != "novnc"},
                        "novnc": "RUNNING",
                    },
                    timeout=60,
                )
                kernel = root / "kern.log"
                kernel.write_text(
                    "Nov 28 10:00:00 host kernel: [ 4242.1] Out of memory: Killed process 4711 "
                    "(python3) total-vm:31450000kB, anon-rss:15800000kB, file-rss:0kB\n",
                    encoding="utf-8",
                )
                quiet = root / "quiet.log"
                quiet.write_text("", encoding="utf-8")
                with_oom = run(root / "oom", sv, display, kernel, "supervisor,gpu")
                without = run(root / "plain", sv, display, quiet, "supervisor")
                yield {
                    "oom": with_oom,
                    "plain": without,
                    "display": display,
                    "number": number,
                    "stale_number": str(stale_number),
                    "xvfb_pid": xvfb.proc.pid,
                    "held_port": held_port,
                    "vnc_target": vnc_target,
                    "not_executable": str(not_executable),
                    "logs": sv.log_dir,
                }
    finally:
        stale_lock.unlink(missing_ok=True)
        impostor.kill()
        impostor.wait()
        held.close()


def run(root: Path, sv: Any, display: str, kernel_log: Path, only: str) -> dict[str, Any]:
    root.mkdir()
    config = write_config(root, sv.url, display, {}, sv.log_dir, timeout=20)
    with config.open("a", encoding="utf-8") as f:
        f.write(f'\n[gpu]\nkernel_log = "{kernel_log}"\n')
    result = CliRunner().invoke(
        cli, ["run", "--config", str(config), "--only", only, "--no-docs", "--no-commit"]
    )
    assert result.exit_code == 0, result.output
    text = (root / "workspace" / "system_status.json").read_text()
    assert "_diagnosis_log" not in text  # the longer tails serve the diagnosis only
    return {f["id"]: f for f in json.loads(text)["findings"]}


def one(found: dict[str, Any], rule: str, program: str, severity: str = "crit") -> dict[str, Any]:
    finding = found.get(f"supervisor.{rule}:{program}")
    assert finding is not None, sorted(found)
    assert finding["severity"] == severity
    # One program, one finding.
    assert [i for i in found if i.endswith(f":{program}")] == [f"supervisor.{rule}:{program}"]
    return finding


def cgroup_oom_kills() -> int:
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        if os.path.exists(path):
            for line in Path(path).read_text().splitlines():
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    return 0


# --- Killed ----------------------------------------------------------------------------------


def test_killed_by_the_oom_killer(box: dict[str, Any]) -> None:
    trainer = one(box["oom"], "oom-killed", "trainer")
    assert trainer["title"] == "trainer was killed by the OOM killer: it ran out of memory"
    assert "exit status 137" in trainer["detail"]
    assert "The kernel's OOM killer killed process 4711 (python3)." in trainer["detail"]
    assert "Memory limit: " in trainer["detail"]
    assert trainer["hint"].endswith("then supervisorctl start trainer.")
    # The kernel's own line is that program's finding, not a second one.
    assert not [i for i in box["oom"] if i.startswith("system.oom-kill")]


def test_killed_by_sigkill_and_stopped_by_sigterm(box: dict[str, Any]) -> None:
    expected = "oom-killed" if cgroup_oom_kills() else "killed"
    worker = one(box["plain"], expected, "worker")
    assert "State EXITED, terminated by SIGKILL." in worker["detail"]
    assert "supervisorctl start worker" in worker["hint"]
    stopper = one(box["plain"], "terminated", "stopper", "warn")
    assert stopper["title"] == "stopper was stopped by SIGTERM from outside supervisord"
    assert stopper["hint"].startswith("If it should run: supervisorctl start stopper")


# --- CUDA and the driver ---------------------------------------------------------------------


def test_cuda_failures_in_an_apps_log(box: dict[str, Any]) -> None:
    found = box["oom"]
    image = one(found, "cuda-no-kernel-image", "cudaapp")
    assert "NVIDIA GeForce RTX 5090, compute capability sm_120" in image["detail"]
    assert image["detail"].endswith(
        "Decisive line: RuntimeError: CUDA error: no kernel image is available for execution "
        "on the device"
    )
    assert "includes sm_120" in image["hint"] and "supervisorctl start cudaapp" in image["hint"]

    oom = one(found, "cuda-oom", "oomapp")
    assert "It asked for 2.50 GiB of GPU memory and the GPU had 1.02 GiB free." in oom["detail"]
    assert "supervisorctl start oomapp" in oom["hint"]
    # One crit finding: the gpu collector's warning about the same log is folded away.
    assert not [i for i in found if i.startswith("gpu.cuda-") and "oomapp" in i]

    assertion = one(found, "cuda-device-assert", "assertapp")
    assert 'environment=CUDA_LAUNCH_BLOCKING="1" in [program:assertapp]' in assertion["hint"]
    assert (
        "Decisive line: RuntimeError: CUDA error: device-side assert triggered"
        in (assertion["detail"])
    )

    mismatch = one(found, "nvml-mismatch", "nvmlapp")
    assert mismatch["hint"].startswith("Reboot the host")
    nogpu = one(found, "cuda-no-gpu", "nogpu")
    assert "[program:nogpu]" in nogpu["hint"] and "CUDA_VISIBLE_DEVICES" in nogpu["hint"]
    assert "CUDA_VISIBLE_DEVICES=3 (set in [program:nogpu]);" in nogpu["detail"]


# --- X and VNC start-up ----------------------------------------------------------------------


def test_x_server_start_up_failures(box: dict[str, Any]) -> None:
    found = box["plain"]
    number, pid = box["number"], box["xvfb_pid"]
    in_use = one(found, "x-display-in-use", "vnc")
    assert f"/tmp/.X{number}-lock names pid {pid} (Xvfb), which is alive." in in_use["detail"]
    assert in_use["hint"].startswith(f"Stop the other server (kill {pid}")
    assert "[program:vnc]" in in_use["hint"]

    stale = one(found, "x-stale-lock", "xvfb2")
    lock = f"/tmp/.X{box['stale_number']}-lock"
    assert stale["hint"] == (
        f"rm -f {lock} /tmp/.X11-unix/X{box['stale_number']}, then supervisorctl start xvfb2."
    )


def test_x_clients_refused_or_aimed_elsewhere(box: dict[str, Any]) -> None:
    found = box["plain"]
    auth = one(found, "x-client-refused", "xclient")
    assert "environment=XAUTHORITY=" in auth["hint"] and "[program:xclient]" in auth["hint"]
    x11vnc = one(found, "display-unreachable", "x11vnc")
    assert "Decisive line: *** x11vnc was unable to open the X DISPLAY" in x11vnc["detail"]
    wm = one(found, "display-unreachable", "wm")
    assert wm["title"].startswith("wm cannot reach the X display :")
    # Another display than the box's: diagnosis says to fix its DISPLAY, not to start X there.
    assert wm["hint"].startswith("wm aims at display :")
    assert f'environment=DISPLAY="{box["display"]}" in [program:wm]' in wm["hint"]


# --- GUI libraries ---------------------------------------------------------------------------


def test_missing_gui_libraries_name_the_debian_package(box: dict[str, Any]) -> None:
    found = box["plain"]
    assert one(found, "qt-xcb-cursor", "qtapp")["hint"].startswith(
        "apt-get install -y libxcb-cursor0"
    )
    cv = one(found, "missing-library", "cvapp")
    assert cv["title"] == "cvapp cannot start: the system library libGL.so.1 is missing"
    assert cv["hint"].startswith("apt-get install -y libgl1")


# --- Services --------------------------------------------------------------------------------


def test_service_failures(box: dict[str, Any]) -> None:
    found = box["plain"]
    jupyter = one(found, "jupyter-root", "jupyter")
    assert jupyter["hint"].startswith("Add --allow-root to command= in [program:jupyter]")

    api = one(found, "port-in-use", "api")
    port = box["held_port"]
    assert api["title"] == f"api cannot listen: port {port} is already in use"
    assert "python" in api["detail"]  # the holder: this test's own interpreter
    assert "[program:api]" in api["hint"]

    writer = one(found, "disk-full", "writer")
    assert "du -xh" in writer["hint"] and "supervisorctl start writer" in writer["hint"]

    provision = one(found, "not-executable", "provision")
    assert provision["hint"] == (
        f"chmod +x {box['not_executable']}, then supervisorctl start provision."
    )

    filebrowser = one(found, "filebrowser-db-locked", "filebrowser")
    assert "fuser -v /workspace/filebrowser.db" in filebrowser["hint"]

    novnc = one(found, "vnc-target-unreachable", "novnc")
    assert novnc["title"] == (
        f"novnc cannot reach its VNC server at localhost:{box['vnc_target']}: connection refused"
    )
    assert "supervisorctl restart novnc" in novnc["hint"]

    webui = one(found, "permission-denied", "webui")
    assert webui["hint"].startswith("ls -ld /workspace/outputs")


# --- The decisive line -----------------------------------------------------------------------


def test_the_decisive_line_is_the_programs_own_not_supervisords(box: dict[str, Any]) -> None:
    train = one(box["plain"], "program-down", "train")
    assert train["detail"].endswith("Decisive line: ValueError: learning rate must be positive")
    for finding in box["plain"].values():
        assert "Decisive line: Exited too quickly" not in finding["detail"]
