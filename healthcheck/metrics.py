"""Prometheus metrics from a report's data (the JSON report, schema healthcheck/report/v1).

Built from the report as written, never from a new collection, so that `/metrics`, the
node_exporter textfile and the report always tell the same story. `prometheus_client` (the
`serve` extra) is imported only here, and this module only when metrics are asked for.
Every label value passes through the redactor.

Severities and statuses are numbers in the order the report ranks them:
0 ok, 1 warn, 2 unknown, 3 crit (a check that could not look ranks above a warning).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from healthcheck.model import Status
from healthcheck.nvml import CLOCK_EVENT_REASONS
from healthcheck.redact import Redactor
from healthcheck.timestamps import parse_utc_stamp

PREFIX = "healthcheck"
SEVERITIES = ("crit", "warn", "unknown", "ok")
_STATUS_RANK = {s.value: s.rank for s in Status}
# "0 ok, 1 warn, 2 unknown, 3 crit": said in each status metric's help, from the ranks.
_STATUS_SCALE = ", ".join(f"{s.rank} {s.value}" for s in sorted(Status, key=lambda s: s.rank))


class MetricsUnavailable(Exception):
    """prometheus_client is not installed (pip install 'healthcheck[serve]')."""


def _slug(constant: str) -> str:
    """nvmlClocksEventReasonSwPowerCap -> sw_power_cap."""
    bare = re.sub(r"^nvmlClocks(?:Event|Throttle)Reason", "", constant)
    return re.sub(r"(?<!^)(?=[A-Z])", "_", bare).lower()


# NVML's words for each clock-event reason (as the gpu collector writes them) -> a label value.
REASON_LABELS: dict[str, str] = {words: _slug(name) for name, _, words in CLOCK_EVENT_REASONS}


def _client() -> Any:
    try:
        import prometheus_client
        import prometheus_client.core
    except ImportError:
        raise MetricsUnavailable(
            "Prometheus metrics need prometheus_client: pip install 'healthcheck[serve]'"
        ) from None
    return prometheus_client


def _number(value: Any) -> float | None:
    """A reading as a float; None for "n/a", missing, or anything else not a number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _timestamp(iso: Any) -> float | None:
    try:
        return parse_utc_stamp(iso).timestamp()
    except (TypeError, ValueError):
        return None


class _Families:
    """Gauge families in the order they are first declared; samples added by label."""

    def __init__(self, client: Any, redactor: Redactor) -> None:
        self._gauge = client.core.GaugeMetricFamily
        self._redactor = redactor
        self._families: dict[str, Any] = {}

    def add(self, metric: str, doc: str, value: Any, /, **labels: Any) -> None:
        number = _number(value)
        if number is None:
            return  # a field NVML could not read is absent, not zero
        full = f"{PREFIX}_{metric}"
        family = self._families.get(full)
        if family is None:
            family = self._gauge(full, doc, labels=list(labels))
            self._families[full] = family
        family.add_metric([self._redactor.text(str(v)) for v in labels.values()], number)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._families.values())


def _section(data: dict[str, Any], name: str) -> dict[str, Any] | None:
    section = data.get("sections", {}).get(name)
    return section if isinstance(section, dict) else None


