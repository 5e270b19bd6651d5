"""The `healthcheck` command line."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from healthcheck import __version__
from healthcheck.config import Config, ConfigError, load_config
from healthcheck.model import Status
from healthcheck.record import Record
from healthcheck.timestamps import readable_stamp

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3

log = logging.getLogger("healthcheck")
CONFIG_HELP = (
    "Configuration file. Default: $HEALTHCHECK_CONFIG, else the first of ./healthcheck.toml, "
    "~/.config/healthcheck/config.toml, /etc/healthcheck/config.toml; else built-in defaults."
)


class App(Record):
    """What every command needs: the configuration and a console that redacts."""

    __slots__ = ("config", "config_given", "console", "verbosity", "workspace_given")

    def __init__(
        self,
        config: Config,
        console: Any,  # healthcheck.output.Console; imported lazily to keep start-up light
        verbosity: int,
        config_given: bool = False,  # named by --config or $HEALTHCHECK_CONFIG, not found by lookup
        workspace_given: bool = False,  # --workspace on the command line
    ) -> None:
        self.config = config
        self.console = console
        self.verbosity = verbosity
        self.config_given = config_given
        self.workspace_given = workspace_given

    def fail(self, message: str, code: int) -> NoReturn:
        self.console.error(message)
        sys.exit(code)


# The command's own redactor once its configuration is loaded: an internal error's line
# then masks what [redact] names and the container's secrets, not only our environment's.
_command_redactor: Any = None


def _redactor(config: Config | None = None) -> Any:
    """A redactor that knows the secret values of our own and the container's environment.

    Before the configuration is loaded (to report its errors) only our own is known.
    """
    from healthcheck.redact import Redactor

    environments = [dict(os.environ)]
    if config is not None:
        from healthcheck.environ import read_environment

        environments.append(
            read_environment(config.env.source, config.supervisor.serverurl).variables
        )
    return Redactor.from_config(config or Config(), environments)


def _global_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, -v and -q, declared once for the group and for every command."""
    options = (
        click.option("--config", "config_path", metavar="PATH", help=CONFIG_HELP),
        click.option("-v", "--verbose", count=True, help="Say more (repeat for debug output)."),
        click.option("-q", "--quiet", is_flag=True, help="Only errors and requested data."),
    )
    for option in reversed(options):  # as if stacked on `func`: --help lists them in order
        func = option(func)
    return func


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, -v and -q on every command (SPEC), also accepted before the command name."""

    @_global_options
    @click.pass_context
    @functools.wraps(func)
    def wrapper(
        ctx: click.Context, config_path: str | None, verbose: int, quiet: bool, **kwargs: Any
    ) -> Any:
        parent = ctx.find_root().params
        config_path = config_path or parent.get("config_path")
        verbose = verbose or parent.get("verbose") or 0
        quiet = quiet or bool(parent.get("quiet"))
        if func.__name__ not in ONE_SHOT_COMMANDS:
            return func(_make_app(config_path, verbose, quiet), **kwargs)
        with _one_shot():
            return func(_make_app(config_path, verbose, quiet), **kwargs)

    return wrapper


def workspace_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--workspace DIR on every command that reads or writes the workspace (below
    common_options): it replaces paths.workspace for this command."""

    @click.option(
        "--workspace",
        metavar="DIR",
        default=None,
        help="The workspace to use instead of [paths] workspace.",
    )
    @functools.wraps(func)
    def wrapper(app: App, *args: Any, workspace: str | None = None, **kwargs: Any) -> Any:
        if workspace:
            app.config.paths.workspace = str(Path(workspace).expanduser().absolute())
            app.workspace_given = True
        return func(app, *args, **kwargs)

    return wrapper


# Commands that collect once and end. They share one read of the process table (and of every
# other shared scan) between the redactor's look for env.source's process and the
# collectors, and run without the cyclic garbage collector. A long-lived command (serve,
# mcp) must read the box afresh for each of its runs, and collect its garbage.
ONE_SHOT_COMMANDS = frozenset({"run", "context", "docs_update"})


