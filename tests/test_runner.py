"""The runner isolates collectors; commands are killed with their process group."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from typing import ClassVar

import psutil
import pytest

from healthcheck import processes, runner
from healthcheck.commands import run_command
from healthcheck.config import Config, parse_config
from healthcheck.model import Finding, Section, Status
from healthcheck.processes import ProcessRow, current_scans, process_rows
from healthcheck.runner import run_collectors


class Meeting:
    """Collectors that only finish if all of them run at the same time."""

    timeout: ClassVar[float | None] = None
    description: ClassVar[str] = "waits for its peers"

    def __init__(self, name: str, barrier: threading.Barrier) -> None:
        self.name = name  # type: ignore[misc]
        self.barrier = barrier

    def collect(self, config: Config) -> Section:
        self.barrier.wait(timeout=5)
        return Section.from_findings(self.name, {"met": True}, [])


class Hangs:
    name: ClassVar[str] = "hangs"
    description: ClassVar[str] = "never returns in time"
    timeout: ClassVar[float | None] = 0.2

    def __init__(self) -> None:
        self.release = threading.Event()

    def collect(self, config: Config) -> Section:
        self.release.wait(30)
        return Section(name="hangs")


class Raises:
    name: ClassVar[str] = "raises"
    description: ClassVar[str] = "fails"
    timeout: ClassVar[float | None] = None

    def collect(self, config: Config) -> Section:
        raise RuntimeError("disk on fire")


class WrongType:
    name: ClassVar[str] = "wrongtype"
    description: ClassVar[str] = "returns a dict"
    timeout: ClassVar[float | None] = None

    def collect(self, config: Config) -> dict[str, str]:
        return {"not": "a section"}


class Finds:
    name: ClassVar[str] = "finds"
    description: ClassVar[str] = "one warning"
    timeout: ClassVar[float | None] = None

    def collect(self, config: Config) -> Section:
        finding = Finding("finds", "thing", "x", Status.WARN, "A thing")
        return Section.from_findings("finds", {"a": 1}, [finding])


def test_collectors_run_in_parallel() -> None:
    barrier = threading.Barrier(3)
    sections = run_collectors([Meeting(n, barrier) for n in "abc"], Config())
    assert [(s.name, s.status, s.data, s.error) for s in sections] == [
        ("a", Status.OK, {"met": True}, None),
        ("b", Status.OK, {"met": True}, None),
        ("c", Status.OK, {"met": True}, None),
    ]


def test_a_hang_a_raise_and_a_wrong_type_become_unknown_and_the_run_goes_on() -> None:
    hangs = Hangs()
    try:
        sections = run_collectors([hangs, Raises(), WrongType(), Finds()], Config())
    finally:
        hangs.release.set()
    by_name = {s.name: s for s in sections}
    assert [s.name for s in sections] == ["hangs", "raises", "wrongtype", "finds"]
    assert by_name["hangs"].status is Status.UNKNOWN
    assert by_name["hangs"].error is not None
    assert by_name["hangs"].error.startswith("timed out after 0.2s")
    assert by_name["raises"].status is Status.UNKNOWN
    assert by_name["raises"].error == "RuntimeError: disk on fire"
    assert [f.id for f in by_name["raises"].findings] == ["raises.collector-failed"]
    assert by_name["wrongtype"].error == "TypeError: collect() returned dict, not a Section"
    assert by_name["finds"].status is Status.WARN
    assert [f.id for f in by_name["finds"].findings] == ["finds.thing:x"]


def test_the_config_timeout_applies_to_collectors_without_their_own() -> None:
    class Slow(Hangs):
        name: ClassVar[str] = "slow"
        timeout: ClassVar[float | None] = None

    slow = Slow()
    try:
        (section,) = run_collectors([slow], parse_config({"collectors": {"timeout": 0.1}}))
    finally:
        slow.release.set()
    assert section.error is not None
    assert section.error.startswith("timed out after 0.1s")


def test_run_command_returns_output_and_status() -> None:
    result = run_command(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=5)
    assert (result.returncode, result.stdout, result.stderr, result.error) == (
        3,
        "out\n",
        "err\n",
        None,
    )
    assert not result.ok


def test_run_command_missing_binary_is_an_error_not_an_exception() -> None:
    result = run_command(["/nonexistent/supervisorctl", "status"], timeout=5)
    assert result.returncode is None
    assert result.error == "cannot run /nonexistent/supervisorctl: No such file or directory"


def test_run_command_kills_the_whole_process_group_on_timeout() -> None:
    result = run_command(["sh", "-c", "sleep 60 & echo $!; wait"], timeout=0.5)
    assert result.returncode is None
    assert result.error == "sh timed out after 0.5s and was killed"
    grandchild = int(result.stdout.split()[0])
    try:
        proc = psutil.Process(grandchild)
        proc.wait(timeout=5)  # killed: gone, or a zombie about to be reaped
        assert not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass


class ReadsProcesses:
    """Records the process table it was given, and which read it was."""

    description: ClassVar[str] = "reads the process table"
    timeout: ClassVar[float | None] = None
    seen: ClassVar[dict[str, list[ProcessRow]]] = {}

    def __init__(self, name: str) -> None:
        self.name = name

    def collect(self, config: Config) -> Section:
        ReadsProcesses.seen[self.name] = process_rows()
        return Section(self.name)


def test_collectors_of_one_run_share_one_process_table_read() -> None:
    ReadsProcesses.seen.clear()
    run_collectors([ReadsProcesses("a"), ReadsProcesses("b"), ReadsProcesses("c")], Config())
    tables = list(ReadsProcesses.seen.values())
    assert len(tables) == 3 and all(t is tables[0] for t in tables)
    assert os.getpid() in {row.pid for row in tables[0]}
    # The next run reads the box again.
    run_collectors([ReadsProcesses("a")], Config())
    assert ReadsProcesses.seen["a"] is not tables[0]


def test_outside_a_run_every_read_is_fresh() -> None:
    before = {row.pid for row in process_rows()}
    with subprocess.Popen(["sleep", "30"]) as child:
        try:
            rows = {row.pid: row for row in process_rows()}
        finally:
            child.kill()
    assert child.pid not in before
    assert rows[child.pid].name == "sleep" and rows[child.pid].cmdline == ("sleep", "30")


class FindsTableRead(ReadsProcesses):
    """Says whether the run's process table was read before its collect began."""

    facts: ClassVar[tuple[str, ...]] = ("processes",)
    read_before: ClassVar[dict[str, bool]] = {}

    def collect(self, config: Config) -> Section:
        scans = current_scans()
        FindsTableRead.read_before[self.name] = (
            scans is not None and scans.peek("processes") is not None
        )
        return super().collect(config)


