"""The docs file: refresh its timestamps and managed blocks, and nothing else.

The operator's own document is edited surgically. markdown-it-py parses it only to learn
which lines are code (fenced or indented) or raw HTML; those are never touched, except the
managed-block markers themselves. On the other lines ("prose") three things change:

* a "Last updated" value (``*Last updated: April 29, 2025*``, ``- **Last Updated**: $(date)``)
  gets the current time in the style it already has, its markup intact;
* managed blocks, ``<!-- healthcheck:begin NAME [ARG] -->`` ... ``<!-- healthcheck:end NAME -->``,
  either on lines of their own (block) or within one line (inline), are regenerated from
  ``docs/NAME.md.j2`` in the package of the collector whose section fills it (supervisor's
  ``services``), or from ``report_templates/docs/NAME.md.j2`` for the report's own (``findings``);
* the seed's unexpanded shell placeholders are recognised (never run) and turned into managed
  blocks on the first run: ``$(supervisorctl status)`` (alone in a fenced block or on a line),
  ``$(if [ -f PATH ]; then echo "Present"; else echo "Not found"; fi)`` and a ``$(date)`` that is
  not a "Last updated" value.

Every other byte stays as it was: the file is handled as bytes decoded with surrogateescape
(invalid UTF-8 survives), lines keep their own endings (new lines take the file's dominant
one), and a missing final newline stays missing. Everything generated passes the Redactor.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

import jinja2

from healthcheck.assets import docs_block
from healthcheck.lazyre import lazy
from healthcheck.model import Finding, Status
from healthcheck.output import WriteError, write_files_atomically
from healthcheck.record import Record
from healthcheck.redact import Redactor
from healthcheck.render import make_environment
from healthcheck.report import Report
from healthcheck.timestamps import readable

TEMPLATE_DIR = "docs"
_NAME = r"[a-z0-9][a-z0-9_-]*"
_ARG = r"(?:(?!--)[^\n])*?"  # no "--": it would end the HTML comment
_BEGIN = rf"<!-- healthcheck:begin (?P<name>{_NAME})(?: (?P<arg>{_ARG}))? -->"
_END = rf"<!-- healthcheck:end (?P<end>{_NAME})(?: {_ARG})? -->"
_BLOCK_MARKER = lazy(rf"[ \t]*(?:{_BEGIN}|{_END})[ \t]*")
_INLINE_BLOCK = lazy(
    rf"<!-- healthcheck:begin (?P<name>{_NAME})(?: (?P<arg>{_ARG}))? -->(?P<body>.*?)"
    rf"<!-- healthcheck:end (?P=name)(?: {_ARG})? -->"
)
_CODE_SPAN = lazy(r"(?<!`)(`+)(?!`).+?(?<!`)\1(?!`)")

# The seed's placeholders. Recognised, never executed.
_SUPERVISORCTL = lazy(r"\$\(\s*supervisorctl\s+status\s*\)")
_DATE = lazy(r"\$\(\s*date(?:\s+-u)?\s*\)")
_IF_FILE = lazy(
    r"\$\(\s*if\s+\[\s+-f\s+(?P<path>\"[^\"]+\"|'[^']+'|[^\s\"';\]]+)\s+\]\s*;\s*"
    r"then\s+echo\s+(?:\"Present\"|'Present'|Present)\s*;\s*"
    r"else\s+echo\s+(?:\"Not found\"|'Not found')\s*;\s*fi\s*\)"
)
_SHELL = lazy(r"\$\(")

# "Last updated:" with its markup (`**Last Updated**: `, `*Last updated: `, `Last updated:** `).
_LAST_UPDATED = lazy(
    # Not \b: "_Last updated: …_" is emphasis, and "_" counts as a word character.
    r"(?<![A-Za-z0-9])last[ -]updated(?![A-Za-z0-9])(?:[*_]{1,3})?[ \t]*:[ \t]*"
    r"(?:[*_]{1,3}[ \t]*)?",
    re.IGNORECASE,
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_MONTH_RE = "|".join(f"{m[:3]}(?:{m[3:]})?" if len(m) > 3 else m for m in _MONTHS)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_TIME = r"(?P<time>(?P<timesep>,? (?:at )?)\d{1,2}:\d{2}(?P<sec>:\d{2})?(?P<tz> ?(?:UTC|GMT|Z))?)?"
_MONTH_FIRST = lazy(
    rf"(?P<month>{_MONTH_RE})(?P<dot>\.?) (?P<day>\d{{1,2}})(?P<comma>,?) (?P<year>\d{{4}}){_TIME}"
)
_DAY_FIRST = lazy(
    rf"(?P<day>\d{{1,2}}) (?P<month>{_MONTH_RE})(?P<dot>\.?)(?P<comma>,?) (?P<year>\d{{4}}){_TIME}"
)
_ISO = lazy(
    r"\d{4}-\d{2}-\d{2}(?:(?P<sep>[T ])\d{2}:\d{2}(?P<sec>:\d{2})?(?P<frac>\.\d+)?)?"
    r"(?P<tz> ?(?:UTC|GMT)|Z|[+-]\d{2}:?\d{2})?"
)
_DATE_OUTPUT = lazy(  # what `date` prints: Tue Apr 29 10:00:00 UTC 2025
    rf"(?:{'|'.join(_DAYS)}) (?:{'|'.join(m[:3] for m in _MONTHS)}) [ \d]\d "
    r"\d{2}:\d{2}:\d{2} (?:[A-Z]{2,5} )?\d{4}"
)


class DocsError(Exception):
    """The docs file could not be read or written; it is left as it was."""


class DocsUpdate(Record):
    """What one refresh of the docs file did (or would do)."""

    __slots__ = (
        "blocks", "changed", "converted", "data", "findings", "found", "new_lines", "old_lines",
        "path", "timestamps", "warnings",
    )  # fmt: skip
    _not_shown = frozenset({"data"})  # the new content: a whole document

    def __init__(
        self,
        path: Path,
        found: bool = True,
        changed: bool = False,
        old_lines: tuple[int, ...] = (),  # 1-based lines of the previous file replaced or removed
        new_lines: tuple[int, ...] = (),  # 1-based lines of the new file written (new or changed)
        blocks: tuple[str, ...] = (),  # managed blocks regenerated, as "NAME" or "NAME ARG"
        converted: tuple[str, ...] = (),  # placeholders turned into managed blocks
        timestamps: tuple[int, ...] = (),  # 1-based (old) lines whose "Last updated" was refreshed
        warnings: tuple[str, ...] = (),
        findings: tuple[Finding, ...] = (),
        data: bytes = b"",  # the new content
    ) -> None:
        self.path = path
        self.found = found
        self.changed = changed
        self.old_lines = old_lines
        self.new_lines = new_lines
        self.blocks = blocks
        self.converted = converted
        self.timestamps = timestamps
        self.warnings = warnings
        self.findings = findings
        self.data = data


def missing_finding(path: Path) -> Finding:
    return Finding(
        collector="docs",
        rule="missing",
        subject=str(path),
        severity=Status.WARN,
        title=f"Docs file {path} not found",
        detail="The environment document was not refreshed: there is nothing at that path.",
        hint=(
            "Put the environment document there, point [paths] docs at it, or run with --no-docs."
        ),
    )


def inspect_docs(path: Path) -> list[Finding]:
    """Findings about the docs file itself, known before the report is built."""
    if not path.exists():
        return [missing_finding(path)]
    problem = None
    if not path.is_file():
        problem = "it is not a regular file"
    elif not os.access(path, os.R_OK):
        problem = "it cannot be read"
    if problem is None:
        return []
    return [
        Finding(
            collector="docs",
            rule="unreadable",
            subject=str(path),
            severity=Status.WARN,
            title=f"Docs file {path} cannot be refreshed: {problem}",
            hint=f"ls -l {path}",
        )
    ]


def update_docs(
    path: Path,
    report: Report | Mapping[str, Any],
    redactor: Redactor,
    now: datetime,
    write: bool = True,
    redacted: bool = False,
) -> DocsUpdate:
    """Refresh `path` from `report` (a Report, or its JSON form) at time `now`.
    `redacted`: `report` is JSON data already passed through `redactor.obj`.

    A missing file is a finding in the result, not an error; DocsError when the file cannot
    be read or written (then it is left as it was).
    """
    if not path.exists():
        return DocsUpdate(path=path, found=False, findings=(missing_finding(path),))
    # A symlinked document stays a symlink: the file it points at is the one rewritten.
    target = path.resolve() if path.is_symlink() else path
    try:
        before = target.stat()
    except OSError as exc:
        raise DocsError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(before.st_mode):
        # A FIFO would block the read forever (with the workspace lock held), a device
        # never end: such a path is never opened.
        raise DocsError(f"{path} is not a regular file; it was not opened")
    try:
        old = target.read_bytes()
    except OSError as exc:
        raise DocsError(f"cannot read {path}: {exc.strerror or exc}") from None
    data = report.to_dict() if isinstance(report, Report) else dict(report)
    update = refresh_text(old, data, redactor, now, redacted=redacted)
    update.path = path
    if write and update.changed:
        update.warnings += _replace(target, update.data, before)
    return update


def write_update(update: DocsUpdate) -> None:
    """Write a refresh planned with update_docs(write=False) (a run plans it before its
    report is rendered and writes it after). DocsError when it cannot be written."""
    if not update.changed:
        return
    target = update.path.resolve() if update.path.is_symlink() else update.path
    try:
        before = target.stat()
    except OSError as exc:
        raise DocsError(f"cannot read {update.path}: {exc.strerror or exc}") from None
    update.warnings += _replace(target, update.data, before)


def _replace(target: Path, data: bytes, before: os.stat_result) -> tuple[str, ...]:
    """Write the new document, keeping what makes it the operator's file: its owner and
    group, and its hard links (a file with several is rewritten in place, since a rename
    would split it off from the others). Warnings for what could not be kept."""
    if before.st_nlink > 1:
        try:
            with target.open("r+b") as handle:
                handle.write(data)
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise DocsError(f"cannot write {target}: {exc.strerror or exc}") from None
        return ()
    try:
        write_files_atomically([(target, data)])
    except WriteError as exc:
        raise DocsError(f"{exc}; the docs file was left as it was") from None
    try:
        after = target.stat()
        if (after.st_uid, after.st_gid) != (before.st_uid, before.st_gid):
            os.chown(target, before.st_uid, before.st_gid)
    except OSError as exc:
        return (
            f"it is now owned by uid {os.getuid()}, not uid {before.st_uid} gid "
            f"{before.st_gid} as before: {exc.strerror or exc} (chown it back, or run as its "
            "owner)",
        )
    return ()


# --- the document as lines -------------------------------------------------------------------


class _Line(NamedTuple):
    body: str  # without its line ending
    eol: str  # "\r\n", "\n", or "" (a last line without a final newline)


def split_lines(text: str) -> list[_Line]:
    """Lines on "\\n" only: a stray "\\r" or form feed inside a line is content, not a break."""
    parts = text.split("\n")
    lines = [_Line(p[:-1], "\r\n") if p.endswith("\r") else _Line(p, "\n") for p in parts[:-1]]
    if parts[-1]:
        lines.append(_Line(parts[-1], ""))
    return lines


class _Structure(Record):
    """What markdown-it says about the lines (0-based indices)."""

    __slots__ = ("code", "fences", "html")

    def __init__(
        self,
        code: set[int],  # fenced and indented code
        html: set[int],  # raw HTML blocks (where block markers live)
        fences: list[tuple[int, int, str]],  # first line, last line, content
    ) -> None:
        self.code = code
        self.html = html
        self.fences = fences


def _structure(lines: list[_Line]) -> _Structure:
    # markdown-it also breaks lines on a lone \r: hidden here so that its line maps are ours.
    source = "\n".join(line.body.replace("\r", " ") for line in lines)
    if source.startswith("\ufeff"):
        source = source[1:]  # a BOM would hide a heading or fence on line 1
    from healthcheck import cache

    # A run changes the document mostly in its digits (the stamps it refreshes), and the
    # next run finds it so: the structure is kept between runs under the document's layout
    # (its digits masked), which spares markdown-it's import and parse (about 40 ms).
    key = cache.digest(_layout(source).encode("utf-8", "surrogatepass"))
    cached = _cached_structure(cache.load("docs-structure", key), source)
    if cached is not None:
        return cached
    found = _parse_structure(source)
    cache.store(
        "docs-structure",
        key,
        (sorted(found.code), sorted(found.html), found.fences, _fenced_digest(source, found)),
    )
    return found


# Digits after a line's first word with a letter in it: CommonMark's block structure never
# depends on which digit a character is there (only on a list item's number, or on an HTML
# tag name such as h1, and both come before), so two documents equal but for those digits
# have the same blocks. A fence's content does hold them: it is checked apart.
_HEAD = lazy(r"\s*(?:[^\sA-Za-z]+\s+)*\S*[A-Za-z]\S*")
_DIGIT = lazy(r"[0-9]")


def _layout(source: str) -> str:
    """`source` with every digit after each line's first word with a letter made 0."""
    out = []
    for line in source.split("\n"):
        head = _HEAD.match(line)
        if head is None:  # no letter at all: kept as it is
            out.append(line)
        else:
            out.append(line[: head.end()] + _DIGIT.sub("0", line[head.end() :]))
    return "\n".join(out)


