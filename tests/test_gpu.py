"""The gpu collector: NVML through a stand-in pynvml, Xid scans of real files and commands,
CUDA errors in real log files, and the real pynvml on this driverless machine."""

from __future__ import annotations

import ctypes
import inspect
import json
import os
import sys
import time
import types
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner

import healthcheck.xid as xid
from healthcheck.cli import cli
from healthcheck.collectors.gpu import (
    GpuCollector,
    gpu_expected,
    processes_note,
    service_name,
)
from healthcheck.config import Config, ConfigError, parse_config
from healthcheck.model import Section, Status
from healthcheck.nvml import CLOCK_EVENT_REASONS, decode_reasons
from healthcheck.timestamps import utc_stamp_of
from healthcheck.xid import explain, parse_xid, pci_key, read_kernel_log, xid_catalogue

import fake_pynvml as fake
from fake_pynvml import FakeGpu, FakeProcess, Scenario
from support import Box

FIXTURES = Path(__file__).parent / "fixtures" / "xid"
GIB = 1 << 30
NOT_SUPPORTED = fake.NVML_ERROR_NOT_SUPPORTED
UseScenario = Callable[..., Scenario]


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[UseScenario]:
    """The stand-in pynvml in sys.modules, and a clean environment (no CUDA/NVIDIA vars)."""
    for name in list(os.environ):
        if name.startswith(("NVIDIA_", "CUDA_")):
            monkeypatch.delenv(name)
    monkeypatch.setitem(sys.modules, "pynvml", fake)

    def use(**kwargs: object) -> Scenario:
        return fake.use(Scenario(**kwargs))  # type: ignore[arg-type]

    yield use
    fake.use(Scenario())


def config(tmp_path: Path, **gpu: object) -> Config:
    gpu.setdefault("xid_scan", False)
    return parse_config(
        {
            "env": {"source": "self"},
            "logs": {"dirs": [str(tmp_path / "logs")]},
            "gpu": gpu,
        }
    )


def collect(tmp_path: Path, **gpu: object) -> Section:
    return GpuCollector().collect(config(tmp_path, **gpu))


def ids(section: Section) -> list[tuple[str, Status]]:
    return [(f.id, f.severity) for f in section.findings]


# --- NVML cannot start: each failure named, with its hint ----------------------------------


def test_no_library_is_unknown_with_a_hint(nvml: UseScenario, tmp_path: Path) -> None:
    nvml(init_error=fake.NVML_ERROR_LIBRARY_NOT_FOUND)
    section = collect(tmp_path)
    assert section.status is Status.UNKNOWN
    assert section.error == "NVML library not found (NVML Shared Library Not Found)"
    assert section.data["nvml"]["kind"] == "library-not-found"
    assert section.data["gpus"] == []
    (finding,) = section.findings
    assert (finding.id, finding.severity, finding.title) == (
        "gpu.nvml-unavailable",
        Status.UNKNOWN,
        "NVML library not found",
    )
    assert "docker run --gpus all" in finding.hint