class DeclaresNothing(FindsTableRead):
    facts: ClassVar[tuple[str, ...]] = ()


def test_a_declared_fact_is_read_before_the_collectors_start_and_only_then() -> None:
    """Read inside a collector's thread while the others compute, the process table's
    thousands of small reads each waited for the GIL; so the runner reads it first, when a
    collector says (`facts`) that it reads it, and not otherwise."""
    FindsTableRead.read_before.clear()
    run_collectors([FindsTableRead("declares")], Config())
    run_collectors([DeclaresNothing("silent")], Config())
    assert FindsTableRead.read_before == {"declares": True, "silent": False}


def test_a_read_ahead_that_hangs_holds_up_only_the_collectors_that_need_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stuck = threading.Event()
    monkeypatch.setattr(runner, "READ_AHEAD_WAIT", 0.2)
    monkeypatch.setattr(processes, "scan", lambda: stuck.wait(30) and [])  # a hung /proc read

    class TakesAWhile(Finds):
        def collect(self, config: Config) -> Section:
            time.sleep(0.3)
            return super().collect(config)

    started = time.monotonic()
    try:
        sections = run_collectors(
            [FindsTableRead("needs"), TakesAWhile()],
            parse_config({"collectors": {"timeout": 1.0}}),
        )
    finally:
        stuck.set()
    assert time.monotonic() - started < 3
    # The collector that reads no process table ran in its own time, not after the wait.
    assert [(s.name, s.status) for s in sections] == [
        ("needs", Status.UNKNOWN),
        ("finds", Status.WARN),
    ]
    assert sections[0].error is not None and sections[0].error.startswith("timed out after 1s")
