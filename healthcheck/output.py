"""Everything that leaves the process: files, stdout, stderr and the log, all redacted."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from healthcheck.redact import Redactor

if TYPE_CHECKING:
    from healthcheck.config import Config
    from healthcheck.report import Report


class WriteError(Exception):
    """An output file could not be written; the previous one is intact.

    `errno`: the OS error behind it, when there was one (ENOSPC for a full disk)."""

    def __init__(self, message: str, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


def write_files_atomically(files: Sequence[tuple[Path, str | bytes]]) -> None:
    """Write every file or none: all temporaries first, then one rename each.

    A temporary sits beside its target (same filesystem, so the rename is atomic); a reader
    sees either the old file or the new one, never half of one. Text is written as UTF-8,
    bytes as they are; a file that exists keeps its permission bits.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for path, text in files:
            staged.append((_stage(path, text), path))
        # Checked before the first rename, so one bad target cannot leave a half-new pair.
        for _, path in staged:
            if path.is_dir():
                raise WriteError(f"cannot write {path}: it is a directory")
        for temp, path in staged:
            try:
                os.replace(temp, path)
            except OSError as exc:
                raise WriteError(f"cannot write {path}: {exc.strerror or exc}", exc.errno) from None
    finally:
        for temp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


def _stage(path: Path, text: str | bytes) -> str:
    # Encoded first: a text no encoder takes must fail before a temporary exists.
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    try:
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}", exc.errno) from None
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) if path.is_file() else 0o644
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
    except OSError as exc:
        os.unlink(temp)
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}", exc.errno) from None
    return temp


