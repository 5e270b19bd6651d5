"""A thin layer over NVML (the `pynvml` module of nvidia-ml-py).

Two promises: every per-GPU field is read on its own and fails on its own to "n/a" (many
boards answer NotSupported for fans, ECC or encoder use, and that is normal), and a failure to
start NVML at all is named, with what to do about it. The caller passes the module in, so the
import (and its cost) happens only when the gpu collector runs, and tests can hand in a
stand-in.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from healthcheck.record import Record

NA = "n/a"

# Clock-event ("throttle") reason bits, as NVML defines them (nvml.h; the constant names are
# pynvml's). The values are ABI: they never change meaning.
CLOCK_EVENT_REASONS: tuple[tuple[str, int, str], ...] = (
    ("nvmlClocksEventReasonGpuIdle", 0x1, "idle"),
    ("nvmlClocksEventReasonApplicationsClocksSetting", 0x2, "applications clocks setting"),
    ("nvmlClocksEventReasonSwPowerCap", 0x4, "power cap"),
    ("nvmlClocksEventReasonHwSlowdown", 0x8, "hardware slowdown"),
    ("nvmlClocksEventReasonSyncBoost", 0x10, "sync boost"),
    ("nvmlClocksEventReasonSwThermalSlowdown", 0x20, "thermal slowdown (software)"),
    ("nvmlClocksEventReasonHwThermalSlowdown", 0x40, "thermal slowdown (hardware)"),
    ("nvmlClocksEventReasonHwPowerBrakeSlowdown", 0x80, "power brake (hardware)"),
    ("nvmlClocksEventReasonDisplayClockSetting", 0x100, "display clock setting"),
    ("nvmlClocksThrottleReasonBoardLimit", 0x200, "board limit"),
    ("nvmlClocksThrottleReasonReliability", 0x400, "reliability"),
)
THERMAL_REASONS = 0x20 | 0x40
POWER_REASONS = 0x4 | 0x80
HW_SLOWDOWN = 0x8

COMPUTE_MODES = {0: "default", 1: "exclusive thread", 2: "prohibited", 3: "exclusive process"}
PSTATE_UNKNOWN = 32


class NvmlFailure(NamedTuple):
    """Why NVML could not be used at all, named for an operator."""

    kind: str  # pynvml-missing, library-not-found, driver-not-loaded, version-mismatch, ...
    title: str
    error: str  # what the library said
    hint: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "title": self.title, "error": self.error, "hint": self.hint}


# NVML return codes (nvml.h) that name an initialisation failure; matched by value so that
# any pynvml release (or a stand-in) maps the same way.
_FAILURES: dict[int, tuple[str, str, str]] = {
    12: (
        "library-not-found",
        "NVML library not found",
        "libnvidia-ml.so.1 is not in this container, so it has no NVIDIA driver libraries: "
        "start the container with the NVIDIA runtime (docker run --gpus all, or "
        "--runtime=nvidia with NVIDIA_VISIBLE_DEVICES=all); on Vast.ai, rent a GPU offer.",
    ),
    9: (
        "driver-not-loaded",
        "NVIDIA driver not loaded",
        "The host's nvidia kernel module is not loaded: on the host, run nvidia-smi and "
        "load (modprobe nvidia) or reinstall the driver, then restart the container.",
    ),
    18: (
        "version-mismatch",
        "NVIDIA driver/library version mismatch",
        "The NVML library does not match the loaded kernel driver, usually after a driver "
        "upgrade without a reboot: reboot the host (or reinstall the driver), then restart "
        "the container so the runtime mounts the matching libraries.",
    ),
    4: (
        "no-permission",
        "No permission to use the GPU",
        "This user cannot open /dev/nvidia*: run as root or in the device's group, and check "
        "that the container was given the GPU devices.",
    ),
    15: (
        "gpu-lost",
        "A GPU is lost (it stopped answering)",
        "The GPU has fallen off the bus (see Xid 79 in the kernel log): reboot the host; if "
        "it recurs, check power, cooling and seating, or ask the provider for another machine.",
    ),
}
_NOT_SUPPORTED = 3
_NO_PERMISSION = 4
_FUNCTION_NOT_FOUND = 13
_GPU_IS_LOST = 15


def import_pynvml() -> tuple[ModuleType | None, NvmlFailure | None]:
    """The pynvml module, or why it cannot be imported."""
    try:
        return importlib.import_module("pynvml"), None
    except ImportError as exc:
        return None, NvmlFailure(
            "pynvml-missing",
            "pynvml (nvidia-ml-py) is not installed",
            str(exc),
            "Install it into healthcheck's Python: pip install nvidia-ml-py",
        )


# What nvmlInit raises where libnvidia-ml.so.1 cannot be loaded: its code and pynvml's words.
LIBRARY_NOT_FOUND = 12
LIBRARY_NOT_FOUND_TEXT = "NVML Shared Library Not Found"
_LIBRARY = "libnvidia-ml.so.1"
# Where a container's NVIDIA runtime (or a driver install) puts the library, besides the
# dynamic linker's cache and LD_LIBRARY_PATH.
_LIBRARY_DIRS = (
    "/lib",
    "/lib64",
    "/usr/lib",
    "/usr/lib64",
    "/usr/local/lib",
    "/usr/local/nvidia/lib",
    "/usr/local/nvidia/lib64",
    "/usr/lib/wsl/lib",
)


def library_absent() -> bool:
    """Whether libnvidia-ml.so.1 is surely not loadable here, so that NVML would only say
    "library not found": then pynvml (15-40 ms to import) need not be imported to hear it.

    Surely means: pynvml is installed and not yet imported (a stand-in or an earlier import
    always goes its own way), and the library is in none of the dynamic linker's cache,
    LD_LIBRARY_PATH and the usual library folders. In any doubt, False.
    """
    if sys.platform != "linux" or "pynvml" in sys.modules:
        return False
    try:
        if _LIBRARY.encode() in Path("/etc/ld.so.cache").read_bytes():
            return False
        if importlib.util.find_spec("pynvml") is None:
            return False  # not installed: import_pynvml says so
    except (OSError, ValueError, ImportError):
        return False
    folders = [d for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    folders += _LIBRARY_DIRS
    folders += glob.glob("/lib/*-linux-gnu") + glob.glob("/usr/lib/*-linux-gnu")
    return not any(os.path.exists(os.path.join(d, _LIBRARY)) for d in folders)


def library_not_found() -> NvmlFailure:
    """The failure nvmlInit reports when libnvidia-ml.so.1 cannot be loaded."""
    kind, title, hint = _FAILURES[LIBRARY_NOT_FOUND]
    return NvmlFailure(kind, title, LIBRARY_NOT_FOUND_TEXT, hint)


def start(nv: ModuleType) -> NvmlFailure | None:
    """nvmlInit; None when NVML is up, else the named failure."""
    try:
        nv.nvmlInit()
    except Exception as exc:  # NVMLError subclasses, or OSError from a broken library
        return failure(exc)
    return None


def stop(nv: ModuleType) -> None:
    # Nothing to do about a failed shutdown; the process exits soon.
    with contextlib.suppress(Exception):
        nv.nvmlShutdown()


def failure(exc: BaseException) -> NvmlFailure:
    """An exception from nvmlInit, named."""
    code = getattr(exc, "value", None)
    text = _text(exc)
    if isinstance(code, int) and code in _FAILURES:
        kind, title, hint = _FAILURES[code]
        return NvmlFailure(kind, title, text, hint)
    return NvmlFailure(
        "nvml-error",
        f"NVML could not start: {text}",
        text,
        "Run nvidia-smi in the container: it reports the same failure with more detail.",
    )


def _text(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # pynvml's __str__ calls into the library, which may be the problem
        text = ""
    return text or type(exc).__name__


class Fields:
    """Reads fields one NVML call at a time: a failing call is that field's "n/a".

    NotSupported is normal and leaves no note; any other failure is noted by field, so the
    report can say "n/a (no permission)" instead of hiding why. A GpuIsLost anywhere marks the
    GPU lost.
    """

    def __init__(self, nv: ModuleType) -> None:
        self.nv = nv
        self.notes: dict[str, str] = {}
        self.lost = False

    def get(self, key: str, names: str | tuple[str, ...], *args: Any) -> Any:
        """The first of `names` that this pynvml and this driver have, called with `args`.

        A later name is tried when an earlier one is missing from the module or the driver
        (FunctionNotFound, or pynvml's NVMLLibraryMismatchError for an unversioned call).
        """
        last: BaseException | None = None
        for name in (names,) if isinstance(names, str) else names:
            fn = getattr(self.nv, name, None)
            if fn is None:
                continue
            try:
                return fn(*args)
            except Exception as exc:
                last = exc
                if getattr(exc, "value", None) == _FUNCTION_NOT_FOUND or (
                    type(exc).__name__ == "NVMLLibraryMismatchError"
                ):
                    continue
                break
        self._note(key, last)
        return NA

    def _note(self, key: str, exc: BaseException | None) -> None:
        code = getattr(exc, "value", None)
        if exc is None or code == _FUNCTION_NOT_FOUND:
            self.notes[key] = "not available in this driver"
        elif code == _NOT_SUPPORTED:
            return
        elif code == _GPU_IS_LOST:
            self.lost = True
            self.notes[key] = "GPU is lost"
        elif code == _NO_PERMISSION:
            self.notes[key] = "no permission"
        else:
            self.notes[key] = _text(exc)


def text(value: Any) -> Any:
    """pynvml returns str from most calls but bytes from struct fields (and older releases)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace").rstrip("\0")
    return value


def system_info(nv: ModuleType) -> tuple[dict[str, Any], dict[str, str]]:
    """Driver, CUDA driver and NVML versions and the GPU count; with notes on failures."""
    f = Fields(nv)
    cuda = f.get(
        "cuda_driver_version",
        ("nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"),
    )
    count = f.get("count", "nvmlDeviceGetCount")
    info = {
        "driver_version": text(f.get("driver_version", "nvmlSystemGetDriverVersion")),
        # 12040 is CUDA 12.4: the newest CUDA runtime this driver supports.
        "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}"
        if isinstance(cuda, int)
        else NA,
        "nvml_version": text(f.get("nvml_version", "nvmlSystemGetNVMLVersion")),
        "count": count if isinstance(count, int) else NA,
    }
    return info, f.notes


class GpuReading(Record):
    """One GPU: facts that stay put, figures that move, processes, and notes on failures."""

    __slots__ = ("error", "facts", "figures", "index", "lost", "notes", "processes", "reasons_mask")

    def __init__(
        self,
        index: int,
        facts: dict[str, Any] | None = None,
        figures: dict[str, Any] | None = None,
        processes: list[dict[str, Any]] | None = None,
        reasons_mask: int | None = None,
        notes: dict[str, str] | None = None,
        lost: bool = False,
        error: str | None = None,  # the GPU could not even be opened
    ) -> None:
        self.index = index
        self.facts = {} if facts is None else facts
        self.figures = {} if figures is None else figures
        self.processes = [] if processes is None else processes
        self.reasons_mask = reasons_mask
        self.notes = {} if notes is None else notes
        self.lost = lost
        self.error = error


def read_gpu(nv: ModuleType, index: int) -> GpuReading:
    """Every field of GPU `index`, each on its own."""
    reading = GpuReading(index=index)
    try:
        handle = nv.nvmlDeviceGetHandleByIndex(index)
    except Exception as exc:
        reading.error = _text(exc)
        reading.lost = getattr(exc, "value", None) == _GPU_IS_LOST
        reading.facts = {"index": index}
        return reading
    f = Fields(nv)
    get = f.get

    memory = get("memory", "nvmlDeviceGetMemoryInfo", handle)
    bar1 = get("bar1", "nvmlDeviceGetBAR1MemoryInfo", handle)
    util = get("utilization", "nvmlDeviceGetUtilizationRates", handle)
    encoder = get("encoder", "nvmlDeviceGetEncoderUtilization", handle)
    decoder = get("decoder", "nvmlDeviceGetDecoderUtilization", handle)
    pci = get("pci_bus_id", "nvmlDeviceGetPciInfo", handle)
    mig = get("mig_mode", "nvmlDeviceGetMigMode", handle)
    ecc = get("ecc_mode", "nvmlDeviceGetEccMode", handle)
    remapped = get("remapped_rows", "nvmlDeviceGetRemappedRows", handle)
    retired = get("retired_pages_pending", "nvmlDeviceGetRetiredPagesPendingStatus", handle)
    pstate = get("pstate", "nvmlDeviceGetPerformanceState", handle)
    compute = get("compute_mode", "nvmlDeviceGetComputeMode", handle)
    persistence = get("persistence_mode", "nvmlDeviceGetPersistenceMode", handle)
    reasons = get(
        "clock_event_reasons",
        ("nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
        handle,
    )
    temp_names = ("nvmlDeviceGetTemperature", "nvmlDeviceGetTemperatureV")
    ecc_names = "nvmlDeviceGetTotalEccErrors"
    uncorrected, volatile, aggregate = 1, 0, 1  # NVML_MEMORY_ERROR_TYPE_UNCORRECTED, counters

    reading.facts = {
        "index": index,
        "name": text(get("name", "nvmlDeviceGetName", handle)),
        "uuid": text(get("uuid", "nvmlDeviceGetUUID", handle)),
        "pci_bus_id": text(pci.busId) if pci is not NA else NA,
        "persistence_mode": _enabled(persistence),
        "compute_mode": COMPUTE_MODES.get(compute, compute) if compute is not NA else NA,
        "mig_mode": _mode_pair(mig),
        "memory_total": memory.total if memory is not NA else NA,
        "bar1_total": bar1.bar1Total if bar1 is not NA else NA,
        "temperature_slowdown_c": get(
            "temperature_slowdown", "nvmlDeviceGetTemperatureThreshold", handle, 1
        ),  # NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
        "temperature_shutdown_c": get(
            "temperature_shutdown", "nvmlDeviceGetTemperatureThreshold", handle, 0
        ),  # NVML_TEMPERATURE_THRESHOLD_SHUTDOWN
        "power_limit_w": _watts(
            get(
                "power_limit",
                ("nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetPowerManagementLimit"),
                handle,
            )
        ),
        "clocks_max_mhz": {
            "graphics": get("max_clock_graphics", "nvmlDeviceGetMaxClockInfo", handle, 0),
            "sm": get("max_clock_sm", "nvmlDeviceGetMaxClockInfo", handle, 1),
            "memory": get("max_clock_memory", "nvmlDeviceGetMaxClockInfo", handle, 2),
        },
        "ecc_mode": _mode_pair(ecc),
        "ecc_uncorrected": {
            "volatile": get("ecc_volatile", ecc_names, handle, uncorrected, volatile),
            "aggregate": get("ecc_aggregate", ecc_names, handle, uncorrected, aggregate),
        },
        "retired_pages_pending": bool(retired) if retired is not NA else NA,
        "remapped_rows": _remapped(remapped),
    }
    reading.figures = {
        "pstate": (f"P{pstate}" if pstate != PSTATE_UNKNOWN else "unknown")
        if isinstance(pstate, int)
        else NA,
        "memory_used": memory.used if memory is not NA else NA,
        "memory_free": memory.free if memory is not NA else NA,
        "memory_used_percent": round(100.0 * memory.used / memory.total, 1)
        if memory is not NA and memory.total
        else NA,
        "bar1_used": bar1.bar1Used if bar1 is not NA else NA,
        "utilization_percent": {
            "gpu": util.gpu if util is not NA else NA,
            "memory": util.memory if util is not NA else NA,
            "encoder": encoder[0] if encoder is not NA else NA,
            "decoder": decoder[0] if decoder is not NA else NA,
        },
        "temperature_c": get("temperature", temp_names, handle, 0),  # NVML_TEMPERATURE_GPU
        "fan_percent": get("fan", "nvmlDeviceGetFanSpeed", handle),
        "power_draw_w": _watts(get("power_draw", "nvmlDeviceGetPowerUsage", handle)),
        "clocks_mhz": {
            "graphics": get("clock_graphics", "nvmlDeviceGetClockInfo", handle, 0),
            "sm": get("clock_sm", "nvmlDeviceGetClockInfo", handle, 1),
            "memory": get("clock_memory", "nvmlDeviceGetClockInfo", handle, 2),
        },
        "clock_event_reasons": decode_reasons(reasons) if isinstance(reasons, int) else NA,
    }
    reading.reasons_mask = reasons if isinstance(reasons, int) else None
    for kind, names in (
        (
            "compute",
            ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetComputeRunningProcesses_v2"),
        ),
        (
            "graphics",
            ("nvmlDeviceGetGraphicsRunningProcesses", "nvmlDeviceGetGraphicsRunningProcesses_v2"),
        ),
    ):
        procs = get(f"{kind}_processes", names, handle)
        if procs is NA:
            continue
        for proc in procs:
            used = getattr(proc, "usedGpuMemory", None)
            reading.processes.append({"pid": int(proc.pid), "type": kind, "used_memory": used})
    reading.notes = f.notes
    reading.lost = f.lost
    return reading


def process_name(nv: ModuleType, pid: int) -> str | None:
    """The name NVML (the host's driver) gives pid, or None when it cannot say."""
    try:
        name = text(nv.nvmlSystemGetProcessName(pid))
    except Exception:
        return None
    return name or None


def decode_reasons(mask: int) -> list[str]:
    """A clock-event bitmask in words; unknown bits as hex, so nothing is silently dropped."""
    words = [words for _, bit, words in CLOCK_EVENT_REASONS if mask & bit]
    known = 0
    for _, bit, _ in CLOCK_EVENT_REASONS:
        known |= bit
    if mask & ~known:
        words.append(f"other (0x{mask & ~known:x})")
    return words


def _enabled(value: Any) -> Any:
    if value is NA:
        return NA
    return "enabled" if value else "disabled"


def _mode_pair(value: Any) -> Any:
    """[current, pending] as "enabled", "disabled" or "disabled (enabled after reset)"."""
    if value is NA:
        return NA
    current, pending = (_enabled(v) for v in value)
    return current if current == pending else f"{current} ({pending} after reset)"


def _remapped(value: Any) -> Any:
    if value is NA:
        return NA
    correctable, uncorrectable, pending, failure_ = value
    return {
        "correctable": correctable,
        "uncorrectable": uncorrectable,
        "pending": bool(pending),
        "failure": bool(failure_),
    }


def _watts(milliwatts: Any) -> Any:
    return round(milliwatts / 1000, 1) if isinstance(milliwatts, int) else NA


__all__ = [
    "CLOCK_EVENT_REASONS",
    "NA",
    "Fields",
    "GpuReading",
    "NvmlFailure",
    "decode_reasons",
    "failure",
    "import_pynvml",
    "process_name",
    "read_gpu",
    "start",
    "stop",
    "system_info",
]
