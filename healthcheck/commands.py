"""Running external commands: each under its own timeout, killed with its group on expiry."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import NamedTuple


class CommandResult(NamedTuple):
    args: tuple[str, ...]
    returncode: int | None  # None when it timed out or could not start
    stdout: str
    stderr: str
    error: str | None = None  # why there is no return code

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run_command(
    args: list[str], timeout: float, env: dict[str, str] | None = None
) -> CommandResult:
    """Run `args` without a shell; never raises for a missing binary or a hang.

    The child gets a session of its own so that on expiry the whole process group (a shell
    script and everything it started) is killed, not just the direct child.
    """
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
    except OSError as exc:
        return CommandResult(tuple(args), None, "", "", f"cannot run {args[0]}: {exc.strerror}")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            out, err = proc.communicate(timeout=1)
        except subprocess.TimeoutExpired:
            # A grandchild that left the group still holds the pipes: stop waiting for it.
            proc.kill()
            out, err = b"", b""
        return CommandResult(
            tuple(args),
            None,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            f"{args[0]} timed out after {timeout:g}s and was killed",
        )
    return CommandResult(
        tuple(args), proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    )


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
