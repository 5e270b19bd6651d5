"""`healthcheck run`: collectors → findings → redaction → templates → files."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthcheck import history as hist
from healthcheck.collectors.logs import growth_findings
from healthcheck.config import Config
from healthcheck.docs import DocsError, DocsUpdate, inspect_docs, update_docs
from healthcheck.improvement_log import LogError, open_entries
from healthcheck.lock import LOCK_NAME, LockBusy, LockError, workspace_lock
from healthcheck.model import Collector, Finding, Status
from healthcheck.output import ReportPathError, WriteError, report_paths, write_files_atomically
from healthcheck.redact import Redactor
from healthcheck.render import render_json, render_markdown
from healthcheck.report import Report, collect_report

log = logging.getLogger(__name__)


class RunFailed(Exception):
    """The run could not produce its report; the previous report is left intact."""


class RunSkipped(Exception):
    """Another run held the workspace lock for too long: this one did nothing."""


@dataclass
class RunResult:
    report: Report
    markdown_path: Path | None  # None: a partial run that wrote nothing (printed instead)
    json_path: Path | None
    markdown_text: str
    json_text: str
    commit: hist.CommitOutcome | None = None  # None when the run was not recorded in git
    warnings: list[str] = field(default_factory=list)  # for the console: what went wrong
    docs: DocsUpdate | None = None  # None when the docs file was not refreshed
    # The run before this one, from the report it replaced: its time and its findings
    # (id -> severity); None when there was none to read.
    previous: tuple[str, dict[str, str]] | None = None


def run_healthcheck(
    config: Config,
    collectors: Sequence[Collector],
    redactor: Redactor,
    output: Path | None = None,
    commit: bool = True,
    docs: bool = True,
    notify: bool = False,
    metrics: bool = True,
    partial: bool = False,
) -> RunResult:
    """Run `collectors`, write both reports atomically, record them in git, and return
    what was written. `notify`: a full run, which sends the alerts of `[notify]`.
    `metrics`: the run covers the whole box, so `[outputs] prometheus` is written.

    The whole run holds the workspace lock, so two runs never interleave their writes or
    commits; one that cannot get it within `git.lock_timeout` raises RunSkipped.

    A `partial` run (--only, --skip) is not the box's state: it never touches the main
    report, the docs file or the history; it writes only to `output`, or nowhere (the
    caller prints it).
    """
    if partial:
        return _partial_run(config, collectors, redactor, output)
    try:
        markdown_path, json_path = report_paths(config, output)
    except ReportPathError as exc:
        raise RunFailed(str(exc)) from None
    workspace = Path(config.paths.workspace).expanduser()
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFailed(f"cannot create workspace {workspace}: {exc.strerror or exc}") from None
    lock_dir, lock_name = _lock_place(workspace, markdown_path)
    try:
        with workspace_lock(lock_dir, config.git.lock_timeout, name=lock_name):
            result = _locked_run(
                config,
                collectors,
                redactor,
                markdown_path,
                json_path,
                commit and config.git.commit,
                docs and config.docs_enabled,
                notify,
            )
            if metrics and config.prometheus_path is not None:
                _write_prometheus(config.prometheus_path, result, redactor)
            return result
    except LockBusy as exc:
        raise RunSkipped(str(exc)) from None
    except LockError as exc:
        raise RunFailed(str(exc)) from None


def _lock_place(workspace: Path, markdown_path: Path) -> tuple[Path, str]:
    """Where the run's lock goes: the workspace; when it is read-only (a run with --output
    elsewhere and --no-commit), beside the output, else in the runtime directory under a
    name of the workspace's own."""
    if os.access(workspace, os.W_OK | os.X_OK):
        return workspace, LOCK_NAME
    beside = markdown_path.parent
    with contextlib.suppress(OSError):
        beside.mkdir(parents=True, exist_ok=True)
    if os.access(beside, os.W_OK | os.X_OK):
        return beside, LOCK_NAME
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    digest = hashlib.sha256(str(workspace.resolve()).encode()).hexdigest()[:12]
    return runtime, f"healthcheck-{digest}.lock"


def _partial_run(
    config: Config, collectors: Sequence[Collector], redactor: Redactor, output: Path | None
) -> RunResult:
    paths: tuple[Path, Path] | tuple[None, None] = (None, None)
    if output is not None:
        try:
            paths = report_paths(config, output)
            main = report_paths(config)
        except ReportPathError as exc:
            raise RunFailed(str(exc)) from None
        if {p.resolve() for p in paths} & {p.resolve() for p in main}:
            raise PartialOverMain(
                f"--output {output}: a partial run (--only/--skip) never replaces the main "
                "report; write it elsewhere or leave out --output to print it"
            )
    report = collect_report(config, collectors)
    report.partial = True
    report.add_findings(_read_improvements(config, report))
    result = RunResult(report, paths[0], paths[1], "", "")
    if output is None:
        result.markdown_text = render_markdown(report, redactor)
        result.json_text = render_json(report, redactor)
    else:
        _write_reports(result, redactor)
    return result


