"""The methods `dataclasses` writes for each data class, compiled once and kept between runs.

A run defines some 70 data classes as its modules are imported, and for each of them the
`dataclasses` module writes the source of `__init__`, `__repr__`, `__eq__` (and `__hash__`,
`__setattr__`, `__delattr__` for frozen ones) and compiles it: some 280 small compiles, 15-30
ms of every start, arriving at the same code each time. `install` gives the `dataclasses`
module an `exec` of its own that compiles a source it has seen before from the code kept in
the user's cache (healthcheck/cache.py), as lazyre.py does for regular expressions.

The code is Python's own compile of the same text with the same flags (those of the
`dataclasses` module, which has no `__future__` imports), so the classes are exactly what
`@dataclass` makes without it. Only `exec` of a source text for a class of a healthcheck
module goes through the table; without the cache (unreadable, another Python) everything
compiles as usual.
"""

from __future__ import annotations

import atexit
import builtins
import sys
import threading
from types import CodeType
from typing import Any

# Entries past this many are compiled but not kept: the file must not grow without end (the
# package defines about 80 data classes).
MAX_ENTRIES = 500

_lock = threading.Lock()
_codes: dict[str, CodeType] | None = None
_key = ""
_added = False


def install() -> None:
    """Route the `dataclasses` module's compiles through the table (idempotent)."""
    import dataclasses

    if getattr(dataclasses, "exec", None) is not _exec:
        # A module global shadows the builtin for the code of that module only.
        dataclasses.exec = _exec  # type: ignore[attr-defined]


def _exec(source: Any, globals: Any = None, locals: Any = None, /) -> None:
    # `globals` is the namespace of the class's module: only our own classes' methods are
    # kept (a bounded table), another library's are compiled as they always are.
    if isinstance(source, str):
        # Compiled here either way: exec of a text would take the flags of this module (its
        # `from __future__ import annotations`) instead of those of `dataclasses`.
        source = _code(source) if _ours(globals) else _compile(source)
    builtins.exec(source, globals, locals)


def _ours(namespace: Any) -> bool:
    name = namespace.get("__name__") if isinstance(namespace, dict) else None
    return isinstance(name, str) and (name == "healthcheck" or name.startswith("healthcheck."))


def _code(source: str) -> CodeType:
    table = _table()
    code = table.get(source)
    if code is not None:
        return code
    code = _compile(source)
    global _added
    with _lock:
        if len(table) < MAX_ENTRIES:
            table[source] = code
            if not _added:
                _added = True
                atexit.register(_save)
    return code


def _compile(source: str) -> CodeType:
    # dont_inherit: the flags of `dataclasses` itself (none), not those of this module.
    return compile(source, "<string>", "exec", dont_inherit=True)


def _table() -> dict[str, CodeType]:
    global _codes, _key
    if _codes is not None:
        return _codes
    with _lock:
        if _codes is None:
            from healthcheck import __version__, cache

            _key = cache.digest(f"{sys.version}|{__version__}|own classes".encode())
            loaded = cache.load("class-code", _key)
            table: dict[str, CodeType] = {}
            if isinstance(loaded, dict) and all(
                isinstance(k, str) and isinstance(v, CodeType) for k, v in loaded.items()
            ):
                table = loaded
            _codes = table
        return _codes


def _save() -> None:
    from healthcheck import cache

    with _lock:
        if _codes is not None:
            cache.store("class-code", _key, dict(_codes))
