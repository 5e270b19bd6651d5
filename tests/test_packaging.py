"""A non-editable install works from any directory: templates ship inside the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_carries_the_templates_and_runs_from_elsewhere(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "--disable-pip-version-check",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("healthcheck-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "healthcheck/report_templates/report.md.j2" in names
    assert "healthcheck/report_templates/sections/_generic.md.j2" in names
    # The known-failure catalogue is data in the wheel, not code.
    assert "healthcheck/knowledge/failures/kernel.toml" in names
    # A collector's package carries its template and its known failures.
    assert "healthcheck/collectors/supervisor/failures/cuda.toml" in names
    assert "healthcheck/collectors/gpu/failures/xid.toml" in names
    assert "healthcheck/collectors/gpu/gpu.md.j2" in names
    assert "healthcheck/collectors/healthcheck/healthcheck.md.j2" in names
    # Every collector package is in the wheel (pyproject.toml lists them one by one).
    for package in (REPO / "healthcheck" / "collectors").glob("*/__init__.py"):
        assert f"healthcheck/collectors/{package.parent.name}/__init__.py" in names

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("HEALTHCHECK_CONFIG", None)
    where = subprocess.run(
        [sys.executable, "-c", "import healthcheck; print(healthcheck.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(target))  # the installed copy, not the checkout
    entries = subprocess.run(
        [
            sys.executable,
            "-c",
            "from healthcheck.catalogue import catalogue; print(len(catalogue().xids()))",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(entries.stdout) >= 30  # read from the installed wheel's data files
    workspace = tmp_path / "ws"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "healthcheck",
            "run",
            "--workspace",
            str(workspace),
            "--only",
            "system,provisioning",
            "--json",
            "--output",
            str(workspace / "partial.md"),
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schema"] == "healthcheck/report/v1"
    assert (workspace / "partial.md").read_text().startswith("# System status: ")
