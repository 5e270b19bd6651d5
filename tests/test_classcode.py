"""healthcheck.classcode: data classes' generated methods compiled once and kept between runs,
the classes exactly what @dataclass makes without it."""

from __future__ import annotations

import glob
import marshal
import subprocess
import sys
from pathlib import Path

# A frozen class with defaults, a factory and ordering (every kind of method dataclasses
# writes), and what its methods answer; `len(...)` is how many sources were already kept.
_CLASSES = """
import dataclasses
from healthcheck import classcode

kept_before = len(classcode._table())

@dataclasses.dataclass(frozen=True, order=True)
class Point:
    x: int
    y: int = 2
    tags: tuple = dataclasses.field(default_factory=tuple)

p = Point(1)
try:
    p.x = 5
    frozen = "no"
except dataclasses.FrozenInstanceError:
    frozen = "yes"
print(kept_before > 0, repr(p), p == Point(1, 2), p < Point(2), hash(p) == hash(Point(1)),
      frozen, Point.__init__.__annotations__)
"""


# The annotations are the classes themselves: the methods are compiled with the flags of
# `dataclasses`, not those of classcode.py (which has `from __future__ import annotations`).
EXPECTED = (
    "Point(x=1, y=2, tags=()) True True True yes "
    "{'x': <class 'int'>, 'y': <class 'int'>, 'tags': <class 'tuple'>, 'return': None}"
)


def _run(cache_home: Path) -> str:
    env = {"XDG_CACHE_HOME": str(cache_home), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", _CLASSES], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.strip()


def test_classes_built_from_kept_code_behave_as_compiled_ones(tmp_path: Path) -> None:
    first = _run(tmp_path)  # compiles every method, keeps them at exit
    second = _run(tmp_path)  # builds them from the kept code
    assert first.split(" ", 1)[0] == "False"  # nothing kept yet
    assert second.split(" ", 1)[0] == "True"
    assert first.split(" ", 1)[1] == second.split(" ", 1)[1] == EXPECTED
    # Without healthcheck at all, @dataclass answers the same.
    plain = subprocess.run(
        [
            sys.executable,
            "-c",
            _CLASSES.replace("from healthcheck import classcode", "").replace(
                "len(classcode._table())", "0"
            ),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert plain.split(" ", 1)[1] == first.split(" ", 1)[1]


def test_a_damaged_cache_is_compiled_afresh(tmp_path: Path) -> None:
    _run(tmp_path)
    (path,) = glob.glob(f"{tmp_path}/healthcheck/class-code-*")
    with open(path, "rb") as handle:
        key, table = marshal.load(handle)
    with open(path, "wb") as handle:
        marshal.dump((key, {source: "not code" for source in table}), handle)
    assert _run(tmp_path).endswith(EXPECTED)
    Path(path).write_bytes(b"\x00garbage")
    assert _run(tmp_path).endswith(EXPECTED)


def test_the_package_installs_it_before_its_own_classes() -> None:
    code = "import dataclasses, healthcheck.config; print(dataclasses.exec.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "healthcheck.classcode"
