"""A stand-in for `pynvml` (nvidia-ml-py) on a machine without an NVIDIA driver.

It behaves like the real module where the collector can tell: the same function names and
parameters, the same constants, the same ctypes structures (so `busId` comes back as bytes
while names and versions come back as str, as pynvml's convertStrBytes does), process
entries as pynvml's `nvmlFriendlyObject`, and the same exception classes, generated the way
pynvml generates them so that `NVMLError(NVML_ERROR_NOT_SUPPORTED)` *is* an
`NVMLError_NotSupported`. `tests/test_gpu.py` checks every public name here against the
installed pynvml, so the stand-in cannot drift from it.

What the GPUs say comes from a `Scenario` (test-only names are listed in TEST_ONLY).
"""

from __future__ import annotations

import string
import sys
from ctypes import Structure, c_char, c_uint, c_ulonglong
from dataclasses import dataclass, field
from typing import Any

TEST_ONLY = frozenset({"FakeGpu", "FakeProcess", "Scenario", "TEST_ONLY", "annotations", "use"})

# --- constants (pynvml's names and values) --------------------------------------------------

NVML_SUCCESS = 0
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_ALREADY_INITIALIZED = 5
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_INSUFFICIENT_SIZE = 7
NVML_ERROR_INSUFFICIENT_POWER = 8
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_TIMEOUT = 10
NVML_ERROR_IRQ_ISSUE = 11
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_ERROR_CORRUPTED_INFOROM = 14
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_RESET_REQUIRED = 16
NVML_ERROR_OPERATING_SYSTEM = 17
NVML_ERROR_LIB_RM_VERSION_MISMATCH = 18
NVML_ERROR_IN_USE = 19
NVML_ERROR_MEMORY = 20
NVML_ERROR_NO_DATA = 21
NVML_ERROR_UNKNOWN = 999

NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1

NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = 0
NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1
NVML_TEMPERATURE_GPU = 0

NVML_COMPUTEMODE_DEFAULT = 0
NVML_COMPUTEMODE_EXCLUSIVE_THREAD = 1
NVML_COMPUTEMODE_PROHIBITED = 2
NVML_COMPUTEMODE_EXCLUSIVE_PROCESS = 3

NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1

NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2

NVML_PSTATE_0 = 0
NVML_PSTATE_2 = 2
NVML_PSTATE_8 = 8
NVML_PSTATE_UNKNOWN = 32

NVML_DEVICE_MIG_DISABLE = 0x0
NVML_DEVICE_MIG_ENABLE = 0x1

NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE = 32
NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE = 16

nvmlClocksEventReasonGpuIdle = 0x0000000000000001
nvmlClocksEventReasonApplicationsClocksSetting = 0x0000000000000002
nvmlClocksEventReasonSwPowerCap = 0x0000000000000004
nvmlClocksEventReasonHwSlowdown = 0x0000000000000008
nvmlClocksEventReasonSyncBoost = 0x0000000000000010
nvmlClocksEventReasonSwThermalSlowdown = 0x0000000000000020
nvmlClocksEventReasonHwThermalSlowdown = 0x0000000000000040
nvmlClocksEventReasonHwPowerBrakeSlowdown = 0x0000000000000080
nvmlClocksEventReasonDisplayClockSetting = 0x0000000000000100
nvmlClocksEventReasonNone = 0x0000000000000000

NVML_VALUE_NOT_AVAILABLE_ulonglong = c_ulonglong(-1)

# --- errors: the same class machinery as pynvml --------------------------------------------


class NVMLLibraryMismatchError(Exception):
    pass