# Set by main(): the process ends with its command. A one-shot command then leaves the
# garbage collector off: turning it back on made one last collection over every object the
# run had made (about 11 ms) just before os._exit dropped them all at once.
_process_ends_with_command = False


@contextlib.contextmanager
def _one_shot() -> Iterator[None]:
    """The block's scans shared; the garbage collector off (restored after, unless the
    process ends with the command).

    A command's objects live until it ends: during a run the collector made some 90
    collections (a twentieth of the run's CPU) that freed nothing the peak RSS shows.
    """
    import gc

    from healthcheck.processes import shared_scan

    enabled = gc.isenabled()
    gc.disable()
    try:
        with shared_scan():
            yield
    finally:
        if enabled and not _process_ends_with_command:
            gc.enable()


def _make_app(config_path: str | None, verbose: int, quiet: bool) -> App:
    from healthcheck.output import Console, configure_logging

    verbosity = -1 if quiet else verbose
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        console = Console(_redactor())
        console.error(f"config error: {exc}")
        sys.exit(EXIT_USAGE)
    redactor = _redactor(config)
    global _command_redactor
    _command_redactor = redactor
    configure_logging(redactor, verbosity)
    return App(
        config=config,
        console=Console(redactor, quiet=quiet),
        verbosity=verbosity,
        config_given=bool(config_path or os.environ.get("HEALTHCHECK_CONFIG")),
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@_global_options
@click.version_option(__version__, prog_name="healthcheck")
def cli(config_path: str | None, verbose: int, quiet: bool) -> None:
    """Tell the operator of a GPU container what is wrong with the box and what changed."""


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def _selected_collectors(app: App, only: str | None, skip: str | None) -> list[Any]:
    """The collectors to run: built-ins and plugins, less --skip and [collectors] disable."""
    from healthcheck.plugins import DisabledUnknown, SelectionError, choose

    try:
        return choose(app.config.collectors.disable, _names(only), _names(skip))
    except DisabledUnknown as exc:
        app.fail(f"config error: {app.config.loaded_from or 'config'}: {exc}", EXIT_USAGE)
    except SelectionError as exc:
        app.fail(str(exc), EXIT_USAGE)


def _fresh_or_last(
    app: App, last: bool, only: str | None, skip: str | None
) -> tuple[dict[str, Any], Path | None]:
    """The report `context` and `docs update` work from, as data: with --last the last JSON
    report (and its path), else a fresh collection that writes nothing (None)."""
    from healthcheck.output import ReportPathError, ReportReadError, read_json_report

    if not last:
        from healthcheck.pipeline import collect

        return collect(app.config, _selected_collectors(app, only, skip)).data, None
    if only or skip:
        app.fail("--only and --skip select collectors to run; --last runs none", EXIT_USAGE)
    try:
        return read_json_report(app.config)
    except ReportPathError as exc:
        app.fail(str(exc), EXIT_USAGE)
    except ReportReadError as exc:
        if exc.missing:
            app.fail(
                f"--last: no report at {exc.path} (run `healthcheck run` first, "
                "or leave out --last for a fresh run)",
                EXIT_FAILED,
            )
        app.fail(f"--last: {exc}", EXIT_FAILED)


@cli.command()
@common_options
@workspace_option
@click.option("--only", metavar="NAMES", help="Run only these collectors (comma-separated).")
@click.option("--skip", metavar="NAMES", help="Do not run these collectors (comma-separated).")
@click.option("--no-commit", is_flag=True, help="Do not record the run in the workspace git.")
@click.option("--no-docs", is_flag=True, help="Do not refresh the docs file.")
@click.option("--output", metavar="PATH", help="Markdown report path; the JSON goes beside it.")
@click.option("--json", "print_json", is_flag=True, help="Also print the JSON report to stdout.")
@click.option(
    "--fail-on",
    type=click.Choice(["warn", "unknown", "crit"], case_sensitive=False),
    default=None,
    help="Exit 1 when a finding is at least this severe (crit > unknown > warn).",
)
def run(
    app: App,
    only: str | None,
    skip: str | None,
    no_commit: bool,
    no_docs: bool,
    output: str | None,
    print_json: bool,
    fail_on: str | None,
) -> None:
    """Collect, derive findings, and write the Markdown and JSON reports.

    With --only or --skip the run is partial: it is not the box's state, so it never
    replaces the main report, refreshes the docs or commits; it prints its report on
    stdout (Markdown, or JSON with --json) or writes it where --output says.
    """
    from healthcheck import pipeline

    config = app.config
    collectors = _selected_collectors(app, only, skip)
    partial = bool(_names(only) or _names(skip))
    try:
        result = pipeline.run(
            config,
            collectors,
            app.console.redactor,
            output=Path(output).expanduser() if output else None,
            commit=not no_commit,
            docs=not no_docs,
            partial=partial,
            fail_on=Status(fail_on.lower()) if fail_on else None,
        )
    except pipeline.UsageError as exc:
        app.fail(str(exc), EXIT_USAGE)
    except pipeline.RunFailed as exc:
        app.fail(f"run failed: {exc}", EXIT_FAILED)
    except pipeline.RunSkipped as exc:
        # Not a failure: the other run is doing this one's job (cron overlapping a manual run).
        app.console.error(f"skipped this run: {exc}")
        sys.exit(EXIT_OK)

    report = result.report
    tally = report.tally
    if result.markdown_path is None or result.json_path is None:
        # A partial run without --output: the report itself is the output.
        app.console.out((result.json_text if print_json else result.markdown_text).rstrip("\n"))
        app.console.info(
            f"Partial run ({', '.join(s.name for s in report.sections)}): {tally} "
            "Printed above; nothing written or recorded."
        )
        _exit_on(report, fail_on)
        return
    if print_json:
        app.console.out(result.json_text.rstrip("\n"))
    where = f"Report: {result.markdown_path} (JSON: {result.json_path.name})"
    if partial:
        app.console.info(
            f"Partial run ({', '.join(s.name for s in report.sections)}): {tally} {where}; "
            "not recorded."
        )
        _exit_on(report, fail_on)
        return
    app.console.info(f"{tally} {where}")
    if result.commit is not None and result.commit.sha:
        app.console.info(f"Committed {result.commit.short} in {config.paths.workspace}.")
    for warning in result.warnings:
        app.console.error(f"warning: {warning}")
    for line in _summary(report, result.previous, _use_colour()):
        app.console.info(line)
    _exit_on(report, fail_on)


TOP_FINDINGS = 5
_COLOURS = {"crit": "red", "unknown": "magenta", "warn": "yellow", "ok": "green"}


def _use_colour() -> bool:
    """Colour on a terminal; none when piped, or with NO_COLOR set (https://no-color.org)."""
    return sys.stderr.isatty() and not os.environ.get("NO_COLOR")


def _summary(report: Any, previous: tuple[str, dict[str, str]] | None, colour: bool) -> list[str]:
    """The end of a run on the terminal: the top findings, and what changed since the run
    before (new findings by severity, and how many were resolved)."""

    def severity(value: str) -> str:
        word = value.upper().ljust(7)
        return click.style(word, fg=_COLOURS.get(value), bold=True) if colour else word

    lines = []
    for finding in report.findings[:TOP_FINDINGS]:
        lines.append(f"  {severity(finding.severity.value)} {' '.join(finding.title.split())}")
    if len(report.findings) > TOP_FINDINGS:
        lines.append(f"  {len(report.findings) - TOP_FINDINGS} more in the report.")
    if previous is None:
        lines.append("Since the last run: nothing to compare (no earlier report).")
        return lines
    when, before = previous
    now = {f.id: f.severity.value for f in report.findings}
    new = [now[i] for i in now if i not in before]
    resolved = [i for i in before if i not in now]
    parts = []
    if new:
        tally = ", ".join(
            f"{new.count(level)} {level}"
            for level in ("crit", "unknown", "warn")
            if new.count(level)
        )
        parts.append(f"new: {tally}")
    if resolved:
        parts.append(f"resolved: {len(resolved)}")
    change = "; ".join(parts) if parts else "no finding opened or resolved"
    lines.append(f"Since the last run ({readable_stamp(when)}): {change}.")
    return lines


def _exit_on(report: Any, fail_on: str | None) -> None:
    """Exit 1 when a finding is at least as severe as --fail-on (any case)."""
    if fail_on and report.at_least(Status(fail_on.lower())):
        sys.exit(EXIT_FINDINGS)


@cli.command()
@common_options
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback unless you say otherwise; 0.0.0.0 for all).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9839,
    show_default=True,
    help="TCP port (0: any free one, printed at start).",
)
@click.option(
    "--fail-on",
    type=click.Choice(["warn", "unknown", "crit"], case_sensitive=False),
    default="crit",
    show_default=True,
    help="/healthz answers 503 when the last report is at least this severe.",
)
@workspace_option
def serve(app: App, host: str, port: int, fail_on: str) -> None:
    """Serve the last report read-only: /metrics /healthz /status.json /report.md and /."""
    from healthcheck.output import ReportPathError, report_paths
    from healthcheck.serve import (
        FreshRuns,
        HealthApp,
        ReportStore,
        is_loopback,
        make_server,
        serve_until_stopped,
    )

    config = app.config
    try:
        markdown_path, json_path = report_paths(config)
    except ReportPathError as exc:
        app.fail(str(exc), EXIT_USAGE)

    collectors = _selected_collectors(app, None, None)  # once: a bad name fails here, not later

    def fresh_report() -> dict[str, Any]:
        from healthcheck.pipeline import collect

        return collect(config, collectors).data

    redactor = app.console.redactor
    health = HealthApp(
        ReportStore(markdown_path, json_path, redactor),
        redactor,
        Status(fail_on.lower()),
        FreshRuns(fresh_report, config.serve.min_interval),
        config.serve.token,
    )
    try:
        server = make_server(health, host, port)
    except OSError as exc:
        app.fail(f"--host {host} --port {port}: cannot listen: {exc.strerror or exc}", EXIT_USAGE)
    if not is_loopback(host) and not config.serve.token:
        app.console.error(
            f"warning: serving on {host} with no [serve] token set, so anyone who can reach "
            "this port can read the report"
        )
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    serve_until_stopped(
        server,
        lambda: app.console.info(
            f"Serving http://{shown}:{bound_port}/ (report: {json_path}); Ctrl-C stops."
        ),
    )


