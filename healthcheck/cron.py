"""The cron entry that runs `healthcheck run` on schedule, and the daemon that fires it.

python-crontab validates schedules and renders or parses our one line; croniter (which
python-crontab also relies on for its `schedule()`) computes run times. The crontab itself
is edited as text: python-crontab re-renders a whole crontab (it strips indentation, moves
variable lines, drops lines it cannot parse, even turns `100%` into `100 %`), and `remove`
must leave every line that is not ours exactly as it was.

Our entry is one self-contained line tagged with a trailing `# healthcheck-managed` comment.
Its variables are shell assignments in front of the command (`HEALTHCHECK_CONFIG=… PATH=…
healthcheck run`), not crontab `NAME=value` lines, which would change the environment of
every entry below them.
"""

from __future__ import annotations

import getpass
import itertools
import os
import pwd
import re
import shlex
import shutil
import sys
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from healthcheck.commands import run_command
from healthcheck.config import Config
from healthcheck.lazyre import lazy

MARKER = "healthcheck-managed"
DEFAULT_SCHEDULE = "0 */6 * * *"
DEFAULT_INTERVAL = timedelta(hours=6)
LOG_NAME = "healthcheck.log"
CRONTAB_TIMEOUT = 5.0
# Where cron's own PATH (/usr/bin:/bin) falls short: supervisorctl, git, nvidia-smi live here.
STANDARD_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Process names of cron daemons: Debian's cron, cronie's crond, busybox's applet.
CRON_DAEMON_NAMES = ("cron", "crond")
_MARKER_RE = lazy(r"#\s*" + re.escape(MARKER) + r"\s*$")

# Shipped as cron/supervisord-cron.conf too (a test keeps the two the same).
SUPERVISORD_SNIPPET = """\
[program:cron]
command=cron -f
autostart=true
autorestart=true
startsecs=2
redirect_stderr=true
stdout_logfile=/logs/cron.log
"""


