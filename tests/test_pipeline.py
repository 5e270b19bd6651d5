"""The pipeline's use cases (collect, run, refresh_docs, change_log), each returning a result,
and the outputs as one list: rendered once per run, and one entry to add a format.

Real git repositories, a real bare remote with a real hook; the collector is a fixed one so
that these tests say what the pipeline does, not what the box looks like.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from healthcheck import output, pipeline
from healthcheck.config import Config, parse_config
from healthcheck.improvement_log import ImprovementLog
from healthcheck.lock import workspace_lock
from healthcheck.model import Finding, Section, Status
from healthcheck.output import OUTPUTS, Output, Rendering
from healthcheck.redact import Redactor

from secrets_corpus import FAKE_SECRETS

WARNING = Finding("static", "thing", "", Status.WARN, "Something is off")


class Static:
    """A collector with one fixed finding."""

    name: ClassVar[str] = "static"
    description: ClassVar[str] = "fixed findings"
    timeout: ClassVar[float | None] = None

    def collect(self, config: Config) -> Section:
        return Section.from_findings(self.name, {"answer": 42}, [WARNING])


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The operator's repository with one commit of theirs."""
    ws = tmp_path / "ws"
    ws.mkdir()
    git(ws, "init", "-q", "-b", "main")
    git(ws, "config", "user.name", "Operator")
    git(ws, "config", "user.email", "op@example.invalid")
    (ws / "notes.txt").write_text("mine\n")
    git(ws, "add", ".")
    git(ws, "commit", "-q", "-m", "operator: first")
    return ws


def config_for(ws: Path, **tables: dict[str, Any]) -> Config:
    return parse_config({"paths": {"workspace": str(ws)}, **tables})


def run(config: Config, **kwargs: Any) -> pipeline.RunResult:
    return pipeline.run(config, [Static()], Redactor.from_config(config), **kwargs)


# -- collect ----------------------------------------------------------------------------------


def test_collect_returns_a_fresh_report_and_writes_nothing(tmp_path: Path) -> None:
    config = config_for(tmp_path / "ws")
    collection = pipeline.collect(config, [Static()])
    assert isinstance(collection, pipeline.Collection)
    assert [f.id for f in collection.report.findings] == ["static.thing"]
    assert collection.data["status"] == "warn"
    assert not (tmp_path / "ws").exists()


# -- run --------------------------------------------------------------------------------------


def test_run_returns_what_it_wrote_and_recorded(workspace: Path) -> None:
    result = run(config_for(workspace), docs=False)
    assert result.paths == {
        "markdown": workspace / "system_status.md",
        "json": workspace / "system_status.json",
    }
    assert (workspace / "system_status.md").read_text() == result.markdown_text
    assert json.loads((workspace / "system_status.json").read_text())["status"] == "warn"
    assert (
        result.commit is not None
        and result.commit.sha == git(workspace, "rev-parse", "HEAD").strip()
    )
    assert result.warnings == []
    assert result.report.tally == "Status WARN: 0 crit, 1 warn, 0 unknown."


