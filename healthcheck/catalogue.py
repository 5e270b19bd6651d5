"""The catalogue of known failures: data files shipped in the wheel, read once per process.

The core's `healthcheck/knowledge/failures/*.toml` and each collector's own
`collectors/NAME/failures/*.toml` (plugins' too, healthcheck.assets) hold one file per area
(supervisor programs, being killed, CUDA, X and VNC, GUI libraries, services, the kernel's
GPU messages, Xid codes, GPU checks). Each `[[entry]]` says what recognises a failure
(patterns on a program's log or spawn error, exit statuses, signals, kernel log lines, an Xid
code), its severity, and title, detail and fix templates with named placeholders; each carries
`[[entry.case]]` examples that tests/test_catalogue.py runs. Files are tried in their
`order`, entries in file order, so specific causes come before general ones. Adding a known
failure is one entry and no Python.
"""

from __future__ import annotations

import re
import string
import sys
import threading
from pathlib import Path
from typing import Any, NamedTuple

from healthcheck.lazyre import lazy
from healthcheck.model import Finding, Status
from healthcheck.record import Record

KNOWLEDGE_DIR = "knowledge/failures"
KINDS = ("program", "kernel", "xid", "wording")
SEVERITIES = {"info", "warn", "crit", "unknown"}
_FORMATTER = string.Formatter()


class CatalogueError(ValueError):
    """A catalogue file that is not what the loader expects (a packaging or editing slip)."""


class Entry(Record):
    """One known failure: how it is recognised, how bad it is, and what to say about it."""

    __slots__ = (
        "area", "cases", "code", "context", "detail", "exitstatus", "facts", "fix", "id", "kind",
        "meaning", "otherwise", "patterns", "programs", "recent_hours", "recognised_by",
        "requires", "running", "severity", "signals", "title",
    )  # fmt: skip
    _not_compared = frozenset({"cases", "otherwise"})  # its test cases and fallback words

    def __init__(
        self,
        id: str,  # "collector.rule"
        kind: str,  # "program" (a program's log), "kernel" (a kernel log line), "xid", "wording"
        severity: str,  # "crit", "warn", "unknown" or "info" (info: recorded, never a finding)
        title: str,
        fix: str,
        detail: str = "",
        area: str = "",  # the file it came from
        patterns: tuple[re.Pattern[str], ...] = (),
        context: tuple[re.Pattern[str], ...] = (),  # more fields, from any line
        programs: re.Pattern[str] | None = None,  # regex on the program's supervisor name
        exitstatus: frozenset[int] = frozenset(),
        signals: frozenset[str] = frozenset(),
        requires: str | None = None,  # a probe that must say yes (and adds fields)
        facts: tuple[str, ...] = (),  # probes that only add fields
        running: bool = False,  # also judged on a RUNNING program's newest lines
        code: int | None = None,  # an Xid's code
        meaning: str = "",  # an Xid's meaning
        recognised_by: str = "",  # for the README table
        otherwise: dict[str, str] | None = None,  # when unsaid
        recent_hours: float | None = None,  # kernel lines older than this (when dated) are history
        cases: tuple[dict[str, Any], ...] = (),
    ) -> None:
        self.id = id
        self.kind = kind
        self.severity = severity
        self.title = title
        self.fix = fix
        self.detail = detail
        self.area = area
        self.patterns = patterns
        self.context = context
        self.programs = programs
        self.exitstatus = exitstatus
        self.signals = signals
        self.requires = requires
        self.facts = facts
        self.running = running
        self.code = code
        self.meaning = meaning
        self.recognised_by = recognised_by
        self.otherwise: dict[str, str] = {} if otherwise is None else otherwise
        self.recent_hours = recent_hours
        self.cases = cases

    @property
    def collector(self) -> str:
        return self.id.partition(".")[0]

    @property
    def rule(self) -> str:
        return self.id.partition(".")[2]

    @property
    def status(self) -> Status:
        """The finding severity ("info" entries never become findings: warn if asked)."""
        return Status(self.severity) if self.severity != "info" else Status.WARN

    @property
    def is_fallback(self) -> bool:
        """Recognised by nothing in particular: it explains whatever reaches it."""
        return not (self.patterns or self.exitstatus or self.signals)

    def placeholders(self) -> set[str]:
        return {
            name.split(".")[0].split("[")[0]
            for text in (self.title, self.detail, self.fix)
            for _, name, _, _ in _FORMATTER.parse(text)
            if name
        }

    def render(self, fields: dict[str, Any]) -> tuple[str, str, str]:
        """(title, detail, fix) with `fields` filled in; a missing one reads "n/a"."""
        values = _Missing(fields)
        return (
            self.title.format_map(values),
            self.detail.format_map(values),
            self.fix.format_map(values),
        )


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "n/a"


