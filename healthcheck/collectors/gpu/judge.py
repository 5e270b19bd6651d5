"""How the gpu collector judges what it read: pure functions from NVML readings, kernel log
lines and service log tails to findings (thresholds, Xid codes, driver messages, CUDA
errors), testable without a GPU. No I/O and no clock here: the caller passes `now`.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from typing import Any

from healthcheck.catalogue import catalogue, finding
from healthcheck.config import GpuConfig
from healthcheck.lazyre import lazy
from healthcheck.logtail import Tail
from healthcheck.model import Finding, Status
from healthcheck.nvml import (
    HW_SLOWDOWN,
    NA,
    POWER_REASONS,
    THERMAL_REASONS,
    GpuReading,
    NvmlFailure,
)
from healthcheck.record import Record
from healthcheck.xid import KernelLog, XidEvent, explain, find_xids, parse_xid, pci_key

NAME = "gpu"
MAX_EVIDENCE = 5
RECENT_XIDS = 10


# Values that hide every GPU on purpose: the NVIDIA container runtime's "void"/"none", and
# CUDA's empty list or -1.
_NO_DEVICES = {"", "void", "none"}
_CUDA_HIDDEN = {"", "-1", "none", "nodevfiles"}

_OOM = lazy(
    r"CUDA out of memory|OutOfMemoryError|CUDA_ERROR_OUT_OF_MEMORY|cudaErrorMemoryAllocation"
    r"|CUDA error: out of memory",
    re.IGNORECASE,
)
# Every _OOM and _CUDA_ERROR match contains one of these (lower-cased).
_CUDA_WORDS = ("cuda", "cublas", "cudnn", "outofmemory")
_CUDA_ERROR = lazy(
    r"\bCUDA error\b|\bCUDA_ERROR_[A-Z_]+|\bcudaError[A-Z]\w*|CUBLAS_STATUS_(?!SUCCESS)[A-Z_]+"
    r"|CUDNN_STATUS_(?!SUCCESS)[A-Z_]+|CUDA driver initialization failed"
    r"|no CUDA-capable device is detected",
)


class NvmlSnapshot:
    """What NVML said: the system, each GPU, or why it could not start."""

    def __init__(self) -> None:
        self.failure: NvmlFailure | None = None
        self.system: dict[str, Any] = {}
        self.notes: dict[str, str] = {}
        self.gpus: list[GpuReading] = []


class GpuReadings(Record):
    """What gather read: the environment that says whether a GPU is expected, NVML's
    snapshot, the kernel log (None when the Xid scan is off) and the service logs' tails."""

    __slots__ = ("env_source", "env_variables", "kernel_log", "nvml", "service_logs")

    def __init__(
        self,
        env_variables: dict[str, str],
        env_source: str | None,
        nvml: NvmlSnapshot,
        kernel_log: KernelLog | None,
        service_logs: list[Tail],
    ) -> None:
        self.env_variables = env_variables
        self.env_source = env_source
        self.nvml = nvml
        self.kernel_log = kernel_log
        self.service_logs = service_logs


def assess(
    readings: GpuReadings, cfg: GpuConfig, now: float
) -> tuple[dict[str, Any], dict[str, Any], list[Finding]]:
    """The section's data, its volatile figures and its findings, from what gather read."""
    expected = gpu_expected(readings.env_variables)
    expected["env_source"] = readings.env_source

    nvml = readings.nvml
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
    if readings.kernel_log is not None:
        xid_data, xid_findings = scan_xids(readings.kernel_log, ours, now)
        # The kernel logs all the time: how much was read moves, what was found does not.
        volatile["xid_records_read"] = xid_data.pop("records")
        data["xid"] = xid_data
        findings += xid_findings
    else:
        data["xid"] = {"scanned": False}

    log_data, log_findings = scan_service_logs(readings.service_logs)
    data["cuda_log_errors"] = log_data
    findings += log_findings
    return data, volatile, findings


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
                finding(
                    "gpu.no-gpu", "", failure=f.title, reasons=reasons, error=f.error, hint=f.hint
                )
            ]
        return [finding("gpu.nvml-unavailable", "", failure=f.title, error=f.error, hint=f.hint)]
    count = nvml.system.get("count")
    if count == 0 and want:
        listed = finding("gpu.no-gpu-listed", "", reasons=reasons)
        # One rule name for "no GPU", however it was found out.
        return [listed._replace(rule="no-gpu")]
    return []


