"""The improvement log: recommendations for the box (often an AI assistant's) and their fate.

The file is Markdown a person reads and edits, and the tool parses back:

    ## IMP-0001: Install the missing module for VisoMaster

    - Status: open
    - Added: 2025-05-01
    - Source: assistant
    - Finding: supervisor.fatal:visomaster

    > The full text, quoted, so that nothing pasted into it (a heading, a fence, a line
    > that looks like an entry) can break the structure.

Changes are surgical: `add` appends a block, `resolve` rewrites the field lines of one entry;
every other byte of the file (a person's notes, their formatting) stays as it was. A file that
cannot be parsed is reported with its line number and never rewritten.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from healthcheck.lazyre import lazy
from healthcheck.output import write_files_atomically
from healthcheck.record import Record
from healthcheck.redact import Redactor
from healthcheck.text import CUT_MARKER, cut, one_line
from healthcheck.timestamps import utc_date

STATUSES = ("open", "resolved", "dismissed")
# Words a person (or another tool) writes for "this one is finished". The log itself writes
# only `resolved` and `dismissed`, but a hand-edited log is read too (see is_open_status).
CLOSED_STATUSES = frozenset(
    [
        "resolved",
        "dismissed",
        "done",
        "closed",
        "fixed",
        "rejected",
        "wontfix",
        "dropped",
        "obsolete",
    ]
)
# What a `- Status:` line may begin with; any other word is a typo the parser reports.
KNOWN_STATUS_WORDS = frozenset({"open", *CLOSED_STATUSES})
TITLE_MAX = 100
HEADER = """# Improvement log

Recommendations for this box (often from an AI assistant) and what became of them.
Managed with `healthcheck log add`, `log list` and `log resolve`; the text may be edited by
hand, but keep each entry's `## IMP-NNNN: title` heading and its `- Field: value` lines.
"""

_HEADING = lazy(r"^##\s+IMP-(?P<num>\d+)\b(?:\s*:)?\s*(?P<title>.*?)\s*#*\s*$")
_ENTRY_LIKE = lazy(r"^##\s+IMP\b", re.IGNORECASE)
_OTHER_HEADING = lazy(r"^#{1,2}\s")
_FIELD = lazy(r"^[-*]\s+\**(?P<name>[A-Za-z][A-Za-z ]*?)\**\s*:\s*\**\s*(?P<value>.*?)\s*$")
_FENCE = lazy(r"^\s{0,3}(`{3,}|~{3,})")
# Field names as written, in the order new entries get them.
_FIELD_NAMES = {
    "status": "Status",
    "added": "Added",
    "source": "Source",
    "finding": "Finding",
    "findings": "Finding",
    "resolved": "Resolved",
    "commit": "Commit",
    "note": "Note",
}


class LogError(Exception):
    """The improvement log cannot be read or changed; nothing was written."""


class Entry(Record):
    __slots__ = (
        "added",
        "body",
        "commit",
        "extra",
        "field_lines",
        "finding",
        "id",
        "line",
        "note",
        "resolved",
        "source",
        "status",
        "title",
    )
    # Where it sits in the file is not part of what it says.
    _not_compared = frozenset({"field_lines", "line"})
    _not_shown = frozenset({"field_lines"})

    def __init__(
        self,
        id: str,
        title: str,
        status: str = "open",
        added: str = "",
        source: str = "",
        finding: str = "",
        resolved: str = "",
        commit: str = "",
        note: str = "",
        body: str = "",  # the text beyond the title (unquoted); empty for a one-line entry
        extra: dict[str, str] | None = None,  # hand-added fields, kept as they are
        # Where it sits in the file (0-based line indexes), for surgical edits.
        line: int = 0,
        field_lines: dict[str, int] | None = None,
    ) -> None:
        self.id = id
        self.title = title
        self.status = status
        self.added = added
        self.source = source
        self.finding = finding
        self.resolved = resolved
        self.commit = commit
        self.note = note
        self.body = body
        self.extra = extra if extra is not None else {}
        self.line = line
        self.field_lines = field_lines if field_lines is not None else {}

    @property
    def number(self) -> int:
        return int(self.id.split("-", 1)[1])

    @property
    def is_open(self) -> bool:
        return is_open_status(self.status)

    @property
    def text(self) -> str:
        """The entry's whole text, as it was added."""
        if self.title.endswith(CUT_MARKER) and self.body.startswith(self.title[:-1]):
            return self.body  # a long first line: the body holds it whole
        if any(_title_of(line) == self.title for line in self.body.split("\n")):
            return self.body  # a title taken from after a greeting: the body is the text
        return f"{self.title}\n\n{self.body}" if self.body else self.title

    def summary(self) -> dict[str, str]:
        """What the report shows of an open entry."""
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "added": self.added,
            "source": self.source,
            "finding": self.finding,
        }