def families(data: dict[str, Any], redactor: Redactor, client: Any | None = None) -> _Families:
    """Every metric of the report `data`, as prometheus_client metric families."""
    out = _Families(client or _client(), redactor)
    out.add(
        "report_info",
        "The last report: its host and the healthcheck version that wrote it (always 1).",
        1,
        host=data.get("host", ""),
        generator=data.get("generator", ""),
    )
    out.add(
        "status",
        f"Overall status of the last report: {_STATUS_SCALE}.",
        _STATUS_RANK.get(data.get("status", "")),
    )
    counts = data.get("counts", {})
    for severity in SEVERITIES:
        out.add(
            "findings",
            "Open findings in the last report, by severity.",
            counts.get(severity, 0),
            severity=severity,
        )
    for finding in data.get("findings", []):
        out.add(
            "finding",
            "One series per open finding (always 1); id is stable across runs.",
            1,
            id=finding.get("id", ""),
            severity=finding.get("severity", ""),
        )
    sections = data.get("sections", {})
    out.add(
        "last_run_timestamp_seconds",
        "When the last report was generated (Unix time).",
        _timestamp(data.get("generated_at")),
    )
    durations = [s.get("duration_ms", 0) for s in sections.values() if isinstance(s, dict)]
    out.add(
        "last_run_duration_seconds",
        "How long the last run's collection took: its slowest collector (they run in parallel).",
        max(durations, default=0) / 1000,
    )
    for name, section in sections.items():
        out.add(
            "collector_duration_seconds",
            "How long each collector took in the last run.",
            section.get("duration_ms", 0) / 1000,
            collector=name,
        )
        out.add(
            "collector_status",
            f"Each collector's section status: {_STATUS_SCALE}.",
            _STATUS_RANK.get(section.get("status", "")),
            collector=name,
        )
    _supervisor(out, _section(data, "supervisor"))
    _ports(out, _section(data, "ports"))
    _display(out, _section(data, "display"))
    _gpu(out, _section(data, "gpu"))
    return out


def _supervisor(out: _Families, section: dict[str, Any] | None) -> None:
    if section is None:
        return
    data = section.get("data", {})
    out.add(
        "supervisor_up",
        "1 when supervisord answered (over XML-RPC, or supervisorctl as fallback), else 0.",
        data.get("via") is not None,
    )
    for program in data.get("programs", []):
        out.add(
            "program_up",
            "1 when the supervisord program is RUNNING, else 0.",
            program.get("state") == "RUNNING",
            program=program.get("fullname") or program.get("name", ""),
        )


def _ports(out: _Families, section: dict[str, Any] | None) -> None:
    if section is None:
        return
    for port in section.get("data", {}).get("ports", []):
        out.add(
            "port_listening",
            "1 when something listens on the expected port, else 0.",
            bool(port.get("listening")),
            service=port.get("service", ""),
            port=port.get("port", ""),
        )


def _display(out: _Families, section: dict[str, Any] | None) -> None:
    if section is None or "connection" not in section.get("data", {}):
        return
    data = section["data"]
    out.add(
        "x_display_up",
        "1 when an X11 connection to the display succeeded, else 0.",
        bool(data["connection"].get("ok")),
        display=data.get("display", ""),
    )
    wm = data.get("window_manager")
    if isinstance(wm, dict):
        out.add(
            "x_window_manager_up",
            "1 when the expected window manager runs on the display, else 0.",
            bool(wm.get("running")),
            display=data.get("display", ""),
            window_manager=wm.get("name", ""),
        )


def _gpu(out: _Families, section: dict[str, Any] | None) -> None:
    if section is None:
        return
    data, volatile = section.get("data", {}), section.get("volatile", {})
    nvml = data.get("nvml")
    if isinstance(nvml, dict):
        out.add(
            "gpu_nvml_up",
            "1 when NVML answered, else 0 (no driver, no library, no GPU runtime).",
            nvml.get("kind") == "ok",
        )
    figures = {g.get("index"): g for g in volatile.get("gpus", []) if isinstance(g, dict)}
    for facts in data.get("gpus", []):
        index = facts.get("index")
        gpu = str(index)
        now = figures.get(index, {})
        out.add(
            "gpu_info",
            "Each GPU NVML lists (always 1): name, UUID and PCI bus id.",
            1,
            gpu=gpu,
            name=facts.get("name", ""),
            uuid=facts.get("uuid", ""),
            pci_bus_id=facts.get("pci_bus_id", ""),
        )
        _gpu_figures(out, gpu, facts, now)
    xid = data.get("xid")
    if isinstance(xid, dict) and "scanned" in xid:
        out.add(
            "gpu_xid_scanned",
            "1 when the kernel log could be scanned for Xid errors, else 0.",
            bool(xid.get("scanned")),
        )
        for code in xid.get("codes", []):
            out.add(
                "gpu_xid_events",
                "Xid errors in the kernel log read by the last run, by code and PCI device.",
                code.get("count"),
                code=code.get("code", ""),
                pci=code.get("pci", ""),
            )