class Console:
    """stdout and stderr for the CLI, with every line redacted."""

    def __init__(
        self,
        redactor: Redactor,
        quiet: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.redactor = redactor
        self.quiet = quiet
        self._stdout = stdout
        self._stderr = stderr

    def out(self, text: str) -> None:
        """Data the user asked for (a report, JSON): printed even with --quiet."""
        self._write(self._stdout or sys.stdout, text)

    def info(self, text: str) -> None:
        if not self.quiet:
            self._write(self._stderr or sys.stderr, text)

    def error(self, text: str) -> None:
        self._write(self._stderr or sys.stderr, f"healthcheck: {text}")

    def _write(self, stream: TextIO, text: str) -> None:
        stream.write(self.redactor.text(text) + ("" if text.endswith("\n") else "\n"))
        stream.flush()


class RedactingFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__("healthcheck: %(levelname)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.text(super().format(record))


def configure_logging(redactor: Redactor, verbosity: int, stream: TextIO | None = None) -> None:
    """The tool's own log on stderr, redacted: warnings by default, more with -v."""
    logger = logging.getLogger("healthcheck")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(redactor))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(
        {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    )


class ReportPathError(ValueError):
    """The configured report path cannot hold every form of the report."""


class OutputUnavailable(Exception):
    """An output cannot be made here (its library is not installed): a warning, not a failure."""


class Output:
    """One file a run writes: where it goes and how it is made from the report.

    `export`: False for a form of the report (Markdown, JSON). Those are written together or
    not at all (a run that cannot write them fails and leaves the previous ones), go where
    --output says, are written by a partial run given --output, and are recorded in git.
    True for a file another program reads (node_exporter's textfile): written only by a run
    of the whole box, after the report, never recorded; trouble writing it is a warning.

    A plain class, not a dataclass: every command imports this module, and a dataclass
    costs its start-up more than the whole rest of the module.
    """

    __slots__ = ("export", "key", "path", "render", "title")

    def __init__(
        self,
        key: str,
        title: str,
        path: Callable[[Config, Path | None], Path | None],
        render: Callable[[Rendering], str | bytes],
        export: bool = False,
    ) -> None:
        self.key = key  # names it in a run's result and to the other renderers
        self.title = title  # in warnings: "Prometheus textfile not written: ..."
        # Where it goes, from the config and --output; None: not configured, not written.
        self.path = path
        self.render = render
        self.export = export


class Rendering:
    """One report's outputs, each rendered once, on first use, and kept: one render per run
    and format, however many steps read it (the textfile is read from the JSON as written)."""

    def __init__(self, report: Report, redactor: Redactor) -> None:
        self.report = report
        self.redactor = redactor
        self._made: dict[str, str | bytes] = {}
        self._data: dict[str, Any] | None = None
        self._data_revision = -1

    def get(self, key: str) -> str | bytes:
        if key not in self._made:
            self._made[key] = output_named(key).render(self)
        return self._made[key]

    def text(self, key: str) -> str:
        made = self.get(key)
        return made if isinstance(made, str) else made.decode("utf-8")

    @property
    def data(self) -> dict[str, Any]:
        """The report as redacted data (the docs refresh, the renderers, a commit's message,
        an alert), made once, and again only when findings were added since."""
        if self._data is None or self._data_revision != self.report.revision:
            self._data = self.redactor.obj(self.report.to_dict())
            self._data_revision = self.report.revision
        return self._data


def _markdown_path(config: Config, output: Path | None) -> Path:
    return output if output is not None else config.report_path


def _json_path(config: Config, output: Path | None) -> Path:
    markdown = _markdown_path(config, output)
    json_path = markdown.with_suffix(".json")
    if json_path == markdown:
        raise ReportPathError(
            f"report path {markdown} ends in .json: the JSON report would replace it"
        )
    return json_path


def _render_markdown(rendering: Rendering) -> str:
    from healthcheck.render import render_markdown

    # The report is redacted once per run (Rendering.data), not once per format: each
    # redaction walked the whole report, 5-8 ms a run.
    return render_markdown(rendering.report, rendering.redactor, data=rendering.data)


def _render_json(rendering: Rendering) -> str:
    from healthcheck.render import render_json

    return render_json(rendering.report, rendering.redactor, data=rendering.data)


def _render_prometheus(rendering: Rendering) -> bytes:
    import json

    from healthcheck.metrics import MetricsUnavailable, exposition

    try:
        return exposition(json.loads(rendering.text("json")), rendering.redactor)
    except MetricsUnavailable as exc:
        raise OutputUnavailable(str(exc)) from None


# Every file a run writes, in the order they are written. Adding an output is one entry here
# (and, when its path is configurable, its key in config.py's OutputsConfig).
OUTPUTS: list[Output] = [
    Output("markdown", "Markdown report", _markdown_path, _render_markdown),
    Output("json", "JSON report", _json_path, _render_json),
    Output(
        "prometheus",
        "Prometheus textfile",
        lambda config, _output: config.prometheus_path,
        _render_prometheus,
        export=True,
    ),
]


def output_named(key: str) -> Output:
    return next(o for o in OUTPUTS if o.key == key)


def output_paths(
    config: Config, output: Path | None = None, exports: bool = True
) -> dict[str, Path]:
    """Where each configured output goes, by key (exports left out unless `exports`).
    Raises ReportPathError when a form of the report cannot go where it is asked to."""
    paths = {}
    for entry in OUTPUTS:
        if entry.export and not exports:
            continue
        path = entry.path(config, output)
        if path is not None:
            paths[entry.key] = path
    return paths


def report_paths(config: Config, output: Path | None = None) -> tuple[Path, Path]:
    """The Markdown report's path and the JSON beside it.

    Here rather than in the pipeline: `context`, `docs update` and the self-check need the
    paths without loading what a run needs (git, markdown-it).
    """
    return _markdown_path(config, output), _json_path(config, output)


class ReportReadError(Exception):
    """The last JSON report cannot be used; `missing` when there is none yet."""

    def __init__(self, path: Path, reason: str, missing: bool = False) -> None:
        super().__init__(reason)
        self.path = path
        self.missing = missing


def read_json_report(config: Config) -> tuple[dict[str, Any], Path]:
    """The last JSON report as data, and its path (`context --last`, `docs update --last` and
    the MCP server read it). Raises ReportPathError or ReportReadError."""
    import json

    json_path = report_paths(config)[1]
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReportReadError(json_path, f"no report at {json_path}", missing=True) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportReadError(json_path, f"cannot read {json_path}: {exc}") from None
    if not is_report(data):
        raise ReportReadError(json_path, f"{json_path} is not a healthcheck JSON report")
    return data, json_path


def is_report(data: Any) -> bool:
    """Whether `data` has the shape every reader of a JSON report relies on: sections and
    findings that are records (one rule for context, docs, MCP and serve)."""
    findings = data.get("findings", []) if isinstance(data, dict) else None
    return (
        isinstance(data, dict)
        and isinstance(data.get("sections"), dict)
        and all(isinstance(s, dict) for s in data["sections"].values())
        and isinstance(findings, list)
        and all(isinstance(f, dict) for f in findings)
    )
