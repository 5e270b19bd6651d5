"""healthcheck.classcode: our data classes' generated methods compiled once and kept between
runs, the classes exactly what @dataclass makes without it."""

from __future__ import annotations

import glob
import marshal
import subprocess
import sys
from pathlib import Path

# A frozen class with defaults, a factory and ordering (every kind of method dataclasses
# writes), defined in a module named MODULE, and what its methods answer.
_CLASS = (
    "import dataclasses\n"
    "@dataclasses.dataclass(frozen=True, order=True)\n"
    "class Point:\n"
    "    x: int\n"
    "    y: int = 2\n"
    "    probe_tags: tuple = dataclasses.field(default_factory=tuple)\n"
)
_PROBE = f"""
import dataclasses, sys, types
from healthcheck import classcode

kept = [s for s in classcode._table() if "probe_tags" in s]  # before it is defined
module = types.ModuleType(MODULE)
sys.modules[MODULE] = module
exec({_CLASS!r}, module.__dict__)
Point = module.Point
p = Point(1)
try:
    p.x = 5
    frozen = "no"
except dataclasses.FrozenInstanceError:
    frozen = "yes"
print(len(kept), repr(p), p == Point(1, 2), p < Point(2), hash(p) == hash(Point(1)),
      frozen, Point.__init__.__annotations__)
"""
# The annotations are the classes themselves: the methods are compiled with the flags of
# `dataclasses`, not those of classcode.py (which has `from __future__ import annotations`).
EXPECTED = (
    "Point(x=1, y=2, probe_tags=()) True True True yes "
    "{'x': <class 'int'>, 'y': <class 'int'>, 'probe_tags': <class 'tuple'>, 'return': None}"
)


def _run(cache_home: Path, module: str = "healthcheck.probe") -> tuple[int, str]:
    env = {"XDG_CACHE_HOME": str(cache_home), "PATH": "/usr/bin:/bin"}
    code = f"MODULE = {module!r}\n{_PROBE}"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()
    kept, answers = out.split(" ", 1)
    return int(kept), answers


def test_classes_built_from_kept_code_behave_as_compiled_ones(tmp_path: Path) -> None:
    first = _run(tmp_path)  # compiles the methods, keeps them at exit
    second = _run(tmp_path)  # builds them from the kept code
    assert first[0] == 0 and second[0] > 0
    assert first[1] == second[1] == EXPECTED


def test_another_packages_classes_are_compiled_as_usual(tmp_path: Path) -> None:
    assert _run(tmp_path, "plugin.probe") == (0, EXPECTED)
    assert _run(tmp_path, "plugin.probe") == (0, EXPECTED)  # nothing of theirs was kept


def test_a_damaged_cache_is_compiled_afresh(tmp_path: Path) -> None:
    _run(tmp_path)
    (path,) = glob.glob(f"{tmp_path}/healthcheck/class-code-*")
    with open(path, "rb") as handle:
        key, table = marshal.load(handle)
    with open(path, "wb") as handle:
        marshal.dump((key, {source: "not code" for source in table}), handle)
    assert _run(tmp_path)[1] == EXPECTED
    Path(path).write_bytes(b"\x00garbage")
    assert _run(tmp_path)[1] == EXPECTED


def test_the_package_installs_it_before_its_own_classes(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = (
        "import dataclasses, healthcheck.config\n"
        "from healthcheck import classcode\n"
        "print(dataclasses.exec.__module__, len(classcode._table()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    module, kept = out.stdout.split()
    assert module == "healthcheck.classcode" and int(kept) > 50  # config's own, and more
