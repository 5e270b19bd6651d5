"""`healthcheck run`: collectors → findings → redaction → templates → files."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from healthcheck.config import Config
from healthcheck.diagnosis import diagnose
from healthcheck.model import Collector
from healthcheck.output import WriteError, write_files_atomically
from healthcheck.redact import Redactor
from healthcheck.render import render_json, render_markdown
from healthcheck.report import Report
from healthcheck.runner import run_collectors

log = logging.getLogger(__name__)


class RunFailed(Exception):
    """The run could not produce its report; the previous report is left intact."""


@dataclass
class RunResult:
    report: Report
    markdown_path: Path
    json_path: Path
    markdown_text: str
    json_text: str


def report_paths(config: Config, output: Path | None = None) -> tuple[Path, Path]:
    """The Markdown report's path and the JSON beside it."""
    markdown = output if output is not None else config.report_path
    json_path = markdown.with_suffix(".json")
    if json_path == markdown:
        raise RunFailed(f"report path {markdown} ends in .json: the JSON report would replace it")
    return markdown, json_path


def run_healthcheck(
    config: Config,
    collectors: Sequence[Collector],
    redactor: Redactor,
    output: Path | None = None,
) -> RunResult:
    """Run `collectors`, write both reports atomically, and return what was written."""
    markdown_path, json_path = report_paths(config, output)
    workspace = Path(config.paths.workspace).expanduser()
    try:
        workspace.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFailed(f"cannot create workspace {workspace}: {exc.strerror or exc}") from None

    sections = diagnose(run_collectors(collectors, config))
    for section in sections:
        log.info(
            "collector %s: %s in %d ms%s",
            section.name,
            section.status.value,
            section.duration_ms,
            f" ({section.error})" if section.error else "",
        )
    report = Report.build(sections)
    markdown = render_markdown(report, redactor)
    json_text = render_json(report, redactor)
    try:
        write_files_atomically([(markdown_path, markdown), (json_path, json_text)])
    except WriteError as exc:
        raise RunFailed(f"{exc}; the previous report was left as it was") from None
    return RunResult(report, markdown_path, json_path, markdown, json_text)
