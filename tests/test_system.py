"""The system collector on this machine, and its thresholds on fabricated figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from healthcheck.collectors.system import (
    CMDLINE_CHARS,
    PSEUDO_FS,
    SHM_MOUNTS,
    ZOMBIES_WARN,
    SystemCollector,
    busy_percent,
    cgroup_memory,
    disk_findings,
    memory_findings,
    swap_findings,
    zombie_findings,
)
from healthcheck.config import SystemConfig, parse_config
from healthcheck.model import Status

GiB = 1024**3
MiB = 1024**2


def disk(mount: str, percent: float, total: int = 100 * GiB) -> dict[str, Any]:
    free = int(total * (100 - percent) / 100)
    return {"mountpoint": mount, "total": total, "free": free, "percent": percent}


# --- a real run ---------------------------------------------------------------------------


def test_real_run_is_sane_and_json_able(tmp_path: Path) -> None:
    config = parse_config(
        {"paths": {"workspace": str(tmp_path / "not" / "yet")}, "system": {"top_processes": 3}}
    )
    section = SystemCollector().collect(config)
    data, volatile = section.data, section.volatile
    assert section.name == "system"
    json.dumps(data, allow_nan=False)
    json.dumps(volatile, allow_nan=False)
    assert set(data) == {
        "host", "os", "kernel", "arch", "python", "boot_time", "cpu_count", "memory_total",
        "memory_limit", "swap_total", "disks", "zombies",
    }  # fmt: skip
    assert data["python"] == ".".join(map(str, sys.version_info[:3]))
    assert data["cpu_count"] >= 1
    assert data["boot_time"].endswith("Z")
    assert data["memory_limit"] is None or 0 < data["memory_limit"] < data["memory_total"]
    assert volatile["uptime_s"] > 0
    assert len(volatile["load"]) == 3
    assert 0 <= volatile["cpu_percent"] <= 100
    assert 0 <= volatile["memory_used_percent"] <= 100
    assert 0 < volatile["memory_available"] <= data["memory_total"]
    assert volatile["process_count"] > 1
    # Findings are only the ones this box deserves; whatever they are, they are system's.
    assert all(f.collector == "system" for f in section.findings)


def test_workspace_filesystem_first_then_real_mounts_once(tmp_path: Path) -> None:
    config = parse_config({"paths": {"workspace": str(tmp_path / "missing" / "ws")}})
    disks = SystemCollector().collect(config).data["disks"]
    # The nearest existing parent (tmp_path) decides the workspace's filesystem.
    assert os.stat(disks[0]["mountpoint"]).st_dev == os.stat(tmp_path).st_dev
    devices = [os.stat(d["mountpoint"]).st_dev for d in disks]
    assert len(devices) == len(set(devices)), "a filesystem listed twice"
    for d in disks[1:]:
        assert d["fstype"] not in PSEUDO_FS or d["mountpoint"] in SHM_MOUNTS
        assert os.path.isdir(d["mountpoint"])
        assert d["total"] > 0
    assert [d["mountpoint"] for d in disks[1:]] == sorted(d["mountpoint"] for d in disks[1:])
    volatile = SystemCollector().collect(config).volatile["disks"]
    assert [v["mountpoint"] for v in volatile] == [d["mountpoint"] for d in disks]


def test_shared_memory_is_a_disk_when_mounted() -> None:
    shm = [
        p
        for p in psutil.disk_partitions(all=True)
        if p.mountpoint == "/dev/shm" and psutil.disk_usage("/dev/shm").total > 0
    ]
    if not shm:
        pytest.skip("no /dev/shm mount here")
    disks = SystemCollector().collect(parse_config({})).data["disks"]
    shm_dev = os.stat("/dev/shm").st_dev
    assert shm_dev in [os.stat(d["mountpoint"]).st_dev for d in disks]


def test_data_is_stable_between_runs(tmp_path: Path) -> None:
    # Only volatile figures may move on an idle box; zombies come and go with other tests.
    config = parse_config({"paths": {"workspace": str(tmp_path)}})
    first = SystemCollector().collect(config).data
    second = SystemCollector().collect(config).data
    first.pop("zombies")
    second.pop("zombies")
    assert first == second


def test_top_processes_by_rss_one_cmdline_string() -> None:
    config = parse_config({"system": {"top_processes": 4}})
    top = SystemCollector().collect(config).volatile["top_processes"]
    assert 1 <= len(top) <= 4
    assert [p["rss"] for p in top] == sorted((p["rss"] for p in top), reverse=True)
    for p in top:
        assert set(p) == {"pid", "name", "rss", "cmdline"}
        assert isinstance(p["cmdline"], str) and len(p["cmdline"]) <= CMDLINE_CHARS


def test_a_long_command_line_is_cut_visibly() -> None:
    long_arg = "x" * (CMDLINE_CHARS * 2)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", long_arg])
    try:
        # Every process, so that ours is among them whatever its size.
        config = parse_config({"system": {"top_processes": 100_000}})
        top = SystemCollector().collect(config).volatile["top_processes"]
    finally:
        child.kill()
        child.wait()
    (ours,) = [p for p in top if p["pid"] == child.pid]
    assert len(ours["cmdline"]) == CMDLINE_CHARS
    assert ours["cmdline"].startswith(f"{sys.executable} -c import time; time.sleep(30) xxx")
    assert ours["cmdline"].endswith("x…")


def test_real_zombies_piling_up_name_their_parent() -> None:
    children = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(ZOMBIES_WARN)]
    try:
        deadline = time.monotonic() + 10
        for child in children:
            while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
                assert time.monotonic() < deadline, "the child never exited"
                time.sleep(0.02)
        section = SystemCollector().collect(parse_config({}))
    finally:
        for child in children:
            child.wait()
    me = psutil.Process().name()
    pids = {child.pid for child in children}
    ours = [z for z in section.data["zombies"] if z["pid"] in pids]
    assert {(z["parent_pid"], z["parent"]) for z in ours} == {(os.getpid(), me)}
    (finding,) = [f for f in section.findings if f.rule == "zombies"]
    assert (finding.id, finding.severity) == ("system.zombies:processes", Status.WARN)
    assert f"{me} (pid {os.getpid()})" in finding.detail
    assert any(line.startswith(f"pid {children[0].pid} ") for line in finding.evidence)


# --- thresholds on fabricated figures -----------------------------------------------------


@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        (0.0, []),
        (89.9, []),
        (90.0, [Status.WARN]),
        (96.9, [Status.WARN]),
        (97.0, [Status.CRIT]),
        (100.0, [Status.CRIT]),
    ],
)
def test_disk_boundaries(percent: float, expected: list[Status]) -> None:
    findings = disk_findings([disk("/workspace", percent)], SystemConfig())
    assert [(f.id, f.severity) for f in findings] == [
        ("system.disk-full:/workspace", s) for s in expected
    ]


def test_disk_findings_per_mount_with_a_runnable_hint() -> None:
    limits = SystemConfig(disk_warn_percent=80, disk_crit_percent=95)
    findings = disk_findings(
        [disk("/", 50), disk("/workspace", 80), disk("/mnt/my data", 95), disk("/dev/shm", 99)],
        limits,
    )
    assert [(f.id, f.severity) for f in findings] == [
        ("system.disk-full:/workspace", Status.WARN),
        ("system.disk-full:/mnt/my data", Status.CRIT),
        ("system.disk-full:/dev/shm", Status.CRIT),
    ]
    assert findings[0].title == "Disk /workspace is 80% full"
    assert findings[0].hint == "du -xh --max-depth=1 /workspace | sort -h | tail"
    assert findings[1].hint == "du -xh --max-depth=1 '/mnt/my data' | sort -h | tail"
    assert "5.0 GiB free of 100.0 GiB" in findings[1].detail


@pytest.mark.parametrize(
    ("available_gib", "expected"),
    [(11, []), (10.5, []), (10, [Status.WARN]), (3.5, [Status.WARN]), (3, [Status.CRIT])],
)
def test_memory_boundaries(available_gib: float, expected: list[Status]) -> None:
    findings = memory_findings(100 * GiB, int(available_gib * GiB), SystemConfig())
    assert [(f.id, f.severity) for f in findings] == [
        ("system.memory-pressure:memory", s) for s in expected
    ]


def test_container_memory_limit_is_its_own_finding() -> None:
    (finding,) = memory_findings(16 * GiB, 0, SystemConfig(), scope="container")
    assert (finding.id, finding.severity) == ("system.memory-pressure:container", Status.CRIT)
    assert finding.title == "The container's memory limit is 100% used"


@pytest.mark.parametrize(
    ("total", "used", "expected"),
    [(0, 0, []), (8 * GiB, 0, []), (100 * GiB, 79 * GiB, []), (100 * GiB, 80 * GiB, ["warn"])],
)
def test_swap_boundaries(total: int, used: int, expected: list[str]) -> None:
    findings = swap_findings(total, used)
    assert [(f.id, f.severity.value) for f in findings] == [
        ("system.swap-full:swap", s) for s in expected
    ]


def test_zombies_warn_when_they_pile_up_under_one_finding_naming_each_parent() -> None:
    named = [
        {"pid": 10, "name": "sshd", "parent_pid": 1, "parent": "start.sh"},
        {"pid": 11, "name": "Xtigervnc", "parent_pid": 42, "parent": None},
    ]
    more = [
        {"pid": 20 + i, "name": "sshd", "parent_pid": 1, "parent": "start.sh"}
        for i in range(ZOMBIES_WARN - len(named))
    ]
    assert zombie_findings([]) == []
    assert zombie_findings(named) == []  # a few passing ones: no alarm
    (finding,) = zombie_findings(named + more)
    assert (finding.id, finding.severity) == ("system.zombies:processes", Status.WARN)
    assert finding.title == f"{ZOMBIES_WARN} zombie processes"
    assert "? (pid 42), start.sh (pid 1)" in finding.detail
    assert finding.evidence[:2] == (
        "pid 10 sshd <defunct>, parent start.sh (pid 1)",
        "pid 11 Xtigervnc <defunct>, parent ? (pid 42)",
    )


# --- the container's memory limit, from fabricated cgroup trees ----------------------------


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_cgroup_v2_limit_from_our_own_cgroup(tmp_path: Path) -> None:
    write(tmp_path / "self-cgroup", "0::/docker/abc\n")
    ours = tmp_path / "cg" / "docker" / "abc"
    write(ours / "memory.max", f"{512 * MiB}\n")
    write(ours / "memory.current", f"{400 * MiB}\n")
    write(ours / "memory.stat", f"anon 1\ninactive_file {100 * MiB}\nactive_file 5\n")
    write(tmp_path / "cg" / "memory.max", "max\n")  # a parent without a limit
    limit = cgroup_memory(str(tmp_path / "cg"), str(tmp_path / "self-cgroup"))
    # used = 400 - 100 (reclaimable cache) = 300 MiB; available 212 MiB
    assert limit == (512 * MiB, 212 * MiB)


def test_cgroup_v2_without_a_limit(tmp_path: Path) -> None:
    write(tmp_path / "self-cgroup", "0::/\n")
    write(tmp_path / "cg" / "memory.max", "max\n")
    write(tmp_path / "cg" / "memory.current", "12345\n")
    assert cgroup_memory(str(tmp_path / "cg"), str(tmp_path / "self-cgroup")) is None


def test_cgroup_v1_mounted_at_our_own_cgroup(tmp_path: Path) -> None:
    # Docker without a cgroup namespace: /proc/self/cgroup names a path that the private
    # mount does not have; the mount's root is our cgroup.
    write(tmp_path / "self-cgroup", "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n")
    mem = tmp_path / "cg" / "memory"
    write(mem / "memory.limit_in_bytes", f"{256 * MiB}\n")
    write(mem / "memory.usage_in_bytes", f"{250 * MiB}\n")
    write(mem / "memory.stat", f"cache 1\ntotal_inactive_file {10 * MiB}\n")
    limit = cgroup_memory(str(tmp_path / "cg"), str(tmp_path / "self-cgroup"))
    assert limit == (256 * MiB, 16 * MiB)
    (finding,) = memory_findings(*limit, SystemConfig(), scope="container")
    assert (finding.id, finding.severity) == ("system.memory-pressure:container", Status.WARN)


def test_cgroup_v1_unlimited_and_absent(tmp_path: Path) -> None:
    write(tmp_path / "self-cgroup", "4:memory:/\n")
    mem = tmp_path / "cg" / "memory"
    write(mem / "memory.limit_in_bytes", "9223372036854771712\n")
    write(mem / "memory.usage_in_bytes", "1000\n")
    assert cgroup_memory(str(tmp_path / "cg"), str(tmp_path / "self-cgroup")) is None
    assert cgroup_memory(str(tmp_path / "nothing"), str(tmp_path / "nothing")) is None


def test_busy_percent_counts_busy_over_total_without_guest_time() -> None:
    before = psutil.cpu_times()
    fields = before._fields
    assert busy_percent(before, before) == 0.0
    # 300 more ticks of user time and 100 of idle: 75 % busy.
    after = before._replace(user=before.user + 300, idle=before.idle + 100)
    assert busy_percent(before, after) == 75.0
    if "guest" in fields:
        # A guest's 50 ticks are inside user time already: counted once, 350 of 450.
        guest = after._replace(user=after.user + 50, guest=after.guest + 50)
        assert busy_percent(before, guest) == 77.8


def test_busy_percent_leaves_out_our_own_cpu_time() -> None:
    """Within a run, most of the sample is the run's own start-up: on an idle 2-core box a
    run busy on one core read as 50 % busy. Its own CPU seconds are taken out."""
    before = psutil.cpu_times()
    # 2 s of the box's time: 1.2 s busy, of which 1.0 s was ours.
    after = before._replace(user=before.user + 1.2, idle=before.idle + 0.8)
    assert busy_percent(before, after) == 60.0
    assert busy_percent(before, after, excluded=1.0) == 10.0
    assert busy_percent(before, after, excluded=5.0) == 0.0  # never below nothing


def test_a_run_reads_the_cpu_without_counting_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from healthcheck import processes
    from healthcheck.collectors.system import gather
    from healthcheck.config import Config

    with processes.shared_scan():
        started = processes.run_started()
        assert started is not None and started.box is not None
        # What the box did meanwhile: everything busy was ours.
        ours = started.own + 0.4
        monkeypatch.setattr(gather, "own_cpu_seconds", lambda: ours)
        monkeypatch.setattr(
            gather,
            "cpu_times",
            lambda: started.box._replace(  # type: ignore[union-attr]
                user=started.box.user + 0.4,  # type: ignore[union-attr]
                idle=started.box.idle + 1.6,  # type: ignore[union-attr]
            ),
        )
        monkeypatch.setattr(gather.time, "sleep", lambda seconds: None)
        readings = gather.gather(Config())
    assert readings.volatile["cpu_percent"] == 0.0
