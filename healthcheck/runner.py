"""Runs collectors in parallel, each isolated: a raise or an overrun becomes `unknown`."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence

from healthcheck.config import Config
from healthcheck.facts import Facts, context_for
from healthcheck.model import Collector, Section, takes_context


def run_collectors(collectors: Sequence[Collector], config: Config) -> list[Section]:
    """One section per collector, in the order given.

    Each collector runs in a daemon thread: Python cannot kill a thread, so one that hangs
    past its limit is abandoned (and dies with the process) while the run goes on. A run
    therefore takes about as long as its slowest collector, never the sum. All of them share
    one `Facts`: the process table, sockets, environments and logs are read once per run.
    """
    results: dict[int, Section] = {}
    threads: list[tuple[threading.Thread, float, Collector]] = []
    start = time.monotonic()
    facts = Facts.for_run()
    limits = [_limit(collector, config) for collector in collectors]
    _read_ahead(collectors, facts, min(limits, default=0.0))
    for index, collector in enumerate(collectors):
        limit = limits[index]
        thread = threading.Thread(
            target=_run_one,
            args=(collector, config, facts, start + limit, results, index),
            name=f"collector-{collector.name}",
            daemon=True,
        )
        thread.start()
        threads.append((thread, limit, collector))

    sections = []
    for index, (thread, limit, collector) in enumerate(threads):
        thread.join(max(0.0, start + limit - time.monotonic()))
        section = results.get(index)
        if section is None:
            section = Section.failed(
                collector.name,
                f"timed out after {limit:g}s; the collector was abandoned and the run went on",
                duration_ms=round(limit * 1000),
            )
        sections.append(section)
    return sections


# Seconds the collectors wait for the read-ahead at most: a process table of 5,000 takes
# about 0.1 s; one that takes more than this is stuck, not big.
READ_AHEAD_WAIT = 2.0


def _limit(collector: Collector, config: Config) -> float:
    return collector.timeout if collector.timeout is not None else config.collectors.timeout


def _read_ahead(collectors: Sequence[Collector], facts: Facts, limit: float) -> None:
    """The facts the collectors declare they read (`facts` on a collector's class) that are
    best read before they start (Facts.read_ahead), read now while nothing else runs.

    In a thread of its own, waited for at most READ_AHEAD_WAIT (and the shortest limit): a
    read of /proc can hang (a process stuck in the kernel holding its memory's lock blocks a
    read of its command line). The collectors then start anyway: those that need the fact
    wait for it under their own limits, as they did before there was a read-ahead, and the
    others are not held up.
    """
    declared = {name for collector in collectors for name in getattr(collector, "facts", ())}
    if not declared:
        return
    thread = threading.Thread(
        target=_quietly, args=(facts.read_ahead, declared), name="read-ahead", daemon=True
    )
    thread.start()
    thread.join(min(limit, READ_AHEAD_WAIT))


def _quietly(read: Callable[[set[str]], None], declared: set[str]) -> None:
    # The collector that needs the fact reads it again, and a failure there is that
    # collector's own section (unknown, with the error), as it was before any read-ahead.
    with contextlib.suppress(Exception):
        read(declared)


def _run_one(
    collector: Collector,
    config: Config,
    facts: Facts,
    deadline: float,
    results: dict[int, Section],
    index: int,
) -> None:
    began = time.monotonic()
    try:
        with facts.active():
            if takes_context(collector):
                section = collector.collect(context_for(collector, config, facts, deadline))
            else:  # a plugin written for the first release: collect(config)
                section = collector.collect(config)  # type: ignore[arg-type]
        if not isinstance(section, Section):
            raise TypeError(f"collect() returned {type(section).__name__}, not a Section")
        section.name = collector.name
    except Exception as exc:  # any failure of one collector is that collector's section
        section = Section.failed(collector.name, f"{type(exc).__name__}: {exc}")
    section.duration_ms = round((time.monotonic() - began) * 1000)
    results[index] = section
