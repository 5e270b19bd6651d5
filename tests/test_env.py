"""Reading another process's environment, and the env collector, against real processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from healthcheck.collectors.env import EnvCollector
from healthcheck.config import parse_config
from healthcheck.environ import find_process, parse_environ, read_environment
from healthcheck.model import Status

# Distinct per test run (and short: the kernel keeps 15 characters of a process name).
TAG = str(os.getpid() % 100000)

PLANTED = {
    "PATH": "/usr/bin:/bin",
    "CUDA_VERSION": "12.4.1",
    "VNC_PW": "planted-secret",  # masked later by the redactor, not by the collector
    "JUPYTER_DIR": "/",
    "WITH_EQUALS": "a=b=c",
    "UNICODE": "grüße",
    "UNRELATED": "x",
}


@contextmanager
def running(args: list[str], env: dict[str, str], executable: str | None = None) -> Iterator[int]:
    """A real child process for the duration; killed and reaped afterwards."""
    proc = subprocess.Popen(args, env=env, executable=executable)
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def named_sleep(tmp_path: Path, name: str) -> str:
    """A copy of sleep whose process name is `name`."""
    binary = tmp_path / name
    shutil.copy("/bin/sleep", binary)
    return str(binary)


def test_parse_environ_is_lenient() -> None:
    raw = b"A=1\0B=x=y\0\0NOEQUALS\0=nameless\0C=\xff\0A=2\0EMPTY=\0"
    assert parse_environ(raw) == {"A": "1", "B": "x=y", "C": "\ufffd", "EMPTY": ""}


def test_self_is_our_own_environment() -> None:
    snapshot = read_environment("self")
    assert snapshot.variables == dict(os.environ)
    assert (snapshot.source_requested, snapshot.source_used) == ("self", "self")
    assert snapshot.fallback_reason is None and not snapshot.fell_back


def test_process_by_exact_name(tmp_path: Path) -> None:
    name = f"hcenv{TAG}"
    with running([named_sleep(tmp_path, name), "30"], PLANTED) as pid:
        snapshot = read_environment(f"process:{name}")
    assert snapshot.variables == PLANTED
    assert snapshot.source_requested == f"process:{name}"
    assert snapshot.source_used == f"process:{name} (pid {pid})"
    assert snapshot.fallback_reason is None


def test_process_by_argv0_basename(tmp_path: Path) -> None:
    # The process is called "sleep"; only its argv[0] carries the name.
    name = f"hcargv{TAG}"
    with running([f"/opt/fake/{name}", "30"], PLANTED, executable="/bin/sleep") as pid:
        assert psutil.Process(pid).name() == "sleep"
        assert find_process(name) == pid
        assert read_environment(f"process:{name}").variables == PLANTED


def test_process_by_interpreted_script(tmp_path: Path) -> None:
    # `python3 /usr/bin/supervisord` is how a Python daemon often shows up.
    script = tmp_path / f"hcdaemon{TAG}.py"
    script.write_text("import time\ntime.sleep(30)\n")
    with running([sys.executable, "-u", str(script)], PLANTED) as pid:
        assert find_process(script.name) == pid


def test_exact_name_wins_then_the_oldest(tmp_path: Path) -> None:
    name = f"hcold{TAG}"
    binary = named_sleep(tmp_path, name)
    with (
        running([f"/x/{name}", "30"], {}, executable="/bin/sleep"),  # a command-line match
        running([binary, "30"], {"WHICH": "older"}) as older,
        running([binary, "30"], {"WHICH": "newer"}),
    ):
        assert find_process(name) == older
        assert read_environment(f"process:{name}").variables == {"WHICH": "older"}


def test_never_picks_ourselves() -> None:
    assert find_process(psutil.Process().name()) != os.getpid()


def test_zombie_falls_back_with_the_reason(tmp_path: Path) -> None:
    name = f"hczomb{TAG}"
    child = subprocess.Popen([named_sleep(tmp_path, name), "0"], env=PLANTED)
    try:
        # Exited but not waited for: a zombie, whose environment the kernel shows empty.
        deadline = time.monotonic() + 10
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the child never exited"
            time.sleep(0.02)
        snapshot = read_environment(f"process:{name}")
    finally:
        child.wait()
    assert snapshot.source_used == "self"
    assert snapshot.variables == dict(os.environ)
    assert snapshot.fallback_reason == (
        f"pid {child.pid} is a zombie: it has exited and its environment is gone"
    )


def test_pid1_is_read_or_the_reason_is_given() -> None:
    snapshot = read_environment("pid1")
    try:
        with open("/proc/1/environ", "rb") as handle:
            direct: dict[str, str] | None = parse_environ(handle.read()) or None
    except PermissionError:  # even root, in some sandboxes (another user namespace)
        direct = None
    if direct is not None:
        assert snapshot.variables == direct
        assert (snapshot.source_used, snapshot.fallback_reason) == ("pid1 (/proc/1/environ)", None)
    else:
        assert snapshot.source_used == "self"
        assert snapshot.variables == dict(os.environ)
        assert snapshot.fallback_reason in (
            "permission denied reading /proc/1/environ",
            "/proc/1/environ is empty (pid 1 runs with an empty environment)",
        )


def test_kernel_thread_falls_back() -> None:
    # kthreadd (pid 2) exists wherever /proc shows the host's processes; not in a pid namespace.
    kthreads = [
        p.pid
        for p in psutil.process_iter(["cmdline", "ppid"], ad_value=None)
        if p.pid == 2 or (p.info["ppid"] == 2 and not p.info["cmdline"])
    ]
    if not kthreads:
        pytest.skip("no kernel threads visible (pid namespace)")
    pid = kthreads[0]
    name = psutil.Process(pid).name()
    snapshot = read_environment(f"process:{name}")
    assert snapshot.source_used == "self"
    if find_process(name) == pid:
        assert snapshot.fallback_reason == f"pid {pid} is a kernel thread: it has no environment"


def test_unknown_source_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown environment source 'pid2'"):
        read_environment("pid2")


def test_collector_reports_matching_variables_sorted_and_unmasked(tmp_path: Path) -> None:
    name = f"hccol{TAG}"
    config = parse_config({"env": {"source": f"process:{name}", "include": "CUDA|VNC|JUPYTER"}})
    with running([named_sleep(tmp_path, name), "30"], PLANTED) as pid:
        section = EnvCollector().collect(config)
    assert section.name == "env"
    assert section.status is Status.OK
    assert section.findings == []
    assert section.data == {
        "source": f"process:{name} (pid {pid})",
        "include": "CUDA|VNC|JUPYTER",
        "count": 3,
        "variables": {"CUDA_VERSION": "12.4.1", "JUPYTER_DIR": "/", "VNC_PW": "planted-secret"},
    }
    assert list(section.data["variables"]) == sorted(section.data["variables"])
    assert section.volatile == {}


def test_collector_falls_back_with_an_unknown_finding() -> None:
    source = f"process:hc-none-{TAG}"
    config = parse_config({"env": {"source": source, "include": "^PATH$"}})
    section = EnvCollector().collect(config)
    assert section.status is Status.UNKNOWN
    assert section.data["source"] == "self"
    assert section.data["variables"] == {"PATH": os.environ["PATH"]}
    reason = f"no process named 'hc-none-{TAG}' is running"
    assert section.data["fallback_reason"] == reason
    (finding,) = section.findings
    assert (finding.id, finding.severity) == (f"env.source-unreadable:{source}", Status.UNKNOWN)
    assert finding.title == (
        f"Could not read the environment of {source}; showing healthcheck's own instead"
    )
    assert finding.detail.startswith(reason + ". Under cron")
    assert 'source = "process:supervisord"' in finding.hint


def test_collector_from_self_has_no_finding() -> None:
    config = parse_config({"env": {"source": "self", "include": "^PATH$"}})
    section = EnvCollector().collect(config)
    assert (section.status, section.findings) == (Status.OK, [])
    assert section.data["source"] == "self"
    assert section.data["variables"] == {"PATH": os.environ["PATH"]}


def test_supervisord_is_the_boxs_own_not_the_oldest_on_the_host(tmp_path: Path) -> None:
    """Two supervisords on one host: process:supervisord reads the one serving this box's
    serverurl, though another box's started first."""
    from supervisord_env import sleeper, start_supervisord

    with (
        start_supervisord(tmp_path / "other", {"w": sleeper()}, env={"WHICH": "other"}),
        start_supervisord(tmp_path / "ours", {"w": sleeper()}, env={"WHICH": "ours"}) as ours,
    ):
        snapshot = read_environment("process:supervisord", ours.url)
        assert snapshot.variables["WHICH"] == "ours"
        assert snapshot.source_used == f"process:supervisord (pid {ours.pid})"


