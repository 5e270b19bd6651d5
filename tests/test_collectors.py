"""The env, ports, provisioning and system collectors against real processes, sockets, files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from healthcheck.collectors.env import EnvCollector
from healthcheck.collectors.ports import PortsCollector
from healthcheck.collectors.provisioning import ProvisioningCollector
from healthcheck.collectors.system import (
    ZOMBIES_WARN,
    SystemCollector,
    disk_findings,
    memory_findings,
)
from healthcheck.config import SystemConfig, parse_config
from healthcheck.environ import read_environment
from healthcheck.model import Status

from support import free_port

GiB = 1024**3


@pytest.fixture
def planted_process(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real long-lived process with a distinctive name and planted variables."""
    binary = tmp_path / "hc-fake-supervisord"
    shutil.copy("/bin/sleep", binary)
    env = {
        "PATH": "/usr/bin:/bin",
        "CUDA_VERSION": "12.4.1",
        "VNC_RESOLUTION": "1280x1024",
        "UNRELATED": "x",
    }
    proc = subprocess.Popen([str(binary), "60"], env=env)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_env_from_a_named_process(planted_process: subprocess.Popen[bytes]) -> None:
    config = parse_config({"env": {"source": "process:hc-fake-supervisord", "include": "CUDA|VNC"}})
    section = EnvCollector().collect(config)
    assert section.status is Status.OK
    assert section.data == {
        "source": f"process:hc-fake-supervisord (pid {planted_process.pid})",
        "include": "CUDA|VNC",
        "count": 2,
        "variables": {"CUDA_VERSION": "12.4.1", "VNC_RESOLUTION": "1280x1024"},
    }
    assert section.findings == []


def test_env_falls_back_and_says_so() -> None:
    config = parse_config({"env": {"source": "process:no-such-process-hc", "include": "^PATH$"}})
    section = EnvCollector().collect(config)
    assert section.status is Status.UNKNOWN
    assert section.data["source"] == "self"
    assert section.data["variables"] == {"PATH": os.environ["PATH"]}
    assert section.data["fallback_reason"] == "no process named 'no-such-process-hc' is running"
    (finding,) = section.findings
    assert finding.id == "env.source-unreadable:process:no-such-process-hc"
    assert finding.severity is Status.UNKNOWN


def test_env_self_and_pid1() -> None:
    section = EnvCollector().collect(parse_config({"env": {"source": "self", "include": "^PATH$"}}))
    assert section.data["variables"] == {"PATH": os.environ["PATH"]}
    snapshot = read_environment("pid1")
    # pid 1's environment is readable here or not; either way the answer says which.
    assert snapshot.source_used in ("pid1 (/proc/1/environ)", "self")
    assert (snapshot.fallback_reason is None) == (snapshot.source_used != "self")


def test_ports_listening_and_not() -> None:
    closed = free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config = parse_config({"services": {"ports": {"web": port, "ghost": closed}}})
        section = PortsCollector().collect(config)
    ports = {p["service"]: p for p in section.data["ports"]}
    assert ports["web"]["listening"] is True
    assert ports["web"]["addresses"] == [f"127.0.0.1:{port}"]
    assert ports["web"]["processes"] == [{"pid": os.getpid(), "name": psutil.Process().name()}]
    assert ports["ghost"] == {
        "service": "ghost",
        "port": closed,
        "listening": False,
        "addresses": [],
        "processes": [],
    }
    assert [(f.id, f.severity) for f in section.findings] == [
        (f"ports.not-listening:ghost:{closed}", Status.WARN)
    ]
    assert section.status is Status.WARN


def test_provisioning_scripts(tmp_path: Path) -> None:
    good = tmp_path / "good.sh"
    good.write_text("#!/bin/bash\necho hi\n")
    good.chmod(0o755)
    plain = tmp_path / "plain.sh"
    plain.write_text("#!/bin/bash\n")
    plain.chmod(0o644)
    empty = tmp_path / "empty.sh"
    empty.touch()
    empty.chmod(0o755)
    folder = tmp_path / "folder.sh"
    folder.mkdir()
    missing = tmp_path / "missing.sh"
    config = parse_config(
        {"provisioning": {"scripts": [str(p) for p in (good, plain, empty, folder, missing)]}}
    )
    section = ProvisioningCollector().collect(config)
    assert [(f.id, f.severity) for f in section.findings] == [
        (f"provisioning.not-executable:{plain}", Status.WARN),
        (f"provisioning.empty:{empty}", Status.WARN),
        (f"provisioning.not-a-file:{folder}", Status.WARN),
        (f"provisioning.missing:{missing}", Status.WARN),
    ]
    first = section.data["scripts"][0]
    assert first["path"] == str(good)
    assert (first["present"], first["kind"], first["executable"], first["size"]) == (
        True,
        "file",
        True,
        20,
    )
    assert first["first_line"] == "#!/bin/bash"
    assert len(first["sha256"]) == 12
    assert section.findings[0].hint == f"chmod +x {plain}"


def test_system_collects_real_facts(tmp_path: Path) -> None:
    section = SystemCollector().collect(parse_config({"paths": {"workspace": str(tmp_path)}}))
    data, volatile = section.data, section.volatile
    assert data["host"] == socket.gethostname()
    assert data["cpu_count"] == psutil.cpu_count()
    assert data["memory_total"] == psutil.virtual_memory().total
    # the workspace's filesystem comes first
    mount = data["disks"][0]["mountpoint"]
    assert str(tmp_path).startswith(mount)
    assert volatile["process_count"] > 1
    assert 0 <= volatile["memory_used_percent"] <= 100
    assert all(p["pid"] != os.getpid() for p in volatile["top_processes"])
    assert len(volatile["top_processes"]) <= 5


def test_system_sees_a_real_zombie() -> None:
    # A child that has exited and that we have not waited for yet is a zombie.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.05)
    try:
        section = SystemCollector().collect(parse_config({}))
        zombies = [z for z in section.data["zombies"] if z["pid"] == child.pid]
        assert len(zombies) == 1
        assert (zombies[0]["parent_pid"], zombies[0]["parent"]) == (
            os.getpid(),
            psutil.Process().name(),
        )
        # A passing zombie is listed, and is no finding (a busy box always has a few).
        if len(section.data["zombies"]) < ZOMBIES_WARN:
            assert "system.zombies:processes" not in [f.id for f in section.findings]
    finally:
        child.wait()


@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        (89.9, []),
        (90.0, [Status.WARN]),
        (96.9, [Status.WARN]),
        (97.0, [Status.CRIT]),
        (100.0, [Status.CRIT]),
    ],
)
def test_disk_thresholds(percent: float, expected: list[Status]) -> None:
    disk = {
        "mountpoint": "/workspace",
        "total": 100 * GiB,
        "free": int((100 - percent) * GiB),
        "percent": percent,
    }
    findings = disk_findings([disk], SystemConfig())
    assert [f.severity for f in findings] == expected
    if findings:
        assert findings[0].id == "system.disk-full:/workspace"
        assert findings[0].title == f"Disk /workspace is {percent:.0f}% full"


def test_memory_thresholds_count_available_memory_as_free() -> None:
    limits = SystemConfig(memory_warn_percent=90, memory_crit_percent=97)
    assert memory_findings(100 * GiB, 11 * GiB, limits) == []
    assert [f.severity for f in memory_findings(100 * GiB, 10 * GiB, limits)] == [Status.WARN]
    (crit,) = memory_findings(100 * GiB, 2 * GiB, limits)
    assert (crit.id, crit.severity, crit.title) == (
        "system.memory-pressure:memory",
        Status.CRIT,
        "Memory is 98% used",
    )
