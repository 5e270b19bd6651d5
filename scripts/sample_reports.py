"""Regenerate sample_reports/: real outputs of healthcheck on the test environment.

    .venv/bin/python scripts/sample_reports.py [OUT_DIR]   (default: sample_reports/)

Builds the box the tests build, from real parts: a supervisord running the seed's services,
a real Xvfb and icewm, a provisioning script, the seed's docs file in a git workspace. First
the healthy box is checked, then the faulty one (sshd exiting 255, VisoMaster without
PySide6, a missing filebrowser binary, icewm without DISPLAY, Jupyter stopped), with an
improvement-log entry in between; every output of the second run is kept: report, JSON,
the AI context, the refreshed docs file, the improvement log and `healthcheck diff`.

The `system` and `healthcheck` collectors are left out: they describe the machine that
generates the samples (its disks, kernel, cron daemon), not the environment, and would make
the samples differ from machine to machine. tests/test_sample_reports.py regenerates them and
checks that sample_reports/ is current, volatile fields aside.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' real supervisord and X server helpers

from healthcheck.cli import cli  # noqa: E402

from supervisord_env import (  # noqa: E402
    SEED_STATES,
    http_server,
    real_icewm,
    seed_programs,
    start_supervisord,
)
from xserver import free_display_number, start_xvfb  # noqa: E402

SEED_DOCS = ROOT / "tests" / "fixtures" / "docs_vast-ai-environment.md"
# A fixed place and fixed ports, so that paths and numbers in the samples stay put.
BOX = Path("/tmp/healthcheck-samples")
PORTS = {"ssh": 12022, "jupyter": 18080, "novnc": 16901, "filebrowser": 18585}
FIRST_DISPLAY = 87
SKIP = "system,healthcheck"
# The container's environment as supervisord passes it on; the secrets are obviously fake.
CONTAINER_ENV = {
    # A container's PATH, not this checkout's virtualenv (the samples must not name it).
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "JUPYTER_TOKEN": "hc-sample-jupyter-token-not-a-real-one-0000",
    "VNC_PASSWORD": "hc-sample-vnc-password",
    "VNC_PASSWORDLESS": "false",
    "PYTHON_VERSION": "3.10.14",
    "HF_TOKEN": "hf_SampleTokenNotRealAbCdEfGhIjKlMnOpQrStUv",
}


def free(port: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise SystemExit(f"port {port} is in use: the samples need it free") from None
    return port


def stand_in_ports() -> dict[str, int]:
    """The samples' ports where free, else a free one in their place: the test maps the
    stand-ins back (as it does a taken display), so a host that happens to run something on
    18080 still checks the samples. The script itself insists on the real ones."""
    chosen = {}
    for name, port in PORTS.items():
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                probe.bind(("127.0.0.1", 0))
            chosen[name] = int(probe.getsockname()[1])
    return chosen


def healthy_programs(display: str, ports: dict[str, int]) -> dict[str, Any]:
    return {
        "sshd": http_server(ports["ssh"]),  # a stand-in that listens where sshd would
        "jupyter": http_server(ports["jupyter"]),
        "novnc": http_server(ports["novnc"]),
        "filebrowser": http_server(ports["filebrowser"]),
        "icewm": real_icewm(BOX / "home", display),
    }


def faulty_programs(ports: dict[str, int]) -> dict[str, Any]:
    programs = seed_programs(ports["novnc"])
    programs["icewm"] = real_icewm(BOX / "home", None)
    return programs


def write_config(url: str, display: str, logs: Path, chosen: dict[str, int]) -> Path:
    ports = "\n".join(f"{name} = {port}" for name, port in chosen.items())
    config = BOX / "healthcheck.toml"
    config.write_text(
        f"""[paths]
workspace = "{BOX / "workspace"}"

[logs]
dirs = ["{logs}"]
tail_lines = 8

[env]
source = "process:supervisord"

[supervisor]
serverurl = "{url}"

[display]
display = "{display}"

[services.ports]
{ports}

[provisioning]
scripts = ["{BOX / "provisioning_script.sh"}", "{BOX / "missing_provisioning_script.sh"}"]

