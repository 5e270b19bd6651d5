"""What `healthcheck diff` says of the provisioning scripts: one added to or removed from
the configuration, gone missing, made (not) executable, or rewritten."""

from __future__ import annotations

from typing import Any

from healthcheck.tracking import DriftSpec, records_by, short

_SCRIPT_FIELDS = ("present", "executable", "kind", "crlf", "link_target")


def script_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    a, b = records_by(old.get("scripts"), "path"), records_by(new.get("scripts"), "path")
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


def script_line(c: dict[str, Any]) -> str:
    path, what = c["path"], c["what"]
    if what == "configured":
        return f"{path}: {'added to' if c['new'] else 'removed from'} the configuration"
    if what == "present":
        return f"{path}: {'missing → present' if c['new'] else 'present → missing'}"
    if what == "content":
        return f"{path}: content changed (size {c['old']} → {c['new']})"
    return f"{path}: {what} {short(c['old'])} → {short(c['new'])}"


DRIFT = DriftSpec(
    heading="Provisioning scripts",
    key="provisioning",
    compare=script_changes,
    covers=("scripts",),
    lines=lambda changes: [script_line(c) for c in changes],
    order=40,
)
