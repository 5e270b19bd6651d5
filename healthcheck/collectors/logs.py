"""The last lines of every service log, newest log first."""

from __future__ import annotations

import fnmatch
import os
import stat
from dataclasses import dataclass, field
from typing import Any, ClassVar

from healthcheck.config import Config, LogsConfig
from healthcheck.logtail import looks_like_error, shared_tail
from healthcheck.model import Finding, Section, Status
from healthcheck.processes import shared

# How far below a log directory to look: supervisord writes flat, but some services keep a
# folder of their own (/logs/jupyter/...). Deeper trees are someone's data, not logs.
MAX_DEPTH = 4
# A file "ends with an error" when one of its last this-many non-blank lines looks like one:
# a service that crashed stops writing right after its traceback, while an error followed by
# more normal output is usually history.
FINAL_LINES = 3
MAX_EVIDENCE = 5


@dataclass
class _Dir:
    """One configured directory and what walking it found."""

    path: str
    exists: bool = False
    same_as: str | None = None  # an earlier entry that is the same directory
    error: str | None = None
    notes: list[str] = field(default_factory=list)  # subfolders that could not be searched
    matched: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "exists": self.exists,
            "same_as": self.same_as,
            "error": self.error,
            "notes": sorted(self.notes),
            "matched": self.matched,
        }


@dataclass(frozen=True)
class _Candidate:
    path: str
    mtime_ns: int


class LogsCollector:
    """Reads the tail of each log in the configured directories, without reading whole files."""

    name: ClassVar[str] = "logs"
    description: ClassVar[str] = "the last lines of every matching log in /logs and /Logs"
    timeout: ClassVar[float | None] = None

    def collect(self, config: Config) -> Section:
        cfg = config.logs
        patterns = list(cfg.patterns)
        dirs, candidates = shared_discovery(cfg)
        chosen = candidates[: cfg.max_files]
        window = tail_window(config)
        files: list[dict[str, Any]] = []
        findings: list[Finding] = []
        for cand in chosen:
            tail = shared_tail(cand.path, cfg.tail_lines, cfg.max_line_bytes, window)
            flagged = [i for i, line in enumerate(tail.lines) if looks_like_error(line)]
            files.append(
                {
                    "path": tail.path,
                    "size": tail.size,
                    "mtime": tail.mtime,
                    "empty": tail.empty,
                    "binary": tail.binary,
                    "error": tail.error,
                    "truncated_lines": tail.truncated_lines,
                    "lines": list(tail.lines),
                    "error_lines": flagged,
                }
            )
            if tail.error is not None:
                findings.append(_unreadable(tail.path, tail.error))
            elif finding := _ends_with_error(tail.path, list(tail.lines), flagged):
                findings.append(finding)

        if not any(d.exists for d in dirs):
            findings.append(_no_log_dir(dirs))
        for d in dirs:
            if d.exists and d.error is not None:
                findings.append(
                    Finding(
                        collector=self.name,
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
            "left_out": len(candidates) - len(chosen),
            "files": files,
        }
        return Section.from_findings(self.name, data, findings)


def discover_logs(cfg: LogsConfig) -> tuple[list[_Dir], list[_Candidate]]:
    """Every configured directory, and the matching files under them, newest first."""
    patterns = list(cfg.patterns)
    dirs: list[_Dir] = []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    identities: dict[tuple[int, int], str] = {}
    candidates: list[_Candidate] = []
    for raw in cfg.dirs:
        entry = _Dir(path=os.path.expanduser(raw))
        dirs.append(entry)
        try:
            st = os.stat(entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            entry.exists = True
            entry.error = _reason(exc)
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
    # Newest first; equal times by path, so that the order never depends on the walk.
    candidates.sort(key=lambda c: (-c.mtime_ns, c.path))
    return dirs, candidates


def shared_discovery(cfg: LogsConfig) -> tuple[list[_Dir], list[_Candidate]]:
    """discover_logs(cfg), walked once per run (processes.shared) for every collector that
    asks with the same directories and patterns. Callers must not change what it returns."""
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
    root: _Dir,
    patterns: list[str],
    seen_dirs: set[tuple[int, int]],
    seen_files: set[tuple[int, int]],
) -> list[_Candidate]:
    """Files under `root` whose name matches a pattern, down to MAX_DEPTH folders below it.

    Symlinked folders are followed, but a folder already walked (by any path) is not walked
    again: that ends symlink loops and reads each file once when two roots overlap. Matching
    folders, FIFOs and dangling symlinks are returned too, so that the report says why they
    are no logs instead of leaving them out silently.
    """
    found: list[_Candidate] = []
    try:
        top = os.stat(root.path)
        seen_dirs.add((top.st_dev, top.st_ino))
    except OSError:  # pragma: no cover - it was stat'ed a moment ago
        pass
    stack: list[tuple[str, int]] = [(root.path, 0)]
    st: os.stat_result | None
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            if folder == root.path:
                root.error = _reason(exc)
            else:
                root.notes.append(f"{folder}: {_reason(exc)}")
            continue
        for entry in entries:
            try:
                st = entry.stat()  # follows symlinks
            except OSError:
                st = None  # dangling symlink or vanished: reported if its name matches
            is_dir = st is not None and stat.S_ISDIR(st.st_mode)
            if any(fnmatch.fnmatchcase(entry.name, p) for p in patterns):
                cand = _candidate(entry, st, seen_files)
                if cand is not None:
                    found.append(cand)
            if not is_dir or st is None:
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


def _candidate(
    entry: os.DirEntry[str], st: os.stat_result | None, seen_files: set[tuple[int, int]]
) -> _Candidate | None:
    if st is None:
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            return None  # gone between listing and looking
    key = (st.st_dev, st.st_ino)
    if key in seen_files:
        return None  # the same file under another name (overlapping dirs, hard link)
    seen_files.add(key)
    return _Candidate(path=entry.path, mtime_ns=st.st_mtime_ns)


def _reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or type(exc).__name__


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


def _ends_with_error(path: str, lines: list[str], flagged: list[int]) -> Finding | None:
    """A warning when one of the last few non-blank lines looks like an error."""
    recent = [i for i, line in enumerate(lines) if line.strip()][-FINAL_LINES:]
    if not flagged or not set(recent) & set(flagged):
        return None
    evidence = tuple(lines[i] for i in flagged[-MAX_EVIDENCE:])
    return Finding(
        collector="logs",
        rule="log-ends-with-error",
        subject=path,
        severity=Status.WARN,
        # Log text is untrusted: it goes in the evidence (rendered fenced), not in the title.
        title=f"{os.path.basename(path)} ends with an error",
        detail=(
            f"{len(flagged)} of its last {len(lines)} lines look like errors, "
            f"including one of the last {FINAL_LINES}."
        ),
        hint=f"read more of it: tail -n 100 {path}",
        evidence=evidence,
    )


def _no_log_dir(dirs: list[_Dir]) -> Finding:
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
