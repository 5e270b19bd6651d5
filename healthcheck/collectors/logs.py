"""The last lines of every service log, newest log first."""

from __future__ import annotations

import calendar
import fnmatch
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, ClassVar

from healthcheck.config import Config, LogsConfig
from healthcheck.lazyre import lazy
from healthcheck.logtail import looks_like_error, shared_tail
from healthcheck.model import Finding, Section, Status, human_duration
from healthcheck.processes import shared

# How far below a log directory to look: supervisord writes flat, but some services keep a
# folder of their own (/logs/jupyter/...). Deeper trees are someone's data, not logs.
MAX_DEPTH = 4
# A file "ends with an error" when one of its last this-many non-blank lines looks like one:
# a service that crashed stops writing right after its traceback, while an error followed by
# more normal output is usually history.
FINAL_LINES = 3
MAX_EVIDENCE = 5
# What the logs may take of a report: all files together, and any one file (newest lines
# kept), so that one log of 4 KB lines cannot crowd out everything else.
SECTION_BYTES = 48 * 1024
FILE_BYTES = 8 * 1024
RUNAWAY_BYTES = 1024**3  # a log this big grows without rotation
# A log grows out of bounds when it put on this much since the run before, at this rate.
GROWTH_BYTES = 100 * 1024**2
GROWTH_PER_DAY = 1024**3
ROTATE = (
    "Rotate it: for a supervisord program set stdout_logfile_maxbytes=50MB and "
    "stdout_logfile_backups=5 (stderr_ too), else add a logrotate rule."
)


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
        room = SECTION_BYTES
        for cand in chosen:
            tail = shared_tail(cand.path, cfg.tail_lines, cfg.max_line_bytes, window)
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


def ends_with_error(path: str, lines: list[str], flagged: list[int]) -> Finding | None:
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
        detail=_error_tally(len(flagged), len(lines)),
        hint=f"read more of it: tail -n 100 {path}",
        evidence=evidence,
    )


# --- history: lines written before the program's current start ------------------------------

# A time stamp near the start of a line: ISO 8601 and its log variants (supervisord's
# "2025-04-29 10:00:00,123", Jupyter's "[I 2025-04-29 10:00:00.123 ServerApp]", Python
# logging, "2025-04-29T10:00:00Z", Go's and nginx's "2025/04/29 10:00:00"), and ctime
# ("Tue Apr 29 10:00:00 2025", TigerVNC's).
_STAMP_WINDOW = 48
_ISO_STAMP = lazy(
    r"(?<!\d)(?P<y>\d{4})[-/](?P<mo>\d\d)[-/](?P<d>\d\d)[T ](?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)"
    r"(?:[.,]\d+)?\s?(?P<zone>Z|[+-]\d\d:?\d\d)?(?!\d)"
)
_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_CTIME_STAMP = lazy(
    r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?P<mon>[A-Z][a-z]{2}) +(?P<d>\d{1,2}) "
    r"(?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d) (?P<y>\d{4})\b"
)
# A line stamped this far after the file was last written is not in the zone we assumed.
STAMP_SLACK_S = 60


def line_stamp(line: str) -> tuple[float, bool] | None:
    """The time stamp at the start of `line`: (seconds since the epoch, whether it carried
    its zone). A stamp without a zone is read as UTC here; `line_times` places it."""
    head = line[:_STAMP_WINDOW]
    found = _ISO_STAMP.search(head)
    if found:
        month = int(found.group("mo"))
    else:
        found = _CTIME_STAMP.search(head)
        if not found or found.group("mon") not in _MONTHS:
            return None
        month = _MONTHS[found.group("mon")]
    try:
        seconds = calendar.timegm(
            (
                int(found.group("y")),
                month,
                int(found.group("d")),
                int(found.group("h")),
                int(found.group("mi")),
                int(found.group("s")),
            )
        )
    except (ValueError, OverflowError):
        return None
    zone = found.groupdict().get("zone")
    if not zone:
        return float(seconds), False
    if zone == "Z":
        return float(seconds), True
    sign = -1 if zone[0] == "+" else 1
    digits = zone[1:].replace(":", "")
    return float(seconds + sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)), True


