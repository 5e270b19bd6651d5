"""What the gpu collector reads from the box: the container's environment (the run's shared
read), NVML (pynvml, imported only when this runs), the kernel log, and the tails of the logs
the logs collector reads (the run's shared reads). I/O only: judge.py decides what it means.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import psutil

from healthcheck.collectors.gpu.judge import GpuReadings, NvmlSnapshot, processes_note
from healthcheck.config import Config, GpuConfig, LogsConfig
from healthcheck.facts import Facts
from healthcheck.logtail import Tail, tail_window
from healthcheck.nvml import (
    GpuReading,
    import_pynvml,
    library_absent,
    library_not_found,
    process_name,
    read_gpu,
    start,
    stop,
    system_info,
)
from healthcheck.text import cut
from healthcheck.xid import read_kernel_log

COMMAND_CHARS = 200


def gather(config: Config, cfg: GpuConfig, facts: Facts) -> GpuReadings:
    """Everything the judge needs, read in the order the section shows it."""
    env = facts.environment(config.env.source, config.supervisor.serverurl)
    nvml = read_nvml()
    kernel_log = (
        read_kernel_log(cfg.kernel_log, cfg.dmesg_timeout, cfg.kernel_log_lines)
        if cfg.xid_scan
        else None
    )
    service_logs = service_log_tails(config.logs, cfg, tail_window(config), facts)
    return GpuReadings(env.variables, env.source_used, nvml, kernel_log, service_logs)


def read_nvml() -> NvmlSnapshot:
    """Start NVML, read everything, stop it; a failure to start is the snapshot's `failure`."""
    snap = NvmlSnapshot()
    if library_absent():
        snap.failure = library_not_found()
        return snap
    nv, snap.failure = import_pynvml()
    if nv is None:
        return snap
    snap.failure = start(nv)
    if snap.failure is not None:
        return snap
    try:
        snap.system, snap.notes = system_info(nv)
        count = snap.system["count"]
        for index in range(count if isinstance(count, int) else 0):
            snap.gpus.append(read_gpu(nv, index))
        # Names must be asked while NVML is up; matching happens against our own pids.
        for reading in snap.gpus:
            match_processes(nv, reading)
    finally:
        stop(nv)
    if snap.notes:
        snap.system["unavailable"] = snap.notes
    for reading in snap.gpus:
        if reading.notes:
            reading.facts["unavailable"] = dict(sorted(reading.notes.items()))
        if reading.lost:
            reading.facts["lost"] = True
        if reading.error is not None:
            reading.facts["error"] = reading.error
    return snap


def match_processes(nv: ModuleType, reading: GpuReading) -> None:
    """Mark each NVML process as ours (a live local pid of the same program) or not.

    Inside a container NVML reports the host's pids, which mean nothing (or another program)
    here; the note says so rather than claiming there are no processes.
    """
    for proc in reading.processes:
        host_name = process_name(nv, proc["pid"])
        local = _local_process(proc["pid"])
        matched = local is not None and _same_program(host_name, local)
        proc["name"] = (local or {}).get("name") if matched else host_name
        proc["matched"] = matched
        if matched and local is not None:
            proc["command"] = local["command"]
    reading.figures["processes_note"] = processes_note(reading.processes)


def _local_process(pid: int) -> dict[str, Any] | None:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            name = proc.name()
            cmdline = proc.cmdline()
    except (psutil.Error, OSError):
        return None
    return {"name": name, "argv0": cmdline[0] if cmdline else "", "command": _command(cmdline)}


def _command(cmdline: list[str]) -> str:
    return cut(" ".join(cmdline), COMMAND_CHARS)


def _same_program(host_name: str | None, local: dict[str, Any]) -> bool:
    """Whether the host's name for a pid fits our process with that pid.

    Without a host name there is nothing to compare, and a live local pid is taken as it is.
    The kernel's process name is cut at 15 characters, hence the prefix comparison.
    """
    if not host_name:
        return True
    base = os.path.basename(host_name)
    names = {local["name"], os.path.basename(local["argv0"])}
    return any(n and (base == n or base.startswith(n) or n.startswith(base)) for n in names)


def service_log_tails(
    logs: LogsConfig, cfg: GpuConfig, window: int = 0, facts: Facts | None = None
) -> list[Tail]:
    """The last `log_scan_lines` lines of each log the logs collector reads (from the same
    read of each, `window` lines, when the run shares one: `facts`)."""
    facts = facts if facts is not None else Facts.for_run()
    # The files the logs collector reads: the same walk, so the two never disagree.
    return [
        facts.log_tail(path, cfg.log_scan_lines, logs.max_line_bytes, window)
        for path in facts.log_files(logs)
    ]
