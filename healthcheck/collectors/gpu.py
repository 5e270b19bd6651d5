"""The GPUs: NVML facts and figures, Xid errors from the kernel log, CUDA errors in service logs.

NVML (pynvml) is imported only when this collector runs. When it cannot start, the section
names the failure (no library, no driver, a version mismatch...) with what to do, and the
rest of the section (the Xid scan, the service logs) still runs. Threshold logic lives in
pure functions over plain readings, so it is testable without a GPU.
"""

from __future__ import annotations

import os
import re
from types import ModuleType
from typing import Any, ClassVar

import psutil

from healthcheck.collectors.logs import log_files, tail_window
from healthcheck.config import Config, GpuConfig, LogsConfig
from healthcheck.environ import read_environment
from healthcheck.logtail import shared_tail
from healthcheck.model import Finding, Section, Status
from healthcheck.nvml import (
    HW_SLOWDOWN,
    NA,
    POWER_REASONS,
    THERMAL_REASONS,
    GpuReading,
    NvmlFailure,
    import_pynvml,
    library_absent,
    library_not_found,
    process_name,
    read_gpu,
    start,
    stop,
    system_info,
)
from healthcheck.xid import XidEvent, explain, find_xids, pci_key, read_kernel_log

NAME = "gpu"
MAX_EVIDENCE = 5
RECENT_XIDS = 10
COMMAND_CHARS = 200

# Values that hide every GPU on purpose: the NVIDIA container runtime's "void"/"none", and
# CUDA's empty list or -1.
_NO_DEVICES = {"", "void", "none"}
_CUDA_HIDDEN = {"", "-1", "none", "nodevfiles"}

_OOM = re.compile(
    r"CUDA out of memory|OutOfMemoryError|CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation"
    r"|CUDA error: out of memory",
    re.IGNORECASE,
)
# Every _OOM and _CUDA_ERROR match contains one of these (lower-cased).
_CUDA_WORDS = ("cuda", "cublas", "cudnn", "outofmemory")
_CUDA_ERROR = re.compile(
    r"\bCUDA error\b|\bCUDA_ERROR_[A-Z_]+|\bcudaError[A-Z]\w*|CUBLAS_STATUS_(?!SUCCESS)[A-Z_]+"
    r"|CUDNN_STATUS_(?!SUCCESS)[A-Z_]+|CUDA driver initialization failed"
    r"|no CUDA-capable device is detected",
)


class GpuCollector:
    """NVIDIA driver and GPUs through NVML; Xid errors; CUDA errors in the service logs."""

    name: ClassVar[str] = NAME
    description: ClassVar[str] = (
        "NVIDIA driver and GPUs (NVML): memory, use, temperature, power, clocks, throttling, "
        "ECC, processes; Xid errors; CUDA errors in service logs"
    )
    timeout: ClassVar[float | None] = None

    def collect(self, config: Config) -> Section:
        cfg = config.gpu
        env = read_environment(config.env.source)
        expected = gpu_expected(env.variables)
        expected["env_source"] = env.source_used

        nvml = read_nvml()
        data: dict[str, Any] = {
            "nvml": nvml.failure.to_dict() if nvml.failure else {"kind": "ok"},
            **nvml.system,
            "gpus": [r.facts for r in nvml.gpus],
            "expected": expected,
        }
        volatile: dict[str, Any] = {
            "gpus": [
                {"index": r.index, **r.figures, "processes": r.processes}
                for r in nvml.gpus
                if r.error is None
            ]
        }
        findings = nvml_findings(nvml, expected)
        for reading in nvml.gpus:
            findings += gpu_findings(reading, cfg)

        ours = {key: r.index for r in nvml.gpus if (key := _pci(r)) is not None}
        if cfg.xid_scan:
            xid_data, xid_findings = scan_xids(cfg, ours)
            # The kernel logs all the time: how much was read moves, what was found does not.
            volatile["xid_records_read"] = xid_data.pop("records")
            data["xid"] = xid_data
            findings += xid_findings
        else:
            data["xid"] = {"scanned": False}

        log_data, log_findings = scan_service_logs(config.logs, cfg, tail_window(config))
        data["cuda_log_errors"] = log_data
        findings += log_findings

        section = Section.from_findings(self.name, data, findings, volatile)
        if nvml.failure is not None:
            section.error = f"{nvml.failure.title} ({nvml.failure.error})"
        return section


