"""What `healthcheck diff` tracks of a collector's section, declared by the collector.

A collector's declaration may carry `drift`, a `DriftSpec`: which lists of its data are
records (and the field that names one), the heading its changes get, and, for a built-in
whose changes read better in their own words, its own comparison and lines. `diff` (drift.py)
iterates over the declarations it is given and names no collector. A collector without one
is compared field by field, as every section always was.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from healthcheck.text import cut_line

MAX_VALUE = 60  # characters of one value in a line of `healthcheck diff`
MAX_PER_SECTION = 10  # generic changes shown per block; the JSON has them all

# The keys of `diff --json` that are not a collector's.
_REPORT_KEYS = {"old", "new", "drift", "status", "findings", "sections"}
# The findings' blocks sit at this place among the collectors' blocks (DriftSpec.order).
FINDINGS_ORDER = 10


class Records(NamedTuple):
    """A list in a section's data whose items `diff` compares one by one, whatever order
    they were written in: `key` names an item (the first of several that every item has),
    `fields` are the ones whose change is news (all of them when empty)."""

    list: str
    key: str | tuple[str, ...]
    fields: tuple[str, ...] = ()

    @property
    def keys(self) -> tuple[str, ...]:
        return (self.key,) if isinstance(self.key, str) else self.key


class DriftSpec(NamedTuple):
    """How `diff` shows one collector's changes.

    heading: the title of its block of lines.
    key: where `diff --json` puts its changes (a top-level key, as "programs"); None: under
        "sections", with every other section's.
    compare: with `key`, its own comparison, (old data, new data) -> changes, of the data
        keys named in `covers`; the rest of its data is compared field by field under
        "sections". Without one, all its changes (status, `records`, the other fields) go to
        `key`.
    lines: its changes as lines of text; without it each reads "what: old → new".
    order: where its block sits when it has a `key` (the findings' blocks are at 10).
    """

    heading: str
    records: tuple[Records, ...] = ()
    key: str | None = None
    compare: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None
    covers: tuple[str, ...] = ()
    lines: Callable[[Any], list[str]] | None = None
    order: int = 100


def drift_specs(collectors: Sequence[object]) -> dict[str, DriftSpec]:
    """The `drift` declarations of these collectors (instances or classes), by name; one
    that is not a DriftSpec (a plugin's mistake) is left out, and the section is compared
    field by field. A key already taken (the report's own, an earlier collector's) is
    dropped: those changes go under "sections"."""
    found = {}
    taken = set(_REPORT_KEYS)
    for collector in collectors:
        spec = getattr(collector, "drift", None)
        if isinstance(spec, DriftSpec):
            if spec.key in taken:  # a plugin's key would hide the report's or another's
                spec = spec._replace(key=None)
            elif spec.key:
                taken.add(spec.key)
            found[str(getattr(collector, "name", ""))] = spec
    return found


def records_by(items: Any, key: str | Sequence[str]) -> dict[str, dict[str, Any]]:
    """The dict items of a list by the value of `key` (the first of several that they all
    carry); items without it are left out."""
    if not isinstance(items, list):
        return {}
    rows = [i for i in items if isinstance(i, dict)]
    names = (key,) if isinstance(key, str) else tuple(key)
    chosen = next((k for k in names if rows and all(r.get(k) is not None for r in rows)), names[0])
    return {str(r.get(chosen)): r for r in rows if r.get(chosen) is not None}


def short(value: Any) -> str:
    """A value on one line of `diff`: yes/no, none, JSON for structures, cut with a marker."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    else:
        text = str(value)
    return cut_line(text, MAX_VALUE)


def change_lines(changes: list[dict[str, Any]]) -> list[str]:
    """Generic changes ("what", "old", "new") as lines, at most MAX_PER_SECTION of them."""
    lines = [
        f"{c['what']}: {short(c['old'])} → {short(c['new'])}" for c in changes[:MAX_PER_SECTION]
    ]
    if len(changes) > MAX_PER_SECTION:
        lines.append(f"… and {len(changes) - MAX_PER_SECTION} more (healthcheck diff --json)")
    return lines


def has_changes(changes: Any) -> bool:
    """A list with an item, or a dict with a value that has one (env's added/removed/...)."""
    if isinstance(changes, dict):
        return any(changes.values())
    return bool(changes)