class NVMLError(Exception):
    _valClassMapping: dict[int, type] = {}  # noqa: RUF012 - pynvml's own (shared) mapping
    _errcode_to_string = {  # noqa: RUF012
        NVML_ERROR_UNINITIALIZED: "Uninitialized",
        NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
        NVML_ERROR_NOT_SUPPORTED: "Not Supported",
        NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
        NVML_ERROR_ALREADY_INITIALIZED: "Already Initialized",
        NVML_ERROR_NOT_FOUND: "Not Found",
        NVML_ERROR_INSUFFICIENT_SIZE: "Insufficient Size",
        NVML_ERROR_INSUFFICIENT_POWER: "Insufficient External Power",
        NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
        NVML_ERROR_TIMEOUT: "Timeout",
        NVML_ERROR_IRQ_ISSUE: "Interrupt Request Issue",
        NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
        NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
        NVML_ERROR_CORRUPTED_INFOROM: "Corrupted infoROM",
        NVML_ERROR_GPU_IS_LOST: "GPU is lost",
        NVML_ERROR_RESET_REQUIRED: "GPU requires restart",
        NVML_ERROR_OPERATING_SYSTEM: "The operating system has blocked the request.",
        NVML_ERROR_LIB_RM_VERSION_MISMATCH: "RM has detected an NVML/RM version mismatch.",
        NVML_ERROR_MEMORY: "Insufficient Memory",
        NVML_ERROR_UNKNOWN: "Unknown Error",
    }

    def __new__(typ, value: int) -> Any:
        # Maps the value to its subclass, as pynvml does: NVMLError(3) is NVMLError_NotSupported.
        if typ == NVMLError:
            typ = NVMLError._valClassMapping.get(value, typ)
        obj = Exception.__new__(typ)
        obj.value = value
        return obj

    def __str__(self) -> str:
        return NVMLError._errcode_to_string.get(self.value, f"NVML Error with code {self.value}")

    def __eq__(self, other: object) -> bool:
        return self.value == getattr(other, "value", None)

    __hash__ = Exception.__hash__


def nvmlExceptionClass(nvmlErrorCode: int) -> Any:
    if nvmlErrorCode not in NVMLError._valClassMapping:
        raise ValueError(f"nvmlErrorCode {nvmlErrorCode} is not valid")
    return NVMLError._valClassMapping[nvmlErrorCode]


def _extractNVMLErrorsAsClasses() -> None:
    """NVML_ERROR_ALREADY_INITIALIZED becomes NVMLError_AlreadyInitialized, and so on."""
    this_module = sys.modules[__name__]
    for err_name in [x for x in dir(this_module) if x.startswith("NVML_ERROR_")]:
        class_name = "NVMLError_" + string.capwords(
            err_name.replace("NVML_ERROR_", ""), "_"
        ).replace("_", "")
        err_val = getattr(this_module, err_name)

        def gen_new(val: int) -> Any:
            def new(typ: type, *args: Any) -> Any:
                return NVMLError.__new__(typ, val)

            return new

        new_error_class = type(class_name, (NVMLError,), {"__new__": gen_new(err_val)})
        new_error_class.__module__ = __name__
        setattr(this_module, class_name, new_error_class)
        NVMLError._valClassMapping[err_val] = new_error_class


_extractNVMLErrorsAsClasses()


def _nvmlCheckReturn(ret: Any) -> Any:
    if ret != NVML_SUCCESS:
        raise NVMLError(ret)
    return ret


# --- structures: the same ctypes layouts as pynvml -----------------------------------------


class c_nvmlMemory_t(Structure):
    _fields_ = [("total", c_ulonglong), ("free", c_ulonglong), ("used", c_ulonglong)]


class c_nvmlBAR1Memory_t(Structure):
    _fields_ = [("bar1Total", c_ulonglong), ("bar1Free", c_ulonglong), ("bar1Used", c_ulonglong)]


class c_nvmlUtilization_t(Structure):
    _fields_ = [("gpu", c_uint), ("memory", c_uint)]


class nvmlPciInfo_t(Structure):
    _fields_ = [
        ("busIdLegacy", c_char * NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE),
        ("domain", c_uint),
        ("bus", c_uint),
        ("device", c_uint),
        ("pciDeviceId", c_uint),
        ("pciSubSystemId", c_uint),
        ("busId", c_char * NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE),
    ]


class c_nvmlProcessInfo_v2_t(Structure):
    _fields_ = [
        ("pid", c_uint),
        ("usedGpuMemory", c_ulonglong),
        ("gpuInstanceId", c_uint),
        ("computeInstanceId", c_uint),
    ]