def _gpu_figures(out: _Families, gpu: str, facts: dict[str, Any], now: dict[str, Any]) -> None:
    out.add("gpu_temperature_celsius", "GPU core temperature.", now.get("temperature_c"), gpu=gpu)
    out.add(
        "gpu_slowdown_temperature_celsius",
        "The temperature at which the GPU slows itself down.",
        facts.get("temperature_slowdown_c"),
        gpu=gpu,
    )
    out.add("gpu_memory_used_bytes", "GPU memory in use.", now.get("memory_used"), gpu=gpu)
    out.add("gpu_memory_total_bytes", "GPU memory in all.", facts.get("memory_total"), gpu=gpu)
    util = now.get("utilization_percent")
    if isinstance(util, dict) and _number(util.get("gpu")) is not None:
        out.add("gpu_utilization_ratio", "GPU busy time (0-1).", float(util["gpu"]) / 100, gpu=gpu)
    out.add("gpu_power_draw_watts", "GPU power draw.", now.get("power_draw_w"), gpu=gpu)
    out.add("gpu_power_limit_watts", "GPU power limit.", facts.get("power_limit_w"), gpu=gpu)
    reasons = now.get("clock_event_reasons")
    if isinstance(reasons, list):
        active = {REASON_LABELS.get(r, "other") for r in reasons}
        for label in [*REASON_LABELS.values(), "other"]:
            out.add(
                "gpu_clock_event_reason",
                "1 for each clock-event (throttle) reason NVML reports now, else 0; "
                "sw_thermal_slowdown, hw_thermal_slowdown, sw_power_cap, hw_slowdown and "
                "hw_power_brake_slowdown mean throttling.",
                label in active,
                gpu=gpu,
                reason=label,
            )
    ecc = facts.get("ecc_uncorrected")
    if isinstance(ecc, dict):
        for counter in ("volatile", "aggregate"):
            out.add(
                "gpu_ecc_uncorrected_errors",
                "Uncorrected ECC errors: since the last driver reload (volatile) or ever.",
                ecc.get(counter),
                gpu=gpu,
                counter=counter,
            )
    out.add(
        "gpu_retired_pages_pending",
        "1 when retired memory pages wait for a GPU reset, else 0.",
        facts.get("retired_pages_pending"),
        gpu=gpu,
    )
    remapped = facts.get("remapped_rows")
    if isinstance(remapped, dict):
        for kind in ("correctable", "uncorrectable"):
            out.add(
                "gpu_remapped_rows",
                "Memory rows remapped, by the kind of error that caused it.",
                remapped.get(kind),
                gpu=gpu,
                kind=kind,
            )
        out.add(
            "gpu_row_remap_pending",
            "1 when a row remapping waits for a GPU reset, else 0.",
            remapped.get("pending"),
            gpu=gpu,
        )
        out.add(
            "gpu_row_remap_failed",
            "1 when a row remapping failed (the GPU needs service), else 0.",
            remapped.get("failure"),
            gpu=gpu,
        )


def exposition(data: dict[str, Any], redactor: Redactor) -> bytes:
    """The Prometheus text exposition of the report `data`, redacted."""
    client = _client()
    registry = client.CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(families(data, redactor, client)))
    text = client.generate_latest(registry).decode("utf-8")
    return redactor.text(text).encode("utf-8")


class _Snapshot:
    """A registry collector that yields fixed families (the report does not change)."""

    def __init__(self, metric_families: _Families) -> None:
        self._families = list(metric_families)

    def collect(self) -> Iterator[Any]:
        return iter(self._families)


def write_textfile(path: Path, data: dict[str, Any], redactor: Redactor) -> None:
    """Write the metrics as a node_exporter textfile: to a temporary file beside `path`,
    then renamed over it, so the collector never reads half a file (raises WriteError)."""
    from healthcheck.output import write_files_atomically

    write_files_atomically([(path, exposition(data, redactor))])