class NvmlSnapshot:
    """What NVML said: the system, each GPU, or why it could not start."""

    def __init__(self) -> None:
        self.failure: NvmlFailure | None = None
        self.system: dict[str, Any] = {}
        self.notes: dict[str, str] = {}
        self.gpus: list[GpuReading] = []


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


def processes_note(processes: list[dict[str, Any]]) -> str:
    if not processes:
        return "no processes"
    unmatched = sum(1 for p in processes if not p.get("matched"))
    if unmatched == 0:
        return f"{len(processes)} process{'es' if len(processes) != 1 else ''}"
    if unmatched == len(processes):
        return (
            f"NVML reports host PIDs; {unmatched} process{'es' if unmatched != 1 else ''} "
            "could not be matched in this container"
        )
    return (
        f"{unmatched} of {len(processes)} processes could not be matched in this container "
        "(NVML reports host PIDs)"
    )


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
    text = " ".join(cmdline)
    return text if len(text) <= COMMAND_CHARS else text[: COMMAND_CHARS - 1] + "…"


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


def gpu_expected(env: dict[str, str]) -> dict[str, Any]:
    """Whether the container's environment says there should be a GPU, and why.

    NVIDIA_VISIBLE_DEVICES (the NVIDIA container runtime's), CUDA_VISIBLE_DEVICES, and the
    CUDA image's own variables (CUDA_VERSION, NVIDIA_REQUIRE_CUDA, NVIDIA_DRIVER_CAPABILITIES)
    say yes; "void"/"none"/"-1" or an empty list say the GPUs were hidden on purpose.
    """
    because: list[str] = []
    hidden: list[str] = []
    nvd = env.get("NVIDIA_VISIBLE_DEVICES")
    if nvd is not None:
        (hidden if nvd.strip().lower() in _NO_DEVICES else because).append(
            f"NVIDIA_VISIBLE_DEVICES={nvd}"
        )
    cvd = env.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        (hidden if cvd.strip().lower() in _CUDA_HIDDEN else because).append(
            f"CUDA_VISIBLE_DEVICES={cvd}"
        )
    for name in sorted(env):
        if name in ("NVIDIA_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES"):
            continue
        if name == "CUDA_VERSION" or name.startswith("NVIDIA_"):
            because.append(f"{name}={env[name]}")
    return {"expected": bool(because) and not hidden, "because": because, "hidden_by": hidden}


def nvml_findings(nvml: NvmlSnapshot, expected: dict[str, Any]) -> list[Finding]:
    """No NVML, or no GPU: crit when the environment says there should be one."""
    want = expected["expected"]
    reasons = ", ".join(expected["because"][:3])
    if nvml.failure is not None:
        f = nvml.failure
        if want:
            return [
                Finding(
                    NAME,
                    "no-gpu",
                    "",
                    Status.CRIT,
                    f"No GPU visible: {f.title}",
                    f"The container's environment says there should be one ({reasons}). "
                    f"NVML said: {f.error}.",
                    f.hint,
                )
            ]
        return [Finding(NAME, "nvml-unavailable", "", Status.UNKNOWN, f.title, f.error, f.hint)]
    count = nvml.system.get("count")
    if count == 0 and want:
        return [
            Finding(
                NAME,
                "no-gpu",
                "",
                Status.CRIT,
                "No GPU visible: NVML works but lists no GPU",
                f"The container's environment says there should be one ({reasons}).",
                "The container was started without GPU devices: start it with --gpus all "
                "(or NVIDIA_VISIBLE_DEVICES=all under the NVIDIA runtime).",
            )
        ]
    return []