class ImprovementLog(Record):
    __slots__ = ("entries", "path", "text")

    def __init__(
        self,
        path: Path,
        text: str = "",  # the file as read ("" when it does not exist yet)
        entries: list[Entry] | None = None,
    ) -> None:
        self.path = path
        self.text = text
        self.entries = entries if entries is not None else []

    @classmethod
    def load(cls, path: Path) -> ImprovementLog:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise LogError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LogError(f"{path}: not UTF-8 text (byte {exc.start}); fix it by hand") from None
        return cls(path, text, parse(text, str(path)))

    def get(self, entry_id: str) -> Entry:
        wanted = normalise_id(entry_id)
        for entry in self.entries:
            if entry.id == wanted:
                return entry
        raise LogError(f"no entry {wanted} in {self.path}")

    def next_id(self) -> str:
        return format_id(max((e.number for e in self.entries), default=0) + 1)

    def add(
        self,
        text: str,
        redactor: Redactor,
        source: str = "",
        finding: str = "",
        now: datetime | None = None,
        title: str = "",
    ) -> Entry:
        """Append an entry (secrets masked first) and write the file. `title`: the
        operator's own (the whole text is then the body); else one is taken from the text."""
        clean = redactor.text(text).replace("\r\n", "\n").strip()
        if not clean:
            raise LogError("the entry is empty")
        given = one_line(redactor.text(title))
        if given:
            title, body = given, clean
        else:
            title, body = split_text(clean)
        entry = Entry(
            id=self.next_id(),
            title=title,
            added=_date(now),
            source=one_line(redactor.text(source)),
            finding=one_line(redactor.text(finding)),
            body=body,
        )
        newline = _newline(self.text)
        base = self.text or HEADER.replace("\n", newline)
        if not base.endswith(("\n", "\r")):
            base += newline
        self._write(base + newline + render_entry(entry).replace("\n", newline))
        return self.get(entry.id)

    def resolve(
        self,
        entry_id: str,
        redactor: Redactor,
        note: str = "",
        commit: str = "",
        now: datetime | None = None,
    ) -> Entry:
        """Mark an open entry resolved: only that entry's field lines change."""
        entry = self.get(entry_id)
        if not entry.is_open:
            when = f" ({entry.resolved})" if entry.resolved else ""
            raise LogError(f"{entry.id} is already {entry.status}{when}")
        updates = {"status": "resolved", "resolved": _date(now)}
        if commit:
            updates["commit"] = commit
        if note:
            updates["note"] = one_line(redactor.text(note))
        lines = self.text.splitlines(keepends=True)
        newline = _newline(self.text)
        inserts: list[str] = []
        for key, value in updates.items():
            line = f"- {_FIELD_NAMES[key]}: {value}"
            if key in entry.field_lines:
                index = entry.field_lines[key]
                ending = lines[index][len(lines[index].rstrip("\r\n")) :] or newline
                lines[index] = line + ending
            else:
                inserts.append(line + newline)
        after = max(entry.field_lines.values()) + 1
        if not lines[after - 1].endswith(("\n", "\r")):
            lines[after - 1] += newline
        lines[after:after] = inserts
        self._write("".join(lines))
        return self.get(entry.id)

    def _write(self, text: str) -> None:
        """Write `text` after checking it parses back; nothing is written otherwise."""
        new_entries = parse(text, str(self.path))  # a bug here must not reach the file
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_files_atomically([(self.path, text)])
        self.text, self.entries = text, new_entries


def parse(text: str, where: str = "improvement log") -> list[Entry]:
    """The entries of a log file; LogError names the line of anything it cannot accept."""
    entries: list[Entry] = []
    current: Entry | None = None
    in_fields = False
    body: list[str] = []
    fence: str | None = None
    lines = text.splitlines()

    def close() -> None:
        if current is None:
            return
        if "status" not in current.field_lines:
            raise LogError(
                f"{where}:{current.line + 1}: {current.id} has no '- Status:' line; "
                "add one (open, resolved or dismissed)"
            )
        current.body = "\n".join(body).strip("\n")
        entries.append(current)

    for index, line in enumerate(lines):
        if fence is None and not line.startswith(">"):
            heading = _HEADING.match(line)
            if heading or _ENTRY_LIKE.match(line):
                if not heading:
                    raise LogError(
                        f"{where}:{index + 1}: an entry heading must read "
                        f"'## IMP-0001: title', not {line.strip()!r}"
                    )
                close()
                entry_id = format_id(int(heading["num"]))
                if any(e.id == entry_id for e in entries):
                    raise LogError(f"{where}:{index + 1}: {entry_id} appears twice")
                current, in_fields, body = (
                    Entry(id=entry_id, title=heading["title"], line=index),
                    True,
                    [],
                )
                continue
            if _OTHER_HEADING.match(line):
                close()  # a heading of the person's own ends the entry above it
                current, body = None, []
                continue
        if current is None:
            continue
        if in_fields:
            match = _FIELD.match(line)
            if match:
                _set_field(current, match["name"], match["value"], index, where)
                continue
            if not line.strip():
                continue
            in_fields = False
        if _FENCE.match(line):
            marker = _FENCE.match(line).group(1)  # type: ignore[union-attr]
            if fence is None:
                fence = marker[0] * len(marker)
            elif line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
                fence = None
        body.append(_unquote(line))
    close()
    return entries