def test_one_interpreter_list_names_the_script_for_env_source_and_the_display() -> None:
    from healthcheck.collectors.display import ProcInfo
    from healthcheck.processes import interpreted_script

    assert interpreted_script(("/usr/bin/python3.11", "-u", "/usr/bin/websockify")) == (
        "/usr/bin/websockify"
    )
    assert interpreted_script(("python3", "-m", "websockify", "6901")) == "websockify"
    assert interpreted_script(("node", "/opt/novnc/server.js")) == "/opt/novnc/server.js"
    assert interpreted_script(("/usr/bin/Xvfb", ":1")) is None
    assert interpreted_script(()) is None
    # The display collector and env.source's process:NAME read a command line the same way.
    node = ProcInfo(pid=7, name="node", cmdline=("node", "/opt/novnc/utils/novnc_proxy.js"))
    assert node.program_names == {"node", "novnc_proxy.js"}


def test_a_run_reads_the_containers_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """env, gpu, the rules' probe and the redactor each ask; inside a run one read answers."""
    from healthcheck import environ
    from healthcheck.processes import shared_scan

    reads: list[int] = []
    real = environ.environ_of

    def counted(pid: int) -> dict[str, str]:
        reads.append(pid)
        return real(pid)

    monkeypatch.setattr(environ, "environ_of", counted)
    with shared_scan():
        first = read_environment("pid1", None)
        assert read_environment("pid1", None) is first
    assert len(reads) == 1
    read_environment("pid1", None)  # outside a run: the box now
    assert len(reads) == 2
