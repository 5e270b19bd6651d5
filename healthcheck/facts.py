"""What several collectors look at, read once per run: the run's shared facts.

One `Facts` object is built at the start of a run (healthcheck.runner) and handed to every
collector in its `RunContext` (`ctx.facts`). Each fact is computed on first need, once, and
shared: collectors run in parallel threads, and a second one asking for the process table
waits for the first one's read instead of starting its own. What a fact returns is shared:
callers must not change it.

The facts wrap the core's readers (processes, logtail, environ); while a collector runs, the
runner also makes this object's store the one those readers share (`active`), so a helper deep
inside a collector that calls `processes.process_rows()` gets the same read.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any

from healthcheck import processes

if TYPE_CHECKING:
    from healthcheck.config import Config, LogsConfig
    from healthcheck.environ import EnvironmentSnapshot
    from healthcheck.logtail import LogCandidate, LogDir, Tail
    from healthcheck.model import Collector, RunContext
    from healthcheck.processes import ProcessRow, RunStart


class Facts:
    """The run's shared facts, each computed lazily and once (thread-safe)."""

    def __init__(self, store: processes.SharedScans | None = None) -> None:
        self._store = store if store is not None else processes.SharedScans()

    @classmethod
    def for_run(cls) -> Facts:
        """The facts of the enclosing command when it already shares its scans
        (`processes.shared_scan()`, which the CLI opens around a whole command), else new."""
        return cls(processes.current_scans())

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Within the block, the core's readers share this run's reads."""
        with processes.shared_scan(self._store):
            yield

    @property
    def started(self) -> RunStart:
        """When the run began: the clock, the box's CPU counters and our own CPU time."""
        return self._store.started

    def read_ahead(self, declared: Collection[str]) -> None:
        """Read now, before the collectors start, the declared facts that are many small reads.

        A collector declares the facts it reads (`facts = ("processes",)` on its class).
        The process table is two /proc reads a process, thousands on a busy box, and each
        read lets another thread take the GIL: read inside a collector's thread while the
        others computed, it waited for the GIL again after many of them (5,000 processes: a
        run 27 ms longer, 15 alternating runs, the CPU time likewise).
        """
        if "processes" in declared:
            self.processes()

    def processes(self) -> list[ProcessRow]:
        """The process table, one row per process (processes.scan)."""
        with self.active():
            return processes.process_rows()

    def listeners(self) -> dict[int, list[tuple[str, int | None]]]:
        """Port -> [(address, pid of the owner)] for every listening TCP socket."""
        with self.active():
            return self._store.get("listeners-by-port", processes.listeners_by_port)

    def unix_socket_owners(self, names: set[str]) -> set[int]:
        """The process holding a Unix socket bound to one of `names` (empty: none)."""
        with self.active():
            return processes.unix_socket_pids(names)

    def environment(self, source: str, serverurl: str | None = None) -> EnvironmentSnapshot:
        """Another process's environment (`self`, `pid1` or `process:NAME`)."""
        from healthcheck.environ import read_environment

        with self.active():  # read once per run: read_environment shares it in the run's store
            return read_environment(source, serverurl)

    def log_discovery(self, cfg: LogsConfig) -> tuple[list[LogDir], list[LogCandidate]]:
        """The configured log directories and the log files found under them, newest first."""
        from healthcheck.logtail import shared_discovery

        with self.active():
            return shared_discovery(cfg)

    def log_files(self, cfg: LogsConfig) -> list[str]:
        """The log files the logs collector reads (at most `max_files`), newest first."""
        from healthcheck.logtail import log_files

        with self.active():
            return log_files(cfg)

    def log_tail(self, path: str, lines: int, max_line_bytes: int, window_lines: int) -> Tail:
        """The last `lines` lines of a log, from one read per run of its last `window_lines`."""
        from healthcheck.logtail import shared_tail

        with self.active():
            return shared_tail(path, lines, max_line_bytes, window_lines)


def context_for(
    collector: Collector | type[Any],
    config: Config,
    facts: Facts | None = None,
    deadline: float | None = None,
) -> RunContext:
    """The run context one collector gets: its options (checked against its `Options`),
    the config, its deadline and the run's facts. Without `facts` (a collector called on
    its own, as tests and scripts do), facts of its own."""
    from healthcheck.config import collector_options
    from healthcheck.model import RunContext

    if deadline is None:
        limit = getattr(collector, "timeout", None) or config.collectors.timeout
        deadline = time.monotonic() + limit
    options = collector_options(config, collector.name, getattr(collector, "Options", None))
    return RunContext(
        name=collector.name,
        config=config,
        options=options,
        deadline=deadline,
        facts=facts if facts is not None else Facts.for_run(),
    )


__all__ = ["Facts", "context_for"]
