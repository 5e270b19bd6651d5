"""Reading the last lines of a log without reading the log.

`read_tail` reads backwards from the end of a file in blocks and stops as soon as it has
enough lines or has spent its byte budget (`read_budget`), so an 8 GiB log costs what a
1 KiB one does. What it returns is cleaned for a report: invalid UTF-8 replaced, terminal
escapes and control characters removed, progress bars reduced to their last state, very long
lines cut with a visible marker. Foreseeable trouble (missing, dangling, a directory, a FIFO,
permission denied, I/O error) is reported in `Tail.error`, never raised.
"""

from __future__ import annotations

import codecs
import errno
import fnmatch
import operator
import os
import re
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from healthcheck.record import Record
from healthcheck.text import CUT_MARKER
from healthcheck.timestamps import utc_stamp_of

if TYPE_CHECKING:
    from healthcheck.config import Config, LogsConfig

from healthcheck.lazyre import lazy

# Budget: enough for every wanted line at its longest, twice over, so that one long line
# cannot starve the others; never below 64 KiB (cheap, and fine for the usual short lines)
# and never above 16 MiB whatever the configuration says.
MIN_READ_BYTES = 64 * 1024
MAX_READ_BYTES = 16 * 1024 * 1024
_FIRST_BLOCK = 16 * 1024  # most tails fit in one block; later blocks double up to 1 MiB
_MAX_BLOCK = 1024 * 1024

# A file whose sampled tail is more than this share of undecodable bytes and control
# characters is binary.
_BINARY_RATIO = 0.30


# Terminal escape sequences, on raw bytes (so that a cut never lands inside one).
_ANSI = lazy(
    rb"""
      \x1b\[ [0-?]* [ -/]* [@-~]             # CSI: colours, cursor moves, erase line
    | \x1b\] [^\x07\x1b]* (?:\x07|\x1b\\|$)  # OSC: window titles, hyperlinks (BEL or ST ends)
    | \x1b [PX^_] [^\x1b]* (?:\x1b\\|$)      # DCS, SOS, PM, APC strings
    | \x1b [ -/]* [0-~]                      # the rest: charsets, keypad modes, resets
    """,
    re.VERBOSE,
)
_CONTROL_BYTES = lazy(rb"[\x00-\x08\x0a-\x1f\x7f]")
# The same, newline aside: for a block of whole lines joined by newlines.
_CONTROL_BYTES_IN_LINES = lazy(rb"[\x00-\x08\x0b-\x1f\x7f]")
# C0 and C1 controls (tab kept); \n never occurs inside a line.
_CONTROL_CHARS = lazy("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_LEADING_NUL = lazy(rb"^\x00+")
# Control bytes that plain text logs legitimately contain (tab, CR, form feed, escape...),
# and the other C0 controls, which count against a file being text.
_TEXT_CONTROLS = frozenset(b"\t\n\r\x0b\x0c\x08\x07\x1b")
_BAD_CONTROL_BYTES = bytes(b for b in range(0x20) if b not in _TEXT_CONTROLS)


class Tail(NamedTuple):
    """The end of one file, ready for a report."""

    path: str
    size: int | None = None  # bytes; None when the file could not even be looked at
    mtime: str | None = None  # UTC, ISO 8601 (2025-04-29T10:00:00Z)
    lines: tuple[str, ...] = ()  # oldest first; cleaned, cut lines carry a marker
    empty: bool = False  # a regular file of size 0
    binary: bool = False  # the tail is not text: no lines are given
    truncated_lines: int = 0  # how many of `lines` were cut at max_line_bytes
    bytes_read: int = 0  # what it cost: at most read_budget(lines, max_line_bytes)
    whole_file: bool = False  # the read reached the start of the file
    error: str | None = None  # why it could not be read (missing, a directory, ...)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "mtime": self.mtime,
            "lines": list(self.lines),
            "empty": self.empty,
            "binary": self.binary,
            "truncated_lines": self.truncated_lines,
            "bytes_read": self.bytes_read,
            "whole_file": self.whole_file,
            "error": self.error,
        }


def read_budget(lines: int, max_line_bytes: int) -> int:
    """The most bytes `read_tail` reads for these settings, whatever the file's size."""
    wanted = 2 * max(lines, 0) * (max(max_line_bytes, 1) + 1)
    return min(MAX_READ_BYTES, max(MIN_READ_BYTES, wanted))