def test_no_gpu_while_the_cuda_image_expects_one_is_crit(
    nvml: UseScenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml(init_error=fake.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setenv("CUDA_VERSION", "12.4.1")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "all")
    section = collect(tmp_path)
    assert section.status is Status.CRIT
    (finding,) = section.findings
    assert (finding.id, finding.severity) == ("gpu.no-gpu", Status.CRIT)
    assert finding.title == "No GPU visible: NVML library not found"
    assert finding.detail == (
        "The container's environment says there should be one "
        "(NVIDIA_VISIBLE_DEVICES=all, CUDA_VERSION=12.4.1). NVML said: "
        "NVML Shared Library Not Found."
    )
    assert section.data["expected"] == {
        "expected": True,
        "because": ["NVIDIA_VISIBLE_DEVICES=all", "CUDA_VERSION=12.4.1"],
        "hidden_by": [],
        "env_source": "self",
    }


def test_gpus_hidden_on_purpose_are_not_expected(
    nvml: UseScenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml(init_error=fake.NVML_ERROR_LIBRARY_NOT_FOUND)
    monkeypatch.setenv("CUDA_VERSION", "12.4.1")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "void")
    section = collect(tmp_path)
    assert ids(section) == [("gpu.nvml-unavailable", Status.UNKNOWN)]
    assert section.data["expected"]["hidden_by"] == ["NVIDIA_VISIBLE_DEVICES=void"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, True),
        ({"CUDA_VISIBLE_DEVICES": "-1", "CUDA_VERSION": "12.4.1"}, False),
        ({"CUDA_VISIBLE_DEVICES": ""}, False),
        ({"NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}, True),
        ({"NVIDIA_VISIBLE_DEVICES": "none"}, False),
        ({"PATH": "/usr/local/cuda/bin"}, False),
    ],
)
def test_gpu_expected(env: dict[str, str], expected: bool) -> None:
    assert gpu_expected(env)["expected"] is expected


@pytest.mark.parametrize(
    ("code", "title", "hint_part"),
    [
        (fake.NVML_ERROR_DRIVER_NOT_LOADED, "NVIDIA driver not loaded", "modprobe nvidia"),
        (
            fake.NVML_ERROR_LIB_RM_VERSION_MISMATCH,
            "NVIDIA driver/library version mismatch",
            "reboot the host",
        ),
        (fake.NVML_ERROR_NO_PERMISSION, "No permission to use the GPU", "/dev/nvidia*"),
        (fake.NVML_ERROR_GPU_IS_LOST, "A GPU is lost (it stopped answering)", "reboot the host"),
        (fake.NVML_ERROR_UNKNOWN, "NVML could not start: Unknown Error", "nvidia-smi"),
    ],
)
def test_init_failures_are_named(
    nvml: UseScenario, tmp_path: Path, code: int, title: str, hint_part: str
) -> None:
    nvml(init_error=code)
    section = collect(tmp_path)
    (finding,) = section.findings
    assert (finding.title, finding.severity) == (title, Status.UNKNOWN)
    assert hint_part in finding.hint
    assert section.status is Status.UNKNOWN


def test_pynvml_not_importable(nvml: UseScenario, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    section = collect(tmp_path)
    (finding,) = section.findings
    assert finding.title == "pynvml (nvidia-ml-py) is not installed"
    assert finding.hint == "Install it into healthcheck's Python: pip install nvidia-ml-py"


# --- NVML up: facts, figures, each field on its own -----------------------------------------


def test_two_gpus_with_some_fields_unsupported(nvml: UseScenario, tmp_path: Path) -> None:
    scenario = nvml(
        gpus=[
            FakeGpu(),
            FakeGpu(
                name="NVIDIA A10G",
                uuid="GPU-0a10-0000",
                bus_id="00000000:02:00.0",
                memory_total=23 * GIB,
                mig=(1, 1),
                errors={
                    "nvmlDeviceGetFanSpeed": NOT_SUPPORTED,
                    "nvmlDeviceGetEccMode": NOT_SUPPORTED,
                    "nvmlDeviceGetTotalEccErrors": NOT_SUPPORTED,
                    "nvmlDeviceGetRemappedRows": NOT_SUPPORTED,
                    "nvmlDeviceGetEncoderUtilization": NOT_SUPPORTED,
                    "nvmlDeviceGetRetiredPagesPendingStatus": fake.NVML_ERROR_NO_PERMISSION,
                    "nvmlDeviceGetCurrentClocksEventReasons": fake.NVML_ERROR_FUNCTION_NOT_FOUND,
                },
            ),
        ]
    )
    section = collect(tmp_path)
    assert (section.status, section.findings, section.error) == (Status.OK, [], None)
    data = section.data
    assert {k: data[k] for k in ("driver_version", "cuda_driver_version", "nvml_version")} == {
        "driver_version": "550.54.15",
        "cuda_driver_version": "12.4",
        "nvml_version": "12.550.54.15",
    }
    assert data["count"] == 2
    assert data["gpus"][0] == {
        "index": 0,
        "name": "NVIDIA GeForce RTX 4090",
        "uuid": "GPU-6f3c1a2b-0000-4000-8000-000000000000",
        "pci_bus_id": "00000000:01:00.0",
        "persistence_mode": "enabled",
        "compute_mode": "default",
        "mig_mode": "disabled",
        "memory_total": 24 * GIB,
        "bar1_total": 256 << 20,
        "temperature_slowdown_c": 90,
        "temperature_shutdown_c": 95,
        "power_limit_w": 450.0,
        "clocks_max_mhz": {"graphics": 3105, "sm": 3105, "memory": 10501},
        "ecc_mode": "enabled",
        "ecc_uncorrected": {"volatile": 0, "aggregate": 0},
        "retired_pages_pending": False,
        "remapped_rows": {"correctable": 0, "uncorrectable": 0, "pending": False, "failure": False},
    }
    second = data["gpus"][1]
    assert (second["name"], second["mig_mode"], second["pci_bus_id"]) == (
        "NVIDIA A10G",
        "enabled",
        "00000000:02:00.0",
    )
    assert {k: second[k] for k in ("ecc_mode", "ecc_uncorrected", "remapped_rows")} == {
        "ecc_mode": "n/a",
        "ecc_uncorrected": {"volatile": "n/a", "aggregate": "n/a"},
        "remapped_rows": "n/a",
    }
    # NotSupported is normal and silent; anything else says why.
    assert second["unavailable"] == {"retired_pages_pending": "no permission"}
    assert section.volatile["gpus"][0] == {
        "index": 0,
        "pstate": "P8",
        "memory_used": GIB,
        "memory_free": 23 * GIB,
        "memory_used_percent": 4.2,
        "bar1_used": 4 << 20,
        "utilization_percent": {"gpu": 3, "memory": 1, "encoder": 0, "decoder": 0},
        "temperature_c": 41,
        "fan_percent": 30,
        "power_draw_w": 31.5,
        "clocks_mhz": {"graphics": 210, "sm": 210, "memory": 405},
        "clock_event_reasons": ["idle"],
        "processes_note": "no processes",
        "processes": [],
    }
    figures = section.volatile["gpus"][1]
    assert (figures["fan_percent"], figures["utilization_percent"]["encoder"]) == ("n/a", "n/a")
    # The event-reasons call is missing from this driver: the older throttle-reasons one answers.
    assert figures["clock_event_reasons"] == ["idle"]
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" in scenario.calls
    assert scenario.initialised == 0  # nvmlShutdown was called


def test_hot_throttling_gpu_with_full_memory(nvml: UseScenario, tmp_path: Path) -> None:
    nvml(
        gpus=[
            FakeGpu(
                temperature=88,
                slowdown=90,
                reasons=fake.nvmlClocksEventReasonHwThermalSlowdown
                | fake.nvmlClocksEventReasonSwPowerCap,
                power_mw=449_000,
                memory_used=int(23.5 * GIB),
                pstate=fake.NVML_PSTATE_0,
            )
        ]
    )
    section = collect(tmp_path)
    assert section.status is Status.WARN
    assert ids(section) == [
        ("gpu.hot:gpu0", Status.WARN),
        ("gpu.power-throttling:gpu0", Status.WARN),
        ("gpu.memory-full:gpu0", Status.WARN),
    ]
    hot, power, memory = section.findings
    # One cause, one finding: the thermal throttling is part of "hot", not a second finding.
    assert hot.title == "GPU 0 is hot: 88 °C and throttling"
    assert hot.detail == (
        "88 °C, 2 °C below its slowdown temperature (90 °C). "
        "It is already throttling its clocks for temperature."
    )
    assert power.detail == (
        "Drawing 449 W of a 450 W limit; clock-event reasons: "
        "power cap, thermal slowdown (hardware)."
    )
    assert memory.title == "GPU 0 memory is 98% full"
    assert memory.detail.startswith("23.5 GiB of 24.0 GiB in use (no processes).")
    assert section.volatile["gpus"][0]["clock_event_reasons"] == [
        "power cap",
        "thermal slowdown (hardware)",
    ]


def test_thermal_throttling_below_the_margin_and_thresholds_from_config(
    nvml: UseScenario, tmp_path: Path
) -> None:
    nvml(gpus=[FakeGpu(temperature=70, reasons=fake.nvmlClocksEventReasonSwThermalSlowdown)])
    assert ids(collect(tmp_path)) == [("gpu.thermal-throttling:gpu0", Status.WARN)]
    nvml(gpus=[FakeGpu(temperature=80)])
    assert ids(collect(tmp_path)) == []
    assert ids(collect(tmp_path, temperature_margin_c=10)) == [("gpu.hot:gpu0", Status.WARN)]
    # No slowdown threshold on this board: the absolute limit applies.
    nvml(gpus=[FakeGpu(temperature=86, errors={"nvmlDeviceGetTemperatureThreshold": 3})])
    (hot,) = collect(tmp_path).findings
    assert hot.detail == "86 °C, above gpu.temperature_warn_c (85 °C)."
    nvml(gpus=[FakeGpu(memory_used=int(23 * GIB))])  # 95.8 %
    assert ids(collect(tmp_path)) == [("gpu.memory-full:gpu0", Status.WARN)]
    assert ids(collect(tmp_path, memory_warn_percent=99)) == []


def test_ecc_errors_and_pending_repairs(nvml: UseScenario, tmp_path: Path) -> None:
    nvml(
        gpus=[
            FakeGpu(ecc_volatile=2, ecc_aggregate=5, retired_pending=1),
            FakeGpu(bus_id="00000000:02:00.0", ecc_aggregate=3, remapped=(4, 1, 1, 0)),
            FakeGpu(bus_id="00000000:03:00.0", remapped=(0, 8, 0, 1)),
        ]
    )
    section = collect(tmp_path)
    assert section.status is Status.CRIT
    assert ids(section) == [
        ("gpu.ecc-uncorrected:gpu0", Status.CRIT),
        ("gpu.retirement-pending:gpu0", Status.CRIT),
        ("gpu.ecc-uncorrected-past:gpu1", Status.WARN),
        ("gpu.remap-pending:gpu1", Status.CRIT),
        ("gpu.remap-failed:gpu2", Status.CRIT),
    ]
    assert section.findings[0].title == "GPU 0 has 2 uncorrected ECC errors since its last reset"
    assert section.findings[3].detail == (
        "1 uncorrectable and 4 correctable rows remapped; the pending one takes effect at the "
        "next reset."
    )


def test_processes_with_host_pids(nvml: UseScenario, tmp_path: Path) -> None:
    taken = set(psutil.pids())
    host_pids = [pid for pid in range(4_000_000, 4_100_000) if pid not in taken][:2]
    nvml(
        gpus=[
            FakeGpu(
                compute=[FakeProcess(host_pids[0], 20 * GIB)],
                graphics=[FakeProcess(host_pids[1], None, "/usr/lib/xorg/Xorg")],
            )
        ]
    )
    figures = collect(tmp_path).volatile["gpus"][0]
    assert figures["processes_note"] == (
        "NVML reports host PIDs; 2 processes could not be matched in this container"
    )
    assert figures["processes"] == [
        {
            "pid": host_pids[0],
            "type": "compute",
            "used_memory": 20 * GIB,
            "name": "/usr/bin/python3",
            "matched": False,
        },
        {
            "pid": host_pids[1],
            "type": "graphics",
            "used_memory": None,
            "name": "/usr/lib/xorg/Xorg",
            "matched": False,
        },
    ]


def test_processes_matched_only_when_pid_and_program_agree(
    nvml: UseScenario, tmp_path: Path
) -> None:
    me = psutil.Process()
    taken = set(psutil.pids())
    gone = next(pid for pid in range(4_000_000, 4_100_000) if pid not in taken)
    nvml(
        gpus=[
            FakeGpu(
                compute=[
                    FakeProcess(me.pid, GIB, me.exe()),  # really us
                    FakeProcess(gone, GIB),  # a host pid with no local process
                ]
            ),
            # pid 1 exists here, but the host runs another program under that number.
            FakeGpu(bus_id="00000000:02:00.0", compute=[FakeProcess(1, GIB, "/opt/ray/raylet")]),
        ]
    )
    gpus = collect(tmp_path).volatile["gpus"]
    assert gpus[0]["processes_note"] == (
        "1 of 2 processes could not be matched in this container (NVML reports host PIDs)"
    )
    ours = gpus[0]["processes"][0]
    assert (ours["matched"], ours["name"]) == (True, me.name())
    assert ours["command"].startswith(me.cmdline()[0])
    assert gpus[1]["processes"][0]["matched"] is False
    assert processes_note([{"pid": 1, "matched": True}]) == "1 process"


def test_a_lost_gpu_is_crit_and_the_others_still_read(nvml: UseScenario, tmp_path: Path) -> None:
    nvml(
        gpus=[
            FakeGpu(lost=True),
            FakeGpu(bus_id="00000000:02:00.0", errors={"nvmlDeviceGetTemperature": 15}),
            FakeGpu(bus_id="00000000:03:00.0"),
        ]
    )
    section = collect(tmp_path)
    assert ids(section) == [("gpu.gpu-lost:gpu0", Status.CRIT), ("gpu.gpu-lost:gpu1", Status.CRIT)]
    assert section.data["gpus"][0] == {"index": 0, "error": "GPU is lost", "lost": True}
    assert section.data["gpus"][1]["unavailable"] == {"temperature": "GPU is lost"}
    assert section.data["gpus"][2]["name"] == "NVIDIA GeForce RTX 4090"
    assert [g["index"] for g in section.volatile["gpus"]] == [1, 2]


def test_no_gpu_listed_while_expected(
    nvml: UseScenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml(gpus=[])
    assert ids(collect(tmp_path)) == []
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    section = collect(tmp_path)
    assert ids(section) == [("gpu.no-gpu", Status.CRIT)]
    assert section.findings[0].title == "No GPU visible: NVML works but lists no GPU"


def test_clock_event_reasons_decode_every_bit() -> None:
    assert decode_reasons(0) == []
    assert decode_reasons(0x1 | 0x40 | 0x1000) == [
        "idle",
        "thermal slowdown (hardware)",
        "other (0x1000)",
    ]


# --- Xid errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "code", "pci", "pid", "process"),
    [
        (
            "[ 411.000] NVRM: Xid (PCI:0000:01:00): 31, pid=4242, name=python3, Ch 00000010",
            31,
            "0000:01:00",
            4242,
            "python3",
        ),
        ("NVRM: Xid (0000:03:00): 14, Channel 00000001", 14, "0000:03:00", None, None),
        (
            "6,1234,5061000000,-;NVRM: Xid (PCI:0000:2b:00): 79, GPU has fallen off the bus.",
            79,
            "0000:2b:00",
            None,
            None,
        ),
        (
            "NVRM: Xid (PCI:0001:C1:00): 13, pid='<unknown>', name=<unknown>, Graphics Exception",
            13,
            "0001:c1:00",
            None,
            "<unknown>",
        ),
    ],
)
def test_parse_xid(line: str, code: int, pci: str, pid: int | None, process: str | None) -> None:
    event = parse_xid(line)
    assert event is not None
    assert (event.code, event.pci, event.pid, event.process) == (code, pci, pid, process)


def test_not_xid_lines() -> None:
    assert parse_xid("NVRM: GPU at PCI:0000:01:00: GPU-6f3c1a2b") is None
    assert parse_xid("usb 1-1: new high-speed USB device") is None


def test_pci_keys_agree_between_kernel_log_and_nvml() -> None:
    assert pci_key("00000000:01:00.0") == pci_key("PCI:0000:01:00") == "0000:01:00"
    assert pci_key("0000:C1:00.0") == "0000:c1:00"
    assert pci_key("n/a") is None


def test_catalogue_covers_the_common_codes() -> None:
    catalogue = xid_catalogue()
    common = (13, 31, 43, 45, 48, 61, 62, 63, 64, 74, 79, 92, 94, 95, 109, 119, 120)
    for code in (*common, *range(144, 151)):
        entry = catalogue[code]
        assert entry.severity in ("info", "warn", "crit") and entry.meaning and entry.action
    assert catalogue[79].severity == "crit" and catalogue[45].severity == "info"


def test_an_unknown_xid_is_a_warning_and_crit_when_its_line_says_fatal() -> None:
    assert explain(201).severity == "warn"
    assert explain(202, "NVRM: Xid (PCI:0000:01:00): 202, Fatal error detected").severity == "crit"


def test_xids_from_a_kernel_log_file(nvml: UseScenario, tmp_path: Path) -> None:
    nvml(gpus=[FakeGpu(), FakeGpu(bus_id="00000000:02:00.0", uuid="GPU-b")])
    section = collect(tmp_path, xid_scan=True, kernel_log=str(FIXTURES / "kern.log"))
    assert ids(section) == [
        ("gpu.xid-13:0000:01:00", Status.WARN),
        ("gpu.xid-31:0000:01:00", Status.WARN),
        ("gpu.xid-48:0000:41:00", Status.WARN),
        ("gpu.xid-63:0000:01:00", Status.WARN),
        ("gpu.xid-79:0000:02:00", Status.CRIT),
        ("gpu.xid-94:0000:01:00", Status.WARN),
        ("gpu.xid-199:0000:01:00", Status.WARN),
    ]
    by_id = {f.id: f for f in section.findings}
    lost = by_id["gpu.xid-79:0000:02:00"]
    assert lost.title == (
        "Xid 79 on GPU 1 (0000:02:00): GPU has fallen off the bus (it stopped answering on PCIe)"
    )
    assert lost.detail == f"1 time in {FIXTURES / 'kern.log'}, last at Nov 28 11:00:00."
    assert lost.hint.startswith("Reboot the host.")
    # Another tenant's GPU on the same host: reported, but capped at warn.
    assert by_id["gpu.xid-48:0000:41:00"].detail.endswith(
        "It is not one of this container's GPUs (the kernel log is the host's)."
    )
    assert by_id["gpu.xid-13:0000:01:00"].detail.startswith("2 times in ")
    assert len(by_id["gpu.xid-13:0000:01:00"].evidence) == 2
    xid_data = section.data["xid"]
    assert (xid_data["scanned"], xid_data["count"]) == (True, 9)
    assert section.volatile["xid_records_read"] == 12
    # Xid 45 only follows other errors: listed, not a finding.
    (cleanup,) = [c for c in xid_data["codes"] if c["code"] == 45]
    assert (cleanup["severity"], cleanup["gpu"], cleanup["count"]) == ("info", 0, 1)
    assert section.status is Status.CRIT


def test_gpu_kernel_errors_without_an_xid_and_the_newer_xids(
    nvml: UseScenario, tmp_path: Path
) -> None:
    """The driver's own words when there is no Xid code, NVLink and context-switch Xids, and
    an unlisted Xid the driver calls fatal: each named, with what to do."""
    nvml(gpus=[FakeGpu()])
    log = tmp_path / "kern.log"
    log.write_text(
        "Dec  2 11:49:53 worker4 kernel: [  885.24] NVRM: GPU 0000:0a:00.0: RmInitAdapter "
        "failed! (0x24:0x72:1568)\n"
        "Dec  2 11:49:53 worker4 kernel: [  885.25] NVRM: GPU 0000:0a:00.0: rm_init_adapter "
        "failed, device minor number 5\n"
        "Dec  2 11:50:01 worker4 kernel: [  893.10] NVRM: GPU 0000:3b:00.0: GPU has fallen off "
        "the bus.\n"
        "Dec  2 11:50:02 worker4 kernel: [  894.00] NVRM: GPU 0000:41:00.0: RmInitAdapter: "
        "failed with NV_ERR_RESET_REQUIRED\n"
        "Dec  2 11:51:00 worker4 kernel: [  952.00] NVRM: Xid (PCI:0000:01:00): 109, pid=4242, "
        "name=python3, Ch 00000010, errorString CTX SWITCH TIMEOUT, Info 0x3c009\n"
        "Dec  2 11:52:00 worker4 kernel: [ 1012.00] NVRM: Xid (PCI:0000:01:00): 145, "
        "pid='<unknown>', name=<unknown>, NVLink: RLW error on link 2\n"
        "Dec  2 11:53:00 worker4 kernel: [ 1072.00] NVRM: Xid (PCI:0000:01:00): 203, "
        "pid='<unknown>', name=<unknown>, Fatal error detected on link 3\n"
        "Dec  2 11:54:00 worker4 kernel: [ 1132.00] Out of memory: Killed process 4711 "
        "(python3) total-vm:31450000kB, anon-rss:15800000kB, file-rss:0kB\n",
        encoding="utf-8",
    )
    section = collect(tmp_path, xid_scan=True, kernel_log=str(log))
    by_id = {f.id: f for f in section.findings}
    assert {i: f.severity for i, f in by_id.items()} == {
        "gpu.xid-109:0000:01:00": Status.WARN,
        "gpu.xid-145:0000:01:00": Status.CRIT,
        "gpu.xid-203:0000:01:00": Status.CRIT,
        "gpu.rm-init-adapter-failed:0000:0a:00": Status.CRIT,
        "gpu.fallen-off-bus:0000:3b:00": Status.CRIT,
        "gpu.reset-required:0000:41:00": Status.CRIT,
        "system.oom-kill": Status.WARN,
    }
    adapter = by_id["gpu.rm-init-adapter-failed:0000:0a:00"]
    assert adapter.title == (
        "The NVIDIA driver could not initialise the GPU at 0000:0a:00.0 (RmInitAdapter failed, "
        "0x24:0x72:1568)"
    )
    assert adapter.hint.startswith("Reboot the host")
    assert by_id["gpu.reset-required:0000:41:00"].hint == (
        "Stop the work on it and reset it (nvidia-smi -r -i 0000:41:00.0) or reboot the host."
    )
    assert "a fatal error not in healthcheck's catalogue" in by_id["gpu.xid-203:0000:01:00"].title


def test_a_kernel_log_without_xids(nvml: UseScenario, tmp_path: Path) -> None:
    nvml(gpus=[FakeGpu()])
    section = collect(tmp_path, xid_scan=True, kernel_log=str(FIXTURES / "quiet.log"))
    assert ids(section) == []
    assert section.data["xid"] == {
        "scanned": True,
        "source": str(FIXTURES / "quiet.log"),
        "error": None,
        "count": 0,
        "codes": [],
        "recent": [],
    }


def test_unreadable_kernel_log_is_data_not_a_finding(nvml: UseScenario, tmp_path: Path) -> None:
    nvml(gpus=[FakeGpu()])
    missing = tmp_path / "kern.log"
    section = collect(tmp_path, xid_scan=True, kernel_log=str(missing))
    assert (section.status, section.findings) == (Status.OK, [])
    assert section.data["xid"]["scanned"] is False
    assert section.data["xid"]["error"] == f"{missing}: no such file"
    assert "CAP_SYSLOG" in section.data["xid"]["hint"]


def _path_with(tmp_path: Path, script: str) -> str:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    dmesg = bin_dir / "dmesg"
    dmesg.write_text("#!/bin/sh\n" + script)
    dmesg.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"  # ours first


def test_dmesg_when_kmsg_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xid, "KMSG", str(tmp_path / "no-kmsg"))
    monkeypatch.setenv("PATH", _path_with(tmp_path, f"cat {FIXTURES / 'dmesg.txt'}\n"))
    log = read_kernel_log(timeout=5)
    assert (log.source, log.scanned, log.error) == ("dmesg", 5, None)
    assert log.tried == [f"{tmp_path / 'no-kmsg'}: not present in this container"]
    events = xid.find_xids(log)
    assert [(e.code, e.pid) for e in events] == [(119, 2171), (79, None)]
    boot = psutil.boot_time()
    assert events[1].time == utc_stamp_of(boot + 5061.0)


def test_kernel_log_unreadable_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xid, "KMSG", str(tmp_path / "no-kmsg"))
    monkeypatch.setenv(
        "PATH",
        _path_with(
            tmp_path,
            "echo 'dmesg: read kernel buffer failed: Operation not permitted' >&2\nexit 1\n",
        ),
    )
    log = read_kernel_log(timeout=5)
    assert log.source is None
    assert log.error == (
        f"{tmp_path / 'no-kmsg'}: not present in this container; "
        "dmesg: dmesg: read kernel buffer failed: Operation not permitted"
    )


