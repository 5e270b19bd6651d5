"""healthcheck.lazyre: module-level patterns that compile on first use, and behave as compiled."""

from __future__ import annotations

import re
import subprocess
import sys

from healthcheck.lazyre import lazy


def test_a_lazy_pattern_answers_as_the_compiled_one() -> None:
    pattern = lazy(r"(?P<word>to+k)en", re.IGNORECASE)
    compiled = re.compile(r"(?P<word>to+k)en", re.IGNORECASE)
    text = "a TOOken and a token"
    assert pattern.pattern == compiled.pattern
    assert pattern.flags == compiled.flags
    assert pattern.groupindex == compiled.groupindex
    assert [m.span() for m in pattern.finditer(text)] == [(2, 8), (15, 20)]
    assert pattern.sub("x", text) == compiled.sub("x", text) == "a x and a x"
    assert pattern.search("none") is None


def test_a_bytes_pattern_stays_bytes() -> None:
    pattern = lazy(rb"\x1b\[[0-9;]*m")
    assert pattern.sub(b"", b"\x1b[31mred\x1b[0m") == b"red"


def test_nothing_is_compiled_before_first_use() -> None:
    pattern = lazy(r"(unbalanced")  # an error shows when the pattern is first used
    try:
        pattern.search("x")
    except re.error:
        pass
    else:  # pragma: no cover
        raise AssertionError("the pattern compiled without complaint")


def test_importing_the_redactor_compiles_none_of_its_patterns() -> None:
    # The point of the module: a start pays only for the patterns a run uses.
    code = (
        "import re, re._compiler as c\n"
        "calls = []\n"
        "orig = c.compile\n"
        "c.compile = lambda *a, **k: calls.append(a[0]) or orig(*a, **k)\n"
        "import healthcheck.redact as r\n"
        "ours = [v._source for v in vars(r).values() if type(v).__name__ == '_LazyPattern']\n"
        "eager = [k for k, v in vars(r).items() if isinstance(v, re.Pattern)]\n"
        "print(len(ours), len([p for p in calls if p in ours]), *eager)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lazy_patterns, compiled_at_import, *eager = out.stdout.split()
    assert int(lazy_patterns) > 40  # the redactor's own
    assert int(compiled_at_import) == 0
    assert eager == []


# --- the compiled code kept between runs --------------------------------------------------

_KEPT = (
    "import re, sys\n"
    "from healthcheck.lazyre import compiled, lazy\n"
    "from healthcheck import lazyre\n"
    "p = compiled(r'(?P<word>to+k)en|(\\d+)', re.IGNORECASE)\n"
    "b = lazy(rb'\\x1b\\[[0-9;]*m')\n"
    "print(len(lazyre._table()), p.pattern, p.flags == re.compile(p.pattern, re.I).flags,"
    " p.groupindex['word'], p.groups, [m.span() for m in p.finditer('a TOOken 42')],"
    " b.sub(b'', b'\\x1b[31mred\\x1b[0m').decode())\n"
)


def _kept(cache_home: str) -> list[str]:
    env = {"XDG_CACHE_HOME": cache_home, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", _KEPT], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout.split()


def test_a_pattern_built_from_kept_code_answers_as_a_compiled_one(tmp_path: object) -> None:
    first = _kept(str(tmp_path))  # compiles, and keeps the code at exit
    second = _kept(str(tmp_path))  # builds both from the kept code
    assert first[0] == "1" and second[0] == "2"  # p, then p and b (kept by the first)
    assert first[1:] == second[1:] == [
        "(?P<word>to+k)en|(\\d+)", "True", "1", "2", "[(2,", "8),", "(9,", "11)]", "red"
    ]  # fmt: skip


def test_a_damaged_kept_entry_is_compiled_again(tmp_path: object) -> None:
    import glob
    import marshal

    _kept(str(tmp_path))
    (path,) = glob.glob(f"{tmp_path}/healthcheck/regex-code-*")
    with open(path, "rb") as handle:
        key, table = marshal.load(handle)
    for name, entry in table.items():
        table[name] = (entry[0], b"\xff\xff\xff\xff" * 3, *entry[2:])  # code the engine refuses
    with open(path, "wb") as handle:
        marshal.dump((key, table), handle)
    assert _kept(str(tmp_path))[1:] == _kept(str(tmp_path))[1:]
    assert _kept(str(tmp_path))[5:] == ["[(2,", "8),", "(9,", "11)]", "red"]