def gpu_findings(reading: GpuReading, cfg: GpuConfig) -> list[Finding]:
    """Lost, hot, throttled, memory nearly full, ECC trouble: for one GPU."""
    label = f"GPU {reading.index}"
    subject = f"gpu{reading.index}"
    if reading.error is not None:
        if reading.lost:
            return [_lost(reading.index, reading.error)]
        return [
            Finding(
                NAME,
                "gpu-unreadable",
                subject,
                Status.UNKNOWN,
                f"{label} could not be opened: {reading.error}",
                hint=f"Run nvidia-smi -i {reading.index} -q to see what the driver says.",
            )
        ]
    facts, figures = reading.facts, reading.figures
    findings: list[Finding] = []
    if reading.lost:
        findings.append(_lost(reading.index, "NVML answers GpuIsLost"))

    mask = reading.reasons_mask or 0
    thermal = mask & THERMAL_REASONS
    temp = figures.get("temperature_c")
    slowdown = facts.get("temperature_slowdown_c")
    hot = hot_finding(reading.index, temp, slowdown, cfg, throttling=bool(thermal))
    if hot is not None:
        findings.append(hot)
    elif thermal:
        findings.append(
            Finding(
                NAME,
                "thermal-throttling",
                subject,
                Status.WARN,
                f"{label} is throttled for temperature",
                f"Clock-event reasons: {', '.join(figures['clock_event_reasons'])}; "
                f"temperature {_num(temp, '°C')}.",
                "Check its cooling: fans, airflow, the room; the provider's host may be "
                "overheating (nvidia-smi -q -d PERFORMANCE,TEMPERATURE).",
            )
        )
    if mask & POWER_REASONS:
        findings.append(
            Finding(
                NAME,
                "power-throttling",
                subject,
                Status.WARN,
                f"{label} is throttled by its power limit",
                f"Drawing {_num(figures.get('power_draw_w'), 'W')} of a "
                f"{_num(facts.get('power_limit_w'), 'W')} limit; clock-event reasons: "
                f"{', '.join(figures['clock_event_reasons'])}.",
                "Normal under full load at the power limit; if the limit is lower than the "
                "board's default (nvidia-smi -q -d POWER), ask the provider why.",
            )
        )
    if mask & HW_SLOWDOWN and not thermal:
        findings.append(
            Finding(
                NAME,
                "hw-slowdown",
                subject,
                Status.WARN,
                f"{label} is in hardware slowdown",
                "The board halved its clocks (power brake or overheating).",
                "Check power delivery and cooling (nvidia-smi -q -d PERFORMANCE).",
            )
        )
    findings += memory_findings(reading.index, figures, facts, cfg)
    findings += ecc_findings(reading.index, facts)
    return findings


def hot_finding(
    index: int, temp: Any, slowdown: Any, cfg: GpuConfig, throttling: bool = False
) -> Finding | None:
    """Warn when the GPU is within the margin of its slowdown temperature."""
    if not isinstance(temp, (int, float)):
        return None
    if isinstance(slowdown, (int, float)) and slowdown > 0:
        if temp < slowdown - cfg.temperature_margin_c:
            return None
        limit = f"{slowdown - temp:g} °C below its slowdown temperature ({slowdown} °C)"
        if temp >= slowdown:
            limit = f"at or above its slowdown temperature ({slowdown} °C)"
    elif temp >= cfg.temperature_warn_c:
        limit = f"above gpu.temperature_warn_c ({cfg.temperature_warn_c:g} °C)"
    else:
        return None
    detail = f"{temp} °C, {limit}."
    if throttling:
        detail += " It is already throttling its clocks for temperature."
    return Finding(
        NAME,
        "hot",
        f"gpu{index}",
        Status.WARN,
        f"GPU {index} is hot: {temp} °C" + (" and throttling" if throttling else ""),
        detail,
        "Check its cooling: fans, airflow, the room; sustained heat slows the GPU and "
        "shortens its life (nvidia-smi -q -d TEMPERATURE).",
    )


def memory_findings(
    index: int, figures: dict[str, Any], facts: dict[str, Any], cfg: GpuConfig
) -> list[Finding]:
    used, total = figures.get("memory_used"), facts.get("memory_total")
    if not isinstance(used, int) or not isinstance(total, int) or total <= 0:
        return []
    percent = 100.0 * used / total
    if percent < cfg.memory_warn_percent:
        return []
    return [
        Finding(
            NAME,
            "memory-full",
            f"gpu{index}",
            Status.WARN,
            f"GPU {index} memory is {percent:.0f}% full",
            f"{used / 2**30:.1f} GiB of {total / 2**30:.1f} GiB in use "
            f"({figures.get('processes_note', 'processes unknown')}). The next allocation may "
            "fail with CUDA out of memory.",
            "Find what holds it (the processes listed in the gpu section, or nvidia-smi); "
            "stop what is not needed, or lower the batch size or resolution.",
        )
    ]