def test_a_hanging_dmesg_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xid, "KMSG", str(tmp_path / "no-kmsg"))
    monkeypatch.setenv("PATH", _path_with(tmp_path, "exec sleep 30\n"))
    log = read_kernel_log(timeout=0.5)
    assert log.error is not None
    assert log.error.endswith("dmesg: dmesg timed out after 0.5s and was killed")


def test_real_kmsg_when_readable() -> None:
    try:
        os.close(os.open(xid.KMSG, os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        pytest.skip("/dev/kmsg is not readable here")
    log = read_kernel_log()
    assert (log.source, log.error) == (xid.KMSG, None)
    assert log.scanned > 0


# --- CUDA errors in service logs ------------------------------------------------------------


def test_cuda_errors_in_service_logs(nvml: UseScenario, tmp_path: Path) -> None:
    nvml(gpus=[FakeGpu()])
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "visomaster.err.log").write_text(
        "loading model\n"
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB "
        "(GPU 0; 23.65 GiB total capacity)\n"
        "retrying with a smaller batch\n"
    )
    (logs / "jupyter-stderr---supervisor-x1y2z3.log").write_text(
        "RuntimeError: CUDA error: an illegal memory access was encountered\n"
    )
    (logs / "quiet.log").write_text("all good\nCUDA_VISIBLE_DEVICES=0\n")
    section = collect(tmp_path)
    found = {(f.id, f.severity, f.title) for f in section.findings}
    assert found == {
        (
            f"gpu.cuda-oom:{logs / 'visomaster.err.log'}",
            Status.WARN,
            "visomaster: CUDA out of memory in its log",
        ),
        (
            f"gpu.cuda-error:{logs / 'jupyter-stderr---supervisor-x1y2z3.log'}",
            Status.WARN,
            "jupyter: CUDA error in its log",
        ),
    }
    oom = next(f for f in section.findings if f.rule == "cuda-oom")
    assert oom.evidence == (
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB "
        "(GPU 0; 23.65 GiB total capacity)",
    )
    assert "supervisorctl restart visomaster" in oom.hint
    assert sorted(e["service"] for e in section.data["cuda_log_errors"]) == [
        "jupyter",
        "visomaster",
    ]


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/logs/visomaster.log", "visomaster"),
        ("/logs/visomaster.err.log", "visomaster"),
        ("/logs/jupyter-stderr---supervisor-abc123.log", "jupyter"),
        ("/logs/vnc_stdout.log", "vnc"),
        ("/logs/.log", ".log"),
    ],
)
def test_service_name(path: str, service: str) -> None:
    assert service_name(path) == service