def read_tail(path: str | os.PathLike[str], lines: int, max_line_bytes: int = 4096) -> Tail:
    """The last `lines` lines of `path`, reading at most `read_budget(...)` bytes from its end.

    A line longer than `max_line_bytes` is cut: its first bytes and
    " … [line cut: N bytes]". When such a line starts before the bytes read (the read window),
    its last bytes are shown after "[line cut: at least N bytes] … ". Other partial first
    lines of the window are dropped. Lines that are only NUL bytes (the hole a truncated,
    still-written log leaves behind) are not lines. Only regular files are opened, so a FIFO
    or a device named like a log never blocks the caller.
    """
    window = _read_file(os.fspath(path), lines, max_line_bytes)
    return window if isinstance(window, Tail) else window.tail(lines, max_line_bytes)


def shared_tail(path: str, lines: int, max_line_bytes: int, window_lines: int) -> Tail:
    """`read_tail(path, lines, max_line_bytes)`, from one read of the file per run.

    Every caller in a run that passes the same `window_lines` (at least its own `lines`)
    shares one read of the last `window_lines` lines (processes.shared); each then gets
    exactly what its own read_tail would have returned, cut from those bytes.
    """
    from healthcheck.processes import shared

    key = ("logtail.window", path, max(lines, window_lines), max_line_bytes)
    window = shared(key, lambda: _read_file(path, key[2], max_line_bytes))
    return window if isinstance(window, Tail) else window.tail(lines, max_line_bytes)


class _Window:
    """The bytes read from the end of one file, and the file's size and time then."""

    __slots__ = ("bytes_read", "data", "mtime", "name", "size", "start")

    def __init__(
        self, name: str, data: bytes, start: int, size: int, mtime: float, bytes_read: int
    ) -> None:
        self.name = name
        self.data = data
        self.start = start
        self.size = size
        self.mtime = mtime
        self.bytes_read = bytes_read

    def tail(self, lines: int, max_line_bytes: int) -> Tail:
        """What read_tail(lines, max_line_bytes) reads of the same file: the blocks it
        would have read, taken from these bytes (which hold them: a read for more lines
        reads the same blocks and more)."""

        data, start, bytes_read = self._blocks(lines, max_line_bytes)
        return _parse(
            self.name, data, start, self.size, self.mtime, bytes_read, lines, max_line_bytes
        )

    def _blocks(self, lines: int, max_line_bytes: int) -> tuple[bytes, int, int]:
        """_window_blocks over these bytes: the same blocks, counted in place instead of
        copied out one by one (a window of 1.6 MB around a 5 MB line was copied, counted
        and joined again for every caller)."""
        budget = read_budget(lines, max_line_bytes)
        spent = 0
        pos = self.size
        newlines = 0
        block = _FIRST_BLOCK
        first = True
        while lines > 0 and pos > 0 and spent < budget:
            n = min(block, pos, budget - spent)
            pos -= n
            if pos < self.start:  # pragma: no cover - a smaller read never reaches further
                raise ValueError("the shared window is too small for this tail")
            offset = pos - self.start
            spent += n
            newlines += _newlines(self.data, offset, offset + n)
            if first and self.data[offset + n - 1 : offset + n] == b"\n":
                newlines -= 1  # the last line's own terminator does not start a line
            first = False
            if newlines >= lines:
                break
            block = min(block * 2, _MAX_BLOCK)
        return self.data[pos - self.start : self.size - self.start], pos, spent


def _read_file(name: str, lines: int, max_line_bytes: int) -> _Window | Tail:
    """The window read_tail parses, or the Tail that says why there is none."""
    try:
        st = os.stat(name)
    except OSError as exc:
        return Tail(path=name, error=_why_missing(name, exc))
    if not stat.S_ISREG(st.st_mode):
        return Tail(path=name, mtime=utc_stamp_of(st.st_mtime), error=_not_regular(st.st_mode))
    flags = os.O_RDONLY
    # O_NONBLOCK: should the file be swapped for a FIFO after the check above, open must not
    # wait for a writer. It changes nothing for regular files.
    for flag in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"):
        flags |= getattr(os, flag, 0)
    try:
        fd = os.open(name, flags)
    except OSError as exc:
        return Tail(path=name, size=st.st_size, mtime=utc_stamp_of(st.st_mtime), error=_why(exc))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return Tail(path=name, mtime=utc_stamp_of(st.st_mtime), error=_not_regular(st.st_mode))
        window = _read_window(fd, st.st_size, lines, max_line_bytes)
        if window is None:
            # It shrank twice under us (truncated while being written): say so, read nothing.
            st = os.fstat(fd)
            return Tail(
                path=name,
                size=st.st_size,
                mtime=utc_stamp_of(st.st_mtime),
                error="changed while being read (truncated?)",
            )
        data, start, size, bytes_read = window
    except OSError as exc:
        return Tail(path=name, size=st.st_size, mtime=utc_stamp_of(st.st_mtime), error=_why(exc))
    finally:
        os.close(fd)
    return _Window(name, data, start, size, st.st_mtime, bytes_read)


