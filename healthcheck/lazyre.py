"""Regular expressions compiled when first used, not when their module is imported.

A run imports every module but uses only some of their patterns (most belong to findings
that do not fire, to subcommands that do not run, or to texts that hold no candidate), and
compiling them all cost tens of milliseconds at every start. `lazy` returns a stand-in
that compiles on the first attribute it is asked for and then caches the compiled
pattern's attributes on itself, so later calls (`.search`, `.sub`, ...) cost the same
as on the pattern itself.
"""

from __future__ import annotations

import re
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
            self._compiled = re.compile(self._source, self._flags)
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