class CronError(Exception):
    """A cron command cannot do what was asked; `code` is the CLI's exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


USAGE, FAILED = 2, 3  # the CLI's EXIT_USAGE and EXIT_FAILED, without importing click here


# --- schedules ------------------------------------------------------------------------------


def check_schedule(schedule: str) -> str:
    """`schedule` normalised (single blanks), or CronError(2) naming it.

    Both python-crontab and croniter must accept it, and it must fire: `@reboot` and
    `0 0 30 2 *` (February 30th) are valid cron but would never run the check.
    """
    from croniter import croniter
    from crontab import CronSlices

    text = " ".join(schedule.split())
    where = f"--schedule: {schedule!r} is not a valid cron schedule"
    try:
        valid = bool(text) and CronSlices.is_valid(text) and croniter.is_valid(text)
    except (ValueError, KeyError):
        valid = False
    if not valid:
        raise CronError(f"{where} (five fields: minute hour day month weekday)", USAGE)
    try:
        next_runs(text, datetime.now().astimezone(), 1)
    except Exception:  # croniter gives up on dates that never come, with its own exceptions
        raise CronError(f"--schedule: {schedule!r} never fires", USAGE) from None
    return text


def next_runs(schedule: str, start: datetime, count: int) -> list[datetime]:
    """The next `count` times `schedule` fires after `start` (in `start`'s time zone)."""
    from croniter import croniter

    it = croniter(schedule, start, ret_type=datetime)
    return [it.get_next(datetime) for _ in range(count)]


def interval(schedule: str, start: datetime | None = None) -> timedelta:
    """The longest gap between two runs over the next few runs (6 h for the default).

    The longest, not the average: `0 9 * * 1-5` leaves 72 h over a weekend, and a report
    from Friday is not stale on Sunday.
    """
    start = start or datetime.now().astimezone()
    try:
        times = [start, *next_runs(schedule, start, 16)]
    except Exception:  # a schedule cron accepts but croniter cannot follow
        return DEFAULT_INTERVAL
    # From the first run on: the wait from `start` to it is not a whole interval.
    return max(later - earlier for earlier, later in itertools.pairwise(times[1:]))


# --- the line we install --------------------------------------------------------------------


def healthcheck_command() -> list[str]:
    """How cron calls this installation: its console script, or `python -m healthcheck`.

    The script beside the interpreter is the one this installation (venv, pipx, system)
    installed; sys.executable is not resolved, since a venv's python is a symlink out of it.
    """
    python = Path(sys.executable).absolute()
    script = python.parent / "healthcheck"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [str(python), "-m", "healthcheck"]


def cron_path(command: list[str]) -> str:
    """PATH for the job: the installation's bin first, the installer's PATH, then the usual."""
    entries = [str(Path(command[0]).parent)]
    entries += os.environ.get("PATH", "").split(os.pathsep)
    entries += STANDARD_PATH
    seen: list[str] = []
    for entry in entries:
        # Relative entries would be resolved against cron's working directory: dropped.
        if entry.startswith("/") and entry not in seen:
            seen.append(entry)
    return ":".join(seen)


def log_file(config: Config) -> tuple[Path, str | None]:
    """Where the job's output goes, and a note when it is not the first logs directory.

    The first configured logs directory, so that the logs collector shows the job's own
    errors in the next report; else the next one that exists; else the workspace, if it
    exists. Nothing is created: `cron install` adds a line and nothing else; a directory
    that does not exist is a warning, since cron cannot redirect into it.
    """
    dirs = [Path(d).expanduser() for d in config.logs.dirs]
    if dirs and dirs[0].is_dir():
        return dirs[0] / LOG_NAME, None
    first = str(dirs[0]) if dirs else "(none configured)"
    for other in dirs[1:]:
        if other.is_dir():
            return other / LOG_NAME, f"logs directory {first} does not exist; logging to {other}"
    workspace = Path(config.paths.workspace).expanduser()
    if workspace.is_dir():
        return workspace / LOG_NAME, f"no logs directory exists ({first}); logging to {workspace}"
    target = dirs[0] if dirs else workspace
    return target / LOG_NAME, (
        f"warning: {target} does not exist, so cron cannot write the job's output there and "
        f"skips the job: create it (mkdir -p {target}) or run `healthcheck run` once first"
    )


def build_line(
    schedule: str,
    command: list[str],
    config_file: str | None,
    path: str,
    log: Path,
    workspace: str | None = None,
) -> str:
    """Our crontab line, rendered by python-crontab (which escapes `%`)."""
    from crontab import CronItem

    env = [f"HEALTHCHECK_CONFIG={shlex.quote(config_file)}"] if config_file else []
    env.append(f"PATH={shlex.quote(path)}")
    run = ["run", "-q"] + (["--workspace", shlex.quote(workspace)] if workspace else [])
    shell = " ".join([*env, *map(shlex.quote, command), *run, ">>", shlex.quote(str(log)), "2>&1"])
    item = CronItem(command=shell, comment=MARKER)
    item.setall(schedule)
    return str(item.render())


class Entry(NamedTuple):
    """Our line in a crontab, parsed."""

    line: str
    schedule: str
    command: str
    enabled: bool  # False when commented out

    def to_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "schedule": self.schedule,
            "command": self.command,
            "enabled": self.enabled,
        }


def is_ours(line: str) -> bool:
    return _MARKER_RE.search(line.rstrip("\r\n")) is not None


def parse_entry(line: str) -> Entry:
    """Our line's schedule and command (without importing python-crontab: the collector
    reads it on every run)."""
    text = line.rstrip("\r\n")
    body = _MARKER_RE.sub("", text).strip()
    enabled = not body.startswith("#")
    body = body.lstrip("#").strip()
    if body.startswith("@"):
        schedule, _, command = body.partition(" ")
    else:
        fields = body.split(None, 5)
        schedule, command = " ".join(fields[:5]), (fields[5] if len(fields) > 5 else "")
    return Entry(text, schedule, command.strip(), enabled)


def find_entry(crontab: str) -> Entry | None:
    """Our entry in a crontab's text (the first, if someone copied it)."""
    for line in crontab.splitlines():
        if is_ours(line):
            return parse_entry(line)
    return None


def splice(crontab: str, line: str | None) -> str:
    """`crontab` with our entries replaced by `line` (at the first one's place, else at the
    end) or, with None, removed. Every other byte is kept."""
    lines = crontab.splitlines(keepends=True)
    out: list[str] = []
    placed = line is None
    for existing in lines:
        if not is_ours(existing):
            out.append(existing)
        elif not placed:
            ending = existing[len(existing.rstrip("\r\n")) :] or "\n"
            out.append(line + ending)  # type: ignore[operator]
            placed = True
    if not placed:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"  # cron refuses a crontab without a final newline
        out.append(f"{line}\n")
    return "".join(out)


