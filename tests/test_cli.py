"""The command line, end to end on a real (temporary) box: exact exit codes and output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import git
from click.testing import CliRunner

from healthcheck import __version__
from healthcheck.cli import cli

from support import Box

# The system collector reads this machine's real disks and memory, and display its real X
# server; tests that assert exact counts leave them out so that a nearly full CI disk or a
# display :1 or a supervisord (or a GPU) on this machine cannot change their answer.
# healthcheck reads this machine's crontab and cron daemon. (Through collectors.disable, not
# --skip: a run with --skip is partial and writes no main report.)
STEADY_COLLECTORS = ("env", "logs", "ports", "provisioning")
STEADY: list[str] = []


def invoke(*args: str) -> CliRunner:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_run_writes_both_reports_and_says_where(box: Box) -> None:
    box.only(*STEADY_COLLECTORS)
    result = invoke("run", "--config", str(box.config), *STEADY)
    md = box.workspace / "system_status.md"
    js = box.workspace / "system_status.json"
    assert result.exit_code == 0
    assert result.stdout == ""
    head = git.Repo(box.workspace).head.commit.hexsha[:7]
    assert result.stderr == (
        f"Status WARN: 0 crit, 3 warn, 0 unknown. Report: {md} (JSON: system_status.json)\n"
        f"Committed {head} in {box.workspace}.\n"
        f"  WARN    Docs file {box.workspace / 'docs_vast-ai-environment.md'} not found\n"
        f"  WARN    Nothing listens on port {box.closed_port} (ghost)\n"
        f"  WARN    Provisioning script {box.missing_script} is missing\n"
        "Since the last run: nothing to compare (no earlier report).\n"
    )
    report = json.loads(js.read_text())
    assert report["schema"] == "healthcheck/report/v1"
    assert report["status"] == "warn"
    assert sorted(report["sections"]) == ["env", "logs", "ports", "provisioning"]
    assert [f["id"] for f in report["findings"]] == [
        f"docs.missing:{box.workspace / 'docs_vast-ai-environment.md'}",  # no docs file here
        f"ports.not-listening:ghost:{box.closed_port}",
        f"provisioning.missing:{box.missing_script}",
    ]
    for finding in report["findings"]:
        assert set(finding) >= {"id", "severity", "title", "detail", "hint", "collector", "subject"}
    text = md.read_text()
    assert text.startswith("# System status: ")
    assert "**Overall: WARN** — 0 crit, 3 warn, 0 unknown; 4 collectors." in text
    # no temporary files left beside the reports (the lock file stays, empty, git-excluded)
    assert sorted(p.name for p in box.workspace.iterdir()) == [
        ".git",
        ".healthcheck.lock",
        "system_status.json",
        "system_status.md",
    ]


def test_config_before_the_command_and_quiet(box: Box) -> None:
    box.only(*STEADY_COLLECTORS)
    result = invoke("--config", str(box.config), "-q", "run", *STEADY)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    assert (box.workspace / "system_status.md").is_file()


def test_json_flag_prints_the_json_report(box: Box) -> None:
    box.only("provisioning")
    result = invoke("run", "--config", str(box.config), "--json")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed == json.loads((box.workspace / "system_status.json").read_text())
    assert list(printed["sections"]) == ["provisioning"]


def test_fail_on(box: Box) -> None:
    box.only(*STEADY_COLLECTORS)
    assert invoke("run", "--config", str(box.config), *STEADY, "--fail-on", "warn").exit_code == 1
    assert invoke("run", "--config", str(box.config), *STEADY, "--fail-on", "crit").exit_code == 0
    bad = CliRunner().invoke(cli, ["run", "--config", str(box.config), "--fail-on", "info"])
    assert bad.exit_code == 2
    assert "Invalid value for '--fail-on'" in bad.stderr


def test_unknown_collector_is_a_usage_error(box: Box) -> None:
    result = invoke("run", "--config", str(box.config), "--only", "ports,gpux")
    assert result.exit_code == 2
    assert result.stderr == (
        "healthcheck: --only: unknown collector 'gpux' "
        "(known: display, env, gpu, healthcheck, logs, ports, provisioning, supervisor, system)\n"
    )
    assert not (box.workspace / "system_status.md").exists()


def test_output_elsewhere_and_workspace_override(box: Box, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "status.md"
    out.parent.mkdir()
    box.only("env")
    result = invoke("run", "--config", str(box.config), "--output", str(out))
    assert result.exit_code == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
    ws = tmp_path / "fresh" / "workspace"
    result = invoke("run", "--config", str(box.config), "--workspace", str(ws))
    assert result.exit_code == 0
    assert (ws / "system_status.md").is_file()


def test_unwritable_report_exits_3_and_keeps_the_previous_report(box: Box) -> None:
    box.only("env")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    md = box.workspace / "system_status.md"
    js = box.workspace / "system_status.json"
    previous = md.read_text()
    js.unlink()
    js.mkdir()  # the JSON's place is taken: neither file may change
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 3
    assert result.stderr == (
        f"healthcheck: run failed: cannot write {js}: it is a directory; "
        "the previous report was left as it was\n"
    )
    assert md.read_text() == previous
    assert sorted(p.name for p in box.workspace.iterdir()) == [
        ".git",
        ".healthcheck.lock",
        "system_status.json",
        "system_status.md",
    ]


def test_report_under_a_file_exits_3(box: Box) -> None:
    blocker = box.root / "not-a-dir"
    blocker.write_text("x")
    result = invoke(
        "run", "--config", str(box.config), "--only", "env", "--output", str(blocker / "status.md")
    )
    assert result.exit_code == 3
    assert result.stderr == (
        f"healthcheck: run failed: cannot write {blocker / 'status.md'}: Not a directory; "
        "the previous report was left as it was\n"
    )


def test_a_json_report_path_is_refused_by_run_and_context(box: Box) -> None:
    """The JSON goes beside the Markdown report with .json: a .json report would be lost."""
    target = box.root / "status.json"
    ran = invoke("run", "--config", str(box.config), "--only", "env", "--output", str(target))
    assert ran.exit_code == 3
    assert ran.stderr == (
        f"healthcheck: run failed: report path {target} ends in .json: "
        "the JSON report would replace it\n"
    )
    assert not target.exists()
    config = box.root / "json-report.toml"
    config.write_text(f'[paths]\nworkspace = "{box.workspace}"\nreport = "{target}"\n')
    context = invoke("context", "--config", str(config), "--last")
    assert context.exit_code == 2
    assert context.stderr == (
        f"healthcheck: report path {target} ends in .json: the JSON report would replace it\n"
    )


def test_broken_config_exits_2_with_one_line(box: Box) -> None:
    box.config.write_text("[logs]\ntail_lines = -1\n")
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 2
    assert result.stderr == (
        f"healthcheck: config error: {box.config}: 'logs.tail_lines' must be greater than 0\n"
    )
    box.config.write_text("[logs\n")
    result = invoke("collectors", "--config", str(box.config))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"healthcheck: config error: {box.config}: invalid TOML: ")
    assert result.stderr.count("\n") == 1
    result = invoke("run", "--config", str(box.root / "missing.toml"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"healthcheck: config error: {box.root / 'missing.toml'}: config file not found\n"
    )


def test_config_found_in_the_working_directory(box: Box) -> None:
    # box.config is ./healthcheck.toml: the lookup order finds it without --config
    box.only("env")
    result = invoke("run")
    assert result.exit_code == 0
    assert (box.workspace / "system_status.md").is_file()


def test_collectors_lists_every_builtin(box: Box) -> None:
    box.write_config('disable = ["ports"]')
    result = invoke("collectors")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ORIGIN", "ENABLED", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert sorted(rows) == [
        "display",
        "env",
        "gpu",
        "healthcheck",
        "logs",
        "ports",
        "provisioning",
        "supervisor",
        "system",
    ]
    assert "  built in  " in rows["system"]
    assert rows["ports"].split()[3] == "no"
    assert rows["system"].split()[3] == "yes"


def test_version() -> None:
    assert invoke("--version").stdout == f"healthcheck, version {__version__}\n"
    result = subprocess.run(
        [sys.executable, "-m", "healthcheck", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == f"healthcheck, version {__version__}\n"


def test_no_secret_reaches_any_output(box: Box, monkeypatch) -> None:
    from secrets_corpus import CONTEXT_SECRETS, FAKE_SECRETS, SECRET_ENV

    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    lines = [f"{kind}: {secret}" for kind, secret in FAKE_SECRETS.items()]
    lines += [line for line, _ in CONTEXT_SECRETS.values()]
    lines += [f"vnc started, password is {SECRET_ENV['VNC_PW']} (echoed by a careless script)"]
    (box.logs / "leaky.log").write_text("\n".join(lines) + "\n")
    box.only(*STEADY_COLLECTORS)
    box.config.write_text(
        box.config.read_text()
        .replace("tail_lines = 5", "tail_lines = 200")
        .replace(
            'source = "self"', 'source = "self"\ninclude = "VNC|JUPYTER|PASSWORD|SECRET|DSN|API"'
        )
    )
    result = invoke("run", "--config", str(box.config), "--json", *STEADY)
    assert result.exit_code == 0
    md = (box.workspace / "system_status.md").read_text()
    js = (box.workspace / "system_status.json").read_text()
    # the planted variables are reported, masked
    variables = json.loads(js)["sections"]["env"]["data"]["variables"]
    assert {name: variables[name] for name in SECRET_ENV} == dict.fromkeys(SECRET_ENV, "[redacted]")
    assert "[redacted:github-token]" in md
    for output in (md, js, result.stdout, result.stderr):
        assert "FAKE" not in output


def test_error_messages_are_redacted_too(box: Box) -> None:
    from secrets_corpus import FAKE_SECRETS

    token = FAKE_SECRETS["github-classic"]
    result = invoke("run", "--config", str(box.root / f"{token}.toml"))
    assert result.exit_code == 2
    assert result.stderr == (
        f"healthcheck: config error: {box.root}/[redacted:github-token].toml: "
        "config file not found\n"
    )


def test_hostile_log_lines_stay_inside_their_fence(box: Box) -> None:
    from markdown_it import MarkdownIt

    hostile = [
        "``` not the end",
        "~~~~",
        "## Forged heading",
        "<!-- healthcheck:end x -->",
        "<script>alert(1)</script>",
        "| a | b |",
        "````````` long run",
    ]
    (box.logs / "evil.log").write_text("\n".join(hostile) + "\n")
    box.only("logs")
    box.config.write_text(box.config.read_text().replace("tail_lines = 5", "tail_lines = 20"))
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0
    text = (box.workspace / "system_status.md").read_text()
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open"]
    assert "Forged heading" not in headings
    assert [t.type for t in tokens if t.type.startswith(("html", "table"))] == []
    blocks = [t.content.splitlines() for t in tokens if t.type == "fence"]
    assert hostile in blocks
