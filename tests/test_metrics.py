"""Prometheus metrics from real reports: the sample reports (real runs of the test box), the
gpu collector over the stand-in pynvml, and the node_exporter textfile a real `healthcheck run`
writes. Parsed with prometheus_client's own parser; checked by promtool where it is installed
(CI installs it: Debian's prometheus package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from healthcheck.cli import cli
from healthcheck.collectors.gpu import GpuCollector
from healthcheck.config import parse_config
from healthcheck.metrics import exposition
from healthcheck.redact import Redactor
from healthcheck.report import Report

import fake_pynvml as fake
from fake_pynvml import FakeGpu, Scenario
from secrets_corpus import FAKE_SECRETS
from support import Box

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_reports"
XID_LOG = Path(__file__).parent / "fixtures" / "xid" / "kern.log"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)"
)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample as {(name, sorted labels): value}, via prometheus_client's parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(parsed: Samples, metric: str, /, **labels: str) -> float:
    return parsed[(metric, tuple(sorted(labels.items())))]


def names(parsed: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in parsed if n == name]


def sample(box: str) -> dict[str, Any]:
    return json.loads((SAMPLES / box / "system_status.json").read_text())


def promtool_check_metrics(text: bytes) -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_faulty_box_metrics() -> None:
    parsed = samples(exposition(sample("faulty"), Redactor()).decode())
    assert value(parsed, "healthcheck_status") == 3
    assert {
        s: value(parsed, "healthcheck_findings", severity=s)
        for s in ("crit", "warn", "unknown", "ok")
    } == {"crit": 4, "warn": 2, "unknown": 1, "ok": 0}
    assert {(f["id"], f["severity"]) for f in names(parsed, "healthcheck_finding")} == {
        (f["id"], f["severity"]) for f in sample("faulty")["findings"]
    }
    programs = {
        p["program"]: value(parsed, "healthcheck_program_up", **p)
        for p in names(parsed, "healthcheck_program_up")
    }
    assert programs == {
        "filebrowser": 0,
        "icewm": 0,
        "jupyter": 0,
        "novnc": 1,
        "provision": 0,
        "sshd": 0,
        "visomaster": 0,
    }
    assert value(parsed, "healthcheck_port_listening", service="novnc", port="16901") == 1
    assert value(parsed, "healthcheck_port_listening", service="ssh", port="12022") == 0
    assert value(parsed, "healthcheck_supervisor_up") == 1
    assert value(parsed, "healthcheck_x_display_up", display=":87") == 1
    assert (
        value(parsed, "healthcheck_x_window_manager_up", display=":87", window_manager="icewm") == 0
    )
    assert value(parsed, "healthcheck_gpu_nvml_up") == 0
    generated = datetime.strptime(sample("faulty")["generated_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert value(parsed, "healthcheck_last_run_timestamp_seconds") == (
        generated.replace(tzinfo=timezone.utc).timestamp()
    )
    sections = sample("faulty")["sections"]
    assert value(parsed, "healthcheck_last_run_duration_seconds") == (
        max(s["duration_ms"] for s in sections.values()) / 1000
    )
    for name, section in sections.items():
        assert value(
            parsed, "healthcheck_collector_duration_seconds", collector=name
        ) == pytest.approx(section["duration_ms"] / 1000)
    assert value(parsed, "healthcheck_collector_status", collector="supervisor") == 3
    assert value(parsed, "healthcheck_collector_status", collector="gpu") == 1
    # Without NVML no per-GPU series at all: absent, not zero.
    assert not names(parsed, "healthcheck_gpu_temperature_celsius")


def test_healthy_box_has_every_program_up_and_no_crit() -> None:
    parsed = samples(exposition(sample("healthy"), Redactor()).decode())
    programs = names(parsed, "healthcheck_program_up")
    assert programs and all(value(parsed, "healthcheck_program_up", **p) == 1 for p in programs)
    assert all(
        value(parsed, "healthcheck_port_listening", **p) == 1
        for p in names(parsed, "healthcheck_port_listening")
    )
    assert value(parsed, "healthcheck_findings", severity="crit") == 0
    assert value(parsed, "healthcheck_status") == 2  # a missing provisioning script: warn


@pytest.fixture
def nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("NVIDIA_", "CUDA_")):
            monkeypatch.delenv(name)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    yield
    fake.use(Scenario())


def gpu_report(tmp_path: Path, *gpus: FakeGpu) -> dict[str, Any]:
    fake.use(Scenario(gpus=list(gpus)))
    config = parse_config(
        {
            "env": {"source": "self"},
            "logs": {"dirs": [str(tmp_path / "logs")]},
            "gpu": {"kernel_log": str(XID_LOG)},
        }
    )
    section = GpuCollector().collect(config)
    return json.loads(json.dumps(Report.build([section], host="gpu-box").to_dict()))


def test_gpu_metrics_from_nvml(nvml: None, tmp_path: Path) -> None:
    hot = FakeGpu(
        temperature=88,
        slowdown=90,
        memory_used=20 << 30,
        power_mw=300_000,
        reasons=fake.nvmlClocksEventReasonSwThermalSlowdown | fake.nvmlClocksEventReasonSwPowerCap,
        ecc_volatile=2,
        ecc_aggregate=5,
        remapped=(1, 2, 1, 0),
    )
    # The second board cannot tell its temperature or power: those series are absent.
    mute = FakeGpu(
        uuid="GPU-00000000-0000-4000-8000-000000000001",
        bus_id="00000000:02:00.0",
        errors={
            "nvmlDeviceGetTemperature": fake.NVML_ERROR_NOT_SUPPORTED,
            "nvmlDeviceGetPowerUsage": fake.NVML_ERROR_NOT_SUPPORTED,
        },
    )
    text = exposition(gpu_report(tmp_path, hot, mute), Redactor()).decode()
    parsed = samples(text)
    assert value(parsed, "healthcheck_gpu_nvml_up") == 1
    assert (
        value(
            parsed,
            "healthcheck_gpu_info",
            gpu="0",
            name="NVIDIA GeForce RTX 4090",
            uuid="GPU-6f3c1a2b-0000-4000-8000-000000000000",
            pci_bus_id="00000000:01:00.0",
        )
        == 1
    )
    assert value(parsed, "healthcheck_gpu_temperature_celsius", gpu="0") == 88
    assert value(parsed, "healthcheck_gpu_slowdown_temperature_celsius", gpu="0") == 90
    assert value(parsed, "healthcheck_gpu_memory_used_bytes", gpu="0") == 20 << 30
    assert value(parsed, "healthcheck_gpu_memory_total_bytes", gpu="0") == 24 << 30
    assert value(parsed, "healthcheck_gpu_power_draw_watts", gpu="0") == 300
    assert value(parsed, "healthcheck_gpu_power_limit_watts", gpu="0") == 450
    assert value(parsed, "healthcheck_gpu_utilization_ratio", gpu="0") == 0.03
    reasons = {
        labels["reason"]: value(parsed, "healthcheck_gpu_clock_event_reason", **labels)
        for labels in names(parsed, "healthcheck_gpu_clock_event_reason")
        if labels["gpu"] == "0"
    }
    assert {r for r, v in reasons.items() if v == 1} == {"sw_thermal_slowdown", "sw_power_cap"}
    assert "hw_thermal_slowdown" in reasons and reasons["gpu_idle"] == 0
    assert value(parsed, "healthcheck_gpu_ecc_uncorrected_errors", gpu="0", counter="volatile") == 2
    assert (
        value(parsed, "healthcheck_gpu_ecc_uncorrected_errors", gpu="0", counter="aggregate") == 5
    )
    assert value(parsed, "healthcheck_gpu_remapped_rows", gpu="0", kind="uncorrectable") == 2
    assert value(parsed, "healthcheck_gpu_row_remap_pending", gpu="0") == 1
    assert value(parsed, "healthcheck_gpu_row_remap_failed", gpu="0") == 0
    assert value(parsed, "healthcheck_gpu_retired_pages_pending", gpu="0") == 0
    # Not supported on GPU 1: absent rather than a made-up zero.
    assert ("healthcheck_gpu_temperature_celsius", (("gpu", "1"),)) not in parsed
    assert ("healthcheck_gpu_power_draw_watts", (("gpu", "1"),)) not in parsed
    assert value(parsed, "healthcheck_gpu_memory_total_bytes", gpu="1") == 24 << 30
    # The kernel log fixture's Xids, counted by code and device.
    assert value(parsed, "healthcheck_gpu_xid_scanned") == 1
    assert value(parsed, "healthcheck_gpu_xid_events", code="79", pci="0000:02:00") == 1
    assert value(parsed, "healthcheck_gpu_xid_events", code="13", pci="0000:01:00") == 2
    ids = {f["id"] for f in names(parsed, "healthcheck_finding")}
    assert "gpu.hot:gpu0" in ids
    if PROMTOOL:
        promtool_check_metrics(text.encode())


@needs_promtool
@pytest.mark.parametrize("box", ["faulty", "healthy"])
def test_promtool_accepts_the_exposition(box: str) -> None:
    promtool_check_metrics(exposition(sample(box), Redactor()))


def test_label_values_pass_through_the_redactor() -> None:
    data = sample("faulty")
    token = FAKE_SECRETS["github-classic"]
    data["findings"][0]["id"] = f"provisioning.missing:/opt/setup?token={token}"
    data["sections"]["supervisor"]["data"]["programs"][0]["fullname"] = f"app-{token}"
    text = exposition(data, Redactor()).decode()
    assert token not in text and "FAKE" not in text
    parsed = samples(text)  # still valid exposition once masked
    assert any("redacted" in f["id"] for f in names(parsed, "healthcheck_finding"))


@needs_promtool
def test_alert_rules_pass_promtool() -> None:
    rules = ROOT / "contrib" / "prometheus" / "healthcheck-rules.yml"
    for args in (["check", "rules", str(rules)], ["test", "rules", "rules_test.yml"]):
        result = subprocess.run(
            [str(PROMTOOL), *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).parent / "fixtures" / "prometheus",
        )
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_scrape_config_example_passes_promtool(tmp_path: Path) -> None:
    for name in ("prometheus.yml", "healthcheck-rules.yml"):
        shutil.copy(ROOT / "contrib" / "prometheus" / name, tmp_path / name)
    (tmp_path / "healthcheck.token").write_text("a-token-only-prometheus-reads\n")
    result = subprocess.run(
        [str(PROMTOOL), "check", "config", "prometheus.yml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- [outputs] prometheus: the node_exporter textfile of a real run -------------------------


def run(box: Box) -> Any:
    return CliRunner().invoke(cli, ["run", "--config", str(box.config), "--no-commit"])


def test_run_writes_the_textfile_atomically(box: Box) -> None:
    textfile_dir = box.root / "textfile_collector"
    textfile_dir.mkdir()
    target = textfile_dir / "healthcheck.prom"
    box.write_config(f'[outputs]\nprometheus = "{target}"\n')
    result = run(box)
    assert result.exit_code == 0, result.output
    report = json.loads((box.workspace / "system_status.json").read_text())
    text = target.read_text()
    parsed = samples(text)
    assert (
        value(parsed, "healthcheck_status")
        == {"ok": 0, "unknown": 1, "warn": 2, "crit": 3}[report["status"]]
    )
    assert value(parsed, "healthcheck_port_listening", service="web", port=str(box.port)) == 1
    assert (
        value(parsed, "healthcheck_port_listening", service="ghost", port=str(box.closed_port)) == 0
    )
    # Only the .prom file: its temporary (a name node_exporter ignores) is gone.
    assert sorted(p.name for p in textfile_dir.iterdir()) == ["healthcheck.prom"]
    if PROMTOOL:
        promtool_check_metrics(text.encode())
    # A second run replaces it by rename: a reader holding the old file keeps the old inode.
    inode = target.stat().st_ino
    assert run(box).exit_code == 0
    assert target.stat().st_ino != inode


def test_a_partial_run_leaves_the_textfile_alone(box: Box) -> None:
    target = box.root / "healthcheck.prom"
    box.write_config(f'[outputs]\nprometheus = "{target}"\n')
    assert run(box).exit_code == 0
    whole = target.read_bytes()
    for selection in (["--only", "ports"], ["--skip", "logs"]):
        result = CliRunner().invoke(
            cli, ["run", "--config", str(box.config), "--no-commit", *selection]
        )
        assert result.exit_code == 0, result.output
        assert target.read_bytes() == whole


def test_relative_textfile_path_is_in_the_workspace(box: Box) -> None:
    box.write_config('[outputs]\nprometheus = "metrics/healthcheck.prom"\n')
    (box.workspace / "metrics").mkdir(parents=True)
    assert run(box).exit_code == 0
    assert (box.workspace / "metrics" / "healthcheck.prom").is_file()


def test_unwritable_textfile_is_a_warning_not_a_failed_run(box: Box) -> None:
    target = box.root / "no-such-dir" / "healthcheck.prom"
    box.write_config(f'[outputs]\nprometheus = "{target}"\n')
    result = run(box)
    assert result.exit_code == 0
    assert (box.workspace / "system_status.json").is_file()
    assert f"healthcheck: warning: Prometheus textfile not written: cannot write {target}" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '[outputs]\nprometheus = "/var/lib/node_exporter/healthcheck.txt"\n',
            "'outputs.prometheus' must name a file ending in .prom, "
            "not '/var/lib/node_exporter/healthcheck.txt'",
        ),
        ("[outputs]\nprometheus = 1\n", "'outputs.prometheus' must be a string, not a number"),
        ("[outputs]\nprom = 'x.prom'\n", "unknown key 'outputs.prom'"),
        (
            '[serve]\ntoken = "short"\n',
            "'serve.token' must be at least 16 printable characters without spaces",
        ),
        ("[serve]\nmin_interval = -1\n", "'serve.min_interval' must be 0 or more"),
    ],
)
def test_outputs_and_serve_config_errors(box: Box, extra: str, message: str) -> None:
    box.write_config(extra)
    result = run(box)
    assert result.exit_code == 2
    assert result.stderr == f"healthcheck: config error: {box.config}: {message}\n"


def test_sample_metrics_are_current() -> None:
    """sample_reports/faulty/metrics.prom is what /metrics serves for the faulty sample."""
    current = exposition(sample("faulty"), Redactor())
    assert (SAMPLES / "faulty" / "metrics.prom").read_bytes() == current, (
        "regenerate: .venv/bin/python scripts/sample_serve.py"
    )


def test_supervisord_unreachable_is_supervisor_up_0_and_no_programs() -> None:
    data = sample("faulty")
    section = data["sections"]["supervisor"]
    section["data"].update(via=None, programs=[], state=None)
    parsed = samples(exposition(data, Redactor()).decode())
    assert value(parsed, "healthcheck_supervisor_up") == 0
    assert not names(parsed, "healthcheck_program_up")


def test_readme_documents_every_metric() -> None:
    """The README's table names each metric metrics.py can emit, and no other."""
    import re

    source = (ROOT / "healthcheck" / "metrics.py").read_text()
    emitted = {f"healthcheck_{m}" for m in re.findall(r'out\.add\(\s*"([a-z0-9_]+)"', source)}
    emitted.add("healthcheck_report_available")  # serve's own, when it cannot read a report
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| metric | labels | value |") :]
    table = table[: table.index("\n\n")]
    documented = set(re.findall(r"`(healthcheck_[a-z0-9_]+)`", table))
    assert documented == emitted