def gpu_findings(reading: GpuReading, cfg: GpuConfig) -> list[Finding]:
    """Lost, hot, throttled, memory nearly full, ECC trouble: for one GPU."""
    label = f"GPU {reading.index}"
    subject = f"gpu{reading.index}"
    if reading.error is not None:
        if reading.lost:
            return [_lost(reading.index, reading.error)]
        return [
            finding(
                "gpu.gpu-unreadable", subject, label=label, error=reading.error, index=reading.index
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
            finding(
                "gpu.thermal-throttling",
                subject,
                label=label,
                reasons=", ".join(figures["clock_event_reasons"]),
                temperature=_num(temp, "°C"),
            )
        )
    if mask & POWER_REASONS:
        findings.append(
            finding(
                "gpu.power-throttling",
                subject,
                label=label,
                draw=_num(figures.get("power_draw_w"), "W"),
                limit=_num(facts.get("power_limit_w"), "W"),
                reasons=", ".join(figures["clock_event_reasons"]),
            )
        )
    if mask & HW_SLOWDOWN and not thermal:
        findings.append(finding("gpu.hw-slowdown", subject, label=label))
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
    return finding(
        "gpu.hot",
        f"gpu{index}",
        index=index,
        temperature=temp,
        limit=limit,
        throttling=" and throttling" if throttling else "",
        already=" It is already throttling its clocks for temperature." if throttling else "",
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
        finding(
            "gpu.memory-full",
            f"gpu{index}",
            index=index,
            percent=f"{percent:.0f}",
            used=f"{used / 2**30:.1f}",
            total=f"{total / 2**30:.1f}",
            processes=figures.get("processes_note", "processes unknown"),
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
            finding(
                "gpu.ecc-uncorrected",
                subject,
                label=label,
                count=vol,
                plural="s" if vol != 1 else "",
                lifetime=agg if isinstance(agg, int) else "n/a",
            )
        )
    elif isinstance(agg, int) and agg > 0:
        findings.append(
            finding(
                "gpu.ecc-uncorrected-past",
                subject,
                label=label,
                count=agg,
                plural="s" if agg != 1 else "",
            )
        )
    if facts.get("retired_pages_pending") is True:
        findings.append(finding("gpu.retirement-pending", subject, label=label))
    rows = facts.get("remapped_rows")
    if isinstance(rows, dict) and rows.get("failure"):
        findings.append(finding("gpu.remap-failed", subject, label=label))
    elif isinstance(rows, dict) and rows.get("pending"):
        findings.append(
            finding(
                "gpu.remap-pending",
                subject,
                label=label,
                uncorrectable=rows.get("uncorrectable"),
                correctable=rows.get("correctable"),
            )
        )
    return findings


def _lost(index: int, why: str) -> Finding:
    return finding("gpu.gpu-lost", f"gpu{index}", index=index, why=why)


def scan_xids(
    log: KernelLog, ours: dict[str, int], now: float
) -> tuple[dict[str, Any], list[Finding]]:
    """Xid errors in the kernel log, grouped by code and GPU, explained; an unreadable log
    is data (the usual case in an unprivileged container), not a finding."""
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
    codes, findings = xid_findings(events, ours, str(log.source))
    findings += kernel_findings(
        log.lines, str(log.source), {c["pci"] for c in codes if c["code"] == 79}, now=now
    )
    data["count"] = len(events)
    data["codes"] = codes
    data["recent"] = [e.to_dict() for e in events[-RECENT_XIDS:]]
    return data, findings


def xid_findings(
    events: list[XidEvent], ours: dict[str, int], source: str
) -> tuple[list[dict[str, Any]], list[Finding]]:
    """Xid events grouped by code and GPU: a summary row each, and a finding unless the
    catalogue calls the code informational."""
    groups: dict[tuple[int, str], list[XidEvent]] = {}
    for event in events:
        groups.setdefault((event.code, event.pci), []).append(event)
    codes = []
    findings = []
    xids = catalogue().xids() if groups else {}
    for (code, pci), group in sorted(groups.items()):
        fatal_line = next((e.line for e in group if "fatal" in e.line.lower()), "")
        info = explain(code, fatal_line)
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
        note = ""
        if gpu is None and ours:
            # The kernel log is the host's: another tenant's GPU is not ours to fix.
            severity = Status.WARN
            note = " It is not one of this container's GPUs (the kernel log is the host's)."
        entry = xids.get(code) or catalogue().by_id(
            "gpu.xid-unknown-fatal" if info.severity == "crit" else "gpu.xid-unknown"
        )
        title, detail, fix = entry.render(
            {
                "code": code,
                "where": f"GPU {gpu} ({pci})" if gpu is not None else f"PCI {pci}",
                "meaning": info.meaning,
                "count": f"{len(group)} time{'s' if len(group) != 1 else ''}",
                "source": source,
                "when": f", last at {last.time}" if last.time else "",
                "who": f"; process {last.process or '?'} (pid {last.pid})"
                if last.pid is not None
                else "",
                "note": note,
            }
        )
        evidence = tuple(e.line for e in group[-MAX_EVIDENCE:])
        findings.append(Finding(NAME, f"xid-{code}", pci, severity, title, detail, fix, evidence))
    return codes, findings


def kernel_findings(
    lines: list[tuple[str | None, str]],
    source: str,
    fallen_off: frozenset[str] | set[str] = frozenset(),
    *,
    now: float,
) -> list[Finding]:
    """The driver's messages without an Xid code (fallen off the bus, RmInitAdapter failed,
    a reset required): one finding per catalogue entry and GPU. `fallen_off`: the GPUs an
    Xid 79 already reports fallen off the bus (one fault, one finding); `now`: the clock, for
    the catalogue entries that count only recent lines."""
    findings: list[Finding] = []
    if not lines:
        return findings
    for entry in catalogue().of_kind("kernel"):
        groups: dict[str, list[tuple[str | None, str, dict[str, str]]]] = {}
        for when, text in lines:
            if parse_xid(text) is not None:
                continue  # an Xid line is the Xid catalogue's to explain
            if entry.recent_hours is not None and _older(when, now, entry.recent_hours):
                continue
            for pattern in entry.patterns:
                found = pattern.search(text)
                if found:
                    fields = {k: v for k, v in found.groupdict().items() if v}
                    for extra in entry.context:
                        more = extra.search(text)
                        if more:
                            for key, value in more.groupdict().items():
                                if value:
                                    fields.setdefault(key, value)
                    raw_pci = fields.get("pci", "")
                    fields["pci"] = raw_pci or "unknown GPU"
                    groups.setdefault(pci_key(raw_pci) or "", []).append((when, text, fields))
                    break
        for pci, group in sorted(groups.items()):
            if entry.rule == "fallen-off-bus" and pci in fallen_off:
                continue
            when, _, fields = group[-1]
            title, detail, fix = entry.render(fields)
            last = f", last at {when}" if when else ""
            count = f"{len(group)} time{'s' if len(group) != 1 else ''} in {source}{last}."
            evidence = tuple(text for _, text, _ in group[-MAX_EVIDENCE:])
            findings.append(
                Finding(
                    entry.collector,
                    entry.rule,
                    pci,
                    entry.status,
                    title,
                    f"{detail} {count}".strip(),
                    fix,
                    evidence,
                )
            )
    return findings


def _older(when: str | None, now: float, hours: float) -> bool:
    """Whether a kernel line's ISO time (kmsg, dmesg) is more than `hours` old; a line
    without one (a syslog file's own stamp) is not judged."""
    if not when or "T" not in when:
        return False
    try:
        stamp = datetime.fromisoformat(when.replace("Z", "+00:00"))
    except ValueError:
        return False
    return now - stamp.timestamp() > hours * 3600


def scan_service_logs(tails: list[Tail]) -> tuple[list[dict[str, Any]], list[Finding]]:
    """ "CUDA out of memory" and "CUDA error" lines in the tails of the logs the logs
    collector reads (gather.service_log_tails)."""
    found: list[dict[str, Any]] = []
    findings: list[Finding] = []
    for tail in tails:
        path = tail.path
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
    return finding(
        "gpu.cuda-oom" if kind == "out-of-memory" else "gpu.cuda-error",
        path,
        tuple(lines[-MAX_EVIDENCE:]),
        service=service,
        count=len(lines),
        read=read,
        path=path,
    )


_SUPERVISOR_AUTO = lazy(r"-(?:stdout|stderr)---supervisor-\w+$")
_STREAM_SUFFIX = lazy(r"[._-](?:err|out|error|stderr|stdout)$", re.IGNORECASE)


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