c_nvmlProcessInfo_v3_t = c_nvmlProcessInfo_v2_t


class nvmlFriendlyObject:
    def __init__(self, dictionary: dict[str, Any]) -> None:
        for x in dictionary:
            setattr(self, x, dictionary[x])

    def __str__(self) -> str:
        return self.__dict__.__str__()


def nvmlStructToFriendlyObject(struct: Structure) -> Any:
    d = {}
    for key, _ in struct._fields_:
        value = getattr(struct, key)
        d[key] = value.decode() if isinstance(value, bytes) else value
    return nvmlFriendlyObject(d)


class c_nvmlDevice_t:
    """An opaque handle (a ctypes pointer in pynvml); here it remembers its index."""

    def __init__(self, index: int = 0) -> None:
        self.index = index


# --- the scenario the tests set -------------------------------------------------------------


@dataclass
class FakeProcess:
    pid: int
    used_memory: int | None = 1 << 30
    name: str = "/usr/bin/python3"  # what the host's driver calls it (nvmlSystemGetProcessName)


@dataclass
class FakeGpu:
    name: str = "NVIDIA GeForce RTX 4090"
    uuid: str = "GPU-6f3c1a2b-0000-4000-8000-000000000000"
    bus_id: str = "00000000:01:00.0"
    memory_total: int = 24 << 30
    memory_used: int = 1 << 30
    bar1_total: int = 256 << 20
    bar1_used: int = 4 << 20
    utilization: tuple[int, int] = (3, 1)  # gpu, memory
    encoder: int = 0
    decoder: int = 0
    temperature: int = 41
    slowdown: int = 90
    shutdown: int = 95
    fan: int = 30
    power_mw: int = 31_500
    power_limit_mw: int = 450_000
    clocks: tuple[int, int, int] = (210, 210, 405)  # graphics, sm, memory
    max_clocks: tuple[int, int, int] = (3105, 3105, 10501)
    reasons: int = nvmlClocksEventReasonGpuIdle
    persistence: int = NVML_FEATURE_ENABLED
    pstate: int = NVML_PSTATE_8
    compute_mode: int = NVML_COMPUTEMODE_DEFAULT
    mig: tuple[int, int] = (NVML_DEVICE_MIG_DISABLE, NVML_DEVICE_MIG_DISABLE)
    ecc: tuple[int, int] = (NVML_FEATURE_ENABLED, NVML_FEATURE_ENABLED)
    ecc_volatile: int = 0
    ecc_aggregate: int = 0
    retired_pending: int = 0
    remapped: tuple[int, int, int, int] = (
        0,
        0,
        0,
        0,
    )  # correctable, uncorrectable, pending, failure
    compute: list[FakeProcess] = field(default_factory=list)
    graphics: list[FakeProcess] = field(default_factory=list)
    # pynvml function name -> NVML error code it fails with on this GPU (NotSupported, ...)
    errors: dict[str, int] = field(default_factory=dict)
    lost: bool = False  # nvmlDeviceGetHandleByIndex fails with GPU_IS_LOST


@dataclass
class Scenario:
    init_error: int | None = None  # e.g. NVML_ERROR_LIBRARY_NOT_FOUND
    driver: str = "550.54.15"
    cuda: int = 12040
    nvml: str = "12.550.54.15"
    gpus: list[FakeGpu] = field(default_factory=list)
    initialised: int = 0
    calls: list[str] = field(default_factory=list)


_scenario = Scenario()


def use(scenario: Scenario) -> Scenario:
    """Make `scenario` what this module reports (a test-only entry point)."""
    global _scenario
    _scenario = scenario
    return scenario


def _up(name: str) -> Scenario:
    _scenario.calls.append(name)
    if not _scenario.initialised:
        raise NVMLError(NVML_ERROR_UNINITIALIZED)
    return _scenario


def _gpu(handle: c_nvmlDevice_t, name: str) -> FakeGpu:
    scenario = _up(name)
    gpu = scenario.gpus[handle.index]
    if name in gpu.errors:
        raise NVMLError(gpu.errors[name])
    return gpu


