"""Regular expressions compiled when first used, not when their module is imported.

A run imports every module but uses only some of their patterns (most belong to findings
that do not fire, to subcommands that do not run, or to texts that hold no candidate), and
compiling them all cost tens of milliseconds at every start. `lazy` returns a stand-in
that compiles on the first attribute it is asked for and then caches the compiled
pattern's attributes on itself, so later calls (`.search`, `.sub`, ...) cost the same
as on the pattern itself.
"""

from __future__ import annotations

import array
import atexit
import re
import sys
import threading
from typing import Any, AnyStr, cast


class _LazyPattern:
    __slots__ = ("__dict__", "_compiled", "_flags", "_source")

    def __init__(self, source: str | bytes, flags: int) -> None:
        self._source = source
        self._flags = flags
        self._compiled: re.Pattern[Any] | None = None

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not yet cached: compile once, and keep the bound
        # attribute so the next lookup is a plain instance-dict hit.
        if self._compiled is None:
            self._compiled = compiled(self._source, self._flags)
        value = getattr(self._compiled, name)
        self.__dict__[name] = value
        return value

    def __repr__(self) -> str:
        return f"lazy({self._source!r}, {self._flags})"


def lazy(source: AnyStr, flags: int | re.RegexFlag = 0) -> re.Pattern[AnyStr]:
    """A pattern that behaves as `re.compile(source, flags)` but compiles on first use.

    Use it for module-level patterns; it offers the pattern's attributes and methods
    (not `isinstance(..., re.Pattern)`, nor being passed to `re.sub` and friends).
    """
    return cast("re.Pattern[AnyStr]", _LazyPattern(source, int(flags)))


# --- compiled code kept between runs ---------------------------------------------------------
# A run compiles some 160 patterns of its own (the catalogue's, the redactor's, the log
# cleaners'): 30 ms or more of every run, spent arriving at the same code each time. The
# regex compiler's output (the code list `re` hands to its C engine) is kept in the user's
# cache, per Python version and regex engine, and a known pattern is built straight from it.
# The code is re's own, made by re's own compiler from the same source and flags; an entry
# the engine refuses (a damaged file) is compiled again; without the cache, or on a Python
# whose `re` is laid out otherwise, everything compiles as usual.

_codes_lock = threading.Lock()
_codes: dict[tuple[Any, int], tuple[Any, ...]] | None = None
_codes_key = ""
_codes_added = False


def compiled(source: AnyStr, flags: int | re.RegexFlag = 0) -> re.Pattern[AnyStr]:
    """`re.compile(source, flags)`, from the code kept between runs when there is one."""
    flags = int(flags)
    table = _table()
    if table is None:
        return re.compile(source, flags)
    entry = table.get((source, flags))
    if entry is not None:
        try:
            return _from_code(source, entry)
        except Exception:  # a damaged entry: compiled below, and replaced
            pass
    pattern = re.compile(source, flags)  # a bad pattern raises here, as re.compile does
    try:
        entry = _code_of(source, flags)
        rebuilt = _from_code(source, entry)
    except Exception:  # pragma: no cover - a Python whose re is not laid out as 3.10-3.13's
        return pattern
    if (rebuilt.flags, rebuilt.groups, rebuilt.groupindex) == (
        pattern.flags,
        pattern.groups,
        pattern.groupindex,
    ):
        global _codes_added
        with _codes_lock:
            table[(source, flags)] = entry
            if not _codes_added:
                _codes_added = True
                atexit.register(_save)
    return pattern


def _table() -> dict[tuple[Any, int], tuple[Any, ...]] | None:
    global _codes, _codes_key
    if _codes is not None:
        return _codes
    with _codes_lock:
        if _codes is None:
            try:
                import _sre

                from healthcheck import __version__, cache

                _codes_key = cache.digest(
                    f"{sys.version}|{_sre.MAGIC}|{_sre.CODESIZE}|{__version__}".encode()
                )
                loaded = cache.load("regex-code", _codes_key)
            except Exception:  # pragma: no cover - no _sre: compile as usual
                return None
            _codes = loaded if isinstance(loaded, dict) else {}
        return _codes


def _code_of(source: AnyStr, flags: int) -> tuple[Any, ...]:
    """What re's compiler hands its engine for `source` (re._compiler.compile's steps)."""
    compiler = sys.modules.get("re._compiler") or __import__("sre_compile")
    parser = sys.modules.get("re._parser") or __import__("sre_parse")
    parsed = parser.parse(source, flags)
    code = compiler._code(parsed, flags)
    groupindex = dict(parsed.state.groupdict)
    indexgroup: list[str | None] = [None] * parsed.state.groups
    for name, index in groupindex.items():
        indexgroup[index] = name
    return (
        flags | parsed.state.flags,
        array.array(_array_type(), code).tobytes(),
        parsed.state.groups - 1,
        groupindex,
        tuple(indexgroup),
    )


def _array_type() -> str:
    import _sre

    return "I" if _sre.CODESIZE == 4 else "H"


def _from_code(source: AnyStr, entry: tuple[Any, ...]) -> re.Pattern[AnyStr]:
    import _sre

    flags, code, groups, groupindex, indexgroup = entry
    words = array.array(_array_type(), code).tolist()
    return cast(
        "re.Pattern[AnyStr]", _sre.compile(source, flags, words, groups, groupindex, indexgroup)
    )


def _save() -> None:
    from healthcheck import cache

    with _codes_lock:
        if _codes is not None:
            cache.store("regex-code", _codes_key, dict(_codes))
