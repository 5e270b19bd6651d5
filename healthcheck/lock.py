"""One run at a time per workspace: an advisory `flock` on `.healthcheck.lock`.

The kernel drops a `flock` when its holder exits, however it exits, so a crashed or killed
run never leaves a stale lock behind; the pid written into the file is only there so that a
waiting run can say who it waited for.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from healthcheck.timestamps import now_stamp

LOCK_NAME = ".healthcheck.lock"
# The alerts' memory (healthcheck.notify), beside the lock and, like it, kept out of git.
NOTIFY_STATE_NAME = ".healthcheck-notify.json"
POLL_S = 0.1


class LockBusy(Exception):
    """Another run held the lock for longer than we were willing to wait."""


class LockError(Exception):
    """The lock file cannot be created or opened (a read-only workspace, say)."""


@contextlib.contextmanager
def workspace_lock(
    workspace: Path, timeout: float, purpose: str = "run", name: str = LOCK_NAME
) -> Iterator[Path]:
    """Hold the workspace's lock for the block; wait at most `timeout` seconds for it.

    Raises LockBusy (naming the holder) when the wait runs out, LockError when the lock
    file cannot be opened at all. `name`: the lock file's name in `workspace` (another
    directory holds it when the workspace is read-only).
    """
    path = workspace / name
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise LockError(f"cannot open lock file {path}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockBusy(
                        f"another healthcheck {_holder(fd)} holds {path}; waited {timeout:g}s"
                    ) from None
                time.sleep(POLL_S)
        # Who holds it, for the message of whoever waits next.
        stamp = now_stamp()
        # Only a courtesy to whoever waits: a full disk must not stop the run here (its
        # report write says so in words).
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {stamp} {purpose}\n".encode(), 0)
        try:
            yield path
        finally:
            # Emptied before release, so a stale pid is never read as the current holder.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """`(pid 123, run since 2025-05-01T12:00:00Z)` from the lock file, or `run` if unknown."""
    try:
        fields = os.pread(fd, 200, 0).decode("ascii", "replace").split()
    except OSError:
        fields = []
    if len(fields) >= 3 and fields[0].isdigit():
        return f"{fields[2]} (pid {fields[0]}, since {fields[1]})"
    return "run"
