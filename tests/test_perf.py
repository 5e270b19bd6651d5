"""Speed without a change in behaviour: shared scans, the binary test, the CPU sample, git
housekeeping, the fast exit, pynvml left unimported, remembered entry points.

Every test here checks what a user sees (the same tail, the same report, the same exit code)
and that the expensive thing happened once, or not at all; none asserts a time.
"""

from __future__ import annotations

import json
import marshal
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from healthcheck import history as hist
from healthcheck import logtail, plugins, processes
from healthcheck.cli import cli
from healthcheck.collectors import system as system_module
from healthcheck.collectors.gpu import GpuCollector
from healthcheck.collectors.logs import LogsCollector
from healthcheck.collectors.system import SystemCollector
from healthcheck.config import Config
from healthcheck.logtail import read_tail, shared_tail
from healthcheck.redact import Redactor
from healthcheck.runner import run_collectors

BIN = Path(sys.executable).parent

# --- each log's tail: one read, the same Tail ---------------------------------------------


def _log_bodies() -> dict[str, bytes]:
    long_line = b"x" * 300_000
    return {
        "short.log": b"".join(b"12:00 INFO line %d\n" % n for n in range(500)),
        "few.log": b"one\ntwo\n",
        "no-newline.log": b"a\nb\nc",
        "long-last.log": b"head\n" * 50 + long_line + b"\n",
        "long-middle.log": b"head\n" * 50 + long_line + b"\n" + b"after\n" * 30,
        "progress.log": b"start\n" + b"\r".join(b"%d%%" % p for p in range(0, 101, 5)) + b"\n",
        "hole.log": b"\x00" * 70_000 + b"written after a truncate\n",
        "binary.log": bytes(range(256)) * 400,
        "huge-lines.log": (b"y" * 9000 + b"\n") * 300,
        "empty.log": b"",
    }


@pytest.mark.parametrize("lines", [1, 3, 20, 200])
@pytest.mark.parametrize("max_line_bytes", [100, 4096])
def test_a_shared_read_gives_each_caller_exactly_its_own_tail(
    tmp_path: Path, lines: int, max_line_bytes: int
) -> None:
    for name, body in _log_bodies().items():
        path = tmp_path / name
        path.write_bytes(body)
        for window in (lines, 20, 200, 5000):
            with processes.shared_scan():
                shared = shared_tail(str(path), lines, max_line_bytes, window)
            assert shared == read_tail(path, lines, max_line_bytes), (name, window)


def test_a_missing_or_odd_file_is_the_same_error_through_the_shared_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.log")
    for path in (tmp_path / "missing.log", tmp_path, tmp_path / "fifo.log"):
        with processes.shared_scan():
            assert shared_tail(str(path), 20, 4096, 200) == read_tail(path, 20, 4096)


def test_logs_and_gpu_share_one_walk_and_one_read_of_each_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(5):
        (logs / f"svc{i}.log").write_text(f"started {i}\nCUDA error: out of memory\n")
    config = Config()
    config.logs.dirs = [str(logs)]
    config.gpu.kernel_log = str(tmp_path / "kern.log")
    (tmp_path / "kern.log").write_text("nothing here\n")
    walks: list[Any] = []
    reads: list[str] = []
    discover, read_file = logtail.discover_logs, logtail._read_file
    monkeypatch.setattr(logtail, "discover_logs", lambda cfg: walks.append(1) or discover(cfg))
    monkeypatch.setattr(logtail, "_read_file", lambda n, *a: reads.append(n) or read_file(n, *a))
    with processes.shared_scan():
        logs_section, gpu_section = run_collectors([LogsCollector(), GpuCollector()], config)
    assert len(walks) == 1
    service_reads = sorted(r for r in reads if r.startswith(str(logs)))
    assert service_reads == sorted(str(p) for p in logs.iterdir())
    assert len(logs_section.data["files"]) == 5
    assert {e["service"] for e in gpu_section.data["cuda_log_errors"]} == {
        f"svc{i}" for i in range(5)
    }
    # Outside a shared scan each call walks afresh: a collector alone sees the box now.
    LogsCollector().collect(config)
    assert len(walks) == 2