class PartialOverMain(RunFailed):
    """A partial run was asked to write over the main report: a usage error."""


def _locked_run(
    config: Config,
    collectors: Sequence[Collector],
    redactor: Redactor,
    markdown_path: Path,
    json_path: Path,
    commit: bool,
    docs: bool = True,
    notify: bool = False,
) -> RunResult:
    workspace = Path(config.paths.workspace).expanduser()
    notifier = None
    if notify and (config.notify.urls or config.notify.ping_url):
        from healthcheck.notify import RunNotifier

        # Opened before the report is written: a first run compares with the previous one.
        notifier = RunNotifier(config, workspace, json_path)
    report = collect_report(config, collectors)
    for section in report.sections:
        log.info(
            "collector %s: %s in %d ms%s",
            section.name,
            section.status.value,
            section.duration_ms,
            f" ({section.error})" if section.error else "",
        )
    warnings: list[str] = []
    before = _read_report(json_path)
    logs = next((s for s in report.sections if s.name == "logs"), None)
    extra = _read_improvements(config, report)
    if logs is not None:
        extra += growth_findings(logs, before, report.generated_at)
    history = None
    if commit:
        # Opened before the report is written, so that a run the history cannot take says
        # so in the report itself.
        try:
            history = hist.History.open(workspace, redactor)
            if reason := history.blocked():
                extra.append(hist.commit_skipped(reason))
                warnings.append(f"not recorded in git: {reason}")
                history = None
            elif fault := history.fault():
                raise fault
        except hist.HistoryError as exc:
            history = None
            extra.append(hist.history_failed(str(exc), exc.hint))
            warnings.append(f"not recorded in git: {exc}")
    if docs:
        extra += inspect_docs(config.docs_path)
    if notifier is not None:
        extra += notifier.carried_findings()
    report.add_findings(extra)
    result = RunResult(report, markdown_path, json_path, "", "", warnings=warnings)
    result.previous = _previous_run(before)
    _write_reports(result, redactor)
    if docs:
        _refresh_docs(config, result, redactor)
    if history is not None:
        people_edit = [config.improvement_log_path]
        if _docs_changed(result):
            people_edit.insert(0, config.docs_path)
        withheld = [
            (path, line) for path in people_edit if (line := history.secret_line(path)) is not None
        ]
        if withheld:
            # Said in the report that is committed, not only on the console.
            result.report.add_findings([hist.secret_withheld(p, n) for p, n in withheld])
            result.warnings += [
                f"{p} not committed: line {n} looks like a secret" for p, n in withheld
            ]
            _write_reports(result, redactor)
        _record(history, config, result, redactor, {path for path, _ in withheld})
    if notifier is not None:
        report_data = redactor.obj(result.report.to_dict())
        result.warnings += notifier.after_run(report_data, markdown_path, redactor)
    return result


def _read_report(json_path: Path) -> dict[str, Any] | None:
    """The JSON report about to be replaced (None when there is none, or it is unreadable)."""
    import json

    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _previous_run(data: dict[str, Any] | None) -> tuple[str, dict[str, str]] | None:
    """The time and findings (id -> severity) of the run before."""
    if data is None:
        return None
    try:
        findings = {str(f["id"]): str(f["severity"]) for f in data["findings"]}
    except (KeyError, TypeError):
        return None
    return str(data.get("generated_at", "?")), findings


def _read_improvements(config: Config, report: Report) -> list[Finding]:
    """The improvement log's open entries into `report`; a finding when it cannot be read."""
    try:
        report.improvements = [e.summary() for e in open_entries(config.improvement_log_path)]
    except LogError as exc:
        return [_log_unreadable(str(exc))]
    return []


def _write_reports(result: RunResult, redactor: Redactor) -> None:
    result.markdown_text = render_markdown(result.report, redactor)
    result.json_text = render_json(result.report, redactor)
    assert result.markdown_path is not None and result.json_path is not None
    # Folders named in paths.report or --output are made; a path that cannot be made is
    # reported by the write itself, naming the file.
    with contextlib.suppress(OSError):
        result.markdown_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_files_atomically(
            [(result.markdown_path, result.markdown_text), (result.json_path, result.json_text)]
        )
    except WriteError as exc:
        if exc.errno == errno.ENOSPC:
            raise RunFailed(
                f"{_disk_full(result.markdown_path.parent)}; the previous report was left as it was"
            ) from None
        raise RunFailed(f"{exc}; the previous report was left as it was") from None