# --- the API --------------------------------------------------------------------------------


def nvmlInit() -> None:
    _scenario.calls.append("nvmlInit")
    if _scenario.init_error is not None:
        raise NVMLError(_scenario.init_error)
    _scenario.initialised += 1


def nvmlShutdown() -> None:
    _up("nvmlShutdown").initialised -= 1


def nvmlErrorString(result: int) -> Any:
    return NVMLError._errcode_to_string.get(result, "Unknown Error")


def nvmlSystemGetDriverVersion() -> Any:
    return _up("nvmlSystemGetDriverVersion").driver


def nvmlSystemGetCudaDriverVersion() -> Any:
    return _up("nvmlSystemGetCudaDriverVersion").cuda


def nvmlSystemGetCudaDriverVersion_v2() -> Any:
    return _up("nvmlSystemGetCudaDriverVersion_v2").cuda


def nvmlSystemGetNVMLVersion() -> Any:
    return _up("nvmlSystemGetNVMLVersion").nvml


def nvmlSystemGetProcessName(pid: int) -> Any:
    for gpu in _up("nvmlSystemGetProcessName").gpus:
        for proc in gpu.compute + gpu.graphics:
            if proc.pid == pid:
                return proc.name
    raise NVMLError(NVML_ERROR_NOT_FOUND)


def nvmlDeviceGetCount() -> Any:
    return len(_up("nvmlDeviceGetCount").gpus)


def nvmlDeviceGetHandleByIndex(index: int) -> Any:
    scenario = _up("nvmlDeviceGetHandleByIndex")
    if not 0 <= index < len(scenario.gpus):
        raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
    if scenario.gpus[index].lost:
        raise NVMLError(NVML_ERROR_GPU_IS_LOST)
    return c_nvmlDevice_t(index)


