"""`healthcheck diff`: what changed between two recorded runs, read from their JSON in git.

Only `data`, findings and statuses are compared: `volatile` figures and durations move on
every run and say nothing about drift. Environment variables are compared by name, and
their values are never shown, not even masked ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthcheck.history import History, gitpython  # GitPython, imported quietly
from healthcheck.tracking import (
    FINDINGS_ORDER,
    DriftSpec,
    Records,
    change_lines,
    drift_specs,
    has_changes,
    records_by,
    short,
)

if TYPE_CHECKING:
    from healthcheck.config import Config
    from healthcheck.redact import Redactor

# Keys that name an item of a list of records, in order of preference: a list keyed by one of
# these is compared item by item, whatever the order it was written in.
_ID_KEYS = ("fullname", "uuid", "index", "service", "path", "mountpoint", "name", "port", "id")


class DriftError(Exception):
    """The runs cannot be compared (bad ref, too few runs); the message says why."""


@dataclass
class Run:
    """One recorded run: the commit holding it and its JSON report."""

    sha: str
    report: dict[str, Any]

    @property
    def label(self) -> str:
        report = self.report
        return f"{self.sha[:7]} ({report.get('generated_at', '?')}, {report.get('status', '?')})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "commit": self.sha,
            "generated_at": self.report.get("generated_at"),
            "status": self.report.get("status"),
        }


@dataclass
class Drift:
    old: Run
    new: Run
    status: list[str] | None = None  # [old, new] when the overall status changed
    findings_opened: list[dict[str, str]] = field(default_factory=list)
    findings_resolved: list[dict[str, str]] = field(default_factory=list)
    findings_changed: list[dict[str, str]] = field(default_factory=list)
    # A collector's own changes under its DriftSpec's key ("programs", "ports", ...), in the
    # specs' order; and how each is headed and read.
    tracked: dict[str, Any] = field(default_factory=dict)
    specs: dict[str, DriftSpec] = field(default_factory=dict)  # by section name
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # other changes

    @property
    def empty(self) -> bool:
        return not (
            self.status
            or self.findings_opened
            or self.findings_resolved
            or self.findings_changed
            or any(has_changes(c) for c in self.tracked.values())
            or self.sections
        )

    def to_dict(self) -> dict[str, Any]:
        keyed = _keyed(self.specs)
        out: dict[str, Any] = {
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "drift": not self.empty,
            "status": self.status,
        }
        out.update((k, self.tracked[k]) for k, s in keyed if s.order < FINDINGS_ORDER)
        out["findings"] = {
            "opened": self.findings_opened,
            "resolved": self.findings_resolved,
            "changed": self.findings_changed,
        }
        out.update((k, self.tracked[k]) for k, s in keyed if s.order >= FINDINGS_ORDER)
        out["sections"] = self.sections
        return out


def _keyed(specs: dict[str, DriftSpec]) -> list[tuple[str, DriftSpec]]:
    """(key, spec) of the specs whose changes have a key of their own, in their order."""
    return sorted(((s.key, s) for s in specs.values() if s.key), key=lambda pair: pair[1].order)


# -- reading runs from git -----------------------------------------------------------------


def recorded_drift(
    config: Config,
    redactor: Redactor,
    old: str | None = None,
    new: str | None = None,
    specs: Mapping[str, DriftSpec] | None = None,
) -> Drift:
    """The drift between two runs recorded in the workspace history (`healthcheck diff`, the
    MCP server's `diff`): the last two by default. DriftError says why there is none.
    `specs`: as for `compare`."""
    from healthcheck.history import HistoryError
    from healthcheck.output import ReportPathError, report_paths

    for ref in (old, new):
        # A revision, never an option: git would take "--output=FILE" as one.
        if ref is not None and (not ref.strip() or ref.startswith("-")):
            raise DriftError(f"{ref!r} is not a revision")
    root = Path(config.paths.workspace).expanduser()
    try:
        history = History.open(root, redactor, create=False)
    except HistoryError as exc:
        raise DriftError(f"{exc}; no runs are recorded there") from None
    try:
        json_path = report_paths(config)[1]
    except ReportPathError as exc:
        raise DriftError(str(exc)) from None
    json_rel = history.relative(json_path)
    if json_rel is None:
        raise DriftError(f"{json_path} is outside the workspace history {root}")
    return compare(*load_runs(history, json_rel, old, new), specs)


def load_runs(history: History, json_rel: str, old: str | None, new: str | None) -> tuple[Run, Run]:
    """The two runs to compare: the last two recorded by default; NEW defaults to the last."""
    if old is None or new is None:
        recorded = _recorded(history, json_rel, 1 if old else 2)
        if old is None and len(recorded) < 2:
            raise DriftError(
                f"need two recorded runs to compare; {history.worktree} has {len(recorded)} "
                f"commit{'' if len(recorded) == 1 else 's'} of {json_rel} "
                "(`healthcheck run` records one)"
            )
        if not recorded:
            raise DriftError(f"no recorded run of {json_rel} in {history.worktree}")
        if old is None:
            old, new = recorded[1], recorded[0]
        else:
            new = recorded[0]
    return _load(history, old, json_rel), _load(history, new, json_rel)


def _recorded(history: History, json_rel: str, count: int) -> list[str]:
    if history.head() is None:
        return []
    out = history.repo.git.log(f"-n{count}", "--format=%H", "HEAD", "--", json_rel)
    return [line for line in out.splitlines() if line]


def _load(history: History, ref: str, json_rel: str) -> Run:
    git = gitpython()
    try:
        sha = str(history.repo.git.rev_parse("--verify", "-q", f"{ref}^{{commit}}"))
    except git.GitCommandError:
        raise DriftError(f"unknown revision {ref!r} in {history.worktree}") from None
    try:
        text = history.show(sha, json_rel)
    except git.GitCommandError:
        raise DriftError(f"commit {sha[:7]} ({ref}) has no {json_rel}") from None
    try:
        report = json.loads(text)
    except ValueError as exc:
        raise DriftError(f"{json_rel} in commit {sha[:7]} is not valid JSON: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("sections", {}), dict):
        raise DriftError(f"{json_rel} in commit {sha[:7]} is not a healthcheck report")
    return Run(sha, report)


# -- comparing -----------------------------------------------------------------------------


def compare(old: Run, new: Run, specs: Mapping[str, DriftSpec] | None = None) -> Drift:
    """What changed from `old` to `new`. `specs`: the collectors' drift declarations by name
    (healthcheck.tracking); by default those of the collectors installed."""
    if specs is None:
        specs = collector_specs()
    drift = Drift(old, new, specs=dict(specs))
    a, b = old.report, new.report
    if a.get("status") != b.get("status"):
        drift.status = [str(a.get("status")), str(b.get("status"))]
    _findings(drift, a.get("findings") or [], b.get("findings") or [])
    sa, sb = a.get("sections") or {}, b.get("sections") or {}
    data_a = {name: _data(s) for name, s in sa.items()}
    data_b = {name: _data(s) for name, s in sb.items()}
    specs = {
        name: _own_comparison(name, spec, data_a, data_b, drift) for name, spec in specs.items()
    }
    drift.specs = specs
    for name in _ordered(sa, sb):
        spec = specs.get(name)
        changes: list[dict[str, Any]] = []
        if name not in sa or name not in sb:
            # A collector enabled or disabled: its data is news as a whole, not field by field.
            changes.append({"what": "section", "old": _there(sa, name), "new": _there(sb, name)})
        else:
            status_a, status_b = sa[name].get("status"), sb[name].get("status")
            if status_a != status_b:
                changes.append({"what": "status", "old": status_a, "new": status_b})
            # What the collector's own comparison covered (it runs only for a spec with a key).
            skip = set(spec.covers) if spec and spec.key and spec.compare else set()
            changes += _generic(
                {k: v for k, v in data_a[name].items() if k not in skip},
                {k: v for k, v in data_b[name].items() if k not in skip},
                spec.records if spec else (),
            )
        if not changes:
            continue
        if spec and spec.key and spec.compare is None:
            drift.tracked[spec.key] = changes  # all its changes read under its own heading
        else:
            drift.sections[name] = changes
    return drift


def _own_comparison(
    name: str,
    spec: DriftSpec,
    data_a: dict[str, dict[str, Any]],
    data_b: dict[str, dict[str, Any]],
    drift: Drift,
) -> DriftSpec:
    """Run a collector's own comparison into `drift.tracked`; the spec to go on with (one
    whose comparison failed on this data, a plugin's bug, is compared field by field)."""
    if not spec.key:
        return spec
    drift.tracked[spec.key] = []
    if spec.compare is None:
        return spec
    try:
        drift.tracked[spec.key] = spec.compare(data_a.get(name, {}), data_b.get(name, {}))
    except Exception:  # the runs are still worth comparing: the plain way
        return DriftSpec(spec.heading, spec.records, spec.key, order=spec.order)
    return spec


def collector_specs() -> dict[str, DriftSpec]:
    """The drift declarations of the collectors this installation has: the built-ins' and
    the plugins' (loaded through their entry points, as a run loads them)."""
    from healthcheck.collectors import BUILTIN_COLLECTORS
    from healthcheck.plugins import load_collectors

    return drift_specs([c.collector for c in load_collectors(BUILTIN_COLLECTORS)])


def _data(section: Any) -> dict[str, Any]:
    data = section.get("data") if isinstance(section, dict) else None
    return data if isinstance(data, dict) else {}


def _ordered(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return list(a) + [name for name in b if name not in a]


def _there(sections: dict[str, Any], name: str) -> str:
    return "present" if name in sections else "absent"


def _findings(drift: Drift, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    before = {f["id"]: f for f in old if isinstance(f, dict) and "id" in f}
    after = {f["id"]: f for f in new if isinstance(f, dict) and "id" in f}
    brief = lambda f: {  # noqa: E731 - a one-line projection
        "id": f["id"],
        "severity": str(f.get("severity", "")),
        "title": str(f.get("title", "")),
    }
    drift.findings_opened = [brief(f) for i, f in after.items() if i not in before]
    drift.findings_resolved = [brief(f) for i, f in before.items() if i not in after]
    for i, f in after.items():
        if i in before and before[i].get("severity") != f.get("severity"):
            drift.findings_changed.append(
                {**brief(f), "old_severity": str(before[i].get("severity", ""))}
            )


def _generic(
    old: dict[str, Any], new: dict[str, Any], records: Sequence[Records] = ()
) -> list[dict[str, Any]]:
    a, b = _flattened(old, records), _flattened(new, records)
    # A record (a log file, a process) that came or went is one change, not one per field.
    gone = _outermost(_record_prefixes(a) - _record_prefixes(b))
    came = _outermost(_record_prefixes(b) - _record_prefixes(a))
    changes = [{"what": r, "old": "present", "new": "gone"} for r in sorted(gone)]
    changes += [{"what": r, "old": "absent", "new": "new"} for r in sorted(came)]
    for path in list(a) + [p for p in b if p not in a]:
        if any(path.startswith(r) for r in gone | came):
            continue
        if any(r.startswith(path + "[") for r in gone | came):
            continue  # the list emptied or filled: its records say so already
        before, after = _plain(a.get(path, _ABSENT)), _plain(b.get(path, _ABSENT))
        if before != after:
            changes.append({"what": path, "old": before, "new": after})
    return changes


def _flattened(data: dict[str, Any], records: Sequence[Records]) -> dict[str, Any]:
    """`flatten`, with the lists a collector declared as records keyed by its key field and
    cut down to the fields it watches."""
    declared = {r.list for r in records}
    flat = flatten({k: v for k, v in data.items() if k not in declared})
    for spec in records:
        for ident, item in records_by(data.get(spec.list), spec.keys).items():
            rest = {
                k: v
                for k, v in item.items()
                if k not in spec.keys and (not spec.fields or k in spec.fields)
            }
            flat.update(flatten(rest, f"{spec.list}[{ident}]"))
    return flat


def _record_prefixes(flat: dict[str, Any]) -> set[str]:
    """Every record prefix ("files[/logs/a.log]") the flattened paths run through."""
    found = set()
    for path in flat:
        end = path.find("]")
        while end != -1:
            found.add(path[: end + 1])
            end = path.find("]", end + 1)
    return found


def _outermost(prefixes: set[str]) -> set[str]:
    return {p for p in prefixes if not any(p != q and p.startswith(q) for q in prefixes)}


class _Absent:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<absent>"


_ABSENT: Any = _Absent()


def _plain(value: Any) -> Any:
    return None if value is _ABSENT else value


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested data as {dotted.path: leaf}; lists of records keyed by their name, not position."""
    if isinstance(value, dict):
        if not value and prefix:
            return {prefix: {}}
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
        key = _id_key(value)
        out = {}
        for position, item in enumerate(value):
            label = item[key] if key else position
            # the key is in the label already
            rest = {k: v for k, v in item.items() if k != key}
            out.update(flatten(rest, f"{prefix}[{label}]"))
        return out
    return {prefix: value}


def _id_key(items: list[dict[str, Any]]) -> str | None:
    for key in _ID_KEYS:
        values = [i.get(key) for i in items]
        if all(v is not None and not isinstance(v, (dict, list)) for v in values) and len(
            set(map(str, values))
        ) == len(values):
            return key
    return None


# -- text ----------------------------------------------------------------------------------


def render_text(drift: Drift) -> str:
    """The drift as lines a person reads (the console redacts them on the way out)."""
    head = f"from {drift.old.label} to {drift.new.label}"
    if drift.empty:
        return f"No drift {head}.\n"
    lines = [f"Drift {head}", ""]

    def block(title: str, body: list[str]) -> None:
        if body:
            lines.extend([f"{title}:", *(f"  {line}" for line in body), ""])

    if drift.status:
        block("Overall", [f"{drift.status[0].upper()} → {drift.status[1].upper()}"])
    keyed = _keyed(drift.specs)
    for key, spec in keyed:
        if spec.order < FINDINGS_ORDER:
            block(spec.heading, _lines(spec, drift.tracked[key]))
    block(
        "Findings opened",
        [f"+ {f['severity'].upper()} {f['id']}: {f['title']}" for f in drift.findings_opened],
    )
    block(
        "Findings resolved",
        [f"- {f['severity'].upper()} {f['id']}: {f['title']}" for f in drift.findings_resolved],
    )
    block(
        "Findings changed",
        [
            f"~ {f['id']}: {f['old_severity'].upper()} → {f['severity'].upper()}"
            for f in drift.findings_changed
        ],
    )
    for key, spec in keyed:
        if spec.order >= FINDINGS_ORDER:
            block(spec.heading, _lines(spec, drift.tracked[key]))
    for name, changes in drift.sections.items():
        own = drift.specs.get(name)
        if own is not None and not own.key:  # a plugin's heading and lines
            block(own.heading, _lines(own, changes))
        else:
            block(f"Section {name}", change_lines(changes))
    return "\n".join(lines).rstrip("\n") + "\n"


def _lines(spec: DriftSpec, changes: Any) -> list[str]:
    if spec.lines is None:
        return change_lines(changes)
    try:
        return spec.lines(changes)
    except Exception:  # a plugin's formatter fails on a change: the plain lines say it all
        return change_lines(changes) if isinstance(changes, list) else [short(changes)]
