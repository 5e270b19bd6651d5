"""How the logs collector judges what it read: which tails end in an error, which logs cannot
be read or grow without rotation, whether any log directory exists; and how much of each
tail the report shows (byte caps). Pure functions: no I/O.
"""

from __future__ import annotations

import os
from typing import Any

from healthcheck.config import LogsConfig
from healthcheck.loglines import ROTATE, ends_with_error
from healthcheck.logtail import LogCandidate, LogDir, Tail, looks_like_error
from healthcheck.model import Finding, Status
from healthcheck.record import Record

NAME = "logs"

# What the logs may take of a report: all files together, and any one file (newest lines
# kept), so that one log of 4 KB lines cannot crowd out everything else.
SECTION_BYTES = 48 * 1024
FILE_BYTES = 8 * 1024
RUNAWAY_BYTES = 1024**3  # a log this big grows without rotation


class LogReadings(Record):
    """The directories walked, every log file found (newest first), and the tails of the
    first `max_files` of them."""

    __slots__ = ("candidates", "dirs", "tails")

    def __init__(
        self,
        dirs: list[LogDir],
        candidates: list[LogCandidate],
        tails: list[Tail],
    ) -> None:
        self.dirs = dirs
        self.candidates = candidates
        self.tails = tails


def assess(readings: LogReadings, cfg: LogsConfig) -> tuple[dict[str, Any], list[Finding]]:
    """The section's data (each file's shown lines within the byte caps) and its findings."""
    dirs, candidates = readings.dirs, readings.candidates
    patterns = list(cfg.patterns)
    files: list[dict[str, Any]] = []
    findings: list[Finding] = []
    room = SECTION_BYTES
    for tail in readings.tails:
        # Judged on every line read; shown within the byte caps (newest lines first).
        lines = list(tail.lines)
        flagged = [i for i, line in enumerate(lines) if looks_like_error(line)]
        shown = _within(lines, min(FILE_BYTES, room))
        room -= sum(len(line.encode("utf-8", "surrogateescape")) + 1 for line in shown)
        offset = len(lines) - len(shown)
        files.append(
            {
                "path": tail.path,
                "size": tail.size,
                "mtime": tail.mtime,
                "empty": tail.empty,
                "binary": tail.binary,
                "error": tail.error,
                "truncated_lines": tail.truncated_lines,
                "lines": shown,
                "error_lines": [i - offset for i in flagged if i >= offset],
                # only when the byte caps left lines out (what the report says then)
                **({"lines_left_out": offset} if offset else {}),
            }
        )
        if tail.error is not None:
            findings.append(_unreadable(tail.path, tail.error))
        elif finding := ends_with_error(tail.path, lines, flagged):
            findings.append(finding)
        if tail.size is not None and tail.size >= RUNAWAY_BYTES:
            findings.append(_runaway(tail.path, tail.size))

    if not any(d.exists for d in dirs):
        findings.append(_no_log_dir(dirs))
    for d in dirs:
        if d.exists and d.error is not None:
            findings.append(
                Finding(
                    collector=NAME,
                    rule="log-dir-unreadable",
                    subject=d.path,
                    severity=Status.UNKNOWN,
                    title=f"log directory {d.path} cannot be searched: {d.error}",
                    hint=f"check it with: ls -ld {d.path}",
                )
            )

    data = {
        "dirs": [d.to_dict() for d in dirs],
        "patterns": patterns,
        "tail_lines": cfg.tail_lines,
        "max_files": cfg.max_files,
        "matched": len(candidates),
        "left_out": len(candidates) - len(readings.tails),
        "files": files,
    }
    return data, findings


def _unreadable(path: str, error: str) -> Finding:
    return Finding(
        collector="logs",
        rule="log-unreadable",
        subject=path,
        severity=Status.UNKNOWN,
        title=f"log {path} cannot be read: {error}",
        detail="Its service may be unable to write it either.",
        hint=f"look at it with: ls -la {path}",
    )


def _within(lines: list[str], budget: int) -> list[str]:
    """The newest of `lines` that fit in `budget` bytes (at least none, never a partial)."""
    kept: list[str] = []
    for line in reversed(lines):
        cost = len(line.encode("utf-8", "surrogateescape")) + 1
        if cost > budget:
            break
        budget -= cost
        kept.append(line)
    return kept[::-1]


def _runaway(path: str, size: int) -> Finding:
    gib = size / 1024**3
    return Finding(
        collector="logs",
        rule="runaway-log",
        subject=path,
        severity=Status.WARN,
        title=f"{os.path.basename(path)} is {gib:.1f} GiB: it grows without rotation",
        detail=(
            f"{path} takes {gib:.1f} GiB; a log this size fills the disk sooner or later, "
            "and only its end is ever read."
        ),
        hint=f"{ROTATE} `truncate -s 0 {path}` frees the space now.",
    )


def _no_log_dir(dirs: list[LogDir]) -> Finding:
    names = ", ".join(d.path for d in dirs) or "(none configured)"
    return Finding(
        collector="logs",
        rule="no-log-dir",
        subject="",
        severity=Status.UNKNOWN,
        title=f"no log directory found: {names}",
        detail="Without logs, service failures cannot be explained.",
        hint="services here log to /logs (legacy /Logs); set [logs] dirs if they log elsewhere",
    )