[collectors]
disable = ["system", "healthcheck"]
""",
        encoding="utf-8",
    )
    return config


def settle_logs(logs: Path) -> None:
    """Programs that start together write their logs in the same instant, in no set order;
    give each a distinct time (by name) so the newest-first order is the same every time."""
    for offset, path in enumerate(sorted(logs.glob("*.log"), reverse=True)):
        os.utime(path, (1_764_000_000 + offset, 1_764_000_000 + offset))


def invoke(*args: str, stdin: str | None = None) -> str:
    env = {"HEALTHCHECK_CONFIG": str(BOX / "healthcheck.toml")}
    result = CliRunner().invoke(cli, list(args), input=stdin, env=env)
    if result.exit_code != 0:
        raise SystemExit(f"healthcheck {' '.join(args)} exited {result.exit_code}: {result.output}")
    return result.stdout


@contextmanager
def box() -> Iterator[Path]:
    """The box's fixed directory, fresh: workspace with the seed docs, a provisioning script."""
    shutil.rmtree(BOX, ignore_errors=True)
    (BOX / "workspace").mkdir(parents=True)
    shutil.copyfile(SEED_DOCS, BOX / "workspace" / "docs_vast-ai-environment.md")
    script = BOX / "provisioning_script.sh"
    script.write_text("#!/bin/bash\nset -e\npip install -r /src/requirements.txt\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.utime(script, (1_764_000_000, 1_764_000_000))  # a fixed "last modified"
    try:
        yield BOX
    finally:
        shutil.rmtree(BOX, ignore_errors=True)


def generate(out: Path, ports: dict[str, int] | None = None) -> int:
    """Build both boxes, run healthcheck on them, and write every output under `out`.

    Returns the X display number used: FIRST_DISPLAY unless something else holds it.
    `ports`: stand-ins for PORTS (the test's); by default PORTS, which must be free."""
    if ports is None:
        ports = {name: free(port) for name, port in PORTS.items()}
    workspace = BOX / "workspace"
    with one_at_a_time(), box(), ExitStack() as stack:
        xvfb = stack.enter_context(start_xvfb(free_display_number(FIRST_DISPLAY)))
        healthy = healthy_programs(xvfb.display, ports)
        with start_supervisord(BOX / "supervisor", healthy, env=CONTAINER_ENV) as sv:
            sv.wait_for_states({name: "RUNNING" for name in healthy}, timeout=30)
            write_config(sv.url, xvfb.display, sv.log_dir, ports)
            settle_logs(sv.log_dir)
            invoke("run")
        save(workspace, out / "healthy", ["system_status.md", "system_status.json"])

        invoke(
            "log",
            "add",
            "--source",
            "assistant",
            "--finding",
            "supervisor.sshd-privsep-dir:sshd",
            "-",
            stdin="Create /run/sshd before sshd starts: add `mkdir -p /run/sshd` to the "
            "container start-up script (the assistant's answer; a pasted token "
            "hf_PastedTokenNotRealAbCdEfGhIjKlMnOpQr is masked).\n",
        )
        # The same supervisord directory (and so the same log directory), as on a real box;
        # its own log starts afresh, so the faulty box's report shows only the faulty start.
        # The programs' logs too: the healthy box's stand-ins wrote into the same files.
        (BOX / "supervisor" / "supervisord.log").unlink(missing_ok=True)
        for log in (BOX / "supervisor" / "logs").glob("*.log"):
            log.unlink()
        with start_supervisord(BOX / "supervisor", faulty_programs(ports), env=CONTAINER_ENV) as sv:
            sv.wait_for_states(SEED_STATES, timeout=30)
            write_config(sv.url, xvfb.display, sv.log_dir, ports)
            settle_logs(sv.log_dir)
            invoke("run")
            context = invoke("context", "--last", "--budget", "1500")
        diff = invoke("diff")
        save(
            workspace,
            out / "faulty",
            [
                "system_status.md",
                "system_status.json",
                "docs_vast-ai-environment.md",
                "improvement_log.md",
            ],
        )
        (out / "faulty" / "context.md").write_text(context, encoding="utf-8")
        (out / "faulty" / "diff.txt").write_text(diff, encoding="utf-8")
        return xvfb.number


@contextmanager
def one_at_a_time() -> Iterator[None]:
    """BOX is one fixed path (the samples name it): two generations at once on one host
    (two checkouts' tests) would build their boxes into each other, so the second waits."""
    import fcntl

    with open(f"{BOX}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save(workspace: Path, target: Path, names: list[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        data = (workspace / name).read_bytes()
        if name.endswith(".json"):  # stable key order on disk, as the tool writes it
            json.loads(data)
        (target / name).write_bytes(data)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "sample_reports"
    number = generate(out)
    # What `healthcheck serve` makes of the faulty report: its metrics and a screenshot.
    sys.path.insert(0, str(ROOT / "scripts"))
    import sample_serve

    sample_serve.write(out)
    if number != FIRST_DISPLAY:
        print(f"warning: display :{FIRST_DISPLAY} was taken, :{number} used", file=sys.stderr)
    print(f"sample reports written to {out}")


if __name__ == "__main__":
    main()
