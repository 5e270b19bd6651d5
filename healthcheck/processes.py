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
_ATTRS = ["pid", "ppid", "name", "cmdline", "status", "create_time", "memory_info"]


@dataclass(frozen=True)
class ProcessRow:
    """What the collectors need of one process; None where it could not be read."""

    pid: int
    ppid: int | None
    name: str
    cmdline: tuple[str, ...]
    status: str | None
    create_time: float | None
    rss: int

    @property
    def zombie(self) -> bool:
        return self.status == ZOMBIE


def scan() -> list[ProcessRow]:
    """Every process now, by pid."""
    rows = []
    for proc in psutil.process_iter(_ATTRS, ad_value=None):
        info = proc.info
        memory = info["memory_info"]
        rows.append(
            ProcessRow(
                pid=info["pid"],
                ppid=info["ppid"],
                name=info["name"] or "",
                cmdline=tuple(info["cmdline"] or ()),
                status=info["status"],
                create_time=info["create_time"],
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
