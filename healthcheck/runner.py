"""Runs collectors in parallel, each isolated: a raise or an overrun becomes `unknown`."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

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
    for index, collector in enumerate(collectors):
        limit = collector.timeout if collector.timeout is not None else config.collectors.timeout
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
