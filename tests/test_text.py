"""The one "cut and add a marker" helper, in each of its styles."""

from __future__ import annotations

from healthcheck.text import CUT_MARKER, cut, cut_line


def test_short_text_is_left_alone() -> None:
    assert cut("twelve chars", 12) == "twelve chars"


def test_a_cut_ends_with_the_marker_within_the_limit() -> None:
    assert cut("abcdefghij", 5) == "abcd" + CUT_MARKER
    assert cut("word and more", 6) == "word " + CUT_MARKER
    assert cut("word and more", 6, trim_before_marker=True) == "word" + CUT_MARKER


def test_a_title_is_cut_between_words_without_trailing_punctuation() -> None:
    title = "Install the cron daemon, then add the entry"
    got = cut(title, 26, at_word=True)
    assert got == "Install the cron daemon" + CUT_MARKER
    assert len(got) <= 26
    assert cut("x" * 30, 10, at_word=True) == "x" * 9 + CUT_MARKER  # one long word: cut anyway


def test_cut_line_makes_one_line_first() -> None:
    assert cut_line("a\n  b\tc", 10) == "a b c"
    assert cut_line("first line\nsecond line", 12, trim_before_marker=True) == (
        "first line" + CUT_MARKER
    )
