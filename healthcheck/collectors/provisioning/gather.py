"""What the provisioning collector reads: each configured script's file (kind, mode bits, size,
time, a short hash, its first line, its line endings). I/O only: judge.py decides.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from typing import Any

from healthcheck.timestamps import utc_stamp_of

# Enough to fingerprint a script for drift without reading a huge file dropped in its place.
MAX_HASHED_BYTES = 4 * 1024 * 1024


def gather(paths: list[str]) -> list[dict[str, Any]]:
    """Each script path, as the on-start script would find it."""
    return [inspect_script(path) for path in paths]


def inspect_script(path: str) -> dict[str, Any]:
    """What one script path holds; never raises."""
    info: dict[str, Any] = {
        "path": path,
        "present": False,
        "kind": None,
        "executable": False,
        "size": None,
        "modified": None,
        "sha256": None,
        "first_line": None,
        "crlf": False,
        "link_target": None,
        "error": None,
    }
    if os.path.islink(path):
        with contextlib.suppress(OSError):
            info["link_target"] = os.readlink(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return info  # a dangling symlink too: `[ -f ]` in the on-start script is false
    except OSError as exc:
        info["error"] = exc.strerror or str(exc)
        return info
    info["present"] = True
    info["kind"] = "file" if stat.S_ISREG(st.st_mode) else _kind(st.st_mode)
    # Mode bits, not os.access: root may "execute" anything, but the kernel still refuses a
    # file without an x bit, which is what Vast.ai's direct invocation runs into.
    info["executable"] = bool(st.st_mode & 0o111) and stat.S_ISREG(st.st_mode)
    info["size"] = st.st_size
    info["modified"] = utc_stamp_of(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        try:
            info["sha256"], info["first_line"], info["crlf"] = _fingerprint(path)
        except OSError as exc:
            info["error"] = exc.strerror or str(exc)
    return info


def _fingerprint(path: str) -> tuple[str, str, bool]:
    """Short sha256 (of the first MAX_HASHED_BYTES), first line, and CRLF line endings."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        head = handle.read(MAX_HASHED_BYTES)
    digest.update(head)
    line = head.split(b"\n", 1)[0]
    first = line.rstrip(b"\r")[:120].decode("utf-8", "replace")
    return digest.hexdigest()[:12], first, b"\r\n" in head


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"