@cli.command("collectors")
@common_options
def list_collectors(app: App) -> None:
    """List collectors: name, origin, enabled, description."""
    from healthcheck.collectors import BUILTIN_COLLECTORS
    from healthcheck.plugins import DisabledUnknown, check_disabled, load_collectors

    loaded = load_collectors(BUILTIN_COLLECTORS)
    try:
        check_disabled(loaded, app.config.collectors.disable)
    except DisabledUnknown as exc:
        app.fail(f"config error: {app.config.loaded_from or 'config'}: {exc}", EXIT_USAGE)
    disabled = set(app.config.collectors.disable)
    rows = [("NAME", "ORIGIN", "ENABLED", "DESCRIPTION")] + [
        (c.name, c.origin, "no" if c.name in disabled else "yes", c.collector.description)
        for c in loaded
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for *cells, description in rows:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        app.console.out("  ".join([*padded, description]))


@cli.group("cron")
def cron_group() -> None:
    """Manage the cron entry that runs `healthcheck run` on schedule."""


def _cron_call(app: App, action: Callable[[], Any]) -> Any:
    from healthcheck.cron import CronError

    try:
        return action()
    except CronError as exc:
        app.fail(str(exc), exc.code)


@cron_group.command("install")
@common_options
@workspace_option
@click.option(
    "--schedule",
    default=None,
    metavar="CRON",
    help="When to run, as five cron fields (or @hourly, @daily...). Default: the installed "
    "entry's, else 0 */6 * * *.",
)
@click.option("--user", metavar="USER", help="Whose crontab (default: the current user's).")
def cron_install(app: App, schedule: str | None, user: str | None) -> None:
    """Install (or update) the entry; installing twice leaves one.

    Run again, it keeps the entry's schedule, config file and workspace unless --schedule,
    --config or --workspace change them, and says what changed. It adds the line and
    creates nothing else.
    """
    from healthcheck import cron as sched

    workspace = app.config.paths.workspace if app.workspace_given else None
    change = _cron_call(
        app,
        lambda: sched.install(app.config, schedule, user, workspace, app.config_given),
    )
    for note in change.notes:
        if note.startswith("warning: "):
            app.console.error(note)
        else:
            app.console.info(f"Note: {note}.")
    verb = {"installed": "Installed", "updated": "Updated", "unchanged": "Already installed"}
    app.console.info(f"{verb[change.action]} in the crontab of {change.user}:")
    for what in change.changes:
        app.console.info(f"  changed: {what}")
    app.console.out(change.line)
    if sched.cron_daemon() is None:
        app.console.info(
            "Warning: no cron daemon is running, so the entry will not fire; "
            "`healthcheck cron status` shows how to run cron under supervisord."
        )


@cron_group.command("remove")
@common_options
@click.option("--user", metavar="USER", help="Whose crontab (default: the current user's).")
def cron_remove(app: App, user: str | None) -> None:
    """Remove our entry; the rest of the crontab stays as it was."""
    from healthcheck import cron as sched

    change = _cron_call(app, lambda: sched.remove(user))
    if change.action == "absent":
        app.console.info(f"No healthcheck entry in the crontab of {change.user}: nothing to do.")
    else:
        app.console.info(f"Removed from the crontab of {change.user}: {change.line}")


@cron_group.command("status")
@common_options
@click.option("--user", metavar="USER", help="Whose crontab (default: the current user's).")
def cron_status(app: App, user: str | None) -> None:
    """Show the entry, its next run, and whether a cron daemon runs."""
    from healthcheck import cron as sched

    for line in _cron_call(app, lambda: sched.status_lines(user)):
        app.console.out(line)


@cli.command()
@common_options
@workspace_option
@click.option(
    "--budget",
    type=click.IntRange(min=1),
    default=6000,
    show_default=True,
    metavar="N",
    help="About how many tokens the context may take (estimated as characters / 4).",
)
@click.option("--last", is_flag=True, help="Use the last JSON report instead of a fresh run.")
@click.option("--only", metavar="NAMES", help="Run only these collectors (comma-separated).")
@click.option("--skip", metavar="NAMES", help="Do not run these collectors (comma-separated).")
def context(app: App, budget: int, last: bool, only: str | None, skip: str | None) -> None:
    """Print a paste-ready context for an AI assistant (nothing is written)."""
    from healthcheck.context import report_context
    from healthcheck.output import ReportPathError, report_paths

    try:
        markdown_path = report_paths(app.config)[0]
    except ReportPathError as exc:
        app.fail(str(exc), EXIT_USAGE)
    data, json_path = _fresh_or_last(app, last, only, skip)
    app.console.out(
        report_context(app.config, data, budget, json_path, markdown_path, app.console.redactor)
    )


@cli.command("mcp")
@common_options
@workspace_option
def mcp_command(app: App) -> None:
    """Serve the diagnosis to AI assistants over MCP on stdio (needs the mcp extra)."""
    from healthcheck.mcp_server import McpUnavailable, serve

    try:
        serve(app.config, app.console.redactor)
    except McpUnavailable as exc:
        app.fail(str(exc), EXIT_FAILED)


@cli.group("docs")
def docs_group() -> None:
    """The environment document: refresh its timestamps and managed blocks."""


@docs_group.command("update")
@common_options
@workspace_option
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--last", is_flag=True, help="Use the last JSON report instead of a fresh run.")
@click.option("--only", metavar="NAMES", help="Run only these collectors (comma-separated).")
@click.option("--skip", metavar="NAMES", help="Do not run these collectors (comma-separated).")
def docs_update(
    app: App, path: Path | None, last: bool, only: str | None, skip: str | None
) -> None:
    """Refresh the docs file (default: [paths] docs) and nothing else.

    Its blocks are filled from a fresh run of the collectors (nothing else is written), or
    with --last from the last JSON report.
    """
    from healthcheck import pipeline

    try:
        target = pipeline.docs_target(app.config, path)
    except pipeline.UsageError as exc:
        app.fail(str(exc), EXIT_USAGE)
    data, json_path = _fresh_or_last(app, last, only, skip)
    try:
        done = pipeline.refresh_docs(app.config, app.console.redactor, target, data, json_path)
    except pipeline.RunFailed as exc:
        app.fail(str(exc), EXIT_FAILED)
    update = done.update
    if update is None:
        app.console.error(f"skipped the docs update: {done.skipped}")
        return
    for warning in update.warnings:
        app.console.error(f"warning: {target}: {warning}")
    if update.changed:
        where = (
            f"{_line_ranges(update.new_lines)} of the new file"
            if update.new_lines
            else f"removed {_line_ranges(update.old_lines)}"
        )
        app.console.info(f"Updated {target} from {done.source}: {where}.")
    else:
        app.console.info(f"{target} is up to date (checked against {done.source}).")


# Ranges a message names before it counts the rest: a long document refreshed throughout
# must not print a screenful of line numbers.
MAX_RANGES_SHOWN = 10


def _line_ranges(numbers: tuple[int, ...]) -> str:
    """(7, 27, 28, 29, 32) -> "lines 7, 27-29, 32"; past MAX_RANGES_SHOWN ranges, the rest
    counted ("... and 40 more lines")."""
    ranges: list[list[int]] = []
    for n in numbers:
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    shown = ranges[:MAX_RANGES_SHOWN]
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in shown)
    if len(ranges) > len(shown):
        rest = sum(b - a + 1 for a, b in ranges[len(shown) :])
        text += f" and {rest} more line{'' if rest == 1 else 's'}"
    return f"line {text}" if len(numbers) == 1 else f"lines {text}"


