"""What `healthcheck diff` says of the environment: variable names added, removed, and
whose value changed. Never a value, not even a masked one."""

from __future__ import annotations

from typing import Any

from healthcheck.tracking import DriftSpec


def variable_changes(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[str]]:
    a: dict[str, Any] = old["variables"] if isinstance(old.get("variables"), dict) else {}
    b: dict[str, Any] = new["variables"] if isinstance(new.get("variables"), dict) else {}
    return {
        "added": sorted(set(b) - set(a)),
        "removed": sorted(set(a) - set(b)),
        "changed": sorted(k for k in set(a) & set(b) if a[k] != b[k]),
    }


def variable_lines(changes: dict[str, list[str]]) -> list[str]:
    return (
        [f"+ {name}" for name in changes["added"]]
        + [f"- {name}" for name in changes["removed"]]
        + [f"~ {name} (value changed)" for name in changes["changed"]]
    )


DRIFT = DriftSpec(
    heading="Environment variables (names only)",
    key="env",
    compare=variable_changes,
    covers=("variables", "count"),
    lines=variable_lines,
    order=50,
)