def ecc_findings(index: int, facts: dict[str, Any]) -> list[Finding]:
    """Uncorrected ECC errors since the last reset are crit; only in the GPU's past, warn."""
    findings = []
    label, subject = f"GPU {index}", f"gpu{index}"
    ecc = facts.get("ecc_uncorrected") or {}
    vol, agg = ecc.get("volatile"), ecc.get("aggregate")
    if isinstance(vol, int) and vol > 0:
        findings.append(
            Finding(
                NAME,
                "ecc-uncorrected",
                subject,
                Status.CRIT,
                f"{label} has {vol} uncorrected ECC error{'s' if vol != 1 else ''} since its "
                "last reset",
                f"{agg if isinstance(agg, int) else 'n/a'} over its lifetime. Results computed "
                "on it may be wrong, and the application that hit the error has crashed.",
                "Stop the work on it and reset it (nvidia-smi -r, or reboot); if errors "
                "return, ask the provider for another GPU.",
            )
        )
    elif isinstance(agg, int) and agg > 0:
        findings.append(
            Finding(
                NAME,
                "ecc-uncorrected-past",
                subject,
                Status.WARN,
                f"{label} has had {agg} uncorrected ECC error{'s' if agg != 1 else ''} in its "
                "lifetime",
                "None since its last reset.",
                "Watch it: new errors mean its memory is failing.",
            )
        )
    if facts.get("retired_pages_pending") is True:
        findings.append(
            Finding(
                NAME,
                "retirement-pending",
                subject,
                Status.CRIT,
                f"{label} has memory pages waiting to be retired",
                "Bad pages stay in use until the GPU is reset.",
                "Reset the GPU (nvidia-smi -r) or reboot the host at the next chance.",
            )
        )
    rows = facts.get("remapped_rows")
    if isinstance(rows, dict) and rows.get("failure"):
        findings.append(
            Finding(
                NAME,
                "remap-failed",
                subject,
                Status.CRIT,
                f"{label} could not remap a failing memory row",
                "Its spare rows for that bank are used up.",
                "The GPU needs replacing: ask the provider for another machine.",
            )
        )
    elif isinstance(rows, dict) and rows.get("pending"):
        findings.append(
            Finding(
                NAME,
                "remap-pending",
                subject,
                Status.CRIT,
                f"{label} has a memory row remapping pending",
                f"{rows.get('uncorrectable')} uncorrectable and {rows.get('correctable')} "
                "correctable rows remapped; the pending one takes effect at the next reset.",
                "Reset the GPU (nvidia-smi -r) or reboot the host at the next chance.",
            )
        )
    return findings


def _lost(index: int, why: str) -> Finding:
    return Finding(
        NAME,
        "gpu-lost",
        f"gpu{index}",
        Status.CRIT,
        f"GPU {index} is lost: it stopped answering",
        f"{why}. This is what Xid 79 (fallen off the bus) looks like from NVML.",
        "Reboot the host; if it recurs, check power, cooling and seating, or ask the provider "
        "for another machine.",
    )


def scan_xids(cfg: GpuConfig, ours: dict[str, int]) -> tuple[dict[str, Any], list[Finding]]:
    """Xid errors in the kernel log, grouped by code and GPU, explained; an unreadable log
    is data (the usual case in an unprivileged container), not a finding."""
    log = read_kernel_log(cfg.kernel_log, cfg.dmesg_timeout, cfg.kernel_log_lines)
    data: dict[str, Any] = {
        "scanned": log.error is None,
        "source": log.source,
        "records": log.scanned,
        "error": log.error,
    }
    if log.error is not None:
        data["hint"] = (
            "Reading the kernel log needs CAP_SYSLOG in a container; set [gpu] kernel_log to "
            "a readable copy (the host's kern.log mounted in) to scan it."
        )
        return data, []
    events = find_xids(log)
    groups: dict[tuple[int, str], list[XidEvent]] = {}
    for event in events:
        groups.setdefault((event.code, event.pci), []).append(event)
    codes = []
    findings = []
    for (code, pci), group in sorted(groups.items()):
        info = explain(code)
        gpu = ours.get(pci)
        last = group[-1]
        codes.append(
            {
                "code": code,
                "pci": pci,
                "gpu": gpu,
                "count": len(group),
                "first": group[0].time,
                "last": last.time,
                "meaning": info.meaning,
                "severity": info.severity,
                "action": info.action,
            }
        )
        if info.severity == "info":
            continue
        severity = Status.CRIT if info.severity == "crit" else Status.WARN
        where = f"GPU {gpu} ({pci})" if gpu is not None else f"PCI {pci}"
        note = ""
        if gpu is None and ours:
            # The kernel log is the host's: another tenant's GPU is not ours to fix.
            severity = Status.WARN
            note = " It is not one of this container's GPUs (the kernel log is the host's)."
        when = f", last at {last.time}" if last.time else ""
        who = f"; process {last.process or '?'} (pid {last.pid})" if last.pid is not None else ""
        findings.append(
            Finding(
                NAME,
                f"xid-{code}",
                pci,
                severity,
                f"Xid {code} on {where}: {info.meaning}",
                f"{len(group)} time{'s' if len(group) != 1 else ''} in {log.source}{when}{who}."
                + note,
                info.action,
                tuple(e.line for e in group[-MAX_EVIDENCE:]),
            )
        )
    data["count"] = len(events)
    data["codes"] = codes
    data["recent"] = [e.to_dict() for e in events[-RECENT_XIDS:]]
    return data, findings