# --- the crontab, through the real `crontab` command ----------------------------------------


def current_user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return getpass.getuser()


def check_user(user: str | None) -> str:
    """The crontab's owner: `user` if it exists (CronError(2) otherwise), else ourselves."""
    if user is None:
        return current_user()
    try:
        pwd.getpwnam(user)
    except KeyError:
        raise CronError(f"--user: no such user {user!r}", USAGE) from None
    return user


def _crontab_args(user: str) -> list[str]:
    binary = shutil.which("crontab")
    if binary is None:
        raise CronError(
            "no crontab command: cron is not installed (Debian/Ubuntu: apt-get install cron)",
            FAILED,
        )
    # `-u` only for someone else: some systems refuse it even for oneself when not root.
    return [binary] if user == current_user() else [binary, "-u", user]


def read_crontab(user: str, timeout: float = CRONTAB_TIMEOUT) -> str:
    """The text of `user`'s crontab ("" when they have none)."""
    result = run_command([*_crontab_args(user), "-l"], timeout)
    if result.ok:
        return result.stdout
    if result.returncode is not None and "no crontab for" in result.stderr:
        return ""
    reason = result.error or result.stderr.strip() or f"exit status {result.returncode}"
    raise CronError(f"cannot read the crontab of {user}: {reason}", FAILED)


