"""What `healthcheck diff` says of supervisor's programs: a state that changed, a program
that came or went, one that restarted (still RUNNING, with a new pid or start time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from healthcheck.program import Program, programs_of
from healthcheck.tracking import DriftSpec

_RESTART_FIELDS = ("pid", "started")  # a RUNNING program whose pid or start moved restarted


def _by_key(programs: list[Program], key: Callable[[Program], str]) -> dict[str, Program]:
    return {key(p): p for p in programs if p.name}


def program_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
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
            moved = {f: [getattr(before, f), getattr(after, f)] for f in _RESTART_FIELDS}
            if any(x != y for x, y in moved.values()):
                changes.append(
                    {"name": name, "old": state_a, "new": state_b, "restarted": True, **moved}
                )
    return changes


def program_line(c: dict[str, Any]) -> str:
    if c.get("restarted"):
        pid = c.get("pid") or [None, None]
        return f"{c['name']}: restarted (RUNNING, pid {pid[0]} → {pid[1]})"
    if c["old"] is None:
        return f"{c['name']}: new, {c['new']}"
    if c["new"] is None:
        return f"{c['name']}: gone (was {c['old']})"
    return f"{c['name']}: {c['old']} → {c['new']}"


DRIFT = DriftSpec(
    heading="Programs",
    key="programs",
    compare=program_changes,
    covers=("programs",),
    lines=lambda changes: [program_line(c) for c in changes],
    order=0,  # before the findings: what an operator asks first
)