def render_entry(entry: Entry) -> str:
    """One entry as Markdown (heading, fields, quoted body), ending with a newline."""
    lines = [f"## {entry.id}: {entry.title}", ""]
    for key in ("status", "added", "source", "finding", "resolved", "commit", "note"):
        value = getattr(entry, key)
        if value:
            lines.append(f"- {_FIELD_NAMES[key]}: {value}")
    lines += [f"- {name}: {value}" for name, value in entry.extra.items()]
    if entry.body:
        lines.append("")
        lines += [f"> {line}" if line.strip() else ">" for line in entry.body.split("\n")]
    return "\n".join(lines) + "\n"


# The opening of a pasted assistant answer, which says nothing about the recommendation.
_GREETING = lazy(
    r"^\W*(?:(?:sure|certainly|of course|absolutely|great|good|okay|ok|yes|hi|hello|hey|"
    r"thanks|thank you|happy to help|glad you asked|good question|great question)\b"
    r"|(?:here(?:'s| is| are)|below (?:is|are)|based on)\b[^.!?]*[:!.]?\s*$)",
    re.IGNORECASE,
)


def _is_greeting(line: str) -> bool:
    text = line.strip()
    return bool(text) and len(text) <= 120 and _GREETING.match(text) is not None


def split_text(text: str) -> tuple[str, str]:
    """(title, body): the first line is the title; a long one is cut, and kept in the body.

    A pasted answer's greeting ("Sure! Here's what I'd do:") is not a title: the first line
    after it is, and the body keeps the whole text."""
    lines = text.split("\n")
    meaningful = [i for i, line in enumerate(lines) if line.strip()]
    skipped = 0
    while skipped < len(meaningful) - 1 and _is_greeting(lines[meaningful[skipped]]):
        skipped += 1
    if skipped:
        title = _title_of(lines[meaningful[skipped]]) or "(untitled)"
        if len(title) > TITLE_MAX:
            return _cut(title), text
        return title, text
    first, _, rest = text.partition("\n")
    title = one_line(first.lstrip("#").strip()) or "(untitled)"
    if len(title) > TITLE_MAX:
        return _cut(title), text
    return title, rest.strip("\n")


def _title_of(line: str) -> str:
    """A line of an answer as a title: without heading, list or emphasis marks."""
    return one_line(line.strip().lstrip("#*->0123456789. ").rstrip("*"))


def _cut(title: str) -> str:
    """A long title cut at a word, without the punctuation left before the marker: at most
    TITLE_MAX characters of the title, then the marker."""
    return cut(title, TITLE_MAX + 1, at_word=True)


def normalise_id(value: str) -> str:
    """`IMP-0003`, from `IMP-3`, `imp-0003` or `3`."""
    match = re.fullmatch(r"(?:IMP-?)?0*(\d+)", value.strip(), re.IGNORECASE)
    if not match or int(match[1]) == 0:
        raise LogError(f"not an entry id: {value!r} (expected IMP-0001)")
    return format_id(int(match[1]))


def format_id(number: int) -> str:
    return f"IMP-{number:04d}"


def _set_field(entry: Entry, name: str, value: str, index: int, where: str) -> None:
    key = name.strip().lower()
    if key not in _FIELD_NAMES:
        entry.extra[name.strip()] = value
        entry.field_lines[f"extra:{name.strip()}"] = index
        return
    key = "finding" if key == "findings" else key
    if key == "status":
        value = value.lower()
        # One notion of closed with is_open_status: a hand-written "done (2025-05-01)" is a
        # closed entry here too, not a log refused whole.
        if _status_word(value) not in KNOWN_STATUS_WORDS:
            raise LogError(
                f"{where}:{index + 1}: {entry.id} has status {value!r}; "
                f"use one of {', '.join(STATUSES)}"
            )
    setattr(entry, key, value)
    entry.field_lines[key] = index


def _unquote(line: str) -> str:
    if line.startswith("> "):
        return line[2:]
    return line[1:] if line.startswith(">") else line


def _date(now: datetime | None) -> str:
    return utc_date(now)


def _newline(text: str) -> str:
    """The file's own line ending, so that a CRLF file stays CRLF."""
    first = text.find("\n")
    return "\r\n" if first > 0 and text[first - 1] == "\r" else "\n"


def is_open_status(status: str) -> bool:
    """Whether an entry with this `- Status:` value still asks for attention: any status
    whose first word is not one of CLOSED_STATUSES ("resolved", "done (2025-05-01)", ...)
    is open, and so is an empty one. The one rule for `log list`, the report and the
    context, whether the log parsed or had to be read as plain text."""
    word = _status_word(status)
    return not word or word not in CLOSED_STATUSES


def _status_word(status: str) -> str:
    """A status's first word, lowercased ("" for none): what decides open or closed."""
    words = status.strip().lower().split()
    return words[0] if words else ""


def open_entries(path: Path) -> list[Entry]:
    """The open entries of the log at `path` (none when it does not exist)."""
    return [e for e in ImprovementLog.load(path).entries if e.is_open]
