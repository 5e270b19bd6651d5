"""The GPUs: NVML facts and figures, Xid errors from the kernel log, CUDA errors in service logs.

NVML (pynvml) is imported only when this collector runs. When it cannot start, the section
names the failure (no library, no driver, a version mismatch...) with what to do, and the
rest of the section (the Xid scan, the service logs) still runs. gather.py reads; judge.py
holds the threshold logic, pure functions over plain readings, testable without a GPU.
"""

from __future__ import annotations

import time
from typing import ClassVar

from healthcheck.collectors.gpu import gather, judge
from healthcheck.collectors.gpu.gather import read_nvml
from healthcheck.collectors.gpu.judge import (
    NAME,
    gpu_expected,
    kernel_findings,
    processes_note,
    service_name,
    xid_findings,
)
from healthcheck.config import Config, GpuConfig
from healthcheck.model import RunContext, Section, as_context
from healthcheck.tracking import DriftSpec


class GpuCollector:
    """NVIDIA driver and GPUs through NVML; Xid errors; CUDA errors in the service logs."""

    name: ClassVar[str] = NAME
    description: ClassVar[str] = (
        "NVIDIA driver and GPUs (NVML): memory, use, temperature, power, clocks, throttling, "
        "ECC, processes; Xid errors; CUDA errors in service logs"
    )
    timeout: ClassVar[float | None] = None
    # The [collectors.gpu] table (first spelt [gpu], still read so).
    Options: ClassVar[type] = GpuConfig
    # `healthcheck diff` shows its changes, field by field, under a heading of their own.
    drift: ClassVar[DriftSpec] = DriftSpec(heading="GPU and driver", key="gpu", order=30)

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        readings = gather.gather(ctx.config, ctx.options, ctx.facts)
        data, volatile, findings = judge.assess(readings, ctx.options, now=time.time())
        section = Section.from_findings(self.name, data, findings, volatile)
        nvml = readings.nvml
        if nvml.failure is not None:
            section.error = f"{nvml.failure.title} ({nvml.failure.error})"
        return section


__all__ = [
    "NAME",
    "GpuCollector",
    "gpu_expected",
    "kernel_findings",
    "processes_note",
    "read_nvml",
    "service_name",
    "xid_findings",
]
