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
