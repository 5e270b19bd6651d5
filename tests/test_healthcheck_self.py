"""The `healthcheck` collector: previous run from real JSON files, the real crontab, and cron."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from healthcheck.cli import cli
from healthcheck.collectors.healthcheck import (
    HealthcheckCollector,
    assess,
    cron_state,
    previous_run,
)
from healthcheck.config import load_config

from support import Box

NOW = datetime(2025, 1, 6, 12, 0, tzinfo=timezone.utc)
OURS = "0 */6 * * * /x/healthcheck run -q >> /logs/healthcheck.log 2>&1 # healthcheck-managed"
RUNNING = {"name": "cron", "pid": 4242}  # a daemon, as cron_daemon() reports one


def write_report(path: Path, age: timedelta, status: str = "warn") -> Path:
    """A JSON report as `healthcheck run` writes it, `age` before NOW."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = (NOW - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    path.write_text(
        json.dumps({"schema": "healthcheck/report/v1", "generated_at": stamp, "status": status})
    )
    return path


def set_crontab(user: str, text: str) -> None:
    subprocess.run(["crontab", "-u", user, "-"], input=text, text=True, check=True)


def rules(findings: list[Any]) -> list[str]:
    return [f.rule for f in findings]


def test_first_run_ever_is_no_problem(tmp_path: Path) -> None:
    previous = previous_run(tmp_path / "system_status.json", NOW)
    assert previous == {
        "path": str(tmp_path / "system_status.json"),
        "found": False,
        "generated_at": None,
        "status": None,
        "error": None,
        "age_s": None,
    }
    cron = {"user": "root", "crontab": True, "entry": {"enabled": True}, "interval_h": 6.0}
    assert assess(previous, {**cron, "error": None, "daemon": RUNNING}) == []


def test_stale_after_twice_the_installed_schedule(tmp_path: Path, cron_user: str) -> None:
    report = tmp_path / "system_status.json"
    set_crontab(cron_user, "# mine\n" + OURS.replace("*/6", "*/1") + "\n")
    cron = {**cron_state(cron_user), "daemon": RUNNING}  # as if cron ran (it is tested apart)
    assert cron["entry"]["schedule"] == "0 */1 * * *"
    assert cron["interval_h"] == 1.0
    write_report(report, timedelta(hours=1, minutes=59))
    assert assess(previous_run(report, NOW), cron) == []
    write_report(report, timedelta(hours=2, minutes=1), status="crit")
    previous = previous_run(report, NOW)
    assert (previous["status"], previous["age_s"]) == ("crit", 7260)
    [stale] = assess(previous, cron)
    assert (stale.id, stale.severity.value) == ("healthcheck.stale", "warn")
    assert stale.title == "The last scheduled report is overdue"
    assert stale.detail == (
        "cron runs and the entry is installed (0 */1 * * *), yet the last report is 2.0 h old "
        "(2025-01-06T09:59:00Z), more than twice the schedule's interval (1 h): "
        "the scheduled run fails."
    )


def test_default_schedule_is_stale_after_12_hours(tmp_path: Path, cron_user: str) -> None:
    report = tmp_path / "system_status.json"
    set_crontab(cron_user, OURS + "\n")
    cron = {**cron_state(cron_user), "daemon": RUNNING}
    assert cron["interval_h"] == 6.0
    write_report(report, timedelta(hours=11))
    assert assess(previous_run(report, NOW), cron) == []
    write_report(report, timedelta(hours=13))
    assert rules(assess(previous_run(report, NOW), cron)) == ["stale"]


def test_missing_or_commented_entry_explains_the_old_report(tmp_path: Path, cron_user: str) -> None:
    report = write_report(tmp_path / "system_status.json", timedelta(days=3))
    set_crontab(cron_user, "30 2 * * * /bin/true\n")
    cron = {**cron_state(cron_user), "daemon": RUNNING}
    assert (cron["entry"], cron["interval_h"]) == (None, 6.0)
    [missing] = assess(previous_run(report, NOW), cron)
    assert (missing.id, missing.severity.value) == ("healthcheck.not-scheduled", "warn")
    assert missing.title == "healthcheck is not scheduled: its cron entry is missing"
    assert missing.detail == (
        f"The crontab of {cron_user} has no active healthcheck entry, so reports are only "
        "written when someone runs `healthcheck run`. The last report is 3.0 days old "
        "(2025-01-03T12:00:00Z)."
    )
    assert missing.hint == "healthcheck cron install"
    set_crontab(cron_user, "# " + OURS + "\n")
    [commented] = assess(previous_run(report, NOW), {**cron_state(cron_user), "daemon": RUNNING})
    assert commented.title == "healthcheck is not scheduled: its cron entry is commented out"