@cli.command("diff")
@common_options
@workspace_option
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the drift as JSON.")
def diff(app: App, old: str | None, new: str | None, as_json: bool) -> None:
    """Drift between two recorded runs (default: the last two; refs like HEAD~3 work)."""
    import json

    from healthcheck.drift import DriftError, recorded_drift, render_text

    try:
        drift = recorded_drift(app.config, app.console.redactor, old, new)
    except DriftError as exc:
        app.fail(f"diff: {exc}", EXIT_USAGE)
    if as_json:
        app.console.out(json.dumps(drift.to_dict(), indent=2, ensure_ascii=False))
    else:
        app.console.out(render_text(drift))


@cli.group("log")
def log_group() -> None:
    """The improvement log: recommendations with ids, status and resolving commits."""


def _change_log(app: App, change: Callable[[Any], Any], verb: str) -> None:
    """The change_log use case, and what it did on the console."""
    from healthcheck.improvement_log import LogError
    from healthcheck.lock import LockBusy, LockError
    from healthcheck.output import WriteError
    from healthcheck.pipeline import change_log

    try:
        done = change_log(app.config, app.console.redactor, change, verb)
    except LogError as exc:
        app.fail(f"improvement log: {exc}", EXIT_USAGE)
    except (WriteError, OSError) as exc:
        app.fail(f"improvement log: {exc}", EXIT_FAILED)
    except (LockBusy, LockError) as exc:
        app.fail(f"improvement log: {exc}; nothing was changed", EXIT_FAILED)
    app.console.out(f"{verb} {done.entry.id}: {done.entry.title}")
    for warning in done.warnings:
        app.console.error(f"warning: {warning}")
    if done.commit:
        app.console.info(
            f"Committed {done.commit} in {Path(app.config.paths.workspace).expanduser()}."
        )


