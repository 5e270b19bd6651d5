"""`healthcheck diff`: what changed between two recorded runs, read from their JSON in git.

Only `data`, findings and statuses are compared: `volatile` figures and durations move on
every run and say nothing about drift. Environment variables are compared by name, and
their values are never shown, not even masked ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthcheck.history import History, gitpython  # GitPython, imported quietly
from healthcheck.program import Program, programs_of
from healthcheck.text import cut_line

if TYPE_CHECKING:
    from healthcheck.config import Config
    from healthcheck.redact import Redactor

# Keys that name an item of a list of records, in order of preference: a list keyed by one of
# these is compared item by item, whatever the order it was written in.
_ID_KEYS = ("fullname", "uuid", "index", "service", "path", "mountpoint", "name", "port", "id")
# Section data compared by a dedicated rule; the generic comparison skips these.
_SPECIAL = {
    "supervisor": {"programs"},
    "ports": {"ports", "other_listeners"},
    "env": {"variables", "count"},
    "provisioning": {"scripts"},
}
_PROGRAM_FIELDS = ("pid", "started")  # a RUNNING program whose pid or start moved restarted
_SCRIPT_FIELDS = ("present", "executable", "kind", "crlf", "link_target")
_MAX_VALUE = 60
_MAX_PER_SECTION = 10


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
    programs: list[dict[str, Any]] = field(default_factory=list)
    findings_opened: list[dict[str, str]] = field(default_factory=list)
    findings_resolved: list[dict[str, str]] = field(default_factory=list)
    findings_changed: list[dict[str, str]] = field(default_factory=list)
    ports: list[dict[str, Any]] = field(default_factory=list)
    gpu: list[dict[str, Any]] = field(default_factory=list)
    provisioning: list[dict[str, Any]] = field(default_factory=list)
    env: dict[str, list[str]] = field(
        default_factory=lambda: {"added": [], "removed": [], "changed": []}
    )
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # other changes

    @property
    def empty(self) -> bool:
        return not (
            self.status
            or self.programs
            or self.findings_opened
            or self.findings_resolved
            or self.findings_changed
            or self.ports
            or self.gpu
            or self.provisioning
            or any(self.env.values())
            or self.sections
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.to_dict(),
            "new": self.new.to_dict(),
            "drift": not self.empty,
            "status": self.status,
            "programs": self.programs,
            "findings": {
                "opened": self.findings_opened,
                "resolved": self.findings_resolved,
                "changed": self.findings_changed,
            },
            "ports": self.ports,
            "gpu": self.gpu,
            "provisioning": self.provisioning,
            "env": self.env,
            "sections": self.sections,
        }


# -- reading runs from git -----------------------------------------------------------------


def recorded_drift(
    config: Config, redactor: Redactor, old: str | None = None, new: str | None = None
) -> Drift:
    """The drift between two runs recorded in the workspace history (`healthcheck diff`, the
    MCP server's `diff`): the last two by default. DriftError says why there is none."""
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
    return compare(*load_runs(history, json_rel, old, new))


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


def compare(old: Run, new: Run) -> Drift:
    drift = Drift(old, new)
    a, b = old.report, new.report
    if a.get("status") != b.get("status"):
        drift.status = [str(a.get("status")), str(b.get("status"))]
    _findings(drift, a.get("findings") or [], b.get("findings") or [])
    sa, sb = a.get("sections") or {}, b.get("sections") or {}
    data_a = {name: _data(s) for name, s in sa.items()}
    data_b = {name: _data(s) for name, s in sb.items()}
    drift.programs = _programs(data_a.get("supervisor", {}), data_b.get("supervisor", {}))
    drift.ports = _ports(data_a.get("ports", {}), data_b.get("ports", {}))
    drift.provisioning = _scripts(data_a.get("provisioning", {}), data_b.get("provisioning", {}))
    drift.env = _env(data_a.get("env", {}), data_b.get("env", {}))
    for name in _ordered(sa, sb):
        changes: list[dict[str, Any]] = []
        if name not in sa or name not in sb:
            # A collector enabled or disabled: its data is news as a whole, not field by field.
            changes.append({"what": "section", "old": _there(sa, name), "new": _there(sb, name)})
        else:
            status_a, status_b = sa[name].get("status"), sb[name].get("status")
            if status_a != status_b:
                changes.append({"what": "status", "old": status_a, "new": status_b})
            skip = _SPECIAL.get(name, set())
            changes += _generic(
                {k: v for k, v in data_a[name].items() if k not in skip},
                {k: v for k, v in data_b[name].items() if k not in skip},
            )
        if not changes:
            continue
        if name == "gpu":
            drift.gpu = changes
        else:
            drift.sections[name] = changes
    return drift


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


def _records(items: Any, key: str) -> dict[str, dict[str, Any]]:
    if not isinstance(items, list):
        return {}
    return {str(i.get(key)): i for i in items if isinstance(i, dict) and i.get(key) is not None}


def _by_key(programs: list[Program], key: Callable[[Program], str]) -> dict[str, Program]:
    return {key(p): p for p in programs if p.name}


def _programs(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Programs whose state changed, that appeared or went, or that restarted."""
    # The reports are JSON read back: their programs become records here, at the edge.
    old_programs, new_programs = programs_of(old.get("programs")), programs_of(new.get("programs"))
    by_fullname = any(isinstance(p, dict) and "fullname" in p for p in old.get("programs") or [])
    key: Callable[[Program], str] = (lambda p: p.fullname) if by_fullname else (lambda p: p.name)
    a, b = _by_key(old_programs, key), _by_key(new_programs, key)
    if not a:  # an older run may name programs differently
        a = _by_key(old_programs, lambda p: p.name)
    changes: list[dict[str, Any]] = []
    for name in sorted(set(a) | set(b)):
        before, after = a.get(name), b.get(name)
        state_a = before.state if before else None
        state_b = after.state if after else None
        if state_a != state_b:
            changes.append({"name": name, "old": state_a, "new": state_b})
        elif before and after and state_b == "RUNNING":
            moved = {f: [getattr(before, f), getattr(after, f)] for f in _PROGRAM_FIELDS}
            if any(x != y for x, y in moved.values()):
                changes.append(
                    {"name": name, "old": state_a, "new": state_b, "restarted": True, **moved}
                )
    return changes


def _ports(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    changes = []
    a, b = _records(old.get("ports"), "service"), _records(new.get("ports"), "service")
    for name in sorted(set(a) | set(b)):
        before, after = a.get(name, {}), b.get(name, {})
        port = after.get("port", before.get("port"))
        listening = [
            before.get("listening") if before else None,
            after.get("listening") if after else None,
        ]
        if listening[0] != listening[1] or before.get("port") != after.get("port"):
            changes.append(
                {"service": name, "port": port, "old": listening[0], "new": listening[1]}
            )
        elif _names(before.get("processes")) != _names(after.get("processes")):
            changes.append(
                {
                    "service": name,
                    "port": port,
                    "old": listening[0],
                    "new": listening[1],
                    "processes": [_names(before.get("processes")), _names(after.get("processes"))],
                }
            )
    others_a = set(_records(old.get("other_listeners"), "port"))
    others_b = set(_records(new.get("other_listeners"), "port"))
    for port in sorted(others_a ^ others_b, key=lambda p: int(p) if p.isdigit() else 0):
        changes.append(
            {
                "service": None,
                "port": int(port) if port.isdigit() else port,
                "old": port in others_a,
                "new": port in others_b,
            }
        )
    return changes


def _names(processes: Any) -> list[str]:
    if not isinstance(processes, list):
        return []
    return sorted(str(p.get("name")) if isinstance(p, dict) else str(p) for p in processes)


def _scripts(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    a, b = _records(old.get("scripts"), "path"), _records(new.get("scripts"), "path")
    changes = []
    for path in sorted(set(a) | set(b)):
        before, after = a.get(path), b.get(path)
        if before is None or after is None:
            changes.append(
                {
                    "path": path,
                    "what": "configured",
                    "old": before is not None,
                    "new": after is not None,
                }
            )
            continue
        for key in _SCRIPT_FIELDS:
            if before.get(key) != after.get(key):
                changes.append(
                    {"path": path, "what": key, "old": before.get(key), "new": after.get(key)}
                )
        if (
            before.get("present")
            and after.get("present")
            and before.get("sha256") != after.get("sha256")
        ):
            changes.append(
                {
                    "path": path,
                    "what": "content",
                    "old": before.get("size"),
                    "new": after.get("size"),
                }
            )
    return changes


def _env(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[str]]:
    """Variable names added, removed, and whose value changed; never a value."""
    a: dict[str, Any] = old["variables"] if isinstance(old.get("variables"), dict) else {}
    b: dict[str, Any] = new["variables"] if isinstance(new.get("variables"), dict) else {}
    return {
        "added": sorted(set(b) - set(a)),
        "removed": sorted(set(a) - set(b)),
        "changed": sorted(k for k in set(a) & set(b) if a[k] != b[k]),
    }


def _generic(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    a, b = flatten(old), flatten(new)
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
    block("Programs", [_program_line(c) for c in drift.programs])
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
    block("Ports", [_port_line(c) for c in drift.ports])
    block("GPU and driver", _change_lines(drift.gpu))
    block("Provisioning scripts", [_script_line(c) for c in drift.provisioning])
    env = (
        [f"+ {name}" for name in drift.env["added"]]
        + [f"- {name}" for name in drift.env["removed"]]
        + [f"~ {name} (value changed)" for name in drift.env["changed"]]
    )
    block("Environment variables (names only)", env)
    for name, changes in drift.sections.items():
        block(f"Section {name}", _change_lines(changes))
    return "\n".join(lines).rstrip("\n") + "\n"


def _program_line(c: dict[str, Any]) -> str:
    if c.get("restarted"):
        pid = c.get("pid") or [None, None]
        return f"{c['name']}: restarted (RUNNING, pid {pid[0]} → {pid[1]})"
    if c["old"] is None:
        return f"{c['name']}: new, {c['new']}"
    if c["new"] is None:
        return f"{c['name']}: gone (was {c['old']})"
    return f"{c['name']}: {c['old']} → {c['new']}"


def _listening(value: Any) -> str:
    return {True: "listening", False: "not listening", None: "not checked"}.get(value, str(value))


def _port_line(c: dict[str, Any]) -> str:
    if c["service"] is None:
        return f"port {c['port']} (unexpected listener): {'opened' if c['new'] else 'closed'}"
    where = f"{c['service']} ({c['port']})"
    if "processes" in c:
        old, new = (", ".join(p) or "none" for p in c["processes"])
        return f"{where}: served by {old} → {new}"
    return f"{where}: {_listening(c['old'])} → {_listening(c['new'])}"


def _script_line(c: dict[str, Any]) -> str:
    path, what = c["path"], c["what"]
    if what == "configured":
        return f"{path}: {'added to' if c['new'] else 'removed from'} the configuration"
    if what == "present":
        return f"{path}: {'missing → present' if c['new'] else 'present → missing'}"
    if what == "content":
        return f"{path}: content changed (size {c['old']} → {c['new']})"
    return f"{path}: {what} {_short(c['old'])} → {_short(c['new'])}"


def _change_lines(changes: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{c['what']}: {_short(c['old'])} → {_short(c['new'])}" for c in changes[:_MAX_PER_SECTION]
    ]
    if len(changes) > _MAX_PER_SECTION:
        lines.append(f"… and {len(changes) - _MAX_PER_SECTION} more (healthcheck diff --json)")
    return lines


def _short(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    return cut_line(text, _MAX_VALUE)
