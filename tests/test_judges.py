"""The collectors' judges on data built by hand: no box, no X server, no GPU, no supervisord.

Each collector package splits into gather.py (reads the box) and judge.py (pure functions
from what was read to findings). These tests give each judge's entry point (`assess`) one
case per family of findings it makes, and a healthy case that must make none (display,
system, gpu, supervisor, logs, ports, provisioning).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from test_display import fabricated  # a healthy display :1, changes merged in

from healthcheck.collectors.display import judge as display
from healthcheck.collectors.gpu import judge as gpu
from healthcheck.collectors.logs import judge as logs
from healthcheck.collectors.ports import judge as ports
from healthcheck.collectors.provisioning import judge as provisioning
from healthcheck.collectors.supervisor import judge as supervisor
from healthcheck.collectors.supervisor.rules import CannedProbe
from healthcheck.collectors.system import judge as system
from healthcheck.config import Config, GpuConfig, LogsConfig, SystemConfig
from healthcheck.logtail import LogCandidate, LogDir, Tail
from healthcheck.model import Finding, Status
from healthcheck.nvml import NvmlFailure
from healthcheck.program import Program
from healthcheck.xid import KernelLog

GIB = 1024**3
NOW = datetime.fromisoformat("2026-11-28T12:00:00+00:00").timestamp()


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


# --- display ------------------------------------------------------------------------------


def test_display_healthy_makes_no_finding() -> None:
    assert display.assess(fabricated(), expected_vnc_port=5901) == []
    # Without a configured VNC port there is nothing to compare against either.
    assert display.assess(fabricated(), expected_vnc_port=None) == []


def test_display_down_server_with_a_stale_lock() -> None:
    data = fabricated(
        connection={"ok": False, "answered": False, "result": "refused", "reason": "no socket"},
        socket={"exists": False},
        server=None,
        lock={"pid": 4242, "pid_alive": False, "pid_name": None},
    )
    found = display.assess(data, 5901)
    assert [(f.rule, f.severity) for f in found] == [
        ("x-server-down", Status.CRIT),
        ("stale-lock", Status.WARN),
    ]
    assert "pid 4242, which is no longer running" in found[1].detail
    # A lock whose pid is the live X server is not stale: the same outage, one finding.
    live = fabricated(
        connection={"ok": False, "answered": False, "result": "timeout", "reason": "silent"},
    )
    assert rules(display.assess(live, 5901)) == ["x-server-down"]


def test_display_vnc_on_another_port_than_configured() -> None:
    data = fabricated(vnc={"port": 5902}, novnc={"processes": []})
    (finding,) = display.assess(data, expected_vnc_port=5901)
    assert (finding.rule, finding.subject) == ("vnc-port-mismatch", "vnc:5902")
    # Only while the X server is up: a down server is the finding then, not its port.
    down = {**data, "connection": {**data["connection"], "answered": False, "ok": False}}
    assert "vnc-port-mismatch" not in rules(display.assess(down, 5901))


def test_display_window_manager_on_another_display() -> None:
    wm = {"processes": [{"pid": 20, "name": "icewm", "display": ":0", "program": "wm"}]}
    (finding,) = display.assess(fabricated(window_manager=wm), 5901)
    assert finding.rule == "wm-wrong-display"
    assert 'environment=DISPLAY=":1" to [program:wm]' in finding.hint
    # An environment that could not be read is not evidence of a wrong display.
    unreadable = {"processes": [{"pid": 20, "name": "icewm", "display": display.UNREADABLE}]}
    assert display.assess(fabricated(window_manager=unreadable), 5901) == []


# --- system -------------------------------------------------------------------------------


def readings(**changes: Any) -> system.Readings:
    """A quiet box: a half-full disk, memory and swap mostly free, no zombies."""
    values: dict[str, Any] = {
        "data": {},
        "volatile": {},
        "disks": [
            {"mountpoint": "/", "percent": 50.0, "free": 50 * GIB, "total": 100 * GIB},
        ],
        "memory_total": 64 * GIB,
        "memory_available": 48 * GIB,
        "swap_total": 8 * GIB,
        "swap_used": 1 * GIB,
        "zombies": [],
        "cgroup_limit": None,
    }
    values.update(changes)
    return system.Readings(**values)


def test_system_quiet_box_makes_no_finding() -> None:
    assert system.assess(readings(), SystemConfig()) == []
    # No swap at all is not "swap full".
    assert system.assess(readings(swap_total=0, swap_used=0), SystemConfig()) == []
    # A container limit with room left says nothing either.
    assert system.assess(readings(cgroup_limit=(16 * GIB, 12 * GIB)), SystemConfig()) == []


def test_system_every_family_in_order() -> None:
    zombie = {"pid": 7, "name": "sh", "parent_pid": 1, "parent": "python3"}
    found = system.assess(
        readings(
            disks=[{"mountpoint": "/workspace", "percent": 99.0, "free": GIB, "total": 100 * GIB}],
            memory_available=1 * GIB,
            swap_used=8 * GIB,
            zombies=[{**zombie, "pid": 7 + i} for i in range(system.ZOMBIES_WARN)],
            cgroup_limit=(16 * GIB, 0),
        ),
        SystemConfig(),
    )
    assert [(f.rule, f.subject, f.severity) for f in found] == [
        ("disk-full", "/workspace", Status.CRIT),
        ("memory-pressure", "memory", Status.CRIT),
        ("swap-full", "swap", Status.WARN),
        ("zombies", "processes", Status.WARN),
        ("memory-pressure", "container", Status.CRIT),
    ]


def test_system_limits_come_from_the_options() -> None:
    nearly = readings(disks=[{"mountpoint": "/", "percent": 85.0, "free": 15, "total": 100}])
    assert system.assess(nearly, SystemConfig()) == []  # the default warns at 90%
    assert rules(system.assess(nearly, SystemConfig(disk_warn_percent=80.0))) == ["disk-full"]


# --- gpu ----------------------------------------------------------------------------------


def healthy_gpu(index: int = 0, **figures: Any) -> gpu.GpuReading:
    return gpu.GpuReading(
        index=index,
        facts={
            "pci_bus_id": f"00000000:0{index + 1}:00.0",
            "memory_total": 80 * GIB,
            "temperature_slowdown_c": 90,
            "power_limit_w": 700,
            "ecc_uncorrected": {"volatile": 0, "aggregate": 0},
        },
        figures={
            "temperature_c": 40,
            "memory_used": 10 * GIB,
            "clock_event_reasons": [],
            "processes_note": "no processes",
            **figures,
        },
        reasons_mask=0,
    )


def gpu_readings(
    *,
    env: dict[str, str] | None = None,
    gpus: list[gpu.GpuReading] | None = None,
    failure: NvmlFailure | None = None,
    kernel: list[tuple[str | None, str]] | None = None,
    logs: list[Tail] | None = None,
) -> gpu.GpuReadings:
    snapshot = gpu.NvmlSnapshot()
    snapshot.failure = failure
    if failure is None:
        snapshot.gpus = gpus if gpus is not None else [healthy_gpu()]
        snapshot.system = {"driver": "550.54", "count": len(snapshot.gpus)}
    kernel_log = None if kernel is None else KernelLog(source="kern.log", lines=kernel)
    return gpu.GpuReadings(
        env_variables=env if env is not None else {"NVIDIA_VISIBLE_DEVICES": "all"},
        env_source="pid1",
        nvml=snapshot,
        kernel_log=kernel_log,
        service_logs=logs or [],
    )


NO_DRIVER = NvmlFailure("driver-not-loaded", "NVIDIA driver not loaded", "Driver Not Loaded", "x")


def test_gpu_healthy_makes_no_finding() -> None:
    quiet_log = Tail(path="/logs/app.log", lines=("CUDA available: True", "step 10 loss 0.3"))
    data, volatile, found = gpu.assess(
        gpu_readings(kernel=[(None, "usb 1-1: new device")], logs=[quiet_log]), GpuConfig(), NOW
    )
    assert found == []
    assert data["expected"]["expected"] is True and data["xid"]["count"] == 0
    assert data["cuda_log_errors"] == [] and volatile["gpus"][0]["temperature_c"] == 40
    # Hidden on purpose and not there: no GPU is no finding of "no GPU".
    hidden = gpu_readings(env={"NVIDIA_VISIBLE_DEVICES": "void"}, gpus=[])
    assert gpu.assess(hidden, GpuConfig(), NOW)[2] == []


def test_gpu_no_nvml_is_crit_when_a_gpu_is_expected_and_unknown_when_not() -> None:
    (wanted,) = gpu.assess(gpu_readings(failure=NO_DRIVER), GpuConfig(), NOW)[2]
    assert (wanted.rule, wanted.severity) == ("no-gpu", Status.CRIT)
    assert "NVIDIA_VISIBLE_DEVICES=all" in wanted.detail
    (plain,) = gpu.assess(gpu_readings(env={}, failure=NO_DRIVER), GpuConfig(), NOW)[2]
    assert plain.rule == "nvml-unavailable"
    (listed,) = gpu.assess(gpu_readings(gpus=[]), GpuConfig(), NOW)[2]
    assert listed.rule == "no-gpu"  # one rule for "no GPU", however it was found out


def test_gpu_threshold_families() -> None:
    hot = healthy_gpu(0, temperature_c=88)
    full = healthy_gpu(1, memory_used=79 * GIB)
    ecc = healthy_gpu(2)
    ecc.facts["ecc_uncorrected"] = {"volatile": 2, "aggregate": 5}
    lost = gpu.GpuReading(index=3, error="GPU is lost", lost=True)
    found = gpu.assess(gpu_readings(gpus=[hot, full, ecc, lost]), GpuConfig(), NOW)[2]
    assert [(f.rule, f.subject) for f in found] == [
        ("hot", "gpu0"),
        ("memory-full", "gpu1"),
        ("ecc-uncorrected", "gpu2"),
        ("gpu-lost", "gpu3"),
    ]
    # Below the margin of its slowdown temperature, with memory to spare: quiet.
    assert gpu.gpu_findings(healthy_gpu(0, temperature_c=80), GpuConfig()) == []


def test_gpu_xids_and_driver_messages_in_the_kernel_log() -> None:
    xid = (
        "NVRM: Xid (PCI:0000:01:00): 79, pid='<unknown>', name=<unknown>, "
        "GPU has fallen off the bus."
    )
    rm = "NVRM: GPU 0000:02:00.0: RmInitAdapter failed! (0x26:0x56:1474)"
    data, volatile, found = gpu.assess(
        gpu_readings(kernel=[(None, xid), (None, xid), (None, rm)]), GpuConfig(), NOW
    )
    assert [f.rule for f in found] == ["xid-79", "rm-init-adapter-failed"]
    assert found[0].severity == Status.CRIT and "GPU 0 (0000:01:00)" in found[0].title
    assert data["xid"]["codes"][0]["count"] == 2 and volatile["xid_records_read"] == 0
    # An unreadable kernel log is data, not a finding.
    unreadable = gpu_readings()
    unreadable.kernel_log = KernelLog(error="Operation not permitted")
    data, _, found = gpu.assess(unreadable, GpuConfig(), NOW)
    assert found == [] and data["xid"]["scanned"] is False and "CAP_SYSLOG" in data["xid"]["hint"]


def test_gpu_kernel_lines_older_than_the_window_are_history() -> None:
    oom = "Out of memory: Killed process 4711 (python3) total-vm:31450000kB"
    dated = [("2026-11-28T10:00:00Z", oom)]
    assert rules(gpu.kernel_findings(dated, "/dev/kmsg", now=NOW)) == ["oom-kill"]
    assert gpu.kernel_findings(dated, "/dev/kmsg", now=NOW + 3 * 86400) == []


def test_gpu_cuda_errors_in_service_logs() -> None:
    app = Tail(
        path="/logs/app-stderr---supervisor-ab12.log",
        lines=(
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
            "RuntimeError: CUDA error: an illegal memory access was encountered",
            "all fine",
        ),
    )
    unreadable = Tail(path="/logs/gone.log", error="no such file")
    data, _, found = gpu.assess(gpu_readings(logs=[app, unreadable]), GpuConfig(), NOW)
    assert [(f.rule, f.subject) for f in found] == [
        ("cuda-oom", app.path),
        ("cuda-error", app.path),
    ]
    assert [(d["service"], d["kind"], d["count"]) for d in data["cuda_log_errors"]] == [
        ("app", "out-of-memory", 1),
        ("app", "cuda-error", 1),
    ]


# --- supervisor ---------------------------------------------------------------------------


def gathered(via: str | None, *programs: Program, state: str | None = "RUNNING") -> Any:
    attempts = (
        []
        if via == "xmlrpc"
        else [
            {
                "url": "unix:///run/supervisor.sock",
                "source": "config",
                "error": "no such file",
                "kind": "missing",
            }
        ]
    )
    data = {
        "url": "unix:///run/supervisor.sock" if via != "supervisorctl" else "http://localhost:9001",
        "via": via,
        "state": state if via == "xmlrpc" else None,
        "version": "4.2.5" if via == "xmlrpc" else None,
        "source": "config" if via != "supervisorctl" else "/etc/supervisord.conf",
        "attempts": attempts,
        "programs": list(programs),
    }
    conf = "/etc/supervisord.conf" if via == "supervisorctl" else None
    return supervisor.Gathered(data, {}, "unix:///run/supervisor.sock", conf)


def judged(g: supervisor.Gathered) -> list[Finding]:
    config = Config()
    return supervisor.assess(g, config, CannedProbe(config, {}))


def running(name: str) -> Program:
    return Program(group=name, name=name, state="RUNNING", pid=100, started="2026-11-28T10:00:00Z")


def test_supervisor_running_programs_make_no_finding() -> None:
    assert judged(gathered("xmlrpc", running("novnc"), running("sshd"))) == []
    assert judged(gathered("xmlrpc")) == []  # no programs at all is not a fault here


def test_supervisor_a_fatal_program_is_explained_and_its_long_tail_dropped() -> None:
    fatal = Program(
        group="app",
        name="app",
        state="FATAL",
        spawnerr="can't find command '/opt/app/bin/app'",
        diagnosis_log={"stdout": [], "stderr": []},
    )
    (finding,) = judged(gathered("xmlrpc", running("novnc"), fatal))
    assert (finding.collector, finding.subject, finding.severity) == (
        "supervisor",
        "app",
        Status.CRIT,
    )
    assert fatal.diagnosis_log is None  # it served the judgement; the report never shows it


@pytest.mark.parametrize("state", ["SHUTDOWN", "RESTARTING"])
def test_supervisor_itself_not_running(state: str) -> None:
    (finding,) = judged(gathered("xmlrpc", state=state))
    assert finding.rule == "not-running"


def test_supervisor_through_supervisorctl_and_unreachable() -> None:
    (finding,) = judged(gathered("supervisorctl", running("novnc")))
    assert finding.rule == "xmlrpc-unavailable"
    assert finding.title.endswith("could not be used: no such file")
    assert "supervisorctl (/etc/supervisord.conf)" in finding.detail
    assert "now http://localhost:9001" in finding.hint
    g = gathered(None)
    g.data["fallback_error"] = "no supervisorctl on PATH"
    (down,) = judged(g)
    assert down.rule == "unreachable" and g.reason == "no such file"
    assert "unix:///run/supervisor.sock (config): no such file" in down.detail
    assert "Fallback: no supervisorctl on PATH." in down.detail


# --- logs ---------------------------------------------------------------------------------


def log_readings(*tails: Tail, dirs: list[LogDir] | None = None) -> logs.LogReadings:
    found = dirs if dirs is not None else [LogDir(path="/logs", exists=True, matched=len(tails))]
    candidates = [LogCandidate(path=t.path, mtime_ns=0) for t in tails]
    return logs.LogReadings(found, candidates, list(tails))


def test_logs_quiet_logs_make_no_finding() -> None:
    lines = ("started", "Error: retrying", *(f"step {i} ok" for i in range(5)))
    quiet = Tail(path="/logs/app.log", size=100, lines=lines)
    data, found = logs.assess(log_readings(quiet), LogsConfig())
    assert found == []  # an error line followed by recovery is not how the log ends
    assert data["files"][0]["error_lines"] == [1] and data["left_out"] == 0


def test_logs_every_family() -> None:
    failing = Tail(path="/logs/app.log", size=2 * 1024**3, lines=("started", "Error: boom"))
    gone = Tail(path="/logs/gone.log", error="permission denied")
    walls = [LogDir(path="/logs", exists=True, error="permission denied")]
    _, found = logs.assess(log_readings(failing, gone, dirs=walls), LogsConfig())
    assert [(f.rule, f.subject) for f in found] == [
        ("log-ends-with-error", "/logs/app.log"),
        ("runaway-log", "/logs/app.log"),
        ("log-unreadable", "/logs/gone.log"),
        ("log-dir-unreadable", "/logs"),
    ]
    _, found = logs.assess(log_readings(dirs=[LogDir(path="/logs")]), LogsConfig())
    assert [f.rule for f in found] == ["no-log-dir"]


def test_logs_byte_caps_keep_the_newest_lines() -> None:
    long = Tail(path="/logs/big.log", size=10**6, lines=tuple(f"{i:05d}" * 100 for i in range(40)))
    data, _ = logs.assess(log_readings(long), LogsConfig())
    shown = data["files"][0]
    assert shown["lines"][-1] == long.lines[-1] and shown["lines_left_out"] > 0
    assert sum(len(line) + 1 for line in shown["lines"]) <= logs.FILE_BYTES


# --- ports --------------------------------------------------------------------------------


def port_readings(listeners: dict[int, list[tuple[str, int | None]]]) -> ports.PortReadings:
    names = {pid: f"proc{pid}" for e in listeners.values() for _, pid in e if pid is not None}
    return ports.PortReadings(listeners, (32768, 60999), names)


def test_ports_every_expected_port_listened_on_makes_no_finding() -> None:
    readings = port_readings(
        {5901: [("0.0.0.0:5901", 10)], 40000: [("127.0.0.1:40000", 11)], 22: [("[::]:22", None)]}
    )
    data, volatile, found = ports.assess(readings, {"vnc": 5901})
    assert found == []
    assert data["ports"][0]["processes"] == [{"pid": 10, "name": "proc10"}]
    # A loopback listener on an ephemeral port is counted, not listed.
    assert [o["port"] for o in data["other_listeners"]] == [22]
    assert volatile["loopback_ephemeral_listeners"] == 1


def test_ports_an_expected_port_nobody_listens_on() -> None:
    _, _, found = ports.assess(port_readings({}), {"vnc": 5901, "novnc": 6901})
    assert [(f.rule, f.subject, f.severity) for f in found] == [
        ("not-listening", "vnc:5901", Status.WARN),
        ("not-listening", "novnc:6901", Status.WARN),
    ]


# --- provisioning -------------------------------------------------------------------------


def script(path: str, **changes: Any) -> dict[str, Any]:
    """A healthy script's inspection, `changes` applied."""
    info = {
        "path": path,
        "present": True,
        "kind": "file",
        "executable": True,
        "size": 120,
        "crlf": False,
        "link_target": None,
        "error": None,
    }
    return {**info, **changes}


def test_provisioning_healthy_scripts_make_no_finding() -> None:
    assert provisioning.assess([script("/provision.sh"), script("/onstart.sh")]) == []


def test_provisioning_every_family() -> None:
    found = provisioning.assess(
        [
            script("/a.sh", present=False),
            script("/b.sh", present=False, link_target="/gone.sh"),
            script("/c.sh", error="Permission denied"),
            script("/d", kind="directory"),
            script("/e.sh", size=0),
            script("/f.sh", executable=False, crlf=True),
        ]
    )
    assert [(f.rule, f.subject) for f in found] == [
        ("missing", ""),  # two missing scripts are one finding
        ("unreadable", "/c.sh"),
        ("not-a-file", "/d"),
        ("empty", "/e.sh"),
        ("not-executable", "/f.sh"),
        ("crlf-line-endings", "/f.sh"),
    ]
    assert "/a.sh, /b.sh" in found[0].title and "/gone.sh" in found[0].detail
    (one,) = provisioning.assess([script("/a.sh", present=False)])
    assert (one.rule, one.subject) == ("missing", "/a.sh")