def write_crontab(user: str, text: str) -> None:
    """Install `text` as `user`'s crontab. An empty text stays an empty crontab: what was
    there besides our line is kept as it was, even when that is nothing."""
    args = _crontab_args(user)
    fd, temp = tempfile.mkstemp(prefix="healthcheck-crontab.", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        result = run_command([*args, temp], CRONTAB_TIMEOUT)
    finally:
        os.unlink(temp)
    if result.ok:
        return
    reason = result.error or result.stderr.strip() or f"exit status {result.returncode}"
    raise CronError(f"cannot write the crontab of {user}: {reason}", FAILED)


# --- install, remove, status ----------------------------------------------------------------


class Change(NamedTuple):
    user: str
    action: str  # installed, updated, unchanged, removed, absent
    line: str | None
    notes: tuple[str, ...] = ()
    changes: tuple[str, ...] = ()  # "schedule A -> B", for an entry that was there


def entry_settings(entry: Entry) -> dict[str, str]:
    """What an installed line says: its schedule, config file, workspace and log file."""
    settings = {"schedule": entry.schedule}
    try:
        words = shlex.split(entry.command.replace("\\%", "%"))
    except ValueError:
        return settings
    for index, word in enumerate(words):
        if word.startswith("HEALTHCHECK_CONFIG="):
            settings["config"] = word.partition("=")[2]
        elif word == "--workspace" and index + 1 < len(words):
            settings["workspace"] = words[index + 1]
        elif word == ">>" and index + 1 < len(words):
            settings["log"] = words[index + 1]
    return settings


def install(
    config: Config,
    schedule: str | None,
    user: str | None,
    workspace: str | None = None,
    config_given: bool = False,
) -> Change:
    """Install or update our entry; the rest of the crontab is left as it was.

    Run again, it keeps what the entry already says (schedule, config file, workspace)
    unless an option changes it, and lists what changed.
    """
    owner = check_user(user)
    current = read_crontab(owner)
    old = find_entry(current)
    before = entry_settings(old) if old is not None else {}
    schedule = check_schedule(schedule or before.get("schedule") or DEFAULT_SCHEDULE)
    loaded = str(Path(config.loaded_from).absolute()) if config.loaded_from else None
    config_file = loaded if config_given else before.get("config", loaded)
    workspace = workspace or before.get("workspace")
    log, note = log_file(config)
    command = healthcheck_command()
    line = build_line(schedule, command, config_file, cron_path(command), log, workspace)
    notes = [note] if note else []
    notes += _cannot(owner, command, log)
    after = entry_settings(parse_entry(line))
    changes = tuple(
        f"{key} {before.get(key, '(none)')} -> {after.get(key, '(none)')}"
        for key in ("schedule", "config", "workspace", "log")
        if old is not None and before.get(key) != after.get(key)
    )
    updated = splice(current, line)
    if updated == current:
        return Change(owner, "unchanged", line, tuple(notes))
    write_crontab(owner, updated)
    return Change(owner, "installed" if old is None else "updated", line, tuple(notes), changes)


def _cannot(user: str, command: list[str], log: Path) -> list[str]:
    """Warnings for what `user` (the crontab's owner) cannot do: run the installed binary
    (and its interpreter), or write the log file."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return []
    if account.pw_uid == 0:
        return []
    warnings = []
    programs = [Path(command[0])]
    interpreter = _shebang(programs[0])
    if interpreter is not None:
        programs.append(interpreter)
    for program in programs:
        real = Path(os.path.realpath(program))
        if not _user_may(account, real, os.X_OK):
            shown = str(program) if real == program else f"{program} ({real})"
            warnings.append(
                f"warning: {user} cannot run {shown}, so the job would fail: install "
                "healthcheck where that user can reach it, or use --user with its owner"
            )
            break
    target = log if log.exists() else log.parent
    if log.parent.is_dir() and not _user_may(account, target, os.W_OK):
        warnings.append(
            f"warning: {user} cannot write {log}, so cron skips the job: "
            f"chown {user} {target} or choose another [logs] dirs"
        )
    return warnings


def _shebang(script: Path) -> Path | None:
    try:
        with script.open("rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    return Path(words[0]) if words else None


def _user_may(account: Any, path: Path, want: int) -> bool:
    """Whether `account` may `want` (os.X_OK, os.W_OK) `path`, by its mode bits and those
    of every directory above it (which it must be able to enter)."""
    import grp

    groups = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if account.pw_name in g.gr_mem}

    def allowed(target: Path, bits: int) -> bool:
        try:
            st = target.stat()
        except OSError:
            return False
        if st.st_uid == account.pw_uid:
            shift = 6
        elif st.st_gid in groups:
            shift = 3
        else:
            shift = 0
        return (st.st_mode >> shift) & bits == bits

    bits = {os.X_OK: 1, os.W_OK: 2 | (1 if path.is_dir() else 0)}[want]
    return all(allowed(parent, 1) for parent in path.parents) and allowed(path, bits)


def remove(user: str | None) -> Change:
    owner = check_user(user)
    current = read_crontab(owner)
    old = find_entry(current)
    if old is None:
        return Change(owner, "absent", None)
    write_crontab(owner, splice(current, None))
    return Change(owner, "removed", old.line)


def cron_daemon() -> dict[str, Any] | None:
    """The running cron daemon (name, pid), or None. Reads the process table, no command."""
    from healthcheck.processes import process_rows

    for row in process_rows():
        name, cmdline = row.name, row.cmdline
        if row.zombie:
            continue
        if name in CRON_DAEMON_NAMES or (
            name == "busybox" and len(cmdline) > 1 and cmdline[1] == "crond"
        ):
            return {"name": name, "pid": row.pid}
    return None


def status_lines(user: str | None, now: datetime | None = None) -> list[str]:
    """What `cron status` prints: the entry, its next run, and whether cron runs."""
    owner = check_user(user)
    entry = find_entry(read_crontab(owner))
    lines = [f"Crontab of {owner}: " + ("healthcheck entry installed" if entry else "no entry")]
    if entry is None:
        lines.append("Install it with: healthcheck cron install")
    else:
        lines.append(f"Entry: {entry.line}")
        if not entry.enabled:
            lines.append("The entry is commented out: it never runs.")
        else:
            moment = now or datetime.now().astimezone()
            try:
                upcoming = next_runs(entry.schedule, moment, 1)[0]
                wait = _duration(upcoming - moment)
                lines.append(f"Next run: {upcoming.isoformat(timespec='minutes')} (in {wait})")
            except Exception:  # croniter's own errors for schedules it cannot follow
                lines.append(f"Next run: unknown (cannot evaluate {entry.schedule!r})")
    daemon = cron_daemon()
    if daemon:
        lines.append(f"Cron daemon: running ({daemon['name']}, pid {daemon['pid']})")
    else:
        lines += [
            "Cron daemon: not running, so no entry fires. Containers have no init to start it;",
            "run it under supervisord with this program (cron/supervisord-cron.conf), then",
            "`supervisorctl reread && supervisorctl update`:",
            "",
            *SUPERVISORD_SNIPPET.splitlines(),
        ]
    return lines


def _duration(delta: timedelta) -> str:
    minutes = max(0, round(delta.total_seconds() / 60))
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours)
    return " ".join(parts + [f"{minutes} min"] * bool(minutes or not parts))