# --- the binary test: counted in C, the same answer ----------------------------------------


def _reference_is_binary(lines: list[bytes]) -> bool:
    """The definition, character by character (as it was first written)."""
    stripped = [line.lstrip(b"\x00") for line in lines]
    if not any(stripped) and any(lines):
        return True
    sample = b"\n".join(stripped).decode("utf-8", "replace")
    if not sample:
        return False
    text_controls = "\t\r\x0b\x0c\x08\x07\x1b\n"
    bad = sum(1 for c in sample if c == "\ufffd" or (c < " " and c not in text_controls))
    return bad / len(sample) > 0.30


def test_the_binary_test_agrees_with_its_definition() -> None:
    import random

    rnd = random.Random(13)
    pieces = [bytes([b]) for b in range(256)] + ["é".encode(), "\ufffd".encode(), b"ok "]
    for _ in range(3000):
        lines = [
            b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 25)))
            for _ in range(rnd.randint(0, 4))
        ]
        assert logtail._is_binary(lines) == _reference_is_binary(lines), lines


def test_the_last_lines_and_the_newline_count_agree_with_rsplit_and_count() -> None:
    """Both ways of finding a window's last lines (one pass of rsplit for a short window,
    a jump from newline to newline for a long one) give rsplit's answer; the newline count
    that skips newline-free blocks gives count's."""
    import random

    rnd = random.Random(7)
    pieces = [b"\n", b"\n\n", b"a", b"short line", b"x" * 40_000, b"\r", b"\0"]
    for _ in range(400):
        data = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 30)))
        if rnd.random() < 0.2:
            data += b"y" * (logtail._SPLIT_IN_ONE_PASS + rnd.randint(-2, 2))
        end = rnd.randint(0, len(data))
        count = rnd.randint(0, 12)
        assert logtail._last_lines(data, end, count) == data[:end].rsplit(b"\n", count)
        start = rnd.randint(0, end)
        assert logtail._newlines(data, start, end) == data.count(b"\n", start, end)


def test_a_log_ending_in_a_5_mb_line_is_text_cut_with_a_marker(tmp_path: Path) -> None:
    path = tmp_path / "dump.log"
    path.write_text("INFO start\n" + "é" * 2_500_000 + "\n")
    tail = read_tail(path, 200)
    assert not tail.binary
    assert tail.truncated_lines == 1
    assert tail.lines[-1].startswith("[line cut: at least ")
    assert read_tail(path, 20, max_line_bytes=6_000_000).lines[-1] == "é" * 2_500_000


# --- the process and socket tables: one read per command -----------------------------------


def test_one_process_scan_per_run_the_redactors_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans: list[int] = []
    real_scan, real_read = processes.scan, processes._FdWalk._read
    monkeypatch.setattr(processes, "scan", lambda: scans.append(1) or real_scan())
    socket_reads: list[int] = []

    def read(walk: Any, pid: int) -> set[str]:
        socket_reads.append(pid)
        return real_read(walk, pid)

    monkeypatch.setattr(processes._FdWalk, "_read", read)
    config = tmp_path / "hc.toml"
    config.write_text(
        f'[paths]\nworkspace = "{tmp_path / "ws"}"\n[env]\nsource = "process:no-such-process"\n'
    )
    only = "system,env,display,ports"
    output = tmp_path / "partial" / "status.md"  # a partial run writes only here
    args = ["run", "--config", str(config), "-q", "--only", only, "--output", str(output)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert scans == [1]
    assert len(socket_reads) == len(set(socket_reads))  # no process's descriptors read twice
    report = json.loads(output.with_suffix(".json").read_text())
    assert report["sections"]["env"]["data"]["source"].startswith("self")


# --- the CPU figure: from the run's start, not a sleep --------------------------------------


def test_the_cpu_figure_spans_the_run_so_far_without_a_sleep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(system_module.gather.time, "sleep", slept.append)
    with processes.shared_scan():
        started = processes.run_started()
        assert started is not None and started.box is not None
        while time.monotonic() < started.at + system_module.CPU_SAMPLE_SECONDS:
            sum(range(10_000))  # a run's start-up: busy, not asleep
        section = SystemCollector().collect(Config())
    assert slept == [0.0]
    assert 0.0 <= section.volatile["cpu_percent"] <= 100.0
    # A collector run on its own still samples for CPU_SAMPLE_SECONDS.
    slept.clear()
    SystemCollector().collect(Config())
    assert len(slept) == 1 and 0.0 <= slept[0] <= system_module.CPU_SAMPLE_SECONDS


def test_cpu_counters_are_psutils() -> None:
    import psutil

    ours, theirs = processes.cpu_times(), psutil.cpu_times()
    assert ours is not None
    assert abs(ours.idle - theirs.idle) < 5.0
    assert system_module.busy_percent(ours, ours) == 0.0


# --- git: a commit of our own index, and housekeeping in the background ---------------------


def git(ws: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ws), *args], check=True, capture_output=True, text=True
    ).stdout


