"""The `healthcheck` command line."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from healthcheck import __version__
from healthcheck.config import Config, ConfigError, load_config
from healthcheck.model import Status

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3

log = logging.getLogger("healthcheck")


@dataclass
class App:
    """What every command needs: the configuration and a console that redacts."""

    config: Config
    console: Any  # healthcheck.output.Console; imported lazily to keep start-up light
    verbosity: int

    def fail(self, message: str, code: int) -> NoReturn:
        self.console.error(message)
        sys.exit(code)


def _redactor(config: Config | None = None) -> Any:
    """A redactor that knows the secret values of our own and the container's environment.

    Before the configuration is loaded (to report its errors) only our own is known.
    """
    from healthcheck.redact import Redactor

    environments = [dict(os.environ)]
    if config is not None:
        from healthcheck.environ import read_environment

        environments.append(read_environment(config.env.source).variables)
    return Redactor.from_config(config or Config(), environments)


def common_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--config, -v and -q on every command (SPEC), also accepted before the command name."""

    @click.option(
        "--config",
        "config_path",
        metavar="PATH",
        default=None,
        help="Configuration file (default: SPEC's lookup order).",
    )
    @click.option("-v", "--verbose", count=True, help="Say more (repeat for debug output).")
    @click.option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
    @click.pass_context
    @functools.wraps(func)
    def wrapper(
        ctx: click.Context, config_path: str | None, verbose: int, quiet: bool, **kwargs: Any
    ) -> Any:
        parent = ctx.find_root().params
        config_path = config_path or parent.get("config_path")
        verbose = verbose or parent.get("verbose") or 0
        quiet = quiet or bool(parent.get("quiet"))
        return func(_make_app(config_path, verbose, quiet), **kwargs)

    return wrapper


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
    configure_logging(redactor, verbosity)
    return App(config=config, console=Console(redactor, quiet=quiet), verbosity=verbosity)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    default=None,
    help="Configuration file (default: SPEC's lookup order).",
)
@click.option("-v", "--verbose", count=True, help="Say more (repeat for debug output).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and requested data.")
@click.version_option(__version__, prog_name="healthcheck")
def cli(config_path: str | None, verbose: int, quiet: bool) -> None:
    """Tell the operator of a GPU container what is wrong with the box and what changed."""


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


@cli.command()
@common_options
@click.option("--only", metavar="NAMES", help="Run only these collectors (comma-separated).")
@click.option("--skip", metavar="NAMES", help="Do not run these collectors (comma-separated).")
@click.option("--no-commit", is_flag=True, help="Do not record the run in the workspace git.")
@click.option("--no-docs", is_flag=True, help="Do not refresh the docs file.")
@click.option("--output", metavar="PATH", help="Markdown report path; the JSON goes beside it.")
@click.option("--workspace", metavar="DIR", help="Override paths.workspace (created if missing).")
@click.option("--json", "print_json", is_flag=True, help="Also print the JSON report to stdout.")
@click.option(
    "--fail-on",
    type=click.Choice(["warn", "crit"]),
    default=None,
    help="Exit 1 when a finding is at least this severe.",
)
def run(
    app: App,
    only: str | None,
    skip: str | None,
    no_commit: bool,
    no_docs: bool,
    output: str | None,
    workspace: str | None,
    print_json: bool,
    fail_on: str | None,
) -> None:
    """Collect, derive findings, and write the Markdown and JSON reports."""
    from healthcheck.collectors import BUILTIN_COLLECTORS
    from healthcheck.pipeline import RunFailed, run_healthcheck
    from healthcheck.plugins import SelectionError, load_collectors, select

    config = app.config
    if workspace:
        config.paths.workspace = str(Path(workspace).expanduser().absolute())
    try:
        selected = select(
            load_collectors(BUILTIN_COLLECTORS),
            _names(only),
            _names(skip),
            config.collectors.disable,
        )
    except SelectionError as exc:
        app.fail(str(exc), EXIT_USAGE)
    try:
        result = run_healthcheck(
            config,
            [c.collector for c in selected],
            app.console.redactor,
            output=Path(output).expanduser() if output else None,
        )
    except RunFailed as exc:
        app.fail(f"run failed: {exc}", EXIT_FAILED)

    report = result.report
    if print_json:
        app.console.out(result.json_text.rstrip("\n"))
    counts = report.counts
    app.console.info(
        f"Status {report.status.value.upper()}: {counts['crit']} crit, {counts['warn']} warn, "
        f"{counts['unknown']} unknown. Report: {result.markdown_path} "
        f"(JSON: {result.json_path.name})"
    )
    if fail_on and report.at_least(Status(fail_on)):
        sys.exit(EXIT_FINDINGS)


@cli.command("collectors")
@common_options
def list_collectors(app: App) -> None:
    """List collectors: name, origin, enabled, description."""
    from healthcheck.collectors import BUILTIN_COLLECTORS
    from healthcheck.plugins import load_collectors

    loaded = load_collectors(BUILTIN_COLLECTORS)
    disabled = set(app.config.collectors.disable)
    rows = [("NAME", "ORIGIN", "ENABLED", "DESCRIPTION")] + [
        (c.name, c.origin, "no" if c.name in disabled else "yes", c.collector.description)
        for c in loaded
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for *cells, description in rows:
        padded = [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]
        app.console.out("  ".join([*padded, description]))


def main() -> None:
    try:
        cli(prog_name="healthcheck")
    except KeyboardInterrupt:
        sys.stderr.write("healthcheck: interrupted\n")
        sys.exit(130)
    except Exception as exc:
        # A bug, not a foreseeable condition: one redacted line, the traceback only on request.
        if "-vv" in sys.argv or sys.argv.count("-v") + sys.argv.count("--verbose") >= 2:
            raise
        sys.stderr.write(
            _redactor().text(
                f"healthcheck: internal error: {type(exc).__name__}: {exc} (run with -vv for the "
                "traceback)\n"
            )
        )
        sys.exit(EXIT_FAILED)
