"""The operator's day, end to end through the command line on a real (temporary) box: the
history never records what the box is not, the workspace is the same for every command,
and the terminal says what matters."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from click.testing import CliRunner

from healthcheck.cli import cli

from support import Box


def invoke(*args: str, input: str | None = None) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, input=input)


def git(ws: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ws, check=True, capture_output=True, text=True
    ).stdout


# -- history and status that never lie ----------------------------------------------------


def test_a_partial_run_prints_its_report_and_records_nothing(box: Box) -> None:
    box.only("env", "ports", "provisioning")
    whole = invoke("run", "--config", str(box.config))
    assert whole.exit_code == 0
    md = box.workspace / "system_status.md"
    js = box.workspace / "system_status.json"
    before = (md.read_bytes(), js.read_bytes(), git(box.workspace, "rev-parse", "HEAD"))

    partial = invoke("run", "--config", str(box.config), "--only", "env")
    assert partial.exit_code == 0
    assert partial.stdout.startswith("# System status: ")
    assert (
        "Partial run: only env looked at the box; the other collectors did not run, so this "
        "is not the box's whole state and it is not recorded in the history."
    ) in partial.stdout
    assert partial.stderr == (
        "Partial run (env): Status OK: 0 crit, 0 warn, 0 unknown. "
        "Printed above; nothing written or recorded.\n"
    )
    as_json = invoke("run", "--config", str(box.config), "--skip", "ports", "--json")
    data = json.loads(as_json.stdout)
    assert (data["partial"], data["collectors_run"]) == (True, ["env", "provisioning"])
    assert (md.read_bytes(), js.read_bytes(), git(box.workspace, "rev-parse", "HEAD")) == before

    elsewhere = box.root / "partial" / "ports.md"
    elsewhere.parent.mkdir()
    written = invoke("run", "--config", str(box.config), "--only", "ports", "--output", str(elsewhere))
    assert written.exit_code == 0
    assert written.stdout == ""
    assert written.stderr.endswith(f"Report: {elsewhere} (JSON: ports.json); not recorded.\n")
    assert json.loads(elsewhere.with_suffix(".json").read_text())["collectors_run"] == ["ports"]
    assert (md.read_bytes(), js.read_bytes(), git(box.workspace, "rev-parse", "HEAD")) == before
    # `diff` still compares whole runs only
    assert git(box.workspace, "rev-list", "--count", "HEAD") == "1\n"

    over = invoke("run", "--config", str(box.config), "--only", "env", "--output", str(md))
    assert over.exit_code == 2
    assert over.stderr == (
        f"healthcheck: --output {md}: a partial run (--only/--skip) never replaces the main "
        "report; write it elsewhere or leave out --output to print it\n"
    )
    assert md.read_bytes() == before[0]


def test_only_and_skip_leaving_nothing_is_a_usage_error(box: Box) -> None:
    result = invoke("run", "--config", str(box.config), "--only", "env", "--skip", "env")
    assert result.exit_code == 2
    assert result.stderr == (
        "healthcheck: no collector left to run: --only env and --skip env "
        "with [collectors] disable leave none\n"
    )
    assert not box.workspace.exists()
    box.write_config('disable = ["env"]')
    result = invoke("context", "--config", str(box.config), "--only", "env")
    assert result.exit_code == 2
    assert result.stderr == (
        "healthcheck: no collector left to run: --only env with [collectors] disable leave none\n"
    )


def test_a_check_that_could_not_look_ranks_above_a_warning(box: Box) -> None:
    # env cannot read the named process's environment (unknown); a port is closed (warn)
    box.only("env", "ports")
    box.config.write_text(
        box.config.read_text().replace('source = "self"', 'source = "process:no-such-proc-hc"')
    )
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0
    assert result.stderr.startswith("Status UNKNOWN: 0 crit, 2 warn, 1 unknown.")
    data = json.loads((box.workspace / "system_status.json").read_text())
    assert [f["severity"] for f in data["findings"]] == ["unknown", "warn", "warn"]
    assert git(box.workspace, "log", "-1", "--format=%s").endswith(
        " UNKNOWN (0 crit, 2 warn, 1 unknown)\n"
    )
    for level, code in (("UNKNOWN", 1), ("Crit", 0), ("warn", 1), ("unknown", 1)):
        ran = invoke("run", "--config", str(box.config), "--fail-on", level, "--no-commit")
        assert ran.exit_code == code, level
    box.only("ports")
    assert invoke("run", "--config", str(box.config), "--fail-on", "unknown").exit_code == 0


def test_a_report_written_outside_the_workspace_is_not_claimed_by_a_commit(box: Box) -> None:
    box.only("env")
    docs = box.workspace / "docs_vast-ai-environment.md"
    box.workspace.mkdir()
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n")
    out = box.root / "elsewhere" / "status.md"
    result = invoke("run", "--config", str(box.config), "--output", str(out))
    assert result.exit_code == 0
    assert out.is_file()
    assert git(box.workspace, "ls-tree", "-r", "--name-only", "HEAD") == (
        "docs_vast-ai-environment.md\n"
    )
    message = git(box.workspace, "log", "-1", "--format=%B")
    subject, _, body = message.partition("\n")
    assert subject.endswith(" docs refreshed")
    assert f"its report was written to {out}, outside this history" in body
    assert "Files: docs_vast-ai-environment.md." in body
    assert "OK" not in subject and "WARN" not in subject
    # nothing of the run in the workspace: no commit at all
    again = invoke("run", "--config", str(box.config), "--output", str(out))
    assert again.exit_code == 0 and "Committed" not in again.stderr
    assert git(box.workspace, "rev-list", "--count", "HEAD") == "1\n"


def test_a_persons_unfinished_docs_edit_is_not_committed_by_a_run(box: Box) -> None:
    box.only("env")
    box.workspace.mkdir()
    docs = box.workspace / "docs_vast-ai-environment.md"
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n")
    assert invoke("run", "--config", str(box.config)).exit_code == 0
    recorded = git(box.workspace, "show", "HEAD:docs_vast-ai-environment.md")
    assert "April 29, 2025" not in recorded  # the tool's own refresh is recorded
    docs.write_text(docs.read_text() + "\nTODO half-written paragr\n")
    (box.logs / "new.log").write_text("something new\n")
    box.only("env", "logs")
    result = invoke("run", "--config", str(box.config))
    assert result.exit_code == 0 and "Committed" in result.stderr
    assert git(box.workspace, "show", "HEAD:docs_vast-ai-environment.md") == recorded
    assert git(box.workspace, "show", "--name-only", "--format=", "HEAD").split() == [
        "system_status.json",
        "system_status.md",
    ]
    assert "Files: system_status.md, system_status.json." in git(
        box.workspace, "log", "-1", "--format=%B"
    )
