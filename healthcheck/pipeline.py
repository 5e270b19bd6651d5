"""`healthcheck run`: collectors → findings → redaction → templates → files."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from healthcheck import history as hist
from healthcheck.config import Config
from healthcheck.diagnosis import diagnose
from healthcheck.docs import DocsError, DocsUpdate, inspect_docs, update_docs
from healthcheck.improvement_log import LogError, open_entries
from healthcheck.lock import LockBusy, LockError, workspace_lock
from healthcheck.model import Collector, Finding, Status
from healthcheck.output import ReportPathError, WriteError, report_paths, write_files_atomically
from healthcheck.redact import Redactor
from healthcheck.render import render_json, render_markdown
from healthcheck.report import Report
from healthcheck.runner import run_collectors

log = logging.getLogger(__name__)


class RunFailed(Exception):
    """The run could not produce its report; the previous report is left intact."""


class RunSkipped(Exception):
    """Another run held the workspace lock for too long: this one did nothing."""


@dataclass
class RunResult:
    report: Report
    markdown_path: Path
    json_path: Path
    markdown_text: str
    json_text: str
    commit: hist.CommitOutcome | None = None  # None when the run was not recorded in git
    warnings: list[str] = field(default_factory=list)  # for the console: what went wrong
    docs: DocsUpdate | None = None  # None when the docs file was not refreshed


def run_healthcheck(
    config: Config,
    collectors: Sequence[Collector],
    redactor: Redactor,
    output: Path | None = None,
    commit: bool = True,
    docs: bool = True,
    notify: bool = False,
    metrics: bool = True,
) -> RunResult:
    """Run `collectors`, write both reports atomically, record them in git, and return
    what was written. `notify`: a full run, which sends the alerts of `[notify]`.
    `metrics`: the run covers the whole box, so `[outputs] prometheus` is written.

    The whole run holds the workspace lock, so two runs never interleave their writes or
    commits; one that cannot get it within `git.lock_timeout` raises RunSkipped.
    """
    try:
        markdown_path, json_path = report_paths(config, output)
    except ReportPathError as exc:
        raise RunFailed(str(exc)) from None
    workspace = Path(config.paths.workspace).expanduser()
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFailed(f"cannot create workspace {workspace}: {exc.strerror or exc}") from None
    try:
        with workspace_lock(workspace, config.git.lock_timeout):
            result = _locked_run(
                config,
                collectors,
                redactor,
                markdown_path,
                json_path,
                commit and config.git.commit,
                docs,
                notify,
            )
            if metrics and config.prometheus_path is not None:
                _write_prometheus(config.prometheus_path, result, redactor)
            return result
    except LockBusy as exc:
        raise RunSkipped(str(exc)) from None
    except LockError as exc:
        raise RunFailed(str(exc)) from None


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
    sections = diagnose(run_collectors(collectors, config), config)
    for section in sections:
        log.info(
            "collector %s: %s in %d ms%s",
            section.name,
            section.status.value,
            section.duration_ms,
            f" ({section.error})" if section.error else "",
        )
    report = Report.build(sections)
    warnings: list[str] = []
    extra: list[Finding] = []
    try:
        report.improvements = [e.summary() for e in open_entries(config.improvement_log_path)]
    except LogError as exc:
        extra.append(_log_unreadable(str(exc)))
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
        except hist.HistoryError as exc:
            extra.append(hist.history_failed(str(exc)))
            warnings.append(f"not recorded in git: {exc}")
    if docs:
        extra += inspect_docs(config.docs_path)
    if notifier is not None:
        extra += notifier.carried_findings()
    report.add_findings(extra)
    result = RunResult(report, markdown_path, json_path, "", "", warnings=warnings)
    _write_reports(result, redactor)
    if docs:
        _refresh_docs(config, result, redactor)
    if history is not None:
        withheld = [
            (path, line)
            for path in (config.docs_path, config.improvement_log_path)
            if (line := history.secret_line(path)) is not None
        ]
        if withheld:
            # Said in the report that is committed, not only on the console.
            result.report.add_findings([hist.secret_withheld(p, n) for p, n in withheld])
            result.warnings += [
                f"{p} not committed: line {n} looks like a secret" for p, n in withheld
            ]
            _write_reports(result, redactor)
        _record(history, config, result, redactor)
    if notifier is not None:
        report_data = redactor.obj(result.report.to_dict())
        result.warnings += notifier.after_run(report_data, result.markdown_path, redactor)
    return result


def _write_reports(result: RunResult, redactor: Redactor) -> None:
    result.markdown_text = render_markdown(result.report, redactor)
    result.json_text = render_json(result.report, redactor)
    try:
        write_files_atomically(
            [(result.markdown_path, result.markdown_text), (result.json_path, result.json_text)]
        )
    except WriteError as exc:
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


def _record(history: hist.History, config: Config, result: RunResult, redactor: Redactor) -> None:
    """Commit the run's files; push when a remote is set. Failures are warnings."""
    files = [result.markdown_path, result.json_path, config.docs_path, config.improvement_log_path]
    message = hist.run_message(redactor.obj(result.report.to_dict()))
    try:
        result.commit = history.commit(files, message)
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
    if result.commit.sha is None:
        return
    message = hist.run_message(redactor.obj(result.report.to_dict()))
    try:
        replaced = history.commit(files, message, replace=result.commit.sha)
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
