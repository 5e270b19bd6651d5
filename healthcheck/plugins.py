"""Which collectors exist: the built-ins, plus third-party ones from entry points.

A plugin that fails to load is a warning, never a crash (as httpie does it): one broken
package must not cost the operator the whole report.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from healthcheck.model import Collector

if TYPE_CHECKING:
    from importlib import metadata

ENTRY_POINT_GROUP = "healthcheck.collectors"
BUILTIN = "built in"

log = logging.getLogger(__name__)


class LoadedCollector:
    __slots__ = ("collector", "origin")

    def __init__(self, collector: Collector, origin: str) -> None:
        self.collector = collector
        self.origin = origin  # "built in" or "package NAME VERSION"

    def __repr__(self) -> str:
        return f"LoadedCollector(collector={self.collector!r}, origin={self.origin!r})"

    @property
    def name(self) -> str:
        return self.collector.name


class SelectionError(ValueError):
    """--only/--skip named a collector that does not exist."""


def load_collectors(
    builtins: Iterable[type[Any]],
    entry_points: Iterable[metadata.EntryPoint | CachedEntryPoint] | None = None,
    warn: Callable[[str], None] = log.warning,
) -> list[LoadedCollector]:
    """Instantiate the built-ins, then every plugin that loads and looks like a collector."""
    loaded = [LoadedCollector(cls(), BUILTIN) for cls in builtins]
    taken = {c.name for c in loaded}
    if entry_points is None:
        entry_points = installed_entry_points()
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
        folder = package_folder(collector)
        if folder is not None:
            from healthcheck.assets import add_collector_folder

            add_collector_folder(folder, collector.name, _docs_blocks(collector))
    return loaded


def _docs_blocks(collector: object) -> tuple[str, ...]:
    """The managed docs blocks a plugin says its section fills (`docs_blocks`, templates in
    its package's `docs/`); anything but names is ignored."""
    declared = getattr(collector, "docs_blocks", ())
    if not isinstance(declared, (list, tuple)):
        return ()
    return tuple(name for name in declared if isinstance(name, str))


def package_folder(collector: object) -> Path | None:
    """The folder of the package that defines a plugin collector's class: where its section
    template (`NAME.md.j2`) and known failures (`failures/*.toml`) live, as a built-in's do.
    None for a collector defined in a top-level module (its folder is site-packages)."""
    module = sys.modules.get(type(collector).__module__)
    path = getattr(module, "__file__", None)
    if module is None or not path:
        return None
    if getattr(module, "__path__", None) is None and "." not in module.__name__:
        return None
    return Path(path).resolve().parent


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


class DisabledUnknown(SelectionError):
    """[collectors] disable names a collector that does not exist: a config error."""


def check_disabled(loaded: Sequence[LoadedCollector], disabled: Sequence[str]) -> None:
    """`collectors.disable` names collectors that exist, as --skip must."""
    known = {c.name for c in loaded}
    unknown = sorted(set(disabled) - known)
    if unknown:
        raise DisabledUnknown(
            f"'collectors.disable': unknown collector {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(known))})"
        )


def choose(
    disabled: Sequence[str],
    only: Sequence[str] = (),
    skip: Sequence[str] = (),
    flags: tuple[str, str] = ("--only", "--skip"),
) -> list[Collector]:
    """The collectors a run or a fresh look runs: the built-ins and plugins, narrowed by
    `only`, less `skip` and `disable`. The CLI and the MCP server ask here, so both refuse
    the same selections in the same words (`flags`: what the caller calls only and skip).

    Raises DisabledUnknown for a typo in `disable` (it would silently run what the operator
    meant to turn off) and SelectionError for an unknown name or a selection that leaves
    nothing (an empty run would read "every check passed").
    """
    from healthcheck.collectors import BUILTIN_COLLECTORS

    loaded = load_collectors(BUILTIN_COLLECTORS)
    check_disabled(loaded, disabled)
    selected = select(loaded, only, skip, disabled)
    if not selected:
        chosen = " and ".join(
            f"{flag} {','.join(names)}"
            for flag, names in zip(flags, (only, skip), strict=True)
            if names
        )
        why = f"{chosen} with [collectors] disable" if chosen else "[collectors] disable"
        raise SelectionError(f"no collector left to run: {why} leave none")
    return [c.collector for c in selected]


class CachedEntryPoint:
    """An entry point as remembered between runs: what `_origin` and `load` need of one."""

    def __init__(self, name: str, value: str, dist: str | None, version: str | None) -> None:
        self.name = name
        self.value = value
        self.dist_name = dist
        self.version = version

    def load(self) -> Any:
        """The object named by `module:attr.attr` (extras ignored), as EntryPoint.load."""
        module, _, attrs = self.value.split("[", 1)[0].partition(":")
        obj: Any = importlib.import_module(module.strip())
        for attr in filter(None, attrs.strip().split(".")):
            obj = getattr(obj, attr)
        return obj


def installed_entry_points() -> list[CachedEntryPoint]:
    """The `healthcheck.collectors` entry points of the installed packages.

    Finding them means importing importlib.metadata and reading every package's metadata,
    about 10 ms a run, so the answer is kept in the user cache (healthcheck/cache.py), keyed
    by sys.path and the modification time of each of its folders (installing or removing a
    package changes its folder's time). Without a usable cache, they are looked up each time.
    """
    from healthcheck import cache

    key = cache.digest(
        *(f"{entry}\0{_mtime(entry)}".encode("utf-8", "surrogateescape") for entry in sys.path)
    )
    saved = cache.load("entry-points", key)
    if isinstance(saved, list):
        try:
            return [CachedEntryPoint(*row) for row in saved]
        except TypeError:  # a row of another shape: looked up again below
            pass
    from importlib import metadata

    found = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        name = dist.metadata["Name"] if dist is not None else None
        found.append(CachedEntryPoint(ep.name, ep.value, name, dist.version if dist else None))
    cache.store("entry-points", key, [(e.name, e.value, e.dist_name, e.version) for e in found])
    return found


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path or ".").st_mtime_ns
    except OSError:
        return None


def _origin(ep: metadata.EntryPoint | CachedEntryPoint) -> str:
    if isinstance(ep, CachedEntryPoint):
        if ep.dist_name is None:
            return f"entry point {ep.value}"
        return f"package {ep.dist_name} {ep.version}"
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
    options = getattr(obj, "Options", None)
    if options is not None and not (
        isinstance(options, type) and dataclasses.is_dataclass(options)
    ):
        return "'Options' must be a dataclass (its fields are the [collectors.NAME] table)"
    return None