@log_group.command("add")
@common_options
@workspace_option
@click.argument("text")
@click.option("--source", default="", metavar="WHO", help="Where it came from (an assistant...).")
@click.option("--finding", default="", metavar="ID", help="The finding it answers.")
@click.option(
    "--title",
    default="",
    metavar="TEXT",
    help="The entry's title (default: the text's first line, after any greeting).",
)
def log_add(app: App, text: str, source: str, finding: str, title: str) -> None:
    """Add an entry: TEXT, or - to read it from stdin (paste an assistant's answer)."""
    if text == "-":
        text = sys.stdin.read()
    redactor = app.console.redactor
    _change_log(
        app,
        lambda log_: log_.add(text, redactor, source=source, finding=finding, title=title),
        "Added",
    )


@log_group.command("show")
@common_options
@workspace_option
@click.argument("entry_id", metavar="ID")
def log_show(app: App, entry_id: str) -> None:
    """Print one entry: its title, fields, notes and whole text."""
    from healthcheck.improvement_log import ImprovementLog, LogError

    path = app.config.improvement_log_path
    try:
        entry = ImprovementLog.load(path).get(entry_id)
    except LogError as exc:
        app.fail(f"improvement log: {exc}", EXIT_USAGE)
    fields = [
        ("Status", entry.status),
        ("Added", entry.added),
        ("Source", entry.source),
        ("Finding", entry.finding),
        ("Resolved", entry.resolved),
        ("Commit", entry.commit),
        ("Note", entry.note),
        *entry.extra.items(),
    ]
    lines = [f"{entry.id}: {entry.title}"] + [f"{name}: {value}" for name, value in fields if value]
    app.console.out("\n".join([*lines, "", entry.text]))


