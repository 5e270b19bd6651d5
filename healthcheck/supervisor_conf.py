"""The supervisord config file behind the running supervisord, and a program's section of it,
as text: what an assistant needs to write the exact edit for a failing program."""

from __future__ import annotations

import glob
import os
import shlex
from pathlib import Path
from typing import Any

from healthcheck.lazyre import lazy
from healthcheck.program import programs_of

_HEADER = lazy(r"^\s*\[(?P<name>[^\]]+)\]\s*(?:[;#].*)?$")
MAX_FILES = 50  # included files read, at most
MAX_SECTION_LINES = 60


def config_file() -> Path | None:
    """The running supervisord's config file (its -c), else the first standard one."""
    from healthcheck.supervisor_client import STANDARD_CONFIG_PATHS, running_config_paths

    for candidate in [*running_config_paths(), *STANDARD_CONFIG_PATHS]:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def program_sections(conf: Path, names: list[str]) -> dict[str, tuple[Path, str]]:
    """`[program:NAME]` for each of `names`, as written, with the file it is in (the main
    file or one its `[include] files` pull in)."""
    found: dict[str, tuple[Path, str]] = {}
    wanted = {f"program:{name}" for name in names}
    for path in _files(conf):
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        current: str | None = None
        body: list[str] = []
        for line in [*lines, "[end-of-file]"]:
            match = _HEADER.match(line)
            if match:
                if current in wanted and current is not None:
                    text = "\n".join(body[:MAX_SECTION_LINES]).rstrip()
                    found.setdefault(current.partition(":")[2], (path, text))
                current = match["name"].strip()
                body = [line]
            elif current is not None:
                body.append(line)
    return found


def _files(conf: Path) -> list[Path]:
    """`conf` and the files of its `[include] files =` globs (relative to its directory)."""
    files = [conf]
    try:
        text = conf.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return files
    in_include = False
    patterns: list[str] = []
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            in_include = match["name"].strip() == "include"
            continue
        key, sep, value = line.partition("=")
        if in_include and sep and key.strip() == "files":
            try:
                patterns += shlex.split(value)
            except ValueError:
                patterns += value.split()
    for pattern in patterns:
        full = pattern if os.path.isabs(pattern) else str(conf.parent / pattern)
        for name in sorted(glob.glob(os.path.expanduser(full))):
            if len(files) < MAX_FILES and Path(name).is_file():
                files.append(Path(name))
    return files


def failing_programs_config(
    report: dict[str, Any],
) -> tuple[Path, dict[str, tuple[Path, str]]] | None:
    """For a report (its dict): the config file of the supervisord it talked to, and the
    `[program:NAME]` section of each program with a crit or warn finding; None when there
    is no supervisor section or no config file to be found."""
    section = (report.get("sections") or {}).get("supervisor") or {}
    data = section.get("data") or {}
    # The report is JSON (a file, or a fresh report's dict): its programs become records here.
    programs = programs_of(data.get("programs"))
    if not programs:
        return None
    conf = _config_of(str(data.get("url") or ""))
    if conf is None:
        return None
    by_fullname = {p.fullname: p.name for p in programs}
    failing = []
    for finding in report.get("findings") or []:
        name = by_fullname.get(str(finding.get("subject", "")))
        if finding.get("severity") in ("crit", "warn") and name and name not in failing:
            failing.append(name)
    return conf, program_sections(conf, failing)


def _config_of(url: str) -> Path | None:
    """The config file that declares the server at `url`, else the likely one."""
    from healthcheck.supervisor_client import discover_serverurls

    try:
        servers = discover_serverurls()
    except Exception:  # the process table or a file: best effort, like the collector's
        servers = []
    for server in servers:
        if url and server.url == url and server.config_path and Path(server.config_path).is_file():
            return Path(server.config_path)
    return config_file()
