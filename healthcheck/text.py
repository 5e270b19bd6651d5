"""Small text helpers every part of the report shares."""

from __future__ import annotations

CUT_MARKER = "…"


def cut(text: str, limit: int, *, trim_before_marker: bool = False, at_word: bool = False) -> str:
    """`text` at most `limit` characters long; a longer one is cut and ends with "…", so
    that a reader sees that something was left out. `trim_before_marker`: blanks where the
    cut fell are dropped too (a message reads "word…", not "word …"). `at_word`: the cut falls
    between words, and the punctuation left before the marker goes too (a title reads
    "Install the cron…", not "Install the cr…" or "daemon,…")."""
    if len(text) <= limit:
        return text
    kept = text[: limit - 1]
    if at_word:
        return (kept.rsplit(" ", 1)[0] or kept).rstrip(" ,.;:") + CUT_MARKER
    return (kept.rstrip() if trim_before_marker else kept) + CUT_MARKER


def cut_line(text: str, limit: int, *, trim_before_marker: bool = False) -> str:
    """`text` as one line (runs of blanks and newlines as one space), cut like `cut`."""
    return cut(one_line(text), limit, trim_before_marker=trim_before_marker)


def one_line(text: str) -> str:
    """Runs of blanks and newlines as one space: a message fit for a single line."""
    return " ".join(text.split())
