"""Shared fixtures."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Box, free_port


@pytest.fixture
def box(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Box]:
    monkeypatch.delenv("HEALTHCHECK_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "jupyter.log").write_text(
        "[I 10:00] Jupyter Server is running at http://0.0.0.0:8080/\n"
    )
    script = tmp_path / "provisioning_script.sh"
    script.write_text("#!/bin/bash\necho provisioning\n")
    script.chmod(0o755)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    b = Box(
        root=tmp_path,
        workspace=tmp_path / "ws",
        logs=logs,
        config=tmp_path / "healthcheck.toml",
        script=script,
        missing_script=tmp_path / "src" / "provisioning_script.sh",
        port=int(listener.getsockname()[1]),
        closed_port=free_port(),
    )
    b.write_config()
    try:
        yield b
    finally:
        listener.close()