# --- the stand-in cannot drift from the real pynvml -----------------------------------------


def test_stand_in_matches_the_installed_pynvml() -> None:
    real = pytest.importorskip("pynvml")
    assert real is not fake
    checked = 0
    for name, value in vars(fake).items():
        if name in fake.TEST_ONLY or (name.startswith("_") and name not in PYNVML_PRIVATE):
            continue
        if isinstance(value, types.ModuleType) or (
            callable(value) and getattr(value, "__module__", fake.__name__) != fake.__name__
        ):
            continue  # imports (sys, string, ctypes types)
        assert hasattr(real, name), f"pynvml has no {name}"
        other = getattr(real, name)
        checked += 1
        if isinstance(value, int):
            assert other == value, name
        elif isinstance(value, ctypes.c_ulonglong):
            assert other.value == value.value, name
        elif isinstance(value, type) and issubclass(value, ctypes.Structure):
            assert _layout(value) == _layout(other), name
        elif isinstance(value, type) and issubclass(value, fake.NVMLError):
            assert issubclass(other, real.NVMLError), name
            assert real.NVMLError(value(None).value).__class__ is other, name
        elif inspect.isfunction(value):
            assert list(inspect.signature(value).parameters) == list(
                inspect.signature(other).parameters
            ), name
    assert checked > 100
    # The constants the collector decodes against are pynvml's.
    for name, bit, _ in CLOCK_EVENT_REASONS:
        assert getattr(real, name) == bit, name
    # And the stand-in's errors behave like pynvml's: the base class returns the subclass.
    err = fake.NVMLError(fake.NVML_ERROR_NOT_SUPPORTED)
    assert type(err) is fake.NVMLError_NotSupported and str(err) == "Not Supported"
    assert type(real.NVMLError(real.NVML_ERROR_NOT_SUPPORTED)) is real.NVMLError_NotSupported


