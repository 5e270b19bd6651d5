"""sample_reports/ is what scripts/sample_reports.py writes today, volatile fields aside.

When this fails after a change to the reports, regenerate the samples and review the diff:
    .venv/bin/python scripts/sample_reports.py
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from xserver import have

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_reports"
FILES = [
    "healthy/system_status.md",
    "healthy/system_status.json",
    "faulty/system_status.md",
    "faulty/system_status.json",
    "faulty/context.md",
    "faulty/docs_vast-ai-environment.md",
    "faulty/improvement_log.md",
    "faulty/diff.txt",
]
# Values that differ from one run to the next (or one machine to the next) by nature.
VOLATILE_KEYS = {
    "pid",
    "ppid",
    "parent_pid",
    "started",
    "stopped",
    "mtime",
    "generated_at",
    "duration_ms",
    "volatile",
    "uptime_s",
    "other_listeners",
    "other_listeners_left_out",
    "host",
    "version",
    "source",
    "env_source",
    "lock",
    "date",
    "added",
    "resolved_at",
}
TEXT_RULES = [
    (r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z| UTC|\+00:00)?", "<time>"),
    (r"<time>,\d{3}", "<time>"),  # supervisord's own log: milliseconds
    (r"\d{4}-\d\d-\d\d", "<day>"),
    (
        r"(?:January|February|March|April|May|June|July|August|September|October|November|"
        r"December) \d{1,2}, \d{4}",
        "<date>",
    ),
    (r"\b[A-Z][a-z]{2} \d{1,2} \d\d:\d\d [AP]M\b", "<when>"),  # supervisord's descriptions
    (r"\bpid[ =:]*\d+", "pid <n>"),
    (r"\b(pids?|PID)\b[^\n]{0,3}\d+", "pid <n>"),
    (r"\(\d+\)", "(<n>)"),
    (r"\| \d{2,7} \| <time> \|", "| <n> | <time> |"),
    (r"\b[0-9a-f]{7,40}\b", "<sha>"),
    (r"supervisord \d+(?:\.\d+)+", "supervisord <version>"),
    (r"about \d+ tokens", "about <n> tokens"),
    (r"\d+ ms\b", "<n> ms"),
    (r"(pid <n> → )\d+", r"\1<n>"),
]


def _hosts() -> tuple[str, ...]:
    """This machine's name, and the one the samples were generated on."""
    names = {socket.gethostname()}
    with contextlib.suppress(OSError, ValueError, KeyError):
        names.add(json.loads((SAMPLES / "healthy" / "system_status.json").read_text())["host"])
    return tuple(sorted(n for n in names if n))


HOSTS = _hosts()


def normalize_text(text: str) -> str:
    text = text.split("## Volatile figures", 1)[0]
    text = re.sub(r"/tmp/sv\w+/", "/tmp/sv<dir>/", text)  # before the host: "svab1vm2"
    # The test programs' interpreter lives in the checkout, wherever it was cloned.
    text = re.sub(r"[^\s'\"=]*/\.venv/bin/", "<checkout>/.venv/bin/", text)
    for host in HOSTS:
        text = re.sub(rf"\b{re.escape(host)}\b", "<host>", text)
    lines = [line for line in text.splitlines() if not line.startswith("Other listeners:")]
    text = "\n".join(lines)
    for pattern, replacement in TEXT_RULES:
        text = re.sub(pattern, replacement, text)
    return text


def normalize_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "<volatile>" if k in VOLATILE_KEYS else normalize_json(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [normalize_json(v) for v in value]
    if isinstance(value, str):
        return normalize_text(value)
    return value


def normalized(path: Path) -> Any:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    return normalize_json(json.loads(text)) if path.suffix == ".json" else normalize_text(text)


def load_generator() -> Any:
    spec = importlib.util.spec_from_file_location(
        "sample_reports", ROOT / "scripts" / "sample_reports.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not (have("Xvfb") and have("icewm")), reason="needs Debian's xvfb and icewm")
def test_sample_reports_are_current(tmp_path: Path) -> None:
    generator = load_generator()
    ports = generator.stand_in_ports()
    number = generator.generate(tmp_path, ports)
    # Another X server held the samples' display, or another program one of their ports:
    # read the outputs as if it had not.
    for name in FILES:
        path = tmp_path / name
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        if number != generator.FIRST_DISPLAY:
            at_display = rf'(?:(?<=[:X])|(?<="number": )){number}\b'  # ":88", "X88-lock"
            text = re.sub(at_display, str(generator.FIRST_DISPLAY), text)
        for service, port in ports.items():
            if port != generator.PORTS[service]:
                text = re.sub(rf"\b{port}\b", str(generator.PORTS[service]), text)
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
    stale = [name for name in FILES if normalized(tmp_path / name) != normalized(SAMPLES / name)]
    assert stale == [], f"regenerate: .venv/bin/python scripts/sample_reports.py ({stale})"


def test_samples_hold_the_seed_failures_and_no_secret() -> None:
    faulty = json.loads((SAMPLES / "faulty" / "system_status.json").read_text())
    ids = {f["id"] for f in faulty["findings"]}
    assert {
        "supervisor.sshd-privsep-dir:sshd",
        "supervisor.missing-python-module:visomaster",
        "supervisor.command-not-found:filebrowser",
        "supervisor.display-unset:icewm",
    } <= ids
    everything = "".join(p.read_text(errors="replace") for p in SAMPLES.rglob("*") if p.is_file())
    for fake_secret in (
        "hc-sample-jupyter-token-not-a-real-one-0000",
        "hc-sample-vnc-password",
        "hf_SampleTokenNotRealAbCdEfGhIjKlMnOpQrStUv",
        "hf_PastedTokenNotRealAbCdEfGhIjKlMnOpQr",
    ):
        assert fake_secret not in everything
    context = (SAMPLES / "faulty" / "context.md").read_text()
    for finding in faulty["findings"]:
        if finding["severity"] == "crit":
            assert finding["title"] in context
