"""`Record`: equality, repr and `replace` for a plain class that only carries data.

A run imports some fifty classes that only carry data. As dataclasses they cost about half a
millisecond each to create (the methods are compiled from source at import), some 30 ms of
a 320 ms run. So a record on a run's path is either a `typing.NamedTuple` (immutable, and
never treated as a sequence) or a plain class with `__slots__` and an `__init__` written
out, deriving from `Record` for the rest. The config tables stay dataclasses: their fields
are what the loader checks a config file against. `tests/test_startup_speed.py` fails when
a run creates any other dataclass.
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


class Record:
    """Compares, prints and copies itself by its `__slots__`: a subclass names all of its
    fields there (in sorted order, as ruff asks), and records do not derive from one another."""

    __slots__: tuple[str, ...] = ()
    __hash__ = None  # type: ignore[assignment]  # mutable, so not hashable (as a dataclass)
    # Fields equality ignores (a dataclass field's compare=False): where a record sits or
    # how often it was edited, not what it says.
    _not_compared: ClassVar[frozenset[str]] = frozenset()
    # Fields repr leaves out (a dataclass field's repr=False): credentials, whole documents.
    _not_shown: ClassVar[frozenset[str]] = frozenset()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(
            getattr(self, name) == getattr(other, name)
            for name in self.__slots__
            if name not in self._not_compared
        )

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self.__slots__
            if name not in self._not_shown
        )
        return f"{type(self).__qualname__}({fields})"

    def replace(self: R, **changes: Any) -> R:
        """A shallow copy with `changes` (as `dataclasses.replace`)."""
        unknown = set(changes) - set(self.__slots__)
        if unknown:
            raise TypeError(f"{type(self).__qualname__} has no field {sorted(unknown)[0]!r}")
        copy = object.__new__(type(self))
        for name in self.__slots__:
            setattr(copy, name, changes[name] if name in changes else getattr(self, name))
        return copy