PYNVML_PRIVATE = {"_nvmlCheckReturn", "_extractNVMLErrorsAsClasses"}


def _layout(struct: type) -> list[tuple[str, int]]:
    return [(name, ctypes.sizeof(kind)) for name, kind in struct._fields_]


# --- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"memory_warn_percent": 0}, "'gpu.memory_warn_percent' must be a percentage (0-100]"),
        ({"kernel_log_lines": 0}, "'gpu.kernel_log_lines' must be greater than 0"),
        ({"temperature_margin_c": -1}, "'gpu.temperature_margin_c' must be 0 or more"),
        ({"xid_scan": "yes"}, "'gpu.xid_scan' must be true or false, not a string"),
        ({"margin": 5}, "unknown key 'gpu.margin'"),
    ],
)
def test_gpu_config_errors(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"gpu": table}, where="t.toml")
    assert str(info.value) == f"t.toml: {message}"


# --- end to end -----------------------------------------------------------------------------


# Only the report: no git commit, no docs refresh (their own findings are not this test's).
QUIET_RUN = ("--no-commit", "--no-docs")


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_report_with_the_stand_in(nvml: UseScenario, box: Box) -> None:
    nvml(
        gpus=[
            FakeGpu(temperature=89, reasons=fake.nvmlClocksEventReasonHwThermalSlowdown),
            FakeGpu(bus_id="00000000:02:00.0", errors={"nvmlDeviceGetFanSpeed": NOT_SUPPORTED}),
        ]
    )
    box.only("gpu", extra=f'\n[gpu]\nkernel_log = "{FIXTURES / "dmesg.txt"}"\n')
    result = invoke("run", "--config", str(box.config), *QUIET_RUN)
    assert result.exit_code == 0
    report = json.loads((box.workspace / "system_status.json").read_text())
    gpu = report["sections"]["gpu"]
    assert gpu["status"] == "crit"
    assert [f["id"] for f in report["findings"] if f["collector"] == "gpu"] == [
        "gpu.xid-119:0000:01:00",
        "gpu.xid-79:0000:01:00",
        "gpu.hot:gpu0",
    ]
    text = (box.workspace / "system_status.md").read_text()
    assert "Driver 550.54.15, CUDA 12.4 (the newest CUDA this driver supports)" in text
    assert "### GPU 1: NVIDIA GeForce RTX 4090" in text
    assert "| 119 | 0 | 1 |" in text
    assert "Nothing in the environment (self) asks for a GPU." in text


