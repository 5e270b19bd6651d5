"""Start-up and per-run savings that must not change what a run produces: the report redacted
once, the one-block decode of plain log tails, the one-process health check of the history."""

from __future__ import annotations

import os
import random
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from healthcheck import logtail
from healthcheck.history import History
from healthcheck.model import Finding, Section, Status
from healthcheck.output import Rendering
from healthcheck.redact import Redactor
from healthcheck.report import Report


def _report() -> Report:
    finding = Finding(
        collector="demo",
        rule="error",
        subject="/logs/app.log",
        severity=Status.WARN,
        title="Errors in /logs/app.log",
        detail="password=hunter2-not-real in the log",
    )
    section = Section.from_findings("demo", {"files": ["/logs/app.log"]}, [finding])
    return Report.build([section], host="box", now=datetime(2026, 11, 28, tzinfo=timezone.utc))


class CountingRedactor(Redactor):
    walks = 0

    def obj(self, value):  # type: ignore[no-untyped-def]
        if isinstance(value, dict) and "schema" in value:
            CountingRedactor.walks += 1  # a walk of the whole report
        return super().obj(value)


def test_both_renderers_and_the_message_share_one_redaction() -> None:
    CountingRedactor.walks = 0
    rendering = Rendering(_report(), CountingRedactor())
    markdown, data = rendering.text("markdown"), rendering.text("json")
    assert rendering.data["host"] == "box"
    assert CountingRedactor.walks == 1
    assert "hunter2-not-real" not in markdown + data


def test_a_finding_added_after_the_redaction_is_in_the_data() -> None:
    report = _report()
    rendering = Rendering(report, CountingRedactor())
    before = rendering.data
    report.add_findings(
        [
            Finding(
                collector="healthcheck",
                rule="late",
                subject="run",
                severity=Status.CRIT,
                title="Late",
            )
        ]
    )
    after = rendering.data
    assert after["findings"][0]["title"] == "Late"
    assert len(after["findings"]) == len(before["findings"]) + 1
    assert rendering.data is after  # made once more, then kept


def _lines_one_by_one(sample: list[bytes], max_line_bytes: int) -> tuple[str, ...]:
    cleaned = (logtail._clean_line(line, max_line_bytes, False)[0] for line in sample)
    return tuple(text for text in cleaned if text is not None)


def test_a_tail_decoded_as_one_block_equals_the_line_by_line_cleaning() -> None:
    # Plain lines take the one-block path; escapes, CR, NUL, controls, UTF-8 and long lines
    # the line-by-line one: both must give what cleaning each line gives.
    pieces = [b"ab", b" ", b"\t", b"\r", b"\x1b[31m", b"\x00", b"\xc3\xa9", b"\x7f", b"x" * 50]
    rng = random.Random(13)
    checked = 0
    for _ in range(3000):
        lines = [
            b"".join(
                rng.choice(pieces) if rng.random() < 0.05 else b"ab"
                for _ in range(rng.randint(0, 30))
            )
            for _ in range(rng.randint(1, 8))
        ]
        data = b"\n".join(lines) + b"\n"
        tail = logtail._parse("x.log", data, 0, len(data), 0.0, len(data), 100, 40)
        if not tail.binary:
            assert tail.lines == _lines_one_by_one(lines, 40), lines
            checked += 1
    assert checked > 2000


def test_a_plain_tail_reads_as_its_lines(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"".join(b"12:00:%02d INFO line %d\n" % (n % 60, n) for n in range(100)))
    tail = logtail.read_tail(log, 3)
    assert tail.lines == ("12:00:37 INFO line 97", "12:00:38 INFO line 98", "12:00:39 INFO line 99")
    assert tail.truncated_lines == 0


def _git(ws: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ws), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    _git(ws, "init", "-q")
    (ws / "a.md").write_text("a\n")
    _git(ws, "add", "a.md")
    _git(ws, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "a")
    return ws


def test_a_healthy_or_unborn_history_has_no_fault(committed: Path, tmp_path: Path) -> None:
    assert History.open(committed, Redactor()).fault() is None
    unborn = tmp_path / "unborn"
    unborn.mkdir()
    _git(unborn, "init", "-q")
    assert History.open(unborn, Redactor()).fault() is None


@pytest.mark.parametrize("lost", ["HEAD", "HEAD^{tree}"])
def test_a_lost_commit_or_tree_is_a_fault_naming_the_commit(committed: Path, lost: str) -> None:
    head = _git(committed, "rev-parse", "HEAD")
    sha = _git(committed, "rev-parse", lost)
    (committed / ".git" / "objects" / sha[:2] / sha[2:]).unlink()
    fault = History.open(committed, Redactor()).fault()
    assert fault is not None
    assert f"is missing objects: HEAD's commit {head[:12]} " in str(fault)