def scan_service_logs(
    logs: LogsConfig, cfg: GpuConfig, window: int = 0
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """ "CUDA out of memory" and "CUDA error" lines in the logs the logs collector reads
    (from the same read of each, `window` lines, when the run shares one)."""
    found: list[dict[str, Any]] = []
    findings: list[Finding] = []
    # The files the logs collector reads: the same walk, so the two never disagree.
    for path in log_files(logs):
        tail = shared_tail(path, cfg.log_scan_lines, logs.max_line_bytes, window)
        if tail.error is not None or tail.binary:
            continue
        # Most logs never mention CUDA: one substring test spares two regexes per line.
        text = "\n".join(tail.lines).lower()
        if not any(word in text for word in _CUDA_WORDS):
            continue
        oom = [line for line in tail.lines if _OOM.search(line)]
        other = [line for line in tail.lines if not _OOM.search(line) and _CUDA_ERROR.search(line)]
        service = service_name(path)
        for kind, lines in (("out-of-memory", oom), ("cuda-error", other)):
            if not lines:
                continue
            found.append(
                {
                    "path": path,
                    "service": service,
                    "kind": kind,
                    "count": len(lines),
                    "lines": lines[-MAX_EVIDENCE:],
                }
            )
            findings.append(_log_finding(path, service, kind, lines, len(tail.lines)))
    return found, findings


def _log_finding(path: str, service: str, kind: str, lines: list[str], read: int) -> Finding:
    if kind == "out-of-memory":
        title = f"{service}: CUDA out of memory in its log"
        hint = (
            f"The GPU ran out of memory for {service}: see the GPU's memory and processes in the "
            "gpu section, stop what else holds GPU memory or lower the batch size, then "
            f"restart it (supervisorctl restart {service})."
        )
    else:
        title = f"{service}: CUDA error in its log"
        hint = (
            f"Read the lines around it (tail -n 100 {path}); if no GPU is visible or Xid "
            "errors are listed, fix those first."
        )
    return Finding(
        NAME,
        "cuda-oom" if kind == "out-of-memory" else "cuda-error",
        path,
        Status.WARN,
        title,
        f"{len(lines)} of the last {read} lines of {path}.",
        hint,
        tuple(lines[-MAX_EVIDENCE:]),
    )


_SUPERVISOR_AUTO = re.compile(r"-(?:stdout|stderr)---supervisor-\w+$")
_STREAM_SUFFIX = re.compile(r"[._-](?:err|out|error|stderr|stdout)$", re.IGNORECASE)


def service_name(path: str) -> str:
    """The service a log belongs to: visomaster for visomaster.err.log or
    visomaster-stderr---supervisor-x1y2.log."""
    name = os.path.basename(path)
    if name.endswith(".log"):
        name = name[: -len(".log")]
    name = _SUPERVISOR_AUTO.sub("", name)
    name = _STREAM_SUFFIX.sub("", name)
    return name or os.path.basename(path)


def _pci(reading: GpuReading) -> str | None:
    bus_id = reading.facts.get("pci_bus_id")
    return pci_key(bus_id) if isinstance(bus_id, str) and bus_id != NA else None


def _num(value: Any, unit: str) -> str:
    return f"{value:g} {unit}" if isinstance(value, (int, float)) else NA
