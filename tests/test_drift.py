"""`healthcheck diff` on real git histories: crafted reports, and two real runs around a
program stopped under a real supervisord."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from healthcheck.cli import cli
from healthcheck.drift import Run, compare, flatten, render_text
from healthcheck.history import History
from healthcheck.redact import Redactor

from supervisord_env import sleeper, start_supervisord
from support import BUILTIN_NAMES


def report(generated_at: str, **changes: Any) -> dict[str, Any]:
    """A recorded run (the JSON report's shape) of a box; `changes` replace sections' data."""
    data: dict[str, Any] = {
        "schema": "healthcheck/report/v1",
        "generated_at": generated_at,
        "host": "box",
        "status": "warn",
        "counts": {"crit": 0, "warn": 1, "unknown": 0, "ok": 0},
        "findings": [
            {
                "id": "ports.not-listening:ssh:22",
                "severity": "warn",
                "title": "Nothing listens on port 22 (ssh)",
            }
        ],
        "sections": {
            "supervisor": {
                "status": "ok",
                "data": {
                    "state": "RUNNING",
                    "programs": [
                        {"fullname": "jupyter", "name": "jupyter", "state": "RUNNING", "pid": 10},
                        {"fullname": "sshd", "name": "sshd", "state": "FATAL", "pid": None},
                        {"fullname": "worker", "name": "worker", "state": "RUNNING", "pid": 20},
                    ],
                },
                "volatile": {"uptime_s": {"jupyter": 5}},
            },
            "ports": {
                "status": "warn",
                "data": {
                    "ports": [
                        {"service": "jupyter", "port": 8080, "listening": True, "processes": []},
                        {"service": "ssh", "port": 22, "listening": False, "processes": []},
                    ],
                    "other_listeners": [{"port": 2024, "addresses": ["0.0.0.0:2024"]}],
                },
            },
            "env": {
                "status": "ok",
                "data": {
                    "count": 3,
                    "variables": {
                        "CUDA_VERSION": "value-old-12.1",
                        "VNC_PW": "[redacted]",
                        "OLD_VAR": "value-old-var",
                    },
                },
            },
            "provisioning": {
                "status": "ok",
                "data": {
                    "scripts": [
                        {"path": "/root/provisioning_script.sh", "present": True, "sha256": "aa"}
                    ]
                },
            },
            "gpu": {
                "status": "ok",
                "data": {
                    "driver_version": "550.54",
                    "gpus": [{"index": 0, "name": "H100", "memory_total": 80}],
                },
            },
            "system": {
                "status": "ok",
                "data": {"kernel": "6.1.0", "os": "Debian 12"},
                "volatile": {"uptime_s": 100},
            },
        },
    }
    for name, section_data in changes.items():
        data["sections"][name]["data"] = section_data
    return data


def record(history: History, data: dict[str, Any]) -> str:
    path = history.worktree / "system_status.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    outcome = history.commit([path], f"healthcheck: box {data['status'].upper()}")
    assert outcome.sha
    return outcome.sha


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return tmp_path / "ws"


@pytest.fixture
def history(ws: Path) -> History:
    return History.open(ws, Redactor())


def diff(ws: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["diff", "--workspace", str(ws), *args], catch_exceptions=False)


def drifted(old: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(old)
    new["generated_at"] = "2025-05-01T18:00:00Z"
    new["status"] = "crit"
    new["findings"] = [
        {"id": "supervisor.stopped:jupyter", "severity": "crit", "title": "jupyter is STOPPED"}
    ]
    s = new["sections"]
    s["supervisor"]["data"]["programs"] = [
        {"fullname": "jupyter", "name": "jupyter", "state": "STOPPED", "pid": None},
        {"fullname": "newapp", "name": "newapp", "state": "RUNNING", "pid": 30},
        {"fullname": "sshd", "name": "sshd", "state": "FATAL", "pid": None},
        {"fullname": "worker", "name": "worker", "state": "RUNNING", "pid": 21},
    ]
    s["supervisor"]["volatile"] = {"uptime_s": {"jupyter": 9999}}
    s["ports"]["data"]["ports"][0]["listening"] = False
    s["ports"]["data"]["other_listeners"].append({"port": 7000, "addresses": ["0.0.0.0:7000"]})
    s["env"]["data"]["variables"] = {
        "CUDA_VERSION": "value-new-12.4",
        "VNC_PW": "[redacted]",
        "NEW_VAR": "value-new-var",
    }
    s["env"]["data"]["count"] = 3
    s["provisioning"]["data"]["scripts"][0].update(present=False, sha256=None)
    s["gpu"]["data"]["driver_version"] = "555.42"
    s["gpu"]["data"]["gpus"][0]["memory_total"] = 81
    s["system"]["data"]["kernel"] = "6.2.0"
    s["system"]["volatile"] = {"uptime_s": 5}
    return new


def test_diff_of_the_last_two_runs_in_text(ws: Path, history: History) -> None:
    old = report("2025-05-01T12:00:00Z")
    first = record(history, old)
    second = record(history, drifted(old))
    result = diff(ws)
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout == (
        f"Drift from {first[:7]} (2025-05-01T12:00:00Z, warn) to {second[:7]} "
        "(2025-05-01T18:00:00Z, crit)\n"
        "\n"
        "Overall:\n"
        "  WARN → CRIT\n"
        "\n"
        "Programs:\n"
        "  jupyter: RUNNING → STOPPED\n"
        "  newapp: new, RUNNING\n"
        "  worker: restarted (RUNNING, pid 20 → 21)\n"
        "\n"
        "Findings opened:\n"
        "  + CRIT supervisor.stopped:jupyter: jupyter is STOPPED\n"
        "\n"
        "Findings resolved:\n"
        "  - WARN ports.not-listening:ssh:22: Nothing listens on port 22 (ssh)\n"
        "\n"
        "Ports:\n"
        "  jupyter (8080): listening → not listening\n"
        "  port 7000 (unexpected listener): opened\n"
        "\n"
        "GPU and driver:\n"
        "  driver_version: 550.54 → 555.42\n"
        "  gpus[0].memory_total: 80 → 81\n"
        "\n"
        "Provisioning scripts:\n"
        "  /root/provisioning_script.sh: present → missing\n"
        "\n"
        "Environment variables (names only):\n"
        "  + NEW_VAR\n"
        "  - OLD_VAR\n"
        "  ~ CUDA_VERSION (value changed)\n"
        "\n"
        "Section system:\n"
        "  kernel: 6.1.0 → 6.2.0\n"
    )
    assert "value-" not in result.stdout


def test_diff_json_for_machines(ws: Path, history: History) -> None:
    old = report("2025-05-01T12:00:00Z")
    first = record(history, old)
    second = record(history, drifted(old))
    result = diff(ws, "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["old"] == {
        "commit": first,
        "generated_at": "2025-05-01T12:00:00Z",
        "status": "warn",
    }
    assert data["new"]["commit"] == second
    assert data["drift"] is True
    assert data["status"] == ["warn", "crit"]
    assert data["programs"][0] == {"name": "jupyter", "old": "RUNNING", "new": "STOPPED"}
    assert [f["id"] for f in data["findings"]["opened"]] == ["supervisor.stopped:jupyter"]
    assert [f["id"] for f in data["findings"]["resolved"]] == ["ports.not-listening:ssh:22"]
    assert data["env"] == {
        "added": ["NEW_VAR"],
        "removed": ["OLD_VAR"],
        "changed": ["CUDA_VERSION"],
    }
    assert data["gpu"][0] == {"what": "driver_version", "old": "550.54", "new": "555.42"}
    assert data["sections"] == {"system": [{"what": "kernel", "old": "6.1.0", "new": "6.2.0"}]}
    assert "value-" not in result.stdout


def test_no_drift_when_only_volatile_figures_moved(ws: Path, history: History) -> None:
    old = report("2025-05-01T12:00:00Z")
    new = copy.deepcopy(old)
    new["generated_at"] = "2025-05-01T18:00:00Z"
    new["sections"]["system"]["volatile"]["uptime_s"] = 21700
    new["sections"]["system"]["duration_ms"] = 999
    a, b = record(history, old), record(history, new)
    result = diff(ws)
    assert (result.exit_code, result.stdout) == (
        0,
        f"No drift from {a[:7]} (2025-05-01T12:00:00Z, warn) to {b[:7]} "
        "(2025-05-01T18:00:00Z, warn).\n",
    )
    assert json.loads(diff(ws, "--json").stdout)["drift"] is False


def test_refs_pick_the_runs(ws: Path, history: History) -> None:
    base = report("2025-05-01T00:00:00Z")
    shas = [record(history, base)]
    for hour, kernel in ((6, "6.2"), (12, "6.3"), (18, "6.4")):
        nxt = copy.deepcopy(base)
        nxt["generated_at"] = f"2025-05-01T{hour:02d}:00:00Z"
        nxt["sections"]["system"]["data"]["kernel"] = kernel
        shas.append(record(history, nxt))
    # OLD alone compares with the last run; HEAD~N and commit ids both work
    assert "kernel: 6.1.0 → 6.4\n" in diff(ws, "HEAD~3").stdout
    assert "kernel: 6.2 → 6.3\n" in diff(ws, "HEAD~2", shas[2][:10]).stdout
    assert "kernel: 6.3 → 6.4\n" in diff(ws).stdout
    # a later commit of something else (the improvement log) does not hide the runs
    log = ws / "improvement_log.md"
    log.write_text("# Improvement log\n")
    history.commit([log], "healthcheck log: IMP-0001 added")
    assert "kernel: 6.3 → 6.4\n" in diff(ws).stdout


def test_bad_refs_and_too_few_runs_are_usage_errors(ws: Path, history: History) -> None:
    result = diff(ws)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"healthcheck: diff: need two recorded runs to compare; {ws} has 0 commits of "
        "system_status.json (`healthcheck run` records one)\n"
    )
    record(history, report("2025-05-01T12:00:00Z"))
    assert diff(ws).stderr == (
        f"healthcheck: diff: need two recorded runs to compare; {ws} has 1 commit of "
        "system_status.json (`healthcheck run` records one)\n"
    )
    result = diff(ws, "nosuchref")
    assert (result.exit_code, result.stderr) == (
        2,
        f"healthcheck: diff: unknown revision 'nosuchref' in {ws}\n",
    )
    assert diff(ws, "HEAD~5").stderr == f"healthcheck: diff: unknown revision 'HEAD~5' in {ws}\n"
    elsewhere = ws.parent / "not-a-repo"
    elsewhere.mkdir()
    result = diff(elsewhere)
    assert (result.exit_code, result.stderr) == (
        2,
        f"healthcheck: diff: {elsewhere} is not a git repository; no runs are recorded there\n",
    )


def test_a_commit_without_a_report_is_named(ws: Path, history: History) -> None:
    notes = ws / "notes.md"
    notes.parent.mkdir(parents=True, exist_ok=True)
    notes.write_text("x\n")
    first = history.commit([notes], "operator notes").sha
    assert first
    record(history, report("2025-05-01T12:00:00Z"))
    result = diff(ws, first)
    assert (result.exit_code, result.stderr) == (
        2,
        f"healthcheck: diff: commit {first[:7]} ({first}) has no system_status.json\n",
    )


def test_flatten_keys_lists_of_records_by_name_not_position() -> None:
    a = flatten({"disks": [{"mountpoint": "/", "total": 1}, {"mountpoint": "/data", "total": 2}]})
    b = flatten({"disks": [{"mountpoint": "/data", "total": 2}, {"mountpoint": "/", "total": 1}]})
    assert a == b == {"disks[/].total": 1, "disks[/data].total": 2}
    assert flatten({"x": [1, 2], "y": {}}) == {"x": [1, 2], "y": {}}


def test_diff_after_a_program_is_stopped_between_two_real_runs(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with start_supervisord(tmp_path / "sv", {"jupyter": sleeper(), "worker": sleeper()}) as sv:
        sv.wait_for_states({"jupyter": "RUNNING", "worker": "RUNNING"})
        config = tmp_path / "hc.toml"
        only_supervisor = [name for name in BUILTIN_NAMES if name != "supervisor"]
        config.write_text(
            f'[paths]\nworkspace = "{ws}"\n{sv.toml()}\n[collectors]\n'
            f"disable = {json.dumps(only_supervisor)}\n"
        )
        args = ["run", "--config", str(config), "--no-docs"]
        assert CliRunner().invoke(cli, args).exit_code == 0
        sv.ctl("stop", "jupyter")
        sv.wait_for_states({"jupyter": "STOPPED"})
        second = CliRunner().invoke(cli, args)
        assert second.exit_code == 0, second.output
    result = CliRunner().invoke(cli, ["diff", "--config", str(config)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Drift from ")
    assert "Programs:" in lines and "  jupyter: RUNNING → STOPPED" in lines
    assert "worker" not in result.stdout  # still running, same pid: no drift
    assert any(line.startswith("  + ") and "jupyter" in line for line in lines)


def test_volatile_figures_are_packed_into_few_lines() -> None:
    from healthcheck.render import figure_lines

    figures = {
        "system": {
            "uptime_s": 5,
            "load": [0.1, 0.2, 0.3],
            "disks": [{"mountpoint": "/", "used": 1}, {"mountpoint": "/data", "used": 3 << 30}],
            "duration_ms": 7,
        },
        "supervisor": {"uptime_s": {"jupyter": 3, "sshd": 4}, "duration_ms": 1},
        "env": {"duration_ms": 0},
    }
    assert figure_lines(figures) == (
        "system: uptime_s=5 load=0.1,0.2,0.3\n"
        "system.disks: mountpoint=/ used=1B | mountpoint=/data used=3.0GiB\n"  # bytes, human
        "supervisor.uptime_s: jupyter=3 sshd=4\n"
        "duration_ms: system=7 supervisor=1 env=0"
    )


def test_a_record_that_came_or_went_is_one_line_not_one_per_field() -> None:
    def run(sha: str, files: list[dict[str, Any]]) -> Run:
        section = {"status": "ok", "data": {"files": files}}
        return Run(sha, {"status": "ok", "findings": [], "sections": {"logs": section}})

    kept = {"path": "/logs/a.log", "size": 10, "lines": ["x"]}
    gone = {"path": "/logs/b.log", "size": 5, "lines": ["y"], "error": None}
    text = render_text(compare(run("a" * 40, [kept, gone]), run("b" * 40, [kept])))
    assert "  files[/logs/b.log]: present → gone" in text.splitlines()
    assert "b.log].size" not in text and "none → none" not in text
    emptied = render_text(compare(run("a" * 40, [gone]), run("b" * 40, [])))
    assert [line for line in emptied.splitlines() if line.startswith("  files")] == [
        "  files[/logs/b.log]: present → gone"
    ]


def test_a_plugins_declaration_cannot_break_diff() -> None:
    """A plugin's key that the report or a built-in already uses, and a comparison that
    raises on the data, fall back to the field-by-field comparison under "sections"."""
    from healthcheck.tracking import DriftSpec, drift_specs

    def broken(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
        raise KeyError("rpm")

    class Fans:
        name = "fans"
        drift = DriftSpec(heading="Fans", key="programs", compare=broken, covers=("speeds",))

    class Pumps:
        name = "pumps"
        drift = DriftSpec(heading="Pumps", key="pumps", compare=broken, lines=lambda c: [c[9]])

    class Odd:
        name = "odd"
        drift = "Odd fans"  # not a DriftSpec

    specs = drift_specs([*_builtin_classes(), Fans(), Pumps(), Odd()])
    assert specs["fans"].key is None and "odd" not in specs

    def run(sha: str, speed: int) -> Run:
        sections = {
            name: {"status": "ok", "data": {"speeds": {"cpu": speed}}}
            for name in ("fans", "pumps", "odd")
        }
        return Run(sha, {"status": "ok", "findings": [], "sections": sections})

    drift = compare(run("a" * 40, 1200), run("b" * 40, 0), specs)
    change = [{"what": "speeds.cpu", "old": 1200, "new": 0}]
    assert drift.to_dict()["programs"] == [] and drift.to_dict()["pumps"] == change
    assert drift.sections == {"fans": change, "odd": change}
    assert render_text(drift).split("\n\n", 1)[1] == (
        "Pumps:\n  speeds.cpu: 1200 → 0\n\n"
        "Fans:\n  speeds.cpu: 1200 → 0\n\n"
        "Section odd:\n  speeds.cpu: 1200 → 0\n"
    )


def _builtin_classes() -> list[Any]:
    from healthcheck.collectors import BUILTIN_COLLECTORS

    return list(BUILTIN_COLLECTORS)
