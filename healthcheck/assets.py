"""Where a collector's data lives: its section template and its known-failure files.

A collector is one package: `collectors/NAME/` (or a plugin's package) holds `NAME.md.j2`,
the layout of its section in the report, and `failures/*.toml`, its entries of the
known-failure catalogue. This module finds them by looking at the folders, without importing
any collector, so rendering an old report or loading the catalogue never starts one.
Plugins' folders are added when they load (plugins.load_collectors).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_COLLECTORS = Path(__file__).resolve().parent / "collectors"
_lock = threading.Lock()
_plugin_folders: list[Path] = []


def add_collector_folder(folder: Path) -> None:
    """A plugin collector's package folder: its template and known failures join the
    built-ins' (the catalogue is read again on its next use)."""
    with _lock:
        if folder in _plugin_folders:
            return
        _plugin_folders.append(folder)
    from healthcheck.catalogue import catalogue

    catalogue.cache_clear()


def collector_folders() -> list[Path]:
    """Every collector package folder: the built-ins', then the plugins' that loaded."""
    try:
        builtin = sorted(
            entry for entry in _COLLECTORS.iterdir() if (entry / "__init__.py").is_file()
        )
    except OSError:  # pragma: no cover - a broken install
        builtin = []
    with _lock:
        return builtin + list(_plugin_folders)


def section_template(name: str) -> Path | None:
    """The collector `name`'s section template (`NAME.md.j2` in its package), or None."""
    for folder in collector_folders():
        path = folder / f"{name}.md.j2"
        if path.is_file():
            return path
    return None


def failure_files() -> list[Path]:
    """Every collector's known-failure files (`failures/*.toml`)."""
    found = []
    for folder in collector_folders():
        failures = folder / "failures"
        if failures.is_dir():
            found += [failures / n for n in sorted(os.listdir(failures)) if n.endswith(".toml")]
    return found