def _nvml_library_loads() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.mark.skipif(_nvml_library_loads(), reason="this machine has an NVIDIA driver")
def test_real_pynvml_without_a_driver(box: Box, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("NVIDIA_", "CUDA_")):
            monkeypatch.delenv(name)
    box.only("gpu", extra=f'\n[gpu]\nkernel_log = "{FIXTURES / "quiet.log"}"\n')
    result = invoke("run", "--config", str(box.config), *QUIET_RUN)
    assert result.exit_code == 0
    assert result.stderr.startswith("Status UNKNOWN: 0 crit, 0 warn, 1 unknown. Report: ")
    report = json.loads((box.workspace / "system_status.json").read_text())
    gpu = report["sections"]["gpu"]
    assert gpu["status"] == "unknown"
    assert gpu["error"] == "NVML library not found (NVML Shared Library Not Found)"
    (finding,) = [f for f in report["findings"] if f["collector"] == "gpu"]
    assert finding["title"] == "NVML library not found"
    assert finding["hint"].startswith("libnvidia-ml.so.1 is not in this container")
    text = (box.workspace / "system_status.md").read_text()
    assert (
        "Could not collect: NVML library not found (NVML Shared Library Not Found)\n\n"
        "Fix: libnvidia-ml.so.1 is not in this container" in text
    )

    # The rest of a run is unaffected: the same sections and findings with and without gpu.
    steady = ("env", "logs", "ports", "provisioning")
    invoke("run", "--config", str(box.only(*steady, "gpu")), *QUIET_RUN)
    with_gpu = json.loads((box.workspace / "system_status.json").read_text())
    invoke("run", "--config", str(box.only(*steady)), *QUIET_RUN)
    without = json.loads((box.workspace / "system_status.json").read_text())
    assert set(with_gpu["sections"]) - set(without["sections"]) == {"gpu"}
    for name, section in without["sections"].items():
        assert with_gpu["sections"][name]["status"] == section["status"], name
    assert [f for f in with_gpu["findings"] if f["collector"] != "gpu"] == without["findings"]


def test_an_oom_kill_of_days_ago_is_history() -> None:
    from healthcheck.collectors.gpu import kernel_findings

    line = "Out of memory: Killed process 4711 (python3) total-vm:31450000kB"
    stamp = datetime.fromisoformat("2020-01-01T00:00:00+00:00").timestamp()
    days_later, hours_later = stamp + 3 * 86400, stamp + 3600  # the clock is passed in
    assert kernel_findings([("2020-01-01T00:00:00Z", line)], "/dev/kmsg", now=days_later) == []
    (within,) = kernel_findings([("2020-01-01T00:00:00Z", line)], "/dev/kmsg", now=hours_later)
    assert within.id == "system.oom-kill"
    (recent,) = kernel_findings([(None, line)], "kern.log", now=time.time())
    assert recent.id == "system.oom-kill"