class Catalogue(NamedTuple):
    entries: tuple[Entry, ...]
    libraries: dict[str, str]  # shared library file -> Debian package
    never_decisive: tuple[re.Pattern[str], ...]  # boilerplate that explains nothing

    def by_id(self, entry_id: str) -> Entry:
        for entry in self.entries:
            if entry.id == entry_id:
                return entry
        raise KeyError(entry_id)

    def of_kind(self, kind: str) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind == kind)

    def xids(self) -> dict[int, Entry]:
        return {e.code: e for e in self.entries if e.kind == "xid" and e.code is not None}


class _Loaded:
    """`catalogue()`: the catalogue, loaded once (and once only when two collector threads
    ask at the same moment, which an lru_cache alone lets both parse); `cache_clear()` makes
    the next call load it again (a plugin's failure files joined)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Catalogue | None = None

    def __call__(self) -> Catalogue:
        """Every catalogue file (the core's and each collector's), parsed once (on first
        need: a run that explains nothing never pays for the parse)."""
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = _load()
                value = self._value
        return value

    def cache_clear(self) -> None:
        with self._lock:
            self._value = None


catalogue = _Loaded()


def _load() -> Catalogue:
    files = _parsed_files()
    entries: list[Entry] = []
    libraries: dict[str, str] = {}
    never: list[re.Pattern[str]] = []
    for _, name, data in files:
        defaults = data.get("defaults", {})
        libraries.update(data.get("libraries", {}))
        never += [lazy(p, re.IGNORECASE) for p in data.get("never_decisive", [])]
        for raw in data.get("entry", []):
            entries.append(_entry(name.removesuffix(".toml"), {**defaults, **raw}, validate=False))
    ids = [e.id for e in entries if e.kind != "xid"]
    duplicate = {i for i in ids if ids.count(i) > 1}
    if duplicate:
        raise CatalogueError(f"ids used twice: {sorted(duplicate)}")
    return Catalogue(tuple(entries), libraries, tuple(never))


def _parsed_files() -> list[tuple[int, str, dict[str, Any]]]:
    """(order, file name, data) of every catalogue file, in the order they are tried.

    Parsing the TOML costs about 25 ms a run and compiling its 180 patterns about 18 ms:
    the parsed data is kept in the user's cache keyed by the files' bytes (about 1 ms to
    read back), and its patterns are compiled when first used. Every pattern is checked
    when the files are parsed, so a bad one is still refused before anything is cached.
    """
    from healthcheck import cache
    from healthcheck.assets import failure_files

    # The package's own folder (a wheel installs it as files): importlib.resources would
    # cost its own import, about 10 ms.
    folder = Path(__file__).parent / KNOWLEDGE_DIR
    core = sorted(item for item in folder.iterdir() if item.name.endswith(".toml"))
    sources = [(item.name, item.read_bytes()) for item in [*core, *failure_files()]]
    key = cache.digest(*(part for name, text in sources for part in (name.encode(), text)))
    cached = cache.load("catalogue", key)
    if isinstance(cached, list):
        return cached
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib

    files = []
    for name, text in sources:
        try:
            data = tomllib.loads(text.decode("utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise CatalogueError(f"{name}: {exc}") from exc
        for raw in data.get("entry", []):
            _entry(name.removesuffix(".toml"), {**data.get("defaults", {}), **raw})
        try:
            for pattern in data.get("never_decisive", []):
                re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise CatalogueError(f"{name}: bad never_decisive expression: {exc}") from exc
        files.append((int(data.get("order", 50)), name, data))
    files.sort(key=lambda f: (f[0], f[1]))
    cache.store("catalogue", key, files)
    return files


ENTRY_KEYS = frozenset(
    {
        "id", "kind", "severity", "title", "detail", "fix", "match", "context", "programs",
        "exitstatus", "signal", "requires", "facts", "running", "code", "meaning",
        "recognised_by", "otherwise", "case", "recent_hours",
    }
)  # fmt: skip


def _entry(area: str, raw: dict[str, Any], validate: bool = True) -> Entry:
    """One entry; with `validate`, its patterns are compiled now (a bad one is a
    CatalogueError), else when first used."""
    where = f"{area}: {raw.get('id', raw.get('code', '?'))}"
    unknown = set(raw) - ENTRY_KEYS
    if unknown:
        # A misspelt "match" would make the entry match every program: refuse it.
        raise CatalogueError(f"{where}: unknown keys {sorted(unknown)}")
    kind = raw.get("kind", "program")
    if kind not in KINDS:
        raise CatalogueError(f"{where}: kind {kind!r} is not one of {KINDS}")
    severity = raw.get("severity", "crit")
    if severity not in SEVERITIES:
        raise CatalogueError(f"{where}: severity {severity!r}")
    code = raw.get("code")
    entry_id = raw.get("id") or (f"gpu.xid-{code}" if kind == "xid" else "")
    if "." not in entry_id:
        raise CatalogueError(f"{where}: id must be collector.rule")
    patterns = raw.get("match", [])
    if isinstance(patterns, str):
        patterns = [patterns]

    def compile_(pattern: str) -> re.Pattern[str]:
        return re.compile(pattern, re.IGNORECASE) if validate else lazy(pattern, re.IGNORECASE)

    try:
        compiled = tuple(compile_(p) for p in patterns)
        context = tuple(compile_(p) for p in raw.get("context", []))
        programs = compile_(raw["programs"]) if raw.get("programs") else None
    except re.error as exc:
        raise CatalogueError(f"{where}: bad regular expression: {exc}") from exc
    return Entry(
        id=entry_id,
        kind=kind,
        severity=severity,
        title=raw.get("title", ""),
        detail=raw.get("detail", ""),
        fix=raw.get("fix", ""),
        area=area,
        patterns=compiled,
        context=context,
        programs=programs,
        exitstatus=frozenset(int(s) for s in raw.get("exitstatus", [])),
        signals=frozenset(raw.get("signal", [])),
        requires=raw.get("requires"),
        facts=tuple(raw.get("facts", [])),
        running=bool(raw.get("running", False)),
        code=int(code) if code is not None else None,
        meaning=raw.get("meaning", ""),
        recognised_by=raw.get("recognised_by", ""),
        otherwise=dict(raw.get("otherwise", {})),
        recent_hours=float(raw["recent_hours"]) if "recent_hours" in raw else None,
        cases=tuple(raw.get("case", [])),
    )


def wording(entry_id: str, **fields: Any) -> tuple[str, str, str]:
    """(title, detail, fix) of a catalogue entry, for checks that decide in code."""
    return catalogue().by_id(entry_id).render(fields)


def never_decisive(line: str) -> bool:
    """Boilerplate (CUDA's "might be asynchronously reported", supervisord's own words) that
    is never the line that explains a failure."""
    return any(p.search(line) for p in catalogue().never_decisive)


def finding(
    entry_id: str,
    subject: str,
    evidence: tuple[str, ...] = (),
    severity: Status | None = None,
    **fields: Any,
) -> Finding:
    """A finding worded by catalogue entry `entry_id` (a check that decides in code)."""
    entry = catalogue().by_id(entry_id)
    title, detail, fix = entry.render(fields)
    return Finding(
        entry.collector, entry.rule, subject, severity or entry.status, title, detail, fix, evidence
    )


__all__ = [
    "Catalogue",
    "CatalogueError",
    "Entry",
    "catalogue",
    "finding",
    "never_decisive",
    "wording",
]
