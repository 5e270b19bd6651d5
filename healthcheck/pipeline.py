"""What the commands do, as use cases the CLI, `serve` and the MCP server call. Each returns
a result object (or raises one of the exceptions below); none prints.

- `collect`: a fresh look at the box (collectors, then diagnosis) that writes nothing.
- `run`: the whole job: lock, collect, diagnose, docs refresh, outputs, git, alerts.
- `refresh_docs`: `docs update`, the docs file alone, under the run's lock.
- `change_log`: a change to the improvement log, committed alone.

The modules a run needs (git, templates, markdown) are imported when a use case runs, so
that `context` or the MCP server pay for what they use only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthcheck.config import Config
from healthcheck.lock import LOCK_NAME, LockBusy, LockError, workspace_lock
from healthcheck.model import Collector, Finding, Status
from healthcheck.output import (
    OUTPUTS,
    OutputUnavailable,
    Rendering,
    ReportPathError,
    WriteError,
    output_paths,
    write_files_atomically,
)
from healthcheck.record import Record
from healthcheck.redact import Redactor
from healthcheck.report import Report

if TYPE_CHECKING:
    from healthcheck import history as hist
    from healthcheck.docs import DocsUpdate
    from healthcheck.improvement_log import Entry, ImprovementLog

log = logging.getLogger(__name__)


class UsageError(Exception):
    """The request cannot be done as asked (a bad path, a bad combination): exit 2."""


class RunFailed(Exception):
    """The use case could not do its work; what was there before is left intact: exit 3."""


class RunSkipped(Exception):
    """Another run held the workspace lock for too long: this one did nothing."""


class PartialOverMain(UsageError):
    """A partial run was asked to write over the main report."""


# -- collect ----------------------------------------------------------------------------------


class Collection(Record):
    """A fresh report that nothing has written or recorded."""

    __slots__ = ("report",)

    def __init__(self, report: Report) -> None:
        self.report = report

    @property
    def data(self) -> dict[str, Any]:
        """The report as the JSON report holds it (not yet redacted)."""
        return self.report.to_dict()


def collect(config: Config, collectors: Sequence[Collector]) -> Collection:
    """Run `collectors` and fold their symptoms into causes (`run --only/--skip`,
    `context` and `docs update` without --last, serve's ?fresh=1, the MCP run_check)."""
    from healthcheck.diagnosis import diagnose
    from healthcheck.runner import run_collectors

    return Collection(Report.build(diagnose(run_collectors(collectors, config), config)))


# -- run --------------------------------------------------------------------------------------


class RunResult(Record):
    __slots__ = ("commit", "docs", "paths", "previous", "rendering", "report", "warnings")

    def __init__(
        self,
        report: Report,
        rendering: Rendering,  # each output rendered once, on first use
        # What was written, by output key; empty for a partial run that wrote nothing (printed).
        paths: dict[str, Path] | None = None,
        commit: hist.CommitOutcome | None = None,  # None when the run was not recorded in git
        warnings: list[str] | None = None,  # for the console: what went wrong
        docs: DocsUpdate | None = None,  # None when the docs file was not refreshed
        # The run before this one, from the report it replaced: its time and its findings
        # (id -> severity); None when there was none to read.
        previous: tuple[str, dict[str, str]] | None = None,
    ) -> None:
        self.report = report
        self.rendering = rendering
        self.paths: dict[str, Path] = {} if paths is None else paths
        self.commit = commit
        self.warnings: list[str] = [] if warnings is None else warnings
        self.docs = docs
        self.previous = previous

    @property
    def markdown_path(self) -> Path | None:
        return self.paths.get("markdown")

    @property
    def json_path(self) -> Path | None:
        return self.paths.get("json")

    @property
    def markdown_text(self) -> str:
        return self.rendering.text("markdown")

    @property
    def json_text(self) -> str:
        return self.rendering.text("json")


def run(
    config: Config,
    collectors: Sequence[Collector],
    redactor: Redactor,
    output: Path | None = None,
    commit: bool = True,
    docs: bool = True,
    partial: bool = False,
    fail_on: Status | None = None,
) -> RunResult:
    """Run `collectors`, write the outputs (OUTPUTS), refresh the docs file, record the run
    in git, send the alerts and pings of `[notify]`, and return what was done.

    The whole run holds the workspace lock, so two runs never interleave their writes or
    commits; one that cannot get it within `git.lock_timeout` raises RunSkipped.

    A `partial` run (--only, --skip) is not the box's state: it never touches the main
    report, the docs file, the history or the exports; it writes only to `output`, or
    nowhere (the caller prints it). Only a recorded run of the whole box alerts and pings
    (`commit`); one with commit=False is a look around. `fail_on`: the severity at which
    the dead man's switch hears "fail".
    """
    if partial:
        return _partial_run(config, collectors, redactor, output)
    switch = None
    if commit and config.notify.ping_url:
        from healthcheck.notify import DeadMansSwitch

        switch = DeadMansSwitch(config, redactor)
        switch.start()
    try:
        result = _whole_run(config, collectors, redactor, output, commit, docs)
    except RunFailed as exc:
        if switch:
            switch.finish(failed=True, summary=f"run failed: {exc}")
        raise
    except RunSkipped as exc:
        # The monitor saw /start: tell it this run ended, not that it hangs.
        if switch:
            switch.finish(failed=False, summary=f"skipped: {exc}")
        raise
    except BaseException as exc:  # a bug or Ctrl-C: the monitor hears of it, then as before
        if switch:
            switch.finish(failed=True, summary=f"run failed: {type(exc).__name__}")
        raise
    if switch:
        failed = bool(fail_on and result.report.at_least(fail_on))
        switch.finish(
            failed=failed, summary=f"{result.report.tally} Report: {result.markdown_path}"
        )
    return result


def _whole_run(
    config: Config,
    collectors: Sequence[Collector],
    redactor: Redactor,
    output: Path | None,
    commit: bool,
    docs: bool,
) -> RunResult:
    try:
        paths = output_paths(config, output)
    except ReportPathError as exc:
        raise RunFailed(str(exc)) from None
    workspace = Path(config.paths.workspace).expanduser()
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFailed(f"cannot create workspace {workspace}: {exc.strerror or exc}") from None
    lock_dir, lock_name = _lock_place(workspace, paths["markdown"])
    try:
        with workspace_lock(lock_dir, config.git.lock_timeout, name=lock_name):
            return _locked_run(
                config,
                collectors,
                redactor,
                paths,
                commit and config.git.commit,
                docs and config.docs_enabled,
                alerts=commit,
            )
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
    paths: dict[str, Path] = {}
    if output is not None:
        try:
            paths = output_paths(config, output, exports=False)
            main = output_paths(config, exports=False)
        except ReportPathError as exc:
            raise RunFailed(str(exc)) from None
        if {p.resolve() for p in paths.values()} & {p.resolve() for p in main.values()}:
            raise PartialOverMain(
                f"--output {output}: a partial run (--only/--skip) never replaces the main "
                "report; write it elsewhere or leave out --output to print it"
            )
    report = collect(config, collectors).report
    report.partial = True
    report.add_findings(_read_improvements(config, report))
    result = RunResult(report, Rendering(report, redactor), paths)
    if paths:
        _write_reports(result)
    return result


def _locked_run(
    config: Config,
    collectors: Sequence[Collector],
    redactor: Redactor,
    paths: dict[str, Path],
    commit: bool,
    docs: bool,
    alerts: bool,
) -> RunResult:
    """One render: every finding about the run itself is settled before the outputs are
    rendered, and the commit records them as rendered.

    Findings about the run come from steps that would otherwise follow the write: the docs
    refresh, the secret check of the files a person edits, the push. So the docs refresh
    is planned (computed, not written) before the render and written after the reports; the
    secret check reads the planned docs; and the push is tried before the commit, which
    tells whether the remote takes this history (a remote that refused the last commits
    refuses this one too), so the committed report carries the push's finding without
    being rendered and committed a second time. A push of the new commit that fails even
    so (the network dropped in between) is a warning on the console and the next run's
    finding; a history with no commit yet is pushed once, after its first commit.
    """
    workspace = Path(config.paths.workspace).expanduser()
    json_path = paths["json"]
    notifier = None
    if alerts and (config.notify.urls or config.notify.ping_url):
        from healthcheck.notify import RunNotifier

        # Opened before the report is written: a first run compares with the previous one.
        notifier = RunNotifier(config, workspace, json_path)
    report = collect(config, collectors).report
    for section in report.sections:
        log.info(
            "collector %s: %s in %d ms%s",
            section.name,
            section.status.value,
            section.duration_ms,
            f" ({section.error})" if section.error else "",
        )
    result = RunResult(report, Rendering(report, redactor), paths)
    before = _read_report(json_path)
    result.previous = _previous_run(before)
    extra = _read_improvements(config, report)
    logs = next((s for s in report.sections if s.name == "logs"), None)
    if logs is not None:
        from healthcheck.loglines import growth_findings

        extra += growth_findings(logs, before, report.generated_at)
    history = _open_history(workspace, redactor, extra, result.warnings) if commit else None
    if docs:
        from healthcheck.docs import inspect_docs

        extra += inspect_docs(config.docs_path)
    if notifier is not None:
        extra += notifier.carried_findings()
    report.add_findings(extra)
    if docs:
        result.docs = _plan_docs(config, result)
    withheld: list[tuple[Path, int]] = []
    push = False
    if history is not None:
        withheld = _secrets_in_edited_files(history, config, result)
        push = _push_before(history, config, result)
    # Every finding is in: the outputs are rendered once, from here on.
    _write_reports(result)
    if result.docs is not None:
        _write_docs(config, result)
    if history is not None:
        _record(history, config, result, {path for path, _ in withheld}, push)
    if notifier is not None:
        result.warnings += notifier.after_run(result.rendering.data, paths["markdown"], redactor)
    _write_exports(result)
    return result


def _open_history(
    workspace: Path, redactor: Redactor, extra: list[Finding], warnings: list[str]
) -> hist.History | None:
    """The workspace history, opened before the report is written, so that a run the
    history cannot take says so in the report itself."""
    from healthcheck import history as hist

    try:
        history = hist.History.open(workspace, redactor)
        if reason := history.blocked():
            extra.append(hist.commit_skipped(reason))
            warnings.append(f"not recorded in git: {reason}")
            return None
        if fault := history.fault():
            raise fault
    except hist.HistoryError as exc:
        extra.append(hist.history_failed(str(exc), exc.hint))
        warnings.append(f"not recorded in git: {exc}")
        return None
    return history


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
    from healthcheck.improvement_log import LogError, open_entries

    try:
        report.improvements = [e.summary() for e in open_entries(config.improvement_log_path)]
    except LogError as exc:
        return [_log_unreadable(str(exc))]
    return []


def _write_reports(result: RunResult) -> None:
    """Every form of the report (the outputs that are not exports), all or none."""
    paths = result.paths
    files = [
        (paths[o.key], result.rendering.get(o.key))
        for o in OUTPUTS
        if not o.export and o.key in paths
    ]
    markdown_path = paths["markdown"]
    # Folders named in paths.report or --output are made; a path that cannot be made is
    # reported by the write itself, naming the file.
    for path, _ in files:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
    try:
        write_files_atomically(files)
    except WriteError as exc:
        if exc.errno == errno.ENOSPC:
            raise RunFailed(
                f"{_disk_full(markdown_path.parent)}; the previous report was left as it was"
            ) from None
        raise RunFailed(f"{exc}; the previous report was left as it was") from None


def _write_exports(result: RunResult) -> None:
    """The files other programs read (the node_exporter textfile), from the report as
    written; trouble is a warning: the report itself is safe on disk by now."""
    for entry in OUTPUTS:
        path = result.paths.get(entry.key)
        if not entry.export or path is None:
            continue
        try:
            write_files_atomically([(path, result.rendering.get(entry.key))])
        except (OutputUnavailable, WriteError) as exc:
            result.warnings.append(f"{entry.title} not written: {exc}")
            del result.paths[entry.key]
            continue
        log.info("%s: wrote %s", entry.key, path)


def _disk_full(directory: Path) -> str:
    """`no space left on the workspace's filesystem, 100% of 400 KiB used` (in words)."""
    from healthcheck.model import human_bytes

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


def _plan_docs(config: Config, result: RunResult) -> DocsUpdate | None:
    """The docs refresh, computed from the report but not yet written; trouble reading the
    file is a warning, not a failure."""
    from healthcheck.docs import DocsError, update_docs

    report = result.report
    try:
        # The run's redacted data, shared with the renderers: the report is redacted once
        # (again only when a finding is added after this, which is rare).
        return update_docs(
            config.docs_path,
            result.rendering.data,
            result.rendering.redactor,
            report.generated_at,
            write=False,
            redacted=True,
        )
    except DocsError as exc:
        result.warnings.append(f"docs not refreshed: {exc}")
        return None


def _write_docs(config: Config, result: RunResult) -> None:
    """Write the planned refresh after the reports (a run that cannot write its report
    leaves the docs as they were too); trouble is a warning."""
    from healthcheck.docs import DocsError, write_update

    update = result.docs
    assert update is not None
    try:
        write_update(update)
    except DocsError as exc:
        result.docs = None
        result.warnings.append(f"docs not refreshed: {exc}")
        return
    if update.changed:
        log.info("docs: refreshed %s (lines %s)", config.docs_path, list(update.new_lines))
    result.warnings += [f"docs {config.docs_path}: {w}" for w in update.warnings]


def _docs_changed(result: RunResult) -> bool:
    return result.docs is not None and result.docs.changed


def _secrets_in_edited_files(
    history: hist.History, config: Config, result: RunResult
) -> list[tuple[Path, int]]:
    """The files a person edits that the run commits (the docs file as refreshed, the
    improvement log) with a line that looks like a secret: they are held back, and the
    report that is committed says so, not only the console."""
    from healthcheck import history as hist

    edited: list[tuple[Path, bytes | None]] = [(config.improvement_log_path, None)]
    if result.docs is not None and result.docs.changed:
        edited.insert(0, (config.docs_path, result.docs.data))
    withheld = [
        (path, line)
        for path, text in edited
        if (line := history.secret_line(path, text)) is not None
    ]
    if withheld:
        result.report.add_findings([hist.secret_withheld(p, n) for p, n in withheld])
        result.warnings += [f"{p} not committed: line {n} looks like a secret" for p, n in withheld]
    return withheld


def _push_before(history: hist.History, config: Config, result: RunResult) -> bool:
    """Push what the history holds before this run's commit: whether the remote takes it
    decides the push finding of the report about to be rendered. True when the new commit
    is to be pushed after it is made (the remote took this push, or there was nothing yet
    to push); False when there is no remote, or it refused (said once, here)."""
    from healthcheck import history as hist

    remote = config.git.remote
    if not remote:
        return False
    if history.head() is None:
        return True
    error = history.push(remote, config.git.push_timeout)
    if error is None:
        return True
    result.warnings.append(f"git push to {remote} failed: {error}")
    result.report.add_findings([hist.push_failed(remote, error)])
    return False


def _record(
    history: hist.History,
    config: Config,
    result: RunResult,
    withheld: set[Path],
    push: bool,
) -> None:
    """Commit the run's files; push when a remote is set. Failures are warnings.

    The run's files are its reports, the improvement log (SPEC), and the docs file only
    when this run changed it: a person's half-written edit of the docs is theirs to finish,
    never swept into a run's commit. The message names exactly the files the commit holds,
    so a report written outside the workspace is not described as recorded.
    """
    from healthcheck import history as hist

    markdown_path = result.paths["markdown"]
    candidates = [result.paths[o.key] for o in OUTPUTS if not o.export and o.key in result.paths]
    reports = list(candidates)  # written through the redactor by this run
    if _docs_changed(result):
        candidates.append(config.docs_path)
    candidates.append(config.improvement_log_path)
    # Only what the commit will hold: `withheld`, the files a person put a secret in (found
    # by the run, named by a finding), are held back, so the message must not claim them.
    files = [p for p in candidates if history.committable(p) and p not in withheld]
    if not files:
        log.info("nothing of this run lies in %s: no commit", history.worktree)
        return
    names = [history.relative(p) or str(p) for p in files]
    message = hist.run_message(
        result.rendering.data,
        names,
        outside=None if markdown_path in files else markdown_path,
    )
    try:
        # The reports were just written through the redactor: checking them for secrets
        # again cost 10-25 ms a run (the files a person edits are still checked).
        result.commit = history.commit(files, message, redacted=reports)
    except hist.HistoryError as exc:
        result.warnings.append(f"not recorded in git: {exc}")
        return
    for path in result.commit.left_out:
        log.info("not committed (outside %s, or absent): %s", history.worktree, path)
    remote = config.git.remote
    if not push or history.head() is None:
        return
    error = history.push(remote, config.git.push_timeout)
    if error is None:
        log.info("pushed to %s", remote)
        return
    # The report already rendered and committed cannot say it: the console does, and the
    # next run's push (before its commit) puts it in that run's report.
    result.warnings.append(f"git push to {remote} failed: {error}")


def _log_unreadable(reason: str) -> Finding:
    from healthcheck import history as hist

    return Finding(
        collector=hist.COLLECTOR,
        rule="improvement-log-unreadable",
        subject="",
        severity=Status.WARN,
        title="The improvement log cannot be read",
        detail=reason,
        hint="Fix the named line by hand; `healthcheck log list` checks it.",
    )


# -- refresh_docs -----------------------------------------------------------------------------


class DocsRefresh(Record):
    """What `docs update` did to `target`: `update` is None when it was skipped, because
    another run held the workspace (`skipped` says why)."""

    __slots__ = ("skipped", "source", "target", "update")

    def __init__(
        self,
        target: Path,
        source: str,  # "a fresh run", or "the report of <time>"
        update: DocsUpdate | None = None,
        skipped: str = "",
    ) -> None:
        self.target = target
        self.source = source
        self.update = update
        self.skipped = skipped


def docs_target(config: Config, path: Path | None) -> Path:
    """The docs file `docs update` refreshes: `path`, else [paths] docs. UsageError when
    there is none, or it is not a regular file (a FIFO or a device would block the read,
    holding the lock, or never end)."""
    import stat

    if path is None and not config.docs_enabled:
        raise UsageError(
            "docs update: the docs refresh is turned off in the config ([docs] enabled = false "
            'or [paths] docs = ""); name the file to refresh it anyway'
        )
    target = path if path is not None else config.docs_path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        raise UsageError(
            f"docs update: {target} not found (put the environment document there or point "
            "[paths] docs at it)"
        ) from None
    except OSError as exc:
        raise UsageError(f"docs update: cannot read {target}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"docs update: {target} is not a regular file; nothing was read")
    return target


def refresh_docs(
    config: Config,
    redactor: Redactor,
    target: Path,
    data: Mapping[str, Any],
    last: Path | None = None,
) -> DocsRefresh:
    """Refresh `target` (from docs_target) from the report `data`: a fresh collection, or
    with `last` the JSON report read from there, whose time the document then gives (it
    says when the box looked like this, not when it was copied). A run in progress writes
    the docs too: this waits for the workspace lock rather than race it."""
    from healthcheck.docs import DocsError, update_docs
    from healthcheck.timestamps import parse_utc_stamp

    source = f"the report of {data.get('generated_at', '?')}" if last else "a fresh run"
    done = DocsRefresh(target, source)
    when = datetime.now(timezone.utc)
    if last is not None:
        with contextlib.suppress(TypeError, ValueError):
            when = parse_utc_stamp(data.get("generated_at"))
        # Nothing was collected here: the plugins' docs blocks are found through their entry
        # points, as a run finds them (the built-ins' are in their packages already).
        from healthcheck.plugins import load_collectors

        load_collectors([])
    workspace = Path(config.paths.workspace).expanduser()
    try:
        with contextlib.ExitStack() as held:
            if workspace.is_dir():
                with contextlib.suppress(LockError):  # unlockable: the write decides
                    held.enter_context(
                        workspace_lock(workspace, config.git.lock_timeout, "docs-update")
                    )
            done.update = update_docs(target, data, redactor, when)
    except LockBusy as exc:
        done.skipped = str(exc)
    except DocsError as exc:
        raise RunFailed(f"docs update failed: {exc}") from None
    return done


# -- change_log -------------------------------------------------------------------------------


class LogChange(Record):
    """What `change_log` did: the entry, its commit, and what went wrong with the commit."""

    __slots__ = ("commit", "entry", "warnings")

    def __init__(
        self,
        entry: Entry,
        commit: str = "",  # the short id of the commit that recorded it; "" when not committed
        warnings: list[str] | None = None,
    ) -> None:
        self.entry = entry
        self.commit = commit
        self.warnings: list[str] = [] if warnings is None else warnings


def change_log(
    config: Config,
    redactor: Redactor,
    change: Callable[[ImprovementLog], Entry],
    verb: str,
) -> LogChange:
    """Apply `change` to the improvement log under the workspace lock, then commit only the
    log (`log add`, `log resolve`, the MCP server's `add_improvement`).

    Raises LogError (the log refuses the change), WriteError or OSError (it cannot be
    written), LockBusy or LockError (another run holds the workspace); a commit that fails
    is a warning, the change stays.
    """
    from healthcheck import history as hist
    from healthcheck.improvement_log import ImprovementLog, LogError

    workspace = Path(config.paths.workspace).expanduser()
    path = config.improvement_log_path
    if not workspace.is_dir():
        # A typo in --workspace must not start a second history somewhere else.
        raise LogError(
            f"workspace {workspace} does not exist (check --workspace or [paths] workspace; "
            "`healthcheck run` creates it)"
        )
    with workspace_lock(workspace, config.git.lock_timeout, purpose="log"):
        entry = change(ImprovementLog.load(path))
        done = LogChange(entry)
        if not config.git.commit:
            return done
        try:
            history = hist.History.open(workspace, redactor)
            if reason := history.blocked():
                raise hist.HistoryError(reason)
            if fault := history.fault():
                raise fault
            outcome = history.commit([path], _log_message(entry, verb))
        except hist.HistoryError as exc:
            done.warnings.append(f"{path.name} not committed: {exc}")
            return done
        if outcome.left_out:
            done.warnings.append(f"{path} is outside the workspace history")
        elif outcome.withheld:
            line = outcome.withheld[0][1]
            done.warnings.append(
                f"{path.name} not committed: line {line} looks like a secret "
                "(take it out; the next change commits the file)"
            )
        else:
            done.commit = outcome.short
        return done


def _log_message(entry: Entry, verb: str) -> str:
    """`healthcheck log: IL-3 resolved: <title>`, then the entry's fields."""
    message = f"healthcheck log: {entry.id} {verb.lower()}: {entry.title}\n"
    details = [
        f"{label}: {value}"
        for label, value in (
            ("Status", entry.status),
            ("Source", entry.source),
            ("Finding", entry.finding),
            ("Commit", entry.commit),
            ("Note", entry.note),
        )
        if value
    ]
    return message + "\n" + "\n".join(details) + "\n"