def _read_window(
    fd: int, size: int, lines: int, max_line_bytes: int
) -> tuple[bytes, int, int, int] | None:
    """Blocks read backwards from the end: (data, its offset, file size, bytes read)."""
    spent = 0
    for _attempt in range(2):
        data, pos, shrunk_to, spent = _window_blocks(
            lambda n, at: os.pread(fd, n, at), size, lines, max_line_bytes, spent
        )
        if shrunk_to is None:
            return data, pos, size, spent
        size = os.fstat(fd).st_size
    return None


def _window_blocks(
    pread: Callable[[int, int], bytes], size: int, lines: int, max_line_bytes: int, spent: int = 0
) -> tuple[bytes, int, int | None, int]:
    """One pass backwards from `size`: (data, its offset, None or -1 when the file shrank,
    bytes spent so far). Blocks start small and double, so a short tail costs one read."""
    budget = read_budget(lines, max_line_bytes)
    blocks: list[bytes] = []
    pos = size
    newlines = 0
    block = _FIRST_BLOCK
    # lines <= 0 asks for no lines: look at the metadata only.
    while lines > 0 and pos > 0 and spent < budget:
        n = min(block, pos, budget - spent)
        pos -= n
        chunk = pread(n, pos)
        spent += len(chunk)
        if len(chunk) < n:
            return b"", pos, -1, spent
        newlines += _newlines(chunk, 0, n)
        if not blocks and chunk.endswith(b"\n"):
            newlines -= 1  # the last line's own terminator does not start a line
        blocks.append(chunk)
        # n newlines before the end mark off n complete lines: enough.
        if newlines >= lines:
            break
        block = min(block * 2, _MAX_BLOCK)
    return b"".join(reversed(blocks)), pos, None, spent


def _newlines(data: bytes, start: int, end: int) -> int:
    """data.count(b"\n", start, end). count looks at every byte in turn; find jumps (memchr),
    so a block inside a long line, which holds no newline at all, costs a twentieth."""
    first = data.find(b"\n", start, end)
    return 0 if first < 0 else data.count(b"\n", first, end)


# Up to this size a window's last lines are split off in one pass of C (rsplit). Above it
# the lines are long on average, and a jump from newline to newline (rfind, memrchr) costs
# less than looking at every byte: 72 us against 1.2 ms for a 1.6 MB piece of one line.
_SPLIT_IN_ONE_PASS = 256 * 1024


def _last_lines(data: bytes, end: int, count: int) -> list[bytes]:
    """data[:end].rsplit(b"\n", count): the last `count` lines of data[:end] after what
    precedes them (or all of its lines, when it has no more)."""
    if end <= _SPLIT_IN_ONE_PASS:
        return data[:end].rsplit(b"\n", count)
    rfind = data.rfind
    cuts: list[int] = []
    pos = end
    while len(cuts) < count:
        newline = rfind(b"\n", 0, pos)
        if newline < 0:
            break
        cuts.append(newline)
        pos = newline
    lines = [data[:pos]]
    ends = [end, *cuts]
    lines.extend(data[cuts[i] + 1 : ends[i]] for i in range(len(cuts) - 1, -1, -1))
    return lines