def test_a_partial_run_without_output_writes_nothing_and_renders_what_is_asked(
    workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = count_renders(monkeypatch)
    result = run(config_for(workspace), partial=True)
    assert result.paths == {} and result.markdown_path is None
    assert result.json_text.startswith("{")
    assert made == Counter({"json": 1})  # the Markdown nobody printed is never rendered
    assert sorted(p.name for p in workspace.iterdir()) == [".git", "notes.txt"]


def count_renders(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every output's renderer, counted."""
    made: Counter[str] = Counter()

    def counted(entry: Output) -> Output:
        def render(rendering: Rendering) -> str | bytes:
            made[entry.key] += 1
            return entry.render(rendering)

        return Output(entry.key, entry.title, entry.path, render, entry.export)

    monkeypatch.setattr(output, "OUTPUTS", [counted(e) for e in OUTPUTS])
    return made


def test_one_render_per_format_when_every_run_level_finding_arrives(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The findings that used to arrive after the git steps (a secret in a file a person
    edits, a push the remote refuses) and the docs refresh: each output rendered once, and
    the one commit holds the report with those findings, as on disk."""
    pytest.importorskip("prometheus_client")
    made = count_renders(monkeypatch)
    (workspace / "improvement_log.md").write_text(
        f"# Improvement log\n\nlogin with {FAKE_SECRETS['huggingface']}\n"
    )
    docs = workspace / "docs_vast-ai-environment.md"
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n")
    before = git(workspace, "rev-parse", "HEAD").strip()
    textfile = tmp_path / "textfile" / "healthcheck.prom"
    textfile.parent.mkdir()
    config = config_for(
        workspace,
        git={"remote": str(tmp_path / "absent.git"), "push_timeout": 20},
        outputs={"prometheus": str(textfile)},
    )
    result = run(config)
    assert made == Counter({"markdown": 1, "json": 1, "prometheus": 1})
    ids = [f.id for f in result.report.findings]
    assert f"history.push-failed:{tmp_path / 'absent.git'}" in ids
    assert any(i.startswith("history.secret") for i in ids)
    assert git(workspace, "rev-parse", "HEAD~1").strip() == before  # one commit
    committed = git(workspace, "show", "HEAD:system_status.json")
    assert committed == (workspace / "system_status.json").read_text() == result.json_text
    assert "Last updated: April 29, 2025" not in docs.read_text()  # refreshed after the render
    assert "docs_vast-ai-environment.md" in git(workspace, "show", "--name-only", "HEAD")
    assert textfile.read_bytes() == result.rendering.get("prometheus")


def test_a_push_that_fails_after_the_commit_is_a_warning_then_the_next_runs_finding(
    workspace: Path, tmp_path: Path
) -> None:
    """The remote takes the push before the commit and refuses the one after (its hook
    turns hostile): the rendered report cannot say so, the console does, and the next run,
    whose push before its commit is refused, carries the finding."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    hook = remote / "hooks" / "pre-receive"
    hook.write_text(
        '#!/bin/sh\nif [ -e "$GIT_DIR/took-one" ]; then echo "no more" >&2; exit 1; fi\n'
        'touch "$GIT_DIR/took-one"\n'
    )
    hook.chmod(0o755)
    config = config_for(workspace, git={"remote": str(remote)})
    first = run(config, docs=False)
    (warning,) = first.warnings
    assert warning.startswith(f"git push to {remote} failed: ") and "declined" in warning
    assert not any(f.rule == "push-failed" for f in first.report.findings)
    second = run(config, docs=False)
    assert f"history.push-failed:{remote}" in [f.id for f in second.report.findings]
    assert len(second.warnings) == 1  # said once: the push after the commit is not tried


# -- outputs as a list ------------------------------------------------------------------------


def _beside_the_report(config: Config, out: Path | None) -> Path:
    return output.report_paths(config, out)[0].with_suffix(".txt")


@pytest.fixture
def text_output() -> Iterator[Output]:
    """A format of the report added the way a new one is: one entry in OUTPUTS."""
    entry = Output(
        "text",
        "Text summary",
        _beside_the_report,
        lambda rendering: rendering.report.tally + "\n",
    )
    OUTPUTS.append(entry)
    try:
        yield entry
    finally:
        OUTPUTS.remove(entry)


def test_an_output_added_to_the_list_is_written_and_recorded(
    workspace: Path, text_output: Output
) -> None:
    result = run(config_for(workspace), docs=False)
    written = workspace / "system_status.txt"
    assert result.paths["text"] == written
    assert written.read_text() == "Status WARN: 0 crit, 1 warn, 0 unknown.\n"
    assert "system_status.txt" in git(workspace, "show", "--name-only", "HEAD")
    # --output moves it with the rest of the report
    elsewhere = workspace.parent / "out" / "r.md"
    partial = run(config_for(workspace), partial=True, output=elsewhere)
    assert partial.paths["text"] == elsewhere.with_suffix(".txt")
    assert elsewhere.with_suffix(".txt").read_text().startswith("Status WARN")


def test_an_export_that_cannot_be_written_is_a_warning_and_the_report_stands(
    workspace: Path, tmp_path: Path
) -> None:
    def refuse(rendering: Rendering) -> str:
        raise output.OutputUnavailable("its library is not installed")

    entry = Output("refused", "Refused file", lambda c, o: tmp_path / "x.txt", refuse, export=True)
    OUTPUTS.append(entry)
    try:
        result = run(config_for(workspace), docs=False)
        partial = run(config_for(workspace), partial=True, output=tmp_path / "p" / "r.md")
    finally:
        OUTPUTS.remove(entry)
    assert result.warnings == ["Refused file not written: its library is not installed"]
    assert "refused" not in result.paths and (workspace / "system_status.md").exists()
    assert "refused" not in partial.paths and partial.warnings == []  # exports: whole box only


# -- refresh_docs -----------------------------------------------------------------------------


def test_refresh_docs_returns_the_update_or_says_it_was_skipped(workspace: Path) -> None:
    config = parse_config({"paths": {"workspace": str(workspace)}, "git": {"lock_timeout": 0}})
    docs = workspace / "docs_vast-ai-environment.md"
    docs.write_text("# Box\n\n*Last updated: April 29, 2025*\n")
    redactor = Redactor.from_config(config)
    target = pipeline.docs_target(config, None)
    data = pipeline.collect(config, [Static()]).data
    done = pipeline.refresh_docs(config, redactor, target, data)
    assert (done.target, done.source, done.skipped) == (docs, "a fresh run", "")
    assert done.update is not None and done.update.changed and done.update.new_lines == (3,)
    with workspace_lock(workspace, 0):  # a run in progress
        busy = pipeline.refresh_docs(config, redactor, target, data)
    assert busy.update is None and "another healthcheck" in busy.skipped


def test_docs_target_refuses_what_it_cannot_refresh(tmp_path: Path) -> None:
    config = config_for(tmp_path)
    with pytest.raises(pipeline.UsageError, match="not found"):
        pipeline.docs_target(config, None)
    with pytest.raises(pipeline.UsageError, match="not a regular file"):
        pipeline.docs_target(config, tmp_path)


# -- change_log -------------------------------------------------------------------------------


def test_change_log_returns_the_entry_and_its_commit(workspace: Path) -> None:
    config = config_for(workspace)
    redactor = Redactor.from_config(config)

    def add(log: ImprovementLog) -> Any:
        return log.add("Pin the driver version.", redactor, source="test")

    done = pipeline.change_log(config, redactor, add, "Added")
    assert isinstance(done, pipeline.LogChange) and done.warnings == []
    assert done.commit == git(workspace, "rev-parse", "--short", "HEAD").strip()
    message = git(workspace, "log", "-1", "--format=%B")
    assert message.startswith(f"healthcheck log: {done.entry.id} added: Pin the driver version.")
    assert "Source: test" in message