def _fenced_digest(source: str, found: _Structure) -> str:
    from healthcheck import cache

    lines = source.split("\n")
    spans = [
        ("\n".join(lines[first : last + 1])).encode("utf-8", "surrogatepass")
        for first, last, _ in found.fences
    ]
    return cache.digest(*spans)


def _cached_structure(value: Any, source: str) -> _Structure | None:
    """The cached structure, when it is one and its fences' lines are still the same."""
    try:
        code, html, fences, fenced = value
        found = _Structure(
            code=set(code),
            html=set(html),
            fences=[(int(first), int(last), str(content)) for first, last, content in fences],
        )
    except (TypeError, ValueError):
        return None
    return found if _fenced_digest(source, found) == fenced else None


def _parse_structure(source: str) -> _Structure:
    # Imported here: only a run that refreshes or checks the docs file parses Markdown.
    from markdown_it import MarkdownIt

    found = _Structure(code=set(), html=set(), fences=[])
    parser = MarkdownIt("commonmark")
    parser.disable("inline")  # only blocks matter here; inline parsing was half the time
    for token in parser.parse(source):
        if not token.map:
            continue
        span = range(token.map[0], token.map[1])
        if token.type == "html_block":
            found.html.update(span)
        elif token.type in ("fence", "code_block"):
            found.code.update(span)
            if token.type == "fence":
                found.fences.append((token.map[0], token.map[1] - 1, token.content))
    return found