def test_a_config_read_back_from_the_cache_is_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthcheck.config import ConfigError, load_config

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "hc.toml"
    path.write_text('[paths]\nworkspace = "/srv/ws"\n[logs]\ndirs = ["/a", "/b"]\ntail_lines = 7\n')
    first, second = load_config(path), load_config(path)  # parsed, then read back
    assert list((tmp_path / "cache" / "healthcheck").glob("config-toml-*"))
    assert first == second
    assert (second.paths.workspace, second.logs.dirs, second.logs.tail_lines) == (
        "/srv/ws",
        ["/a", "/b"],
        7,
    )
    path.write_text("[logs]\ntail_lines = 'seven'\n")  # validated afresh, cached or not
    for _ in range(2):
        with pytest.raises(ConfigError, match="tail_lines"):
            load_config(path)
    path.write_text("[paths\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(path)


def test_the_user_cache_keeps_a_few_files_a_name_not_one_per_input_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from healthcheck import cache

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cache.store("other-name", cache.digest(b"kept"), "other")
    keys = [cache.digest(f"edit {n}".encode()) for n in range(cache.KEEP_PER_NAME + 4)]
    for n, key in enumerate(keys):
        cache.store("config-toml", key, n)
        path = next((tmp_path / "cache" / "healthcheck").glob(f"config-toml-*-{key[:16]}.*"))
        os.utime(path, ns=(n * 10**9, n * 10**9))  # one second apart, oldest first
    folder = tmp_path / "cache" / "healthcheck"
    assert len(list(folder.glob("config-toml-*"))) == cache.KEEP_PER_NAME
    assert cache.load("config-toml", keys[-1]) == len(keys) - 1  # the newest stay
    assert cache.load("config-toml", keys[0]) is None  # the oldest went
    assert cache.load("other-name", cache.digest(b"kept")) == "other"  # other names untouched


# Run in a child: a real `healthcheck run` (docs refreshed, committed), then, at its exit,
# every dataclass that the healthcheck modules it imported define.
_DATACLASSES_OF_A_RUN = """
import dataclasses, os, sys
real_exit = os._exit
def report_then_exit(code):
    for name, module in sorted(sys.modules.items()):
        if name.split(".")[0] == "healthcheck":
            for value in list(vars(module).values()):
                if (
                    isinstance(value, type)
                    and dataclasses.is_dataclass(value)
                    and value.__module__ == name
                ):
                    # The methods a dataclass compiles besides __init__, if it did.
                    own = sorted({"__eq__", "__repr__"} & set(vars(value)))
                    print(f"{name}.{value.__qualname__}", *own)
    sys.stdout.flush()
    real_exit(code)
os._exit = report_then_exit
from healthcheck.cli import main
sys.argv = ["healthcheck", "run", "--workspace", sys.argv[1], "-q"]
main()
"""


def test_a_run_creates_no_dataclass_but_the_config_tables(tmp_path: Path) -> None:
    """Making a dataclass costs about half a millisecond at import (its methods are compiled
    from source), and a run imported some seventy of them: about 30 ms of a 320 ms run. Records
    on a run's path are NamedTuples or plain classes with __slots__; the config tables stay
    dataclasses, because their fields are what the loader checks a config against, but
    with only their __init__ compiled."""
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _DATACLASSES_OF_A_RUN, str(tmp_path / "ws")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)},
    )
    assert done.returncode in (0, 1), done.stderr
    made = [line.split() for line in done.stdout.splitlines()]
    assert any(name.startswith("healthcheck.config.") for name, *_ in made), done.stdout  # looks
    assert [name for name, *_ in made if not name.startswith("healthcheck.config.")] == []
    # Nor do the tables compile an __eq__ and a __repr__ each: config.Table has them once.
    assert [line for line in made if line[1:]] == []


_GC_AT_EXIT = """
import atexit, gc, sys
atexit.register(lambda: print("collector on at exit:", gc.isenabled()))
from healthcheck.cli import main
sys.argv = ["healthcheck", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(("command", "on"), [("run", False), ("diff", True)])
def test_the_collector_stays_off_after_a_one_shot_command_that_ends_the_process(
    tmp_path: Path, command: str, on: bool
) -> None:
    """Turning the collector back on after a run collected every object the run made, just
    before the process dropped them all; a command that is not one-shot keeps it on."""
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _GC_AT_EXIT, command, "--workspace", str(tmp_path / "ws"), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)},
    )
    assert f"collector on at exit: {on}" in done.stdout, done.stderr


def test_in_a_process_that_goes_on_the_collector_is_on_again_after_a_run(tmp_path: Path) -> None:
    import gc

    from click.testing import CliRunner

    from healthcheck.cli import cli

    assert gc.isenabled()
    result = CliRunner().invoke(cli, ["run", "--workspace", str(tmp_path / "ws"), "-q"])
    assert result.exit_code in (0, 1), result.output
    assert gc.isenabled()