def _parse(
    name: str,
    data: bytes,
    start: int,
    size: int,
    mtime: float,
    bytes_read: int,
    lines: int,
    max_line_bytes: int,
) -> Tail:
    whole = start == 0
    base = Tail(
        path=name,
        size=size,
        mtime=utc_stamp_of(mtime),
        empty=size == 0,
        bytes_read=bytes_read,
        whole_file=whole,
    )
    if not data or lines <= 0:
        return base
    raw = _last_lines(data, len(data) - 1 if data.endswith(b"\n") else len(data), lines)
    if len(raw) > lines:
        selected, fragment = raw[1:], None  # raw[0] is what comes before the wanted lines
    else:
        # Every line of the window: the first one is complete only at the file's start.
        selected = raw if whole else raw[1:]
        # The window's first line began before it: worth showing, as lines are still wanted.
        fragment = None if whole else raw[0]
    sample = ([fragment] if fragment is not None else []) + selected
    if fragment is None and sample and max(map(len, sample)) <= max_line_bytes:
        # The usual tail: every line printable ASCII, none too long. Checked (and decoded)
        # as one block in C, before anything else: such lines are text (not one control
        # byte), and _clean_line would return each of them as it is.
        block = b"\n".join(sample)
        if block.isascii() and not _CONTROL_BYTES_IN_LINES.search(block):
            return base._replace(lines=tuple(block.decode("ascii").split("\n")))
    if _is_binary(sample, max_line_bytes):
        # A binary prefix (a core dump pasted in, a log rewritten from NULs) must not hide
        # the text written after it: the text lines after the last binary one are shown.
        start = len(sample)
        while start > 0 and not _is_binary([sample[start - 1]], max_line_bytes):
            start -= 1
        if start == len(sample):
            return base._replace(binary=True)
        sample, fragment = sample[start:], None
    out: list[str] = []
    cut = 0
    for i, line in enumerate(sample):
        partial = fragment is not None and i == 0
        text, was_cut = _clean_line(line, max_line_bytes, partial)
        if text is None:
            continue
        out.append(text)
        cut += was_cut
    return base._replace(lines=tuple(out), truncated_lines=cut)


def clean_line(text: str, max_line_bytes: int = 4096) -> str | None:
    """One line of already decoded log text (supervisord's API, supervisorctl) cleaned as a
    file's line is: escapes and controls removed, a progress bar reduced to its last state,
    a long line cut with a marker. None when it holds nothing (a hole of NULs)."""
    return _clean_line(text.encode("utf-8", "replace"), max_line_bytes, partial=False)[0]


def _clean_line(raw: bytes, max_line_bytes: int, partial: bool) -> tuple[str | None, bool]:
    """One raw line as report text, and whether it was cut; None when it is no line at all.

    `partial`: the line began before the bytes read. Whatever follows a hole or a carriage
    return is complete, though, so a progress bar or a line written over a hole still shows.
    """
    if (
        not partial
        and len(raw) <= max_line_bytes
        and raw.isascii()
        and not _CONTROL_BYTES.search(raw)
    ):
        # The usual line: printable ASCII (tabs allowed), nothing to strip or cut. Checked in
        # C first, since a run cleans thousands of lines.
        return raw.decode("ascii"), False
    line = raw[:-1] if raw.endswith(b"\r") else raw  # CRLF
    fresh = False  # whether `line` now starts at a known beginning
    hole = _LEADING_NUL.match(line)
    if hole:
        line = line[hole.end() :]
        fresh = True
        if not line:
            return None, False  # only NULs: a hole, not a line
    if b"\x1b" in line:  # a lookup in C; the regex walks a megabyte line byte by byte
        line = _ANSI.sub(b"", line)
    if b"\r" in line:
        # A progress bar redraws itself with \r: the last segment with something visible
        # is what the terminal showed last.
        segments = line.split(b"\r")
        chosen = 0
        for i in range(len(segments) - 1, -1, -1):
            if _CONTROL_BYTES.sub(b"", segments[i]).strip():
                chosen = i
                break
        else:
            chosen = len(segments) - 1
        line = segments[chosen]
        fresh = fresh or chosen > 0
    partial = partial and not fresh
    if partial:
        if len(line) < max_line_bytes:
            return None, False  # a short piece of a line we have not got: drop it
        tail_text = _decode_from_middle(line[-max_line_bytes:])
        return f"[line cut: at least {len(line)} bytes] {CUT_MARKER} {_clean_text(tail_text)}", True
    if len(line) > max_line_bytes:
        # Incremental decoding drops a character split by the cut instead of mangling it.
        head = codecs.getincrementaldecoder("utf-8")("replace").decode(line[:max_line_bytes])
        return f"{_clean_text(head)} {CUT_MARKER} [line cut: {len(line)} bytes]", True
    return _clean_text(line.decode("utf-8", "replace")), False