def _inline_blocks(body: str) -> list[tuple[int, int]]:
    """The inline managed blocks of a line: their markers are HTML comments, but ours."""
    return [m.span() for m in _INLINE_BLOCK.finditer(body)]


def _code_spans(body: str) -> list[tuple[int, int]]:
    return [m.span() for m in _CODE_SPAN.finditer(body)]


def _overlaps(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(s < end and start < e for s, e in spans)


def _indent(body: str) -> str:
    return body[: len(body) - len(body.lstrip(" \t"))]


# --- the refresh ------------------------------------------------------------------------------


class _Refresh(Record):
    __slots__ = (
        "blocks", "bodies", "context", "converted", "env", "eol", "lines", "redactor",
        "replacements", "timestamps", "warnings",
    )  # fmt: skip

    def __init__(
        self,
        lines: list[_Line],
        context: dict[str, Any],
        redactor: Redactor,
        env: jinja2.Environment,
        eol: str,  # for lines we add: the file's dominant ending
        # first replaced index -> (last replaced index, the new lines)
        replacements: dict[int, tuple[int, list[_Line]]] | None = None,
        bodies: dict[int, str] | None = None,  # lines edited within
        blocks: list[str] | None = None,
        converted: list[str] | None = None,
        timestamps: list[int] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.lines = lines
        self.context = context
        self.redactor = redactor
        self.env = env
        self.eol = eol
        self.replacements: dict[int, tuple[int, list[_Line]]] = (
            {} if replacements is None else replacements
        )
        self.bodies: dict[int, str] = {} if bodies is None else bodies
        self.blocks: list[str] = [] if blocks is None else blocks
        self.converted: list[str] = [] if converted is None else converted
        self.timestamps: list[int] = [] if timestamps is None else timestamps
        self.warnings: list[str] = [] if warnings is None else warnings

    def warn(self, index: int, message: str) -> None:
        self.warnings.append(f"line {index + 1}: {message}")

    def known(self, name: str) -> bool:
        try:
            self.env.get_template(f"{TEMPLATE_DIR}/{name}.md.j2")
        except jinja2.TemplateNotFound:
            return False
        return True

    def render(self, name: str, arg: str | None) -> str | None:
        """The block's new content, redacted; None when it must keep what it has: a block
        a collector fills keeps it when that collector's section is not in the report (the
        collector was skipped) rather than lose it."""
        provided = docs_block(name)
        if provided is not None and provided[1] not in self.context["r"].get("sections", {}):
            return None
        template = self.env.get_template(f"{TEMPLATE_DIR}/{name}.md.j2")
        try:
            text = template.render(**self.context, arg=arg)
        except jinja2.TemplateError as exc:
            # A plugin's block that cannot read its section (an older report, a bug): the
            # document keeps what it has, and the refresh goes on.
            why = self.redactor.text(f"{type(exc).__name__}: {exc}")
            self.warnings.append(
                f"managed block {name!r} could not be filled ({why}); left as it was"
            )
            return None
        # Generated text may carry a lone surrogate that no encoder takes; make it "?".
        text = text.encode("utf-8", "replace").decode("utf-8")
        return self.redactor.text(text.strip("\n"))

    def replace_lines(self, first: int, last: int, bodies: list[str]) -> None:
        """Lines first..last become `bodies`; the last keeps the old last line's ending."""
        new = [_Line(body, self.eol) for body in bodies]
        if new:
            new[-1] = _Line(new[-1].body, self.lines[last].eol)
        self.replacements[first] = (last, new)

    def begin(self, name: str, arg: str | None) -> str:
        """The begin marker; its argument comes from the document, so it is redacted too."""
        return self.redactor.text(f"<!-- healthcheck:begin {name}{f' {arg}' if arg else ''} -->")

    def block_lines(self, name: str, arg: str | None, indent: str, content: str) -> list[str]:
        """A whole managed block: begin marker, content, end marker, all at `indent`."""
        inner = content.split("\n") if content else []
        return [
            indent + self.begin(name, arg),
            *(indent + piece if piece else "" for piece in inner),
            f"{indent}<!-- healthcheck:end {name} -->",
        ]


def refresh_text(
    old: bytes,
    report: Mapping[str, Any],
    redactor: Redactor,
    now: datetime,
    redacted: bool = False,
) -> DocsUpdate:
    """The refreshed document (DocsUpdate.data) and what changed in it; writes nothing.
    `redacted`: `report` has been through `redactor.obj` already (it is only read)."""
    text = old.decode("utf-8", "surrogateescape")
    lines = split_lines(text)
    env = make_environment()
    # A collector's own blocks first, from its package; then the report's own.
    loaders: list[jinja2.BaseLoader] = [jinja2.FunctionLoader(_collector_block)]
    env.loader = jinja2.ChoiceLoader(loaders + ([env.loader] if env.loader else []))
    env.globals["is_file"] = lambda p: os.path.isfile(os.path.expanduser(str(p)))
    now = now.astimezone(timezone.utc).replace(microsecond=0)
    crlf = sum(1 for line in lines if line.eol == "\r\n")
    lf = sum(1 for line in lines if line.eol == "\n")
    run = _Refresh(
        lines=lines,
        context={
            "r": report if redacted else redactor.obj(dict(report)),
            "now": readable(now),
        },
        redactor=redactor,
        env=env,
        eol="\r\n" if crlf > lf else "\n",
    )
    structure = _structure(lines)
    managed = _managed_blocks(run, structure)
    _convert_fences(run, structure, managed)
    prose = [
        index
        for index in range(len(lines))
        if not (
            index in structure.code
            or index in structure.html
            or index in managed
            or index in run.replacements
        )
    ]
    inert = _inert_spans(lines, prose)
    for index in prose:
        _refresh_prose(run, index, lines[index].body, now, inert.get(index, []))
    return _result(run, text)


def _collector_block(template: str) -> tuple[str, str, Callable[[], bool]] | None:
    """`docs/NAME.md.j2` from the package of the collector that provides the block."""
    if not (template.startswith(f"{TEMPLATE_DIR}/") and template.endswith(".md.j2")):
        return None
    name = template.removeprefix(f"{TEMPLATE_DIR}/").removesuffix(".md.j2")
    provided = docs_block(name) if "/" not in name else None
    if provided is None:
        return None
    path = provided[0]
    mtime = os.path.getmtime(path)
    return path.read_text(encoding="utf-8"), str(path), lambda: os.path.getmtime(path) == mtime


# Inline code and inline HTML, found over a whole paragraph: a code span or an HTML comment
# or tag may run across lines, and what is inside is code, never a stamp to refresh.
_PARAGRAPH_INERT = lazy(
    r"(?<!`)(`+)(?!`)[\s\S]+?(?<!`)\1(?!`)"  # a code span
    r"|<!--[\s\S]*?-->"  # an HTML comment
    r"|</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>"  # an HTML tag, attributes and all
)


def _inert_spans(lines: list[_Line], prose: list[int]) -> dict[int, list[tuple[int, int]]]:
    """Per prose line, the parts that lie in inline code or inline HTML of its paragraph
    (consecutive non-blank prose lines). Linear in the document's size."""
    spans: dict[int, list[tuple[int, int]]] = {}
    paragraph: list[int] = []

    def close() -> None:
        if not paragraph:
            return
        starts = []
        offset = 0
        for index in paragraph:
            starts.append(offset)
            offset += len(lines[index].body) + 1
        joined = "\n".join(lines[index].body for index in paragraph)
        if "`" in joined or "<" in joined:
            for match in _PARAGRAPH_INERT.finditer(joined):
                start, end = match.span()
                for index, first in zip(paragraph, starts, strict=True):
                    last = first + len(lines[index].body)
                    if start < last and first < end:
                        spans.setdefault(index, []).append(
                            (max(start, first) - first, min(end, last) - first)
                        )
        paragraph.clear()

    previous = -2
    for index in prose:
        if index != previous + 1 or not lines[index].body.strip():
            close()
        if lines[index].body.strip():
            paragraph.append(index)
        previous = index
    close()
    return spans


def _result(run: _Refresh, text: str) -> DocsUpdate:
    """The new document and the numbers of the lines that changed.

    Linear in the document's size: only the places the refresh touched are compared (a
    replaced block against its replacement, an edited line against itself), never the
    whole file against the whole file (which costs minutes on a 5 MB document)."""
    new_lines: list[_Line] = []
    old_changed: list[int] = []
    new_changed: list[int] = []
    index = 0
    while index < len(run.lines):
        if index in run.replacements:
            last, replacement = run.replacements[index]
            matcher = difflib.SequenceMatcher(
                None,
                [line.body + line.eol for line in run.lines[index : last + 1]],
                [line.body + line.eol for line in replacement],
                autojunk=False,
            )
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                if tag != "equal":
                    old_changed += range(index + i1 + 1, index + i2 + 1)
                    new_changed += range(len(new_lines) + j1 + 1, len(new_lines) + j2 + 1)
            new_lines += replacement
            index = last + 1
            continue
        line = run.lines[index]
        body = run.bodies.get(index, line.body)
        if body != line.body:
            old_changed.append(index + 1)
            new_changed.append(len(new_lines) + 1)
        new_lines.append(_Line(body, line.eol))
        index += 1
    new_text = "".join(line.body + line.eol for line in new_lines)
    return DocsUpdate(
        path=Path(),
        changed=new_text != text,
        old_lines=tuple(old_changed),
        new_lines=tuple(new_changed),
        blocks=tuple(run.blocks),
        converted=tuple(run.converted),
        timestamps=tuple(run.timestamps),
        warnings=tuple(run.warnings),
        data=new_text.encode("utf-8", "surrogateescape"),
    )


def _managed_blocks(run: _Refresh, structure: _Structure) -> set[int]:
    """Regenerate the blocks between marker lines; return every line they span."""
    markers = [
        (index, match)
        for index in sorted(structure.html)
        if (match := _BLOCK_MARKER.fullmatch(run.lines[index].body)) is not None
    ]
    spanned: set[int] = set()
    position = 0
    while position < len(markers):
        index, match = markers[position]
        name = match.group("name")
        position += 1
        if name is None:
            run.warn(index, f"end marker of managed block {match.group('end')!r} without a begin")
            continue
        nxt = markers[position] if position < len(markers) else None
        if nxt is None or nxt[1].group("end") != name:
            run.warn(index, f"managed block {name!r} has no end marker; left as it was")
            continue
        position += 1
        end = nxt[0]
        spanned.update(range(index, end + 1))
        if not run.known(name):
            run.warn(index, f"unknown managed block {name!r}; its content was left as it was")
            continue
        arg = match.group("arg")
        content = run.render(name, arg)
        if content is None:
            continue
        run.blocks.append(f"{name} {arg}" if arg else name)
        indent = _indent(run.lines[index].body)
        bodies = run.block_lines(name, arg, indent, content)[1:-1]
        if end > index + 1:
            run.replace_lines(index + 1, end - 1, bodies)
        elif bodies:
            # Nothing between the markers yet: the content goes in after the begin line.
            begin = run.lines[index]
            run.replacements[index] = (index, [begin] + [_Line(b, run.eol) for b in bodies])
    return spanned


def _convert_fences(run: _Refresh, structure: _Structure, managed: set[int]) -> None:
    """A fenced block holding only `$(supervisorctl status)` becomes a managed block."""
    for first, last, content in structure.fences:
        if first in managed or not _SUPERVISORCTL.fullmatch(content.strip()):
            continue
        opening = run.lines[first].body
        indent = _indent(opening)
        if not opening[len(indent) :].startswith(("`", "~")):
            run.warn(first, "$(supervisorctl status) in a quoted block is left as it was")
            continue
        _convert_supervisorctl(run, first, last, indent)


def _convert_supervisorctl(run: _Refresh, first: int, last: int, indent: str) -> None:
    content = run.render("supervisorctl-status", None)
    if content is None:
        return  # supervisor not collected this time: the placeholder waits for a run that does
    run.replace_lines(first, last, run.block_lines("supervisorctl-status", None, indent, content))
    run.blocks.append("supervisorctl-status")
    run.converted.append("$(supervisorctl status)")


def _refresh_prose(
    run: _Refresh,
    index: int,
    body: str,
    now: datetime,
    inert: list[tuple[int, int]] | None = None,
) -> None:
    """Inline blocks, "Last updated" and placeholders on one line of prose. `inert`: the
    parts of the line inside inline code or HTML that began or ends on another line."""
    protected = _code_spans(body) + [
        span for span in inert or [] if not _overlaps(*span, _inline_blocks(body))
    ]
    edits: list[tuple[int, int, str]] = []
    for match in _INLINE_BLOCK.finditer(body):
        if _overlaps(*match.span(), protected):
            continue
        protected.append(match.span())
        name, arg = match.group("name"), match.group("arg")
        if not run.known(name):
            run.warn(index, f"unknown managed block {name!r}; its content was left as it was")
            continue
        content = run.render(name, arg)
        if content is None:
            continue
        if "\n" in content:
            run.warn(
                index,
                f"managed block {name!r} is several lines: give its markers lines of their own",
            )
            continue
        run.blocks.append(f"{name} {arg}" if arg else name)
        edits.append((match.start("body"), match.end("body"), content))

    for stamp in _LAST_UPDATED.finditer(body):  # every one: two on a line are both refreshed
        if _overlaps(*stamp.span(), protected):
            continue
        value = _restyle(body, stamp.end(), now)
        if value is None:
            run.warn(index, "'Last updated' is followed by no date this tool knows; left as it was")
            continue
        end, new = value
        edits.append((stamp.end(), end, run.redactor.text(new)))
        protected.append((stamp.end(), end))
        if index + 1 not in run.timestamps:
            run.timestamps.append(index + 1)

    if body.strip() and _SUPERVISORCTL.fullmatch(body.strip()):
        _convert_supervisorctl(run, index, index, _indent(body))
        return
    for pattern, name in ((_IF_FILE, "provisioning-check"), (_DATE, "date")):
        for match in pattern.finditer(body):
            if _overlaps(*match.span(), protected):
                continue
            arg = match.groupdict().get("path")
            if arg is not None:
                arg = arg.strip("\"'")
                why = (
                    "its path needs a shell"
                    if "$" in arg or "`" in arg
                    else "its path cannot sit in an HTML comment"
                    if "--" in arg
                    else None
                )
                if why is not None:
                    run.warn(index, f"{match.group(0)} is left as it was: {why}")
                    protected.append(match.span())
                    continue
            content = run.render(name, arg)
            if content is None:
                continue
            marked = f"{run.begin(name, arg)}{content}<!-- healthcheck:end {name} -->"
            edits.append((*match.span(), marked))
            protected.append(match.span())
            run.blocks.append(f"{name} {arg}" if arg else name)
            run.converted.append(match.group(0))
    for match in _SHELL.finditer(body):
        if not _overlaps(match.start(), match.end(), protected):
            run.warn(index, "a shell substitution $(...) is left as it was (never executed)")
            break
    if edits:
        new = body
        for start, end, replacement in sorted(edits, reverse=True):
            new = new[:start] + replacement + new[end:]
        if new != body:
            run.bodies[index] = new


# --- "Last updated" values -------------------------------------------------------------------


def _restyle(body: str, start: int, now: datetime) -> tuple[int, str] | None:
    """(end of the value, `now` written in its style), or None for a value not understood."""
    if (match := _DATE.match(body, start)) is not None:
        return match.end(), readable(now)
    if (match := _DATE_OUTPUT.match(body, start)) is not None:
        day = _DAYS[now.weekday()]
        month = _MONTHS[now.month - 1][:3]
        return match.end(), f"{day} {month} {now.day:2d} {now:%H:%M:%S} UTC {now.year}"
    if (match := _ISO.match(body, start)) is not None:
        return match.end(), _in_iso_style(match, now)
    for pattern in (_MONTH_FIRST, _DAY_FIRST):
        if (match := pattern.match(body, start)) is not None:
            return match.end(), _named_month(match, now, month_first=pattern is _MONTH_FIRST)
    return None


def _in_iso_style(match: re.Match[str], now: datetime) -> str:
    """`now` written like the ISO 8601 value `match` found (its separator, seconds, zone)."""
    out = now.strftime("%Y-%m-%d")
    if match.group("sep"):
        out += match.group("sep") + now.strftime("%H:%M")
        if match.group("sec"):
            out += now.strftime(":%S")
        if match.group("frac"):
            out += "." + "0" * (len(match.group("frac")) - 1)
    tz = match.group("tz")
    if tz is None:
        # A time without a zone would read as local time: say it is UTC.
        return out + ("Z" if match.group("sep") == "T" else " UTC" if match.group("sep") else "")
    if tz[-1].isdigit():
        return out + ("+00:00" if ":" in tz else "+0000")
    return out + tz


def _named_month(match: re.Match[str], now: datetime, month_first: bool) -> str:
    written = match.group("month")
    name = _MONTHS[now.month - 1]
    # "May" could be either style: the full name is the likelier one in prose.
    abbreviated = match.group("dot") or (len(written) == 3 and written != "May")
    month = (name[:3] if abbreviated else name) + match.group("dot")
    padded = len(match.group("day")) == 2 and match.group("day").startswith("0")
    day = f"{now.day:02d}" if padded else str(now.day)
    comma = match.group("comma")
    out = f"{month} {day}{comma} {now.year}" if month_first else f"{day} {month}{comma} {now.year}"
    if match.group("time"):
        out += match.group("timesep") + now.strftime("%H:%M")
        if match.group("sec"):
            out += now.strftime(":%S")
        out += match.group("tz") or " UTC"
    return out
