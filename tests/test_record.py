"""healthcheck.record.Record: what a plain record class gets in place of a dataclass's methods."""

from __future__ import annotations

import pytest

from healthcheck.record import Record


class Point(Record):
    __slots__ = ("tags", "x", "y")

    def __init__(self, x: int, y: int = 0, tags: list[str] | None = None) -> None:
        self.x = x
        self.y = y
        self.tags = tags if tags is not None else []


class Other(Record):
    __slots__ = ("tags", "x", "y")

    def __init__(self, x: int, y: int = 0) -> None:
        self.x, self.y = x, y
        self.tags: list[str] = []


def test_equal_by_fields_and_type() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2, ["a"]) != Point(1, 2)
    assert Point(1, 2) != Other(1, 2)  # another record with the same fields is not equal
    assert Point(1, 2) != (1, 2, [])


def test_repr_names_every_field() -> None:
    assert repr(Point(1, tags=["a"])) == "Point(tags=['a'], x=1, y=0)"


def test_replace_copies_and_changes_only_what_is_named() -> None:
    first = Point(1, 2, ["a"])
    second = first.replace(y=5)
    assert (second.x, second.y, second.tags) == (1, 5, ["a"])
    assert (first.x, first.y) == (1, 2)
    assert type(second) is Point
    with pytest.raises(TypeError, match="has no field 'z'"):
        first.replace(z=1)


def test_not_hashable_and_no_instance_dict() -> None:
    with pytest.raises(TypeError):
        hash(Point(1))
    with pytest.raises(AttributeError):
        Point(1).colour = "red"  # type: ignore[attr-defined]  # slots: a typo is an error


class Placed(Record):
    __slots__ = ("line", "secret", "text")
    _not_compared = frozenset({"line"})
    _not_shown = frozenset({"secret"})

    def __init__(self, text: str, line: int = 0, secret: str = "") -> None:
        self.text, self.line, self.secret = text, line, secret


def test_fields_left_out_of_equality_and_repr() -> None:
    assert Placed("a", line=1) == Placed("a", line=9)  # where it sits does not count
    assert Placed("a") != Placed("b")
    assert repr(Placed("a", secret="hunter2-not-real")) == "Placed(line=0, text='a')"