def _decode_from_middle(data: bytes) -> str:
    # Skip the continuation bytes of a character cut at the front (at most 3 in UTF-8).
    skip = 0
    while skip < min(3, len(data)) and 0x80 <= data[skip] <= 0xBF:
        skip += 1
    return data[skip:].decode("utf-8", "replace")


def _clean_text(text: str) -> str:
    return _CONTROL_CHARS.sub("", text)


def _is_binary(lines: list[bytes], max_line_bytes: int | None = None) -> bool:
    """Whether these raw lines are not text: mostly NULs, other controls or undecodable bytes.

    A share rather than "any NUL": one stray NUL should not hide a log's lines, while real
    binary data (executables, archives, databases, UTF-16) is far above the threshold.
    With `max_line_bytes`, a longer line is judged by its first and last that many bytes
    (what a tail can show of it), not by megabytes nobody sees.
    """
    if max_line_bytes is not None:
        keep = max(max_line_bytes, 1)
        lines = [line if len(line) <= 2 * keep else line[:keep] + line[-keep:] for line in lines]
    # NULs at the start of a line are a hole (a log truncated while its writer kept its
    # offset, or a sparse file), not binary content.
    stripped = [line.lstrip(b"\0") for line in lines]
    if not any(stripped) and any(lines):
        return True  # nothing but NUL bytes
    joined = b"\n".join(stripped)
    if not joined:
        return False
    # Counted in C, not character by character (a 5 MB line took a fifth of a second): an
    # ASCII byte always decodes to itself, so the bad controls are counted on the bytes,
    # and U+FFFD after a "replace" decode counts the undecodable sequences.
    controls = len(joined) - len(joined.translate(None, _BAD_CONTROL_BYTES))
    if joined.isascii():
        return controls / len(joined) > _BINARY_RATIO
    sample = joined.decode("utf-8", "replace")
    return (controls + sample.count("\ufffd")) / len(sample) > _BINARY_RATIO


def _why(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, FileNotFoundError):
        return "vanished (no such file)"
    reason = exc.strerror or type(exc).__name__
    return f"cannot read: {reason}"


def _why_missing(name: str, exc: OSError) -> str:
    """Why stat failed, telling a dangling symlink from a missing file."""
    if isinstance(exc, FileNotFoundError):
        try:
            target = os.readlink(name)
        except OSError:
            return "no such file"
        return f"dangling symlink to {target}"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return _why(exc)