def test_an_operators_commit_between_two_runs_is_kept_in_the_next_one(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    history = hist.History.open(ws, Redactor())
    report = ws / "system_status.md"
    report.write_text("run 1\n")
    first = history.commit([report], "run 1")
    (ws / "notes.md").write_text("the operator's\n")
    git(ws, "add", "notes.md")
    git(ws, "-c", "user.name=op", "-c", "user.email=op@example.com", "commit", "-qm", "notes")
    (ws / "draft.md").write_text("staged, not committed\n")
    git(ws, "add", "draft.md")
    report.write_text("run 2\n")
    second = history.commit([report], "run 2")
    assert second.sha and second.parent != first.sha
    assert git(ws, "ls-tree", "--name-only", "HEAD").split() == ["notes.md", "system_status.md"]
    assert git(ws, "show", "HEAD:system_status.md") == "run 2\n"
    assert git(ws, "status", "--porcelain") == "A  draft.md\n"
    # An unchanged file makes no commit, from the kept index too.
    assert history.commit([report], "run 3").unchanged


def test_a_commit_interrupted_after_its_index_changed_leaves_no_trace(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    history = hist.History.open(ws, Redactor())
    report, docs = ws / "system_status.md", ws / "docs.md"
    report.write_text("run 1\n")
    docs.write_text("docs 1\n")
    history.commit([report, docs], "run 1")
    # A run killed after adding its files to our index, before committing.
    docs.write_text("docs 2, never committed\n")
    env = {**os.environ, "GIT_INDEX_FILE": str(ws / ".git" / "healthcheck-index")}
    subprocess.run(["git", "-C", str(ws), "update-index", "--", "docs.md"], check=True, env=env)
    (ws / ".git" / "healthcheck-index.tree").unlink()
    report.write_text("run 2\n")
    history.commit([report], "only the report")
    assert git(ws, "show", "HEAD:docs.md") == "docs 1\n"


def test_housekeeping_is_due_as_git_would_judge_it() -> None:
    threshold = -(-hist.GC_LOOSE_OBJECTS // 256)  # git: DIV_ROUND_UP(gc.auto, 256)
    assert not hist.gc_due(threshold)
    assert hist.gc_due(threshold + 1)
    assert hist.gc_command()[-3:] == ["gc", "--auto", "--quiet"]


def test_loose_objects_are_packed_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    history = hist.History.open(ws, Redactor())
    report = ws / "system_status.md"
    report.write_text("run 0\n")
    first = history.commit([report], "run 0")
    assert first.sha
    assert "packs: 0" in git(ws, "count-objects", "-v")
    # Past the threshold (here: any loose object in the sampled folder), the next commit
    # starts it; git itself would sample objects/17, so it is asked to pack unconditionally.
    monkeypatch.setattr(hist, "_GC_SAMPLE_DIR", first.sha[:2])
    monkeypatch.setattr(hist, "gc_due", lambda loose: loose > 0)
    monkeypatch.setattr(hist, "gc_command", lambda: ["git", "gc", "--quiet"])
    report.write_text("run 1\n")
    began = time.monotonic()
    assert history.commit([report], "run 1").sha
    deadline = began + 60
    while time.monotonic() < deadline:
        counts = dict(line.split(": ") for line in git(ws, "count-objects", "-v").splitlines())
        if counts["packs"] != "0" and not (ws / ".git" / "gc.pid").exists():
            break
        time.sleep(0.2)
    assert counts["packs"] == "1", counts
    assert git(ws, "rev-list", "--count", "HEAD").strip() == "2"
    subprocess.run(["git", "-C", str(ws), "fsck", "--no-progress"], check=True)


# --- the process exit: all output flushed, the same exit codes ------------------------------


def test_a_run_exits_with_its_code_and_all_of_its_output(tmp_path: Path) -> None:
    config = tmp_path / "hc.toml"
    config.write_text(f'[paths]\nworkspace = "{tmp_path / "ws"}"\n')
    command = [str(BIN / "healthcheck"), "run", "--config", str(config), "--only", "system"]
    result = subprocess.run([*command, "--json"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["schema"] == "healthcheck/report/v1"
    assert result.stderr.startswith("Partial run (system): Status ")
    failing = subprocess.run(
        [*command, "--only", "env", "--fail-on", "warn", "-q"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "HEALTHCHECK_CONFIG"},
    )
    usage = subprocess.run([*command, "--fail-on", "never"], capture_output=True, text=True)
    assert usage.returncode == 2 and "Invalid value for '--fail-on'" in usage.stderr
    assert failing.returncode in (0, 1)


# --- pynvml: not imported only to hear that there is no library ----------------------------


def test_without_the_nvml_library_pynvml_is_not_imported_and_the_failure_is_the_same() -> None:
    code = textwrap.dedent("""
        import json, sys
        from healthcheck.collectors.gpu import read_nvml
        from healthcheck.nvml import failure, library_absent
        absent = library_absent()
        skipped = read_nvml().failure
        imported = "pynvml" in sys.modules
        import pynvml
        try:
            pynvml.nvmlInit()
            real = None
        except Exception as exc:
            real = failure(exc)
        print(json.dumps([absent, imported, repr(skipped), repr(real)]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    absent, imported, skipped, real = json.loads(out.stdout)
    if not absent:
        pytest.skip("this machine has an NVIDIA library: pynvml is imported, as it should be")
    assert not imported
    assert skipped == real


# --- entry points remembered between runs ---------------------------------------------------


def test_entry_points_are_remembered_until_sys_path_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "site"
    dist = site / "hc_perf-0.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hc-perf\nVersion: 0.3\n")
    (dist / "entry_points.txt").write_text("[healthcheck.collectors]\nperf = hc_perf:Perf\n")
    (site / "hc_perf.py").write_text("class Perf:\n    pass\n")
    assert "perf" not in {e.name for e in plugins.installed_entry_points()}
    monkeypatch.syspath_prepend(str(site))
    first = plugins.installed_entry_points()
    again = plugins.installed_entry_points()
    assert [(e.name, e.value, e.dist_name, e.version) for e in first] == [
        (e.name, e.value, e.dist_name, e.version) for e in again
    ]
    (perf,) = [e for e in again if e.name == "perf"]
    assert plugins._origin(perf) == "package hc-perf 0.3"
    assert perf.load().__name__ == "Perf"
    caches = sorted((tmp_path / "cache" / "healthcheck").glob("entry-points-*"))
    assert len(caches) == 2  # one per sys.path
    rows = [marshal.loads(c.read_bytes())[1] for c in caches]
    assert sum(("perf", "hc_perf:Perf", "hc-perf", "0.3") in r for r in rows) == 1
    # A package removed: its folder's time changes, and it is gone.
    shutil.rmtree(dist)
    os.utime(site, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert "perf" not in {e.name for e in plugins.installed_entry_points()}
    sys.modules.pop("hc_perf", None)


# --- the process table from /proc: psutil's rows, read for less -----------------------------


def test_the_proc_scan_reads_what_psutil_reads(tmp_path: Path) -> None:
    long_name = tmp_path / "a-very-long-sleeper-name"
    long_name.symlink_to(shutil.which("sleep") or "/bin/sleep")
    spawned = [
        subprocess.Popen(["sleep", "600"]),
        subprocess.Popen([str(long_name), "600"]),  # comm is cut at 15 characters
        subprocess.Popen(["sh", "-c", "sleep 600; :", "line\r\nbreaks"]),
        subprocess.Popen(["true"]),  # never waited for while we look: a zombie
    ]
    try:
        deadline = time.monotonic() + 10
        while spawned[3].pid not in {r.pid for r in processes.scan() if r.zombie}:
            assert time.monotonic() < deadline, "the zombie never appeared"
            time.sleep(0.05)
        pids = {p.pid for p in spawned}
        for _attempt in range(20):  # a process just started may still be paging itself in
            ours = {r.pid: r for r in processes.scan() if r.pid in pids}
            theirs = {r.pid: r for r in processes.psutil_scan() if r.pid in pids}
            if ours == theirs:
                break
            time.sleep(0.1)
        assert ours == theirs
        assert ours[spawned[1].pid].name == "a-very-long-sleeper-name"
        assert ours[spawned[2].pid].cmdline == ("sh", "-c", "sleep 600; :", "line\nbreaks")
        assert ours[spawned[3].pid].cmdline == () and ours[spawned[3].pid].zombie
    finally:
        for proc in spawned:
            proc.kill()
            proc.wait()


# --- the socket table: listeners and their processes, as psutil sees them ------------------


def test_listeners_and_unix_sockets_are_found_as_psutil_finds_them(tmp_path: Path) -> None:
    import socket

    import psutil

    opened = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((host, 0))
        sock.listen()
        opened.append(sock)
    path = str(tmp_path / "X0")
    own = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    own.bind(f"\0hc-perf-{os.getpid()}")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); "
            "s.listen(); print('ready', flush=True); sys.stdin.read()",
            path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
    try:
        ports = {s.getsockname()[1] for s in opened}
        ours = {
            (c.family, c.ip, c.port, c.pid) for c in processes.tcp_listeners() if c.port in ports
        }
        theirs = {
            (c.family, c.laddr.ip, c.laddr.port, c.pid)
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port in ports
        }
        assert ours == theirs
        assert {pid for *_, pid in ours} == {os.getpid()}
        assert processes.unix_socket_pids({path}) == {holder.pid}
        # Our own socket is not "the server": the report is about the box, not its writer.
        assert processes.unix_socket_pids({f"@hc-perf-{os.getpid()}"}) == set()
        assert processes.unix_socket_pids({str(tmp_path / "none")}) == set()
    finally:
        for sock in [*opened, own]:
            sock.close()
        holder.kill()
        holder.wait()


def test_a_linked_work_tree_is_committed_to_on_its_own_branch(tmp_path: Path) -> None:
    main, linked = tmp_path / "main", tmp_path / "linked"
    subprocess.run(["git", "init", "-q", str(main)], check=True)
    git(
        main,
        "-c",
        "user.name=op",
        "-c",
        "user.email=op@example.com",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "init",
    )
    git(main, "worktree", "add", "-q", "-b", "box", str(linked))
    history = hist.History.open(linked, Redactor())
    report = linked / "system_status.md"
    report.write_text("run 1\n")
    outcome = history.commit([report], "run 1")
    assert outcome.sha and git(main, "rev-parse", "box").strip() == outcome.sha
    assert git(linked, "status", "--porcelain") == ""  # the lock file excluded, index synced
    assert git(main, "log", "--format=%s", "-1").strip() == "init"