def test_no_cron_daemon_is_its_own_finding(tmp_path: Path, cron_user: str) -> None:
    report = write_report(tmp_path / "system_status.json", timedelta(hours=20))
    set_crontab(cron_user, OURS + "\n")
    cron = {**cron_state(cron_user), "daemon": None}
    [finding] = assess(previous_run(report, NOW), cron)
    assert (finding.id, finding.severity.value) == ("healthcheck.cron-not-running", "warn")
    assert finding.detail == (
        "Nothing fires crontab entries: containers have no init to start cron. "
        "The last report is 20.0 h old (2025-01-05T16:00:00Z)."
    )
    assert "command=cron -f" in finding.hint


def test_an_unreadable_previous_report_is_unknown(tmp_path: Path) -> None:
    report = tmp_path / "system_status.json"
    report.write_text('{"generated_at": "yesterday"')
    previous = previous_run(report, NOW)
    assert previous["found"] is True
    cron = {"user": "root", "crontab": True, "entry": {"enabled": True}, "interval_h": 6.0}
    [finding] = assess(previous, {**cron, "error": None, "daemon": RUNNING})
    assert (finding.id, finding.severity.value) == ("healthcheck.previous-unreadable", "unknown")
    assert finding.detail.startswith(f"{report}: not a healthcheck JSON report (JSONDecodeError")


@pytest.mark.parametrize(
    ("stamp", "error"),
    [
        ('"2025-01-06T12:00:00"', "ValueError: time data '2025-01-06T12:00:00' does not match"),
        ('"2025-01-06 12:00:00Z"', "ValueError: time data '2025-01-06 12:00:00Z' does not match"),
        ("1736164800", "TypeError: generated_at must be a string, not int"),
    ],
)
def test_a_previous_report_time_must_be_the_reports_own_format(
    tmp_path: Path, stamp: str, error: str
) -> None:
    report = tmp_path / "system_status.json"
    report.write_text(f'{{"generated_at": {stamp}, "status": "ok"}}')
    previous = previous_run(report, NOW)
    assert previous["age_s"] is None
    assert previous["error"].startswith(f"not a healthcheck JSON report ({error}")


def test_a_previous_report_time_is_read_as_utc(tmp_path: Path) -> None:
    report = tmp_path / "system_status.json"
    stamp = (NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    report.write_text(json.dumps({"generated_at": stamp, "status": "warn"}))
    previous = previous_run(report, NOW)
    assert (previous["age_s"], previous["status"], previous["error"]) == (3 * 3600, "warn", None)


def test_without_the_crontab_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    cron = cron_state("root")
    assert cron["crontab"] is False
    previous = previous_run(tmp_path / "none.json", NOW)
    assert [(f.rule, f.title) for f in assess(previous, cron)] == [
        ("not-scheduled", "healthcheck is not scheduled: cron is not installed")
    ]


def test_second_run_reads_the_first_ones_json(box: Box) -> None:
    args = ["run", "--config", str(box.only("healthcheck")), "--json"]
    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert first.exit_code == 0
    section = json.loads(first.stdout)["sections"]["healthcheck"]
    assert section["data"]["previous"]["found"] is False
    assert section["volatile"]["previous_generated_at"] is None
    second = CliRunner().invoke(cli, args, catch_exceptions=False)
    report = json.loads(second.stdout)
    section = report["sections"]["healthcheck"]
    assert section["data"]["previous"] == {
        "path": str(box.workspace / "system_status.json"),
        "found": True,
        "status": json.loads(first.stdout)["status"],
        "error": None,
    }
    assert section["volatile"]["previous_generated_at"] == json.loads(first.stdout)["generated_at"]
    text = (box.workspace / "system_status.md").read_text()
    assert f"- Previous run: {section['volatile']['previous_generated_at']}, status " in text


def test_collect_reads_the_crontab_once(
    box: Box, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector's cost is one `crontab -l` (the real one, counted through a wrapper on
    PATH) and a look at the process table; its speed is the benchmark's business."""
    import shutil

    real = shutil.which("crontab")
    assert real is not None
    calls = tmp_path / "crontab-calls"
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "crontab"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\nexec "{real}" "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper_dir}:{os.environ['PATH']}")
    section = HealthcheckCollector().collect(load_config(box.config))
    assert section.name == "healthcheck"
    assert section.data["cron"]["crontab"] is not None  # it did read one (or saw none)
    (call,) = calls.read_text().splitlines()  # once, whatever the user option
    assert call.split()[-1] == "-l"