def _not_regular(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory"
    kinds = (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    for test, kind in kinds:
        if test(mode):
            return f"not a regular file ({kind})"
    return "not a regular file"


# What an error looks like in a log line. Word-ish boundaries: a keyword must not be glued to
# a letter, digit, "_", "-" or "." on either side, so "stderr", "error_log", "error.log",
# "--on-error" and "errorCount" do not count; "ERROR:", "[error]" and "Error 13" do.
_B = r"(?<![\w.-])"
_E = r"(?![\w-]|\.\w)"
_ERROR_WORDS = lazy(
    _B
    + r"(?:"
    + "|".join(
        [
            r"errors?",
            r"fatal",
            r"crit(?:ical)?",
            r"exceptions?",
            r"traceback",
            r"panic(?:ked)?",
            r"fail(?:ed|ure|ures|s)?",
            r"killed",
            r"abort(?:ed)?",
            r"denied",
            r"segfault",
            r"segmentation fault",
            r"core dumped",
            r"can[’']?t",
            r"cannot",
            r"could ?n[’']?o?t",
            r"unable to",
            r"not found",
            r"no such file",
            r"out of memory",
            r"gave up",
            r"not expected",  # supervisord: "exited: sshd (exit status 255; not expected)"
        ]
    )
    + r")"
    + _E,
    re.IGNORECASE,
)
# Python exception class names: ModuleNotFoundError, torch.cuda.OutOfMemoryError.
_EXCEPTION_NAME = lazy(r"(?<!\w)[A-Z]\w*(?:Error|Exception)\b")
# "exited with status 255", "exit status 1; not expected", "exit code: 137" (0 is success).
_EXIT_STATUS = lazy(r"\bexit(?:ed)?(?:\s+with)?\s+(?:status|code)\s*[:=]?\s*(-?\d+)", re.IGNORECASE)
# Counters and reassurances that mention a keyword without reporting an error.
_NOT_AN_ERROR = lazy(
    _B
    + r"(?:"
    + r"(?:errors?|failures?|failed|fatals?|exceptions?)\s*[:=]\s*(?:0|none)\b"
    + r"|(?:0|no|zero|without)\s+(?:errors?|failures?|exceptions?|fail(?:ed|s)?)\b"
    + r"|(?:errors?|failures?)\s+(?:0|none)\b"
    + r")",
    re.IGNORECASE,
)


# What healthy X servers (Xtigervnc, Xvfb, Xorg) print at every start: xkbcomp's keysym
# warnings, relayed with the server's own word that they are harmless, and font directories
# the image does not ship. On a box whose X server is fine they end its log.
_HARMLESS = lazy(
    r"Errors from xkbcomp are not fatal to the X server"
    r"|^[>\s]*(?:Internal error|Warning|Error):\s+Could not resolve keysym \S+\s*$"
    r"|Could not init font path element \S+, removing from list"
)


def looks_like_error(line: str) -> bool:
    """Whether a log line reports an error, a crash or a failure (a heuristic).

    Flags, case-insensitively and on word-ish boundaries: error(s), fatal, critical,
    exception, traceback, panic, fail/failed/failure, killed, abort, denied, segfault,
    segmentation fault, core dumped, can't/cannot/couldn't/unable to, not found, no such
    file, out of memory, gave up; Python exception names (ModuleNotFoundError,
    torch.cuda.OutOfMemoryError); "exit status N" / "exited with code N" for N other than 0.
    Counters and reassurances are first taken out, so "errors=0", "0 errors", "no errors",
    "failed: 0", "without errors" flag nothing on their own.
    """
    if not line or _HARMLESS.search(line):
        return False
    rest = _NOT_AN_ERROR.sub(" ", line)
    if _ERROR_WORDS.search(rest) or _EXCEPTION_NAME.search(rest):
        return True
    return any(int(m.group(1)) != 0 for m in _EXIT_STATUS.finditer(rest))


# -- finding the logs: one walk of the configured directories per run, for every collector
# that reads service logs (the logs collector's tails, gpu's CUDA scan).

# How far below a log directory to look: supervisord writes flat, but some services keep a
# folder of their own (/logs/jupyter/...). Deeper trees are someone's data, not logs.
MAX_DEPTH = 4


class LogDir(Record):
    """One configured directory and what walking it found."""

    __slots__ = ("error", "exists", "matched", "notes", "path", "same_as")

    def __init__(
        self,
        path: str,
        exists: bool = False,
        same_as: str | None = None,  # an earlier entry that is the same directory
        error: str | None = None,
        notes: list[str] | None = None,  # subfolders that could not be searched
        matched: int = 0,
    ) -> None:
        self.path = path
        self.exists = exists
        self.same_as = same_as
        self.error = error
        self.notes = [] if notes is None else notes
        self.matched = matched

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exists": self.exists,
            "same_as": self.same_as,
            "error": self.error,
            "notes": sorted(self.notes),
            "matched": self.matched,
        }


class LogCandidate(NamedTuple):
    path: str
    mtime_ns: int


_BY_NAME = operator.attrgetter("name")
_BY_PATH = operator.attrgetter("path")
_BY_MTIME = operator.attrgetter("mtime_ns")


def discover_logs(cfg: LogsConfig) -> tuple[list[LogDir], list[LogCandidate]]:
    """Every configured directory, and the matching files under them, newest first."""
    patterns = list(cfg.patterns)
    dirs: list[LogDir] = []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    identities: dict[tuple[int, int], str] = {}
    candidates: list[LogCandidate] = []
    for raw in cfg.dirs:
        entry = LogDir(path=os.path.expanduser(raw))
        dirs.append(entry)
        try:
            st = os.stat(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            entry.exists = True
            entry.error = _log_dir_reason(exc)
            continue
        entry.exists = True
        if not stat.S_ISDIR(st.st_mode):
            entry.error = "not a directory"
            continue
        key = (st.st_dev, st.st_ino)
        if key in identities:
            # /Logs as a symlink to /logs, or a case-insensitive file system.
            entry.same_as = identities[key]
            continue
        identities[key] = entry.path
        found = _walk(entry, patterns, seen_dirs, seen_files)
        entry.matched = len(found)
        candidates.extend(found)
    # Newest first; equal times by path, so that the order never depends on the walk. Two
    # stable sorts on one field each (reverse keeps equal times in path order): a key tuple
    # made per file cost 23 ms of a 10,000-file walk.
    candidates.sort(key=_BY_PATH)
    candidates.sort(key=_BY_MTIME, reverse=True)
    return dirs, candidates


def shared_discovery(cfg: LogsConfig) -> tuple[list[LogDir], list[LogCandidate]]:
    """discover_logs(cfg), walked once per run (processes.shared) for every collector that
    asks with the same directories and patterns. Callers must not change what it returns."""
    from healthcheck.processes import shared

    key = ("logs.discover", tuple(cfg.dirs), tuple(cfg.patterns))
    return shared(key, lambda: discover_logs(cfg))


def log_files(cfg: LogsConfig) -> list[str]:
    """The files the logs collector reads, newest first: other collectors that scan service
    logs (gpu's CUDA errors) read exactly these."""
    return [c.path for c in shared_discovery(cfg)[1][: cfg.max_files]]


def tail_window(config: Config) -> int:
    """Lines read from the end of each log, once per run, for every collector that reads
    logs: the logs collector's tail and the gpu collector's CUDA scan both come out of it."""
    return max(config.logs.tail_lines, config.gpu.log_scan_lines)


def _walk(
    root: LogDir,
    patterns: list[str],
    seen_dirs: set[tuple[int, int]],
    seen_files: set[tuple[int, int]],
) -> list[LogCandidate]:
    """Files under `root` whose name matches a pattern, down to MAX_DEPTH folders below it.

    Symlinked folders are followed, but a folder already walked (by any path) is not walked
    again: that ends symlink loops and reads each file once when two roots overlap. Matching
    folders, FIFOs and dangling symlinks are returned too, so that the report says why they
    are no logs instead of leaving them out silently.
    """
    found: list[LogCandidate] = []
    try:
        top = os.stat(root.path)
        seen_dirs.add((top.st_dev, top.st_ino))
    except OSError:  # pragma: no cover - it was stat'ed a moment ago
        pass
    stack: list[tuple[str, int]] = [(root.path, 0)]
    st: os.stat_result | None
    # fnmatchcase's own translation, all patterns in one regex: one match per name instead
    # of a Python loop over the patterns (10,000 files: 20 ms less).
    matches = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)).match
    new_candidate = tuple.__new__
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=_BY_NAME)
        except OSError as exc:
            if folder == root.path:
                root.error = _log_dir_reason(exc)
            else:
                root.notes.append(f"{folder}: {_log_dir_reason(exc)}")
            continue
        for entry in entries:
            try:
                st = entry.stat()  # follows symlinks
            except OSError:
                st = None  # dangling symlink or vanished: reported if its name matches
            if patterns and matches(entry.name):
                if st is not None:
                    # Inline (a call and a keyword constructor a file were a third of a
                    # 10,000-file walk). A file already found under another name (a hard
                    # link, overlapping dirs) is left out.
                    key = (st.st_dev, st.st_ino)
                    if key not in seen_files:
                        seen_files.add(key)
                        found.append(new_candidate(LogCandidate, (entry.path, st.st_mtime_ns)))
                elif (dangling := _dangling_candidate(entry, seen_files)) is not None:
                    found.append(dangling)
            if st is None or not stat.S_ISDIR(st.st_mode):
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                continue
            if depth + 1 > MAX_DEPTH:
                root.notes.append(f"{entry.path}: deeper than {MAX_DEPTH} levels, not searched")
                continue
            seen_dirs.add(key)
            stack.append((entry.path, depth + 1))
    return found


def _dangling_candidate(
    entry: os.DirEntry[str], seen_files: set[tuple[int, int]]
) -> LogCandidate | None:
    """A matching name whose target could not be looked at (a dangling symlink): reported
    under its own times; None when it is gone, or another name of a file already found."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return None  # gone between listing and looking
    key = (st.st_dev, st.st_ino)
    if key in seen_files:
        return None
    seen_files.add(key)
    return LogCandidate(path=entry.path, mtime_ns=st.st_mtime_ns)


def _log_dir_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or type(exc).__name__


__all__ = [
    "LogCandidate",
    "LogDir",
    "Tail",
    "discover_logs",
    "log_files",
    "looks_like_error",
    "read_budget",
    "read_tail",
    "shared_discovery",
    "tail_window",
]