def nvmlDeviceGetName(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetName").name


def nvmlDeviceGetUUID(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetUUID").uuid


def nvmlDeviceGetPciInfo(handle: c_nvmlDevice_t) -> Any:
    gpu = _gpu(handle, "nvmlDeviceGetPciInfo")
    domain, bus, rest = gpu.bus_id.split(":")
    info = nvmlPciInfo_t()
    info.busIdLegacy = gpu.bus_id[-12:].encode()
    info.busId = gpu.bus_id.encode()
    info.domain, info.bus, info.device = int(domain, 16), int(bus, 16), int(rest.split(".")[0], 16)
    info.pciDeviceId = 0x268410DE
    return info


def nvmlDeviceGetPersistenceMode(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetPersistenceMode").persistence


def nvmlDeviceGetPerformanceState(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetPerformanceState").pstate


def nvmlDeviceGetComputeMode(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetComputeMode").compute_mode


def nvmlDeviceGetMigMode(device: c_nvmlDevice_t) -> Any:
    return list(_gpu(device, "nvmlDeviceGetMigMode").mig)


def nvmlDeviceGetMemoryInfo(handle: c_nvmlDevice_t, version: int | None = None) -> Any:
    gpu = _gpu(handle, "nvmlDeviceGetMemoryInfo")
    return c_nvmlMemory_t(gpu.memory_total, gpu.memory_total - gpu.memory_used, gpu.memory_used)


def nvmlDeviceGetBAR1MemoryInfo(handle: c_nvmlDevice_t) -> Any:
    gpu = _gpu(handle, "nvmlDeviceGetBAR1MemoryInfo")
    return c_nvmlBAR1Memory_t(gpu.bar1_total, gpu.bar1_total - gpu.bar1_used, gpu.bar1_used)


def nvmlDeviceGetUtilizationRates(handle: c_nvmlDevice_t) -> Any:
    return c_nvmlUtilization_t(*_gpu(handle, "nvmlDeviceGetUtilizationRates").utilization)


def nvmlDeviceGetEncoderUtilization(handle: c_nvmlDevice_t) -> Any:
    return [_gpu(handle, "nvmlDeviceGetEncoderUtilization").encoder, 167000]


def nvmlDeviceGetDecoderUtilization(handle: c_nvmlDevice_t) -> Any:
    return [_gpu(handle, "nvmlDeviceGetDecoderUtilization").decoder, 167000]


def nvmlDeviceGetTemperature(handle: c_nvmlDevice_t, sensor: int) -> Any:
    return _gpu(handle, "nvmlDeviceGetTemperature").temperature


def nvmlDeviceGetTemperatureThreshold(handle: c_nvmlDevice_t, threshold: int) -> Any:
    gpu = _gpu(handle, "nvmlDeviceGetTemperatureThreshold")
    if threshold == NVML_TEMPERATURE_THRESHOLD_SLOWDOWN:
        return gpu.slowdown
    if threshold == NVML_TEMPERATURE_THRESHOLD_SHUTDOWN:
        return gpu.shutdown
    raise NVMLError(NVML_ERROR_NOT_SUPPORTED)


def nvmlDeviceGetFanSpeed(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetFanSpeed").fan


def nvmlDeviceGetPowerUsage(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetPowerUsage").power_mw


def nvmlDeviceGetEnforcedPowerLimit(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetEnforcedPowerLimit").power_limit_mw


def nvmlDeviceGetPowerManagementLimit(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetPowerManagementLimit").power_limit_mw


def nvmlDeviceGetClockInfo(handle: c_nvmlDevice_t, type: int) -> Any:  # pynvml's name
    return _gpu(handle, "nvmlDeviceGetClockInfo").clocks[type]


def nvmlDeviceGetMaxClockInfo(handle: c_nvmlDevice_t, type: int) -> Any:
    return _gpu(handle, "nvmlDeviceGetMaxClockInfo").max_clocks[type]


def nvmlDeviceGetCurrentClocksEventReasons(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetCurrentClocksEventReasons").reasons


def nvmlDeviceGetCurrentClocksThrottleReasons(handle: c_nvmlDevice_t) -> Any:
    return _gpu(handle, "nvmlDeviceGetCurrentClocksThrottleReasons").reasons


def nvmlDeviceGetEccMode(handle: c_nvmlDevice_t) -> Any:
    return list(_gpu(handle, "nvmlDeviceGetEccMode").ecc)


def nvmlDeviceGetTotalEccErrors(handle: c_nvmlDevice_t, errorType: int, counterType: int) -> Any:
    gpu = _gpu(handle, "nvmlDeviceGetTotalEccErrors")
    if errorType != NVML_MEMORY_ERROR_TYPE_UNCORRECTED:
        return 0
    return gpu.ecc_volatile if counterType == NVML_VOLATILE_ECC else gpu.ecc_aggregate


def nvmlDeviceGetRetiredPagesPendingStatus(device: c_nvmlDevice_t) -> Any:
    return int(_gpu(device, "nvmlDeviceGetRetiredPagesPendingStatus").retired_pending)


def nvmlDeviceGetRemappedRows(device: c_nvmlDevice_t) -> Any:
    return tuple(_gpu(device, "nvmlDeviceGetRemappedRows").remapped)


def _processes(procs: list[FakeProcess]) -> list[nvmlFriendlyObject]:
    out = []
    for proc in procs:
        used = (
            NVML_VALUE_NOT_AVAILABLE_ulonglong.value
            if proc.used_memory is None
            else proc.used_memory
        )
        obj = nvmlStructToFriendlyObject(
            c_nvmlProcessInfo_v2_t(proc.pid, used, 0xFFFFFFFF, 0xFFFFFFFF)
        )
        if obj.usedGpuMemory == NVML_VALUE_NOT_AVAILABLE_ulonglong.value:
            obj.usedGpuMemory = None  # as pynvml does
        out.append(obj)
    return out


def nvmlDeviceGetComputeRunningProcesses(handle: c_nvmlDevice_t) -> Any:
    return _processes(_gpu(handle, "nvmlDeviceGetComputeRunningProcesses").compute)


def nvmlDeviceGetGraphicsRunningProcesses(handle: c_nvmlDevice_t) -> Any:
    return _processes(_gpu(handle, "nvmlDeviceGetGraphicsRunningProcesses").graphics)
