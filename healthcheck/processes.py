"""The process table, read once per run and shared by every collector that needs it.

Reading the table costs a few /proc files per process; on a box with thousands of processes,
four collectors each reading it in parallel threads (under one GIL) cost four times that.
Inside `shared_scan()`, which the runner opens around a run, the first collector to ask reads
the table and the others wait for that same read. Outside it, every call reads afresh, so a
collector run on its own (or a test that starts a process and looks again) sees the box now.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import psutil

ZOMBIE = psutil.STATUS_ZOMBIE
# Only what most collectors need of every process. psutil's ppid() and create_time() each
# re-read /proc/PID/stat (a pid-reuse check): asked of the few processes that matter, not all.
_ATTRS = ["pid", "name", "cmdline", "status", "memory_info"]


@dataclass(frozen=True)
class ProcessRow:
    """What the collectors need of one process; None where it could not be read."""

    pid: int
    name: str
    cmdline: tuple[str, ...]
    status: str | None
    rss: int

    @property
    def zombie(self) -> bool:
        return self.status == ZOMBIE

    def ppid(self) -> int | None:
        try:
            return psutil.Process(self.pid).ppid()
        except psutil.Error:
            return None

    def create_time(self) -> float | None:
        try:
            return psutil.Process(self.pid).create_time()
        except psutil.Error:
            return None


# Enough for any real process tree (supervisord -> sh -> vncserver -> Xtigervnc); a longer
# chain means a pid loop in a racing read, not a deeper tree.
MAX_TREE_DEPTH = 64


def descends_from(pid: int, ancestors: frozenset[int] | set[int]) -> bool:
    """Whether `pid` is one of `ancestors` or runs below one of them (walks its parents)."""
    current: int | None = pid
    for _ in range(MAX_TREE_DEPTH):
        if current is None or current <= 0:
            return False
        if current in ancestors:
            return True
        try:
            current = psutil.Process(current).ppid()
        except psutil.Error:
            return False
    return False


def scan() -> list[ProcessRow]:
    """Every process now, by pid."""
    rows = []
    for proc in psutil.process_iter(_ATTRS, ad_value=None):
        info = proc.info
        memory = info["memory_info"]
        rows.append(
            ProcessRow(
                pid=info["pid"],
                name=info["name"] or "",
                cmdline=tuple(info["cmdline"] or ()),
                status=info["status"],
                rss=memory.rss if memory else 0,
            )
        )
    return sorted(rows, key=lambda row: row.pid)


class _SharedScan:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[ProcessRow] | None = None

    def rows(self) -> list[ProcessRow]:
        with self._lock:  # the others wait for the first read rather than starting their own
            if self._rows is None:
                self._rows = scan()
            return self._rows


_shared: ContextVar[_SharedScan | None] = ContextVar("healthcheck_process_scan", default=None)


def process_rows() -> list[ProcessRow]:
    """The process table: the run's shared read inside `shared_scan()`, else a fresh one."""
    shared = _shared.get()
    return shared.rows() if shared is not None else scan()


@contextlib.contextmanager
def shared_scan() -> Iterator[None]:
    """Within the block (and threads started with a copy of its context), one read is shared."""
    token = _shared.set(_SharedScan())
    try:
        yield
    finally:
        _shared.reset(token)