@log_group.command("list")
@common_options
@workspace_option
@click.option("--open/--all", "only_open", default=True, help="Open entries (default) or all.")
def log_list(app: App, only_open: bool) -> None:
    """List entries: id, status, date added, source, title."""
    from healthcheck.improvement_log import ImprovementLog, LogError

    path = app.config.improvement_log_path
    try:
        entries = ImprovementLog.load(path).entries
    except LogError as exc:
        app.fail(f"improvement log: {exc}", EXIT_USAGE)
    shown = [e for e in entries if e.is_open or not only_open]
    if not shown:
        app.console.out(f"No {'open ' if only_open else ''}entries in {path}.")
        return
    rows = [("ID", "STATUS", "ADDED", "SOURCE", "TITLE")] + [
        (e.id, e.status, e.added or "-", e.source or "-", e.title) for e in shown
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for *cells, title in rows:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        app.console.out("  ".join([*padded, title]))


@log_group.command("resolve")
@common_options
@workspace_option
@click.argument("entry_id", metavar="ID")
@click.option("--note", default="", metavar="TEXT", help="How it was resolved.")
@click.option("--commit", "commit_sha", default="", metavar="SHA", help="The commit that did it.")
def log_resolve(app: App, entry_id: str, note: str, commit_sha: str) -> None:
    """Mark entry ID resolved, with a note and the commit that resolved it."""
    import re

    if commit_sha and not re.fullmatch(r"[0-9a-fA-F]{4,40}", commit_sha):
        app.fail(f"--commit: {commit_sha!r} is not a commit id (4 to 40 hex digits)", EXIT_USAGE)
    redactor = app.console.redactor
    _change_log(
        app,
        lambda log_: log_.resolve(entry_id, redactor, note=note, commit=commit_sha.lower()),
        "Resolved",
    )


@cli.group("notify")
def notify_group() -> None:
    """Alerts: try the channels of [notify] urls."""


@notify_group.command("test")
@common_options
def notify_test(app: App) -> None:
    """Send one test message to each [notify] URL and say which worked.

    Exit 0 when every channel took it, 1 when one or more failed, 2 when no URL is
    configured, 3 when Apprise is not installed.
    """
    import socket

    from healthcheck.notify import NotifyUnavailable, send

    settings = app.config.notify
    if not settings.urls:
        app.fail("notify test: no [notify] urls configured; nothing to test", EXIT_USAGE)
    host = socket.gethostname()
    try:
        deliveries = send(
            settings.urls,
            f"healthcheck: test message from {host}",
            "If you can read this, healthcheck's alerts reach this channel "
            "(sent by `healthcheck notify test`).",
            app.console.redactor,
            settings.timeout,
        )
    except NotifyUnavailable as exc:
        app.fail(f"notify test: {exc}", EXIT_FAILED)
    for d in deliveries:
        app.console.out(f"{'ok' if d.ok else 'FAILED':<6}  {d.number}  {d.label}")
        if not d.ok:
            app.console.out(f"        {d.error}")
    worked = sum(d.ok for d in deliveries)
    app.console.info(f"{worked} of {len(deliveries)} channels took the test message.")
    if worked < len(deliveries):
        sys.exit(EXIT_FINDINGS)


class Interrupted(BaseException):
    """Ctrl-C, raised instead of KeyboardInterrupt so that click does not turn it into
    "Aborted!" and exit 1."""


def _interrupted(signum: int, frame: Any) -> None:
    raise Interrupted


def main() -> None:
    """The `healthcheck` command: run it, then leave without tearing the interpreter down.

    Once everything is written and flushed, the interpreter's own exit would spend a sixth
    of a run collecting tens of thousands of objects nobody will use again. os._exit skips
    that, after doing what a normal exit does that matters: waiting for the threads that
    are not daemons, atexit handlers (logging's flush and close among them) and flushing
    stdout and stderr.
    """
    import signal

    global _process_ends_with_command
    _process_ends_with_command = True
    signal.signal(signal.SIGINT, _interrupted)
    try:
        _run_cli()
    except SystemExit as exc:
        _exit_now(exc.code)
    _exit_now(0)


def _run_cli() -> None:
    try:
        cli(prog_name="healthcheck")
    except (Interrupted, KeyboardInterrupt):
        # Files are replaced by rename and commits by a compare-and-swap of HEAD, so
        # whatever was under way left the previous report and the history as they were.
        sys.stderr.write(
            "healthcheck: interrupted; the previous report and the git history are as they were\n"
        )
        sys.exit(130)
    except Exception as exc:
        # A bug, not a foreseeable condition: one redacted line, the traceback only on request.
        if "-vv" in sys.argv or sys.argv.count("-v") + sys.argv.count("--verbose") >= 2:
            raise
        redactor = _command_redactor or _redactor()
        sys.stderr.write(
            redactor.text(
                f"healthcheck: internal error: {type(exc).__name__}: {exc} (run with -vv for the "
                "traceback)\n"
            )
        )
        sys.exit(EXIT_FAILED)


def _exit_now(code: object) -> NoReturn:
    """Exit as `sys.exit(code)` would, minus the interpreter's teardown."""
    import atexit

    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): the message goes to stderr, the status is 1
        sys.stderr.write(f"{code}\n")
        status = 1
    import threading

    # What the interpreter's exit does first: wait for non-daemon threads (a server's
    # workers) and run threading's own exit hooks (concurrent.futures' pools).
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None and threading.current_thread() is threading.main_thread():
        shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what was lost is lost either way
            status = status or 120  # what Python itself exits with when stdout fails at exit
    os._exit(status & 0xFF)