def line_times(lines: list[str], mtime: float | None) -> list[float | None]:
    """Each line's time stamp in seconds since the epoch (None where it has none).

    Stamps without a zone are the writer's local time, which need not be ours: they are read
    in this machine's zone or in UTC, whichever puts the newest stamp closest before the
    file's modification time; when neither fits (or the time is unknown) they are not used.
    """
    stamps = [line_stamp(line) for line in lines]
    naive = [s[0] for s in stamps if s is not None and not s[1]]
    shift: float | None = None
    if naive and mtime is not None:
        newest = max(naive)
        offsets = {0.0, float(-time.localtime(newest).tm_gmtoff)}
        fitting = [o for o in offsets if newest + o <= mtime + STAMP_SLACK_S]
        if fitting:
            shift = min(fitting, key=lambda o: abs(mtime - (newest + o)))
    times: list[float | None] = []
    for stamp in stamps:
        if stamp is None or (not stamp[1] and shift is None):
            times.append(None)
        else:
            times.append(stamp[0] + (0.0 if stamp[1] else shift or 0.0))
    return times


def written_before(
    lines: list[str], started: float, mtime: float | None, times: list[float | None] | None = None
) -> int:
    """How many of `lines` (oldest first) were written before `started`: all of them when the
    file was last modified before it; else up to the last line stamped before it, with the
    unstamped lines that follow it (a traceback belongs to the line above) as long as a line
    stamped after the start follows. History: shown, never a finding."""
    if mtime is not None and mtime < started:
        return len(lines)
    times = line_times(lines, mtime) if times is None else times
    old = [i for i, t in enumerate(times) if t is not None and t < started]
    if not old:
        return 0
    after = next((i for i in range(old[-1] + 1, len(lines)) if times[i] is not None), None)
    # Without a newer stamp, which of the unstamped lines came after the start is unknown.
    return after if after is not None else old[-1] + 1


def iso_seconds(value: str | None) -> float | None:
    """Seconds since the epoch of a report time ("2025-04-29T10:00:00Z"); None if absent."""
    stamp = line_stamp(value or "")
    return stamp[0] if stamp is not None else None


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


def growth_findings(logs: Section, before: dict[str, Any] | None, now: datetime) -> list[Finding]:
    """Logs that grew fast since the run before (`before`: that run's JSON report): the
    runaway that size alone does not show yet. Judged from the two reports' sizes and times."""
    if before is None:
        return []
    try:
        then = datetime.strptime(str(before["generated_at"]), "%Y-%m-%dT%H:%M:%SZ")
        old_files = before["sections"]["logs"]["data"]["files"]
        sizes = {str(f["path"]): int(f["size"]) for f in old_files if f.get("size") is not None}
    except (KeyError, TypeError, ValueError):
        return []
    seconds = max(1.0, (now - then.replace(tzinfo=timezone.utc)).total_seconds())
    runaway = {f.subject for f in logs.findings if f.rule == "runaway-log"}
    found = []
    for entry in logs.data.get("files") or []:
        path, size = str(entry.get("path")), entry.get("size")
        if path in runaway or path not in sizes or not isinstance(size, int):
            continue
        grown = size - sizes[path]
        if grown < GROWTH_BYTES or grown * 86400 / seconds < GROWTH_PER_DAY:
            continue
        found.append(
            Finding(
                collector="logs",
                rule="log-growing",
                subject=path,
                severity=Status.WARN,
                title=f"{os.path.basename(path)} grew by {_mib(grown)} since the run before",
                detail=(
                    f"{path} went from {_mib(sizes[path])} to {_mib(size)} in "
                    f"{human_duration(seconds)}: at this rate it fills the disk."
                ),
                hint=f"Find what floods it (tail -n 50 {path}). {ROTATE}",
            )
        )
    return found


def _mib(size: int) -> str:
    return f"{size} B" if size < 1024 else f"{size / 1024**2:.1f} MiB"


def _error_tally(flagged: int, shown: int) -> str:
    """ "1 line looks like an error", "3 of its last 20 lines look like errors": the count
    and the verb agree, and "of its last N" only when it says something."""
    verb, what = ("looks", "an error") if flagged == 1 else ("look", "errors")
    if flagged == shown:
        counted = "1 line" if flagged == 1 else f"all {flagged} lines"
    else:
        counted = f"{flagged} of its last {shown} lines"
    where = "among" if flagged == 1 else "the last of them among"
    return f"{counted} {verb} like {what}, {where} its final {FINAL_LINES} lines."


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
