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


@pytest.fixture(scope="session")
def cron_account() -> Iterator[str]:
    """A throwaway system user whose crontab the tests may change with the real `crontab`.

    Never root's: a test box's own crontab must survive the suite. Needs root (`crontab -u`,
    useradd) and Debian's cron package; skipped otherwise.
    """
    import os
    import shutil
    import subprocess

    if os.geteuid() != 0 or not (shutil.which("crontab") and shutil.which("useradd")):
        pytest.skip("needs root, useradd and crontab (apt-get install cron)")
    name = f"hc-cron-{os.getpid()}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        yield name
    finally:
        # The crontab first: once the user is gone, `crontab -u` no longer knows them.
        subprocess.run(["crontab", "-u", name, "-r"], capture_output=True, check=False)
        subprocess.run(["userdel", name], capture_output=True, check=False)


@pytest.fixture
def cron_user(cron_account: str) -> Iterator[str]:
    """`cron_account` with an empty crontab, emptied again afterwards."""
    import subprocess

    subprocess.run(["crontab", "-u", cron_account, "-r"], capture_output=True, check=False)
    yield cron_account
    subprocess.run(["crontab", "-u", cron_account, "-r"], capture_output=True, check=False)
