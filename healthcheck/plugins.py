"""Which collectors exist: the built-ins, plus third-party ones from entry points.

A plugin that fails to load is a warning, never a crash (as httpie does it): one broken
package must not cost the operator the whole report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from healthcheck.model import Collector

ENTRY_POINT_GROUP = "healthcheck.collectors"
BUILTIN = "built in"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedCollector:
    collector: Collector
    origin: str  # "built in" or "package NAME VERSION"

    @property
    def name(self) -> str:
        return self.collector.name


class SelectionError(ValueError):
    """--only/--skip named a collector that does not exist."""


def load_collectors(
    builtins: Iterable[type[Any]],
    entry_points: Iterable[metadata.EntryPoint] | None = None,
    warn: Callable[[str], None] = log.warning,
) -> list[LoadedCollector]:
    """Instantiate the built-ins, then every plugin that loads and looks like a collector."""
    loaded = [LoadedCollector(cls(), BUILTIN) for cls in builtins]
    taken = {c.name for c in loaded}
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
    for ep in sorted(entry_points, key=lambda e: e.name):
        origin = _origin(ep)
        try:
            obj = ep.load()
            collector = obj() if isinstance(obj, type) else obj
        except Exception as exc:  # a plugin can fail in any way; the run must go on
            warn(
                f"collector plugin '{ep.name}' ({origin}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            )
            continue
        problem = _contract_problem(collector)
        if problem:
            warn(f"collector plugin '{ep.name}' ({origin}) ignored: {problem}")
            continue
        if collector.name in taken:
            warn(
                f"collector plugin '{ep.name}' ({origin}) ignored: "
                f"the name '{collector.name}' is already taken"
            )
            continue
        taken.add(collector.name)
        loaded.append(LoadedCollector(collector, origin))
    return loaded


def select(
    collectors: Sequence[LoadedCollector],
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    disabled: Sequence[str] = (),
) -> list[LoadedCollector]:
    """The collectors to run: --only narrows, --skip and config's disable remove."""
    known = {c.name for c in collectors}
    for flag, names in (("--only", only), ("--skip", skip)):
        unknown = sorted(set(names) - known)
        if unknown:
            raise SelectionError(
                f"{flag}: unknown collector {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(sorted(known))})"
            )
    return [
        c
        for c in collectors
        if (not only or c.name in only) and c.name not in skip and c.name not in disabled
    ]


def _origin(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return f"entry point {ep.value}"
    return f"package {dist.metadata['Name']} {dist.version}"


def _contract_problem(obj: object) -> str | None:
    for attr in ("name", "description"):
        if not isinstance(getattr(obj, attr, None), str) or not getattr(obj, attr):
            return f"no '{attr}' string"
    if not callable(getattr(obj, "collect", None)):
        return "no collect() method"
    timeout = getattr(obj, "timeout", None)
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        return "'timeout' must be a positive number or None"
    return None