def _write_prometheus(path: Path, result: RunResult, redactor: Redactor) -> None:
    """The node_exporter textfile, from the report as written; trouble is a warning: the
    report itself is safe on disk by now."""
    import json

    from healthcheck.metrics import MetricsUnavailable, write_textfile

    try:
        write_textfile(path, json.loads(result.json_text), redactor)
    except (MetricsUnavailable, WriteError) as exc:
        result.warnings.append(f"Prometheus textfile not written: {exc}")
        return
    log.info("prometheus: wrote %s", path)


def _disk_full(directory: Path) -> str:
    """`no space left on the workspace's filesystem, 100% of 400 KiB used` (in words)."""
    from healthcheck.render import human_bytes

    try:
        usage = shutil.disk_usage(directory)
    except OSError:
        return f"no space left on the filesystem of {directory}"
    percent = 100 * (usage.total - usage.free) / usage.total if usage.total else 100.0
    size = human_bytes(usage.total).replace(".0 ", " ")
    return (
        f"no space left on the filesystem of {directory} ({percent:.0f}% of {size} used; "
        f"free some space, e.g. `du -xsh {directory}/* | sort -h`)"
    )


def _refresh_docs(config: Config, result: RunResult, redactor: Redactor) -> None:
    """Refresh the docs file from the written report; trouble is a warning, not a failure."""
    try:
        result.docs = update_docs(
            config.docs_path, result.report, redactor, result.report.generated_at
        )
    except DocsError as exc:
        result.warnings.append(f"docs not refreshed: {exc}")
        return
    if result.docs.changed:
        log.info("docs: refreshed %s (lines %s)", config.docs_path, list(result.docs.new_lines))
    result.warnings += [f"docs {config.docs_path}: {w}" for w in result.docs.warnings]


def _docs_changed(result: RunResult) -> bool:
    return result.docs is not None and result.docs.changed


def _record(
    history: hist.History,
    config: Config,
    result: RunResult,
    redactor: Redactor,
    withheld: set[Path],
) -> None:
    """Commit the run's files; push when a remote is set. Failures are warnings.

    The run's files are its two reports, the improvement log (SPEC), and the docs file only
    when this run changed it: a person's half-written edit of the docs is theirs to finish,
    never swept into a run's commit. The message names exactly the files the commit holds,
    so a report written outside the workspace is not described as recorded.
    """
    assert result.markdown_path is not None and result.json_path is not None
    candidates = [result.markdown_path, result.json_path]
    if _docs_changed(result):
        candidates.append(config.docs_path)
    candidates.append(config.improvement_log_path)
    # Only what the commit will hold: `withheld`, the files a person put a secret in (found
    # by the run, named by a finding), are held back, so the message must not claim them.
    files = [p for p in candidates if history.committable(p) and p not in withheld]
    if not files:
        log.info("nothing of this run lies in %s: no commit", history.worktree)
        return
    report_recorded = result.markdown_path in files
    names = [history.relative(p) or str(p) for p in files]
    message = hist.run_message(
        redactor.obj(result.report.to_dict()),
        names,
        outside=None if report_recorded else result.markdown_path,
    )
    try:
        # The reports were just written through the redactor: checking them for secrets
        # again cost 10-25 ms a run (the files a person edits are still checked).
        result.commit = history.commit(files, message, redacted=candidates[:2])
    except hist.HistoryError as exc:
        result.warnings.append(f"not recorded in git: {exc}")
        return
    for path in result.commit.left_out:
        log.info("not committed (outside %s, or absent): %s", history.worktree, path)
    remote = config.git.remote
    if not remote or history.head() is None:
        return
    error = history.push(remote, config.git.push_timeout)
    if error is None:
        log.info("pushed to %s", remote)
        return
    result.warnings.append(f"git push to {remote} failed: {error}")
    # The commit is not on the remote, so it may still change: it takes the finding along,
    # and the report in git says what the report on disk says.
    result.report.add_findings([hist.push_failed(remote, error)])
    _write_reports(result, redactor)
    if result.commit.sha is None or not report_recorded:
        return
    message = hist.run_message(redactor.obj(result.report.to_dict()), names)
    try:
        replaced = history.commit(
            files, message, replace=result.commit.sha, redacted=candidates[:2]
        )
    except hist.HistoryError as exc:
        log.info("the run's commit keeps the report without the push finding: %s", exc)
        return
    if replaced.sha:
        result.commit.sha = replaced.sha


def _log_unreadable(reason: str) -> Finding:
    return Finding(
        collector=hist.COLLECTOR,
        rule="improvement-log-unreadable",
        subject="",
        severity=Status.WARN,
        title="The improvement log cannot be read",
        detail=reason,
        hint="Fix the named line by hand; `healthcheck log list` checks it.",
    )
