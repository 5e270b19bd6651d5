"""What a log line says, for the logs collector and the run's diagnosis alike: its time stamp,
whether a log ends with an error, how fast a log grows between runs, and supervisord's own
lines. Core, not a collector's: the diagnosis step and the pipeline judge the logs section
with the same rules the logs collector used to build it.
"""

from __future__ import annotations

import calendar
import os
import time
from datetime import datetime
from typing import Any

from healthcheck.lazyre import lazy
from healthcheck.model import Finding, Section, Status, human_bytes, human_duration
from healthcheck.timestamps import parse_utc_stamp

# A file "ends with an error" when one of its last this-many non-blank lines looks like one:
# a service that crashed stops writing right after its traceback, while an error followed by
# more normal output is usually history.
FINAL_LINES = 3
MAX_EVIDENCE = 5


# A log grows out of bounds when it put on this much since the run before, at this rate.
GROWTH_BYTES = 100 * 1024**2
GROWTH_PER_DAY = 1024**3
ROTATE = (
    "Rotate it: for a supervisord program set stdout_logfile_maxbytes=50MB and "
    "stdout_logfile_backups=5 (stderr_ too), else add a logrotate rule."
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


def growth_findings(logs: Section, before: dict[str, Any] | None, now: datetime) -> list[Finding]:
    """Logs that grew fast since the run before (`before`: that run's JSON report): the
    runaway that size alone does not show yet. Judged from the two reports' sizes and times."""
    if before is None:
        return []
    try:
        then = parse_utc_stamp(str(before["generated_at"]))
        old_files = before["sections"]["logs"]["data"]["files"]
        sizes = {
            str(f["path"]): int(f["size"])
            for f in old_files
            if isinstance(f, dict) and f.get("size") is not None
        }
    except (KeyError, TypeError, ValueError):
        return []
    seconds = max(1.0, (now - then).total_seconds())
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
                title=f"{os.path.basename(path)} grew by {human_bytes(grown)} since the run before",
                detail=(
                    f"{path} went from {human_bytes(sizes[path])} to {human_bytes(size)} in "
                    f"{human_duration(seconds)}: at this rate it fills the disk."
                ),
                hint=f"Find what floods it (tail -n 50 {path}). {ROTATE}",
            )
        )
    return found


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


# --- supervisord's own log -----------------------------------------------------------------

# supervisord's log lines about a program (supervisor 3.x and 4.x wording).
PROGRAM_EVENT = lazy(
    r"\b(?:spawned: '(?P<a>[^']+)' with pid"
    r"|(?:success|gave up): (?P<b>\S+) entered"
    r"|(?:exited|stopped): (?P<c>\S+) \()"
)


# A line of supervisord's own log: "2025-04-29 10:00:00,123 WARN exited: sshd (...)".
_MAIN_LOG_LINE = lazy(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>CRIT|ERRO|WARN|INFO|DEBG|TRAC|BLAT) "
    r"(?P<message>.*)$"
)


# What supervisord says at every start in a container (as root, socket without a password)
# and when, as pid 1, it reaps orphans: at CRIT level, but no fault of this box.
_ROUTINE = lazy(
    r"Supervisor is running as root|running without any HTTP authentication checking"
    r"|reaped unknown pid|Set uid to user \d+ succeeded|Included extra file"
)


def supervisord_line(line: str) -> tuple[str, str | None] | None:
    """For a line of supervisord's own log: (its message, the program it is about or None);
    None for any other line. Routine start-up lines come back with program "" (not news)."""
    found = _MAIN_LOG_LINE.match(line.strip())
    if not found:
        return None
    message = found.group("message")
    if _ROUTINE.search(message):
        return message, ""
    event = PROGRAM_EVENT.search(message)
    if event:
        return message, event.group("a") or event.group("b") or event.group("c")
    return message, None
