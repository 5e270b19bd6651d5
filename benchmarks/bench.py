"""Benchmarks: `healthcheck run` against the seed's bash health check, and how its cost scales.

    .venv/bin/python benchmarks/bench.py [--rounds N] [--quick] [--before DIR]

Builds a box like the tests' (a real supervisord running the seed's programs and a few
workers, 20 service logs and a sparse 8 GiB log, the seed's docs file in a git workspace),
then measures, in one run:

- `healthcheck run` (docs update and git commit included) and the bash baseline
  (benchmarks/health_check_baseline.sh, the seed's script): median wall time, median peak
  RSS (the largest process of each command's tree), their ratio;
- the three scale cases, each the same full run with one thing grown, as a ratio to the plain
  run: 10,000 more log files; ten logs that end in a 5 MB line; 5,000 more processes with
  `env.source = "process:supervisord"` (so the environment is found by a process-table scan);
  for the two made of system calls, what the kernel alone charges for them (a bare loop of
  the same stat and /proc reads), so that the rest of their extra cost reads as ours; and
  for the 5,000 processes, what the box charges a program that never reads them (the run's
  imports, timed while they exist): where that is well above 1, part of the case's ratio is
  the machine's, not the run's. The 5,000 processes are read once before the runs, as a
  box's long-lived processes have been (that first read is shown on its own);
- the workspace's git repository after 500 runs (size, loose objects, packs);
- the tail of a 10 MiB log against a sparse 8 GiB one, and the logs collector alone over
  10 and 10,000 files;
- a run that finds the user cache empty (~/.cache/healthcheck: compiled templates, parsed
  catalogue and secret rules, the docs' structure, compiled patterns), as the first run
  after an install does; every other row is a run with the cache the runs before it left.

Every round runs each command once, in turn (bash, plain, 10,000 logs, 5 MB lines, 5,000
processes), so that the load of a shared machine falls on all of them alike; the table gives
medians. Nothing asserts a speed: the figures go into the issue notes and make regressions
visible.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the tests' real supervisord, reused

from healthcheck.collectors.logs import LogsCollector  # noqa: E402
from healthcheck.config import Config  # noqa: E402
from healthcheck.logtail import read_tail  # noqa: E402

from supervisord_env import (  # noqa: E402
    SEED_STATES,
    free_port,
    seed_programs,
    sleeper,
    start_supervisord,
)

# Every module `healthcheck run` imports (theirs included), for the import-cost row.
RUN_MODULES = ("healthcheck.cli", "healthcheck.collectors", "healthcheck.pipeline")
MiB = 1024**2
GiB = 1024**3
# The operator's own document, as the tests keep it.
SEED_DOCS = HERE.parent / "tests" / "fixtures" / "docs_vast-ai-environment.md"
BASELINE = HERE / "health_check_baseline.sh"
BIN = Path(sys.executable).parent
SIMULATED_RUNS = 500
EXTRA_PROCESSES = 5000
MANY_LOGS = 10_000
LONG_LINE = 5 * 1000 * 1000


# Another version's package (--before), run by the same commands with it first on PYTHONPATH.
BEFORE: Path | None = None
# CPU seconds (user + system) of every command's whole tree, by command, in the order run:
# on a shared machine other people's load stretches wall time far more than CPU time.
CPU: dict[str, list[float]] = {}


# Starts the command from a small process of its own and reports what the kernel says of it:
# wall seconds, peak RSS (KiB) and CPU seconds of its tree, and its exit status. A command
# started straight from this (large) process would be charged this process's own peak RSS:
# Linux carries the high-water mark of the image a child was forked from across its exec.
LAUNCHER = """
import os, sys, time
report = int(sys.argv[1])
os.set_inheritable(report, False)
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
os.write(report, b"%r %d %r %d" % (
    wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)
))
"""


def timed_child(
    args: list[str], env: dict[str, str] | None = None, label: str = ""
) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command, from the kernel's rusage of its tree.

    With a `label`, the CPU time of its tree (itself and every child it waited for) is
    kept under that label in CPU.
    """
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-S", "-c", LAUNCHER, str(write_end), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as report:
        figures = report.read().split()
    err = proc.stderr.read().decode() if proc.stderr else ""
    proc.wait()
    if proc.stderr:
        proc.stderr.close()
    if len(figures) != 4:
        raise SystemExit(f"{args[:3]} could not be measured: {err}")
    wall, max_rss, cpu, code = (
        float(figures[0]),
        int(figures[1]),
        float(figures[2]),
        int(figures[3]),
    )
    if label:
        # wait4's rusage covers the command and the children it waited for (git, bash's
        # tail and sed); not a git gc started in the background (once in ~150 runs).
        CPU.setdefault(label, []).append(cpu)
    if code not in (0, 1):
        raise SystemExit(f"{args[:3]} failed: {err}")
    return wall, max_rss / 1024  # KiB on Linux


def sparse_log(path: Path, size: int) -> None:
    """A log of `size` bytes that costs no disk; its last lines are real, as in a real log."""
    tail = b"".join(b"line %d near the end of a big log\n" % n for n in range(200))
    with path.open("wb") as handle:
        handle.truncate(size - len(tail))
        handle.seek(0, os.SEEK_END)
        handle.write(tail)


def write_logs(logs: Path, count: int, lines: int = 2000) -> None:
    for i in range(count):
        (logs / f"service{i}.log").write_text(
            "".join(f"12:00:{n % 60:02d} INFO line {n} of service {i}\n" for n in range(lines))
        )


def write_long_line_logs(logs: Path, count: int) -> None:
    """Logs whose last line is LONG_LINE bytes of text (a JSON blob or a progress dump)."""
    line = ("step=1 loss=0.25 " * (LONG_LINE // 17 + 1))[:LONG_LINE]
    for i in range(count):
        (logs / f"long{i}.log").write_text(
            "".join(f"12:00:00 INFO line {n} of long {i}\n" for n in range(100)) + line + "\n"
        )


def write_config(root: Path, name: str, serverurl: str, dirs: list[Path], extra: str = "") -> Path:
    """A config of its own, with a workspace of its own holding a fresh copy of the docs."""
    workspace = root / f"ws-{name}"
    workspace.mkdir()
    shutil.copyfile(SEED_DOCS, workspace / "docs_vast-ai-environment.md")
    config = root / f"{name}.toml"
    config.write_text(
        f"""
[paths]
workspace = "{workspace}"

[logs]
dirs = {json.dumps([str(d) for d in dirs])}

[supervisor]
serverurl = "{serverurl}"
{extra}
""",
        encoding="utf-8",
    )
    return config


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextmanager
def extra_processes(count: int) -> Iterator[None]:
    """`count` sleeping processes, forked from one small parent so they cost little memory."""
    code = (
        "import os, signal, sys\n"
        f"for _ in range({count}):\n"
        "    if os.fork() == 0:\n"
        "        signal.pause()\n"
        "        os._exit(0)\n"
        "sys.stdout.write('ready\\n'); sys.stdout.flush(); signal.pause()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-S", "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    try:
        assert parent.stdout is not None
        parent.stdout.readline()
        yield
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 30  # let the kernel reap them before the next command
        while time.monotonic() < deadline and _process_count() > count // 2:
            time.sleep(0.1)


# What the kernel alone charges for the two scale cases that are made of system calls: a
# bare loop of the calls a run cannot do without, timed inside a small child. The rest of
# each case's cost over the plain run is ours.
WALK_FLOOR = """
import os, sys, time
start = time.perf_counter()
with os.scandir(sys.argv[1]) as entries:
    for entry in entries:
        entry.stat()
print(time.perf_counter() - start)
"""
PROC_FLOOR = """
import os, time
start = time.perf_counter()
for name in os.listdir("/proc"):
    if name.isdigit():
        for leaf in ("stat", "cmdline"):
            try:
                fd = os.open(f"/proc/{name}/{leaf}", os.O_RDONLY)
            except OSError:
                continue
            try:
                os.read(fd, 4096)
            except OSError:
                pass
            os.close(fd)
print(time.perf_counter() - start)
"""


def kernel_floor(code: str, *args: str) -> float:
    """Seconds the bare loop in `code` took, as it measured itself."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, *args], capture_output=True, text=True, check=True
    )
    return float(out.stdout)


def _process_count() -> int:
    return sum(1 for entry in os.listdir("/proc") if entry.isdigit())


# --- the full run against the bash baseline, and the scale cases ----------------------------


def bench_full_run(rounds: int, root: Path) -> dict[str, Any]:
    logs = root / "logs"  # supervisord writes its programs' logs here too
    logs.mkdir()
    write_logs(logs, 20)
    sparse_log(logs / "huge.log", 8 * GiB)
    many = root / "many-logs"
    many.mkdir()
    write_logs(many, MANY_LOGS, lines=30)
    long = root / "long-lines"
    long.mkdir()
    write_long_line_logs(long, 10)
    programs = seed_programs(free_port())
    for i in range(3):
        programs[f"worker{i}"] = sleeper()
    with start_supervisord(root, programs) as sv:
        sv.wait_for_states({**SEED_STATES, **{f"worker{i}": "RUNNING" for i in range(3)}})

        def command(name: str, dirs: list[Path], extra: str = "") -> list[str]:
            config = write_config(root, name, sv.url, dirs, extra)
            return [str(BIN / "healthcheck"), "run", "--config", str(config), "-q"]

        healthcheck = command("plain", [logs])
        many_logs = command("many-logs", [logs, many])
        long_lines = command("long-lines", [logs, long])
        processes = command("processes", [logs], '[env]\nsource = "process:supervisord"\n')
        workspace = root / "ws-plain"
        env = {
            **os.environ,
            "WORKSPACE": str(workspace),
            "LOGS": str(logs),
            "SUPERVISORCTL": f"{BIN / 'supervisorctl'} -c {sv.conf_path}",
        }
        baseline = ["bash", str(BASELINE)]
        for first in (healthcheck, many_logs, long_lines, processes, baseline):
            timed_child(first, env)  # git init, .pyc files, page cache
        # Where the time goes: the interpreter alone, the interpreter with every module a
        # run imports, and a run that neither refreshes the docs nor commits.
        python = [sys.executable, "-c", "pass"]
        imports = [sys.executable, "-c", f"import {', '.join(RUN_MODULES)}"]
        bare = [*healthcheck, "--no-docs", "--no-commit"]
        # A run that finds nothing kept in the user cache (the first after an install or an
        # upgrade): compiled templates, the catalogue's and secret rules' parse, the docs'
        # structure and the patterns' compiled code are all made afresh.
        cold_env = {**os.environ}
        sh: list[tuple[float, float]] = []
        hc: list[tuple[float, float]] = []
        py, imp, nd, ml, ll, pr, cold = [], [], [], [], [], [], []
        walk_floor: list[float] = []
        proc_floor: list[float] = []
        first_read: list[float] = []
        crowded: list[float] = []
        old: dict[str, list[float]] = {}
        old_env = {**os.environ, "PYTHONPATH": str(BEFORE)} if BEFORE else {}

        def before(name: str, args: list[str], rss: bool = False) -> None:
            """The same command run by the code in --before (right after this code's)."""
            if BEFORE:
                wall, peak = timed_child(args, old_env, f"{name}_before")
                old.setdefault(name, []).append(wall)
                if rss:
                    old.setdefault("rss", []).append(peak)

        if BEFORE:
            for warm_up in (healthcheck, many_logs, long_lines, processes):
                timed_child(warm_up, old_env)  # .pyc files, the docs it rewrites
        for round_number in range(rounds):
            # With --before, the two versions take turns going first (the one that runs
            # first meets a page cache and a box the other has not yet disturbed).
            swap = BEFORE is not None and round_number % 2 == 1

            def both(
                name: str, args: list[str], rss: bool = False, swap: bool = swap
            ) -> tuple[float, float]:
                if swap:
                    before(name, args, rss)
                measured = timed_child(args, label=name)
                if not swap:
                    before(name, args, rss)
                return measured

            sh.append(timed_child(baseline, env, "bash"))
            hc.append(both("healthcheck", healthcheck, rss=True))
            ml.append(both("many_logs", many_logs)[0])
            walk_floor.append(kernel_floor(WALK_FLOOR, str(many)))
            ll.append(both("long_lines", long_lines)[0])
            with extra_processes(EXTRA_PROCESSES):
                # The first reader of new processes' /proc files pays for their entries
                # (30 ms or more for 5,000): timed, and then the runs meet the processes as
                # a run meets a box's long-lived ones, and as the plain run meets its own
                # (each of them read before). Without it, whichever version ran first with
                # --before paid that first read for the other.
                first_read.append(kernel_floor(PROC_FLOOR))
                pr.append(both("processes", processes)[0])
                proc_floor.append(kernel_floor(PROC_FLOOR))
                # The same imports as `imp`, which never look at a process: what the box
                # itself charges any program while the processes exist (here a kernel
                # thread, kdamond, takes most of a CPU while 5,000 processes exist).
                crowded.append(timed_child(imports)[0])
            py.append(timed_child(python)[0])
            imp.append(timed_child(imports)[0])
            nd.append(timed_child(bare)[0])
            with tempfile.TemporaryDirectory(prefix="hc-cold-cache-") as empty:
                cold_env["XDG_CACHE_HOME"] = empty
                cold.append(timed_child(healthcheck, cold_env)[0])
        report = json.loads((workspace / "system_status.json").read_text(encoding="utf-8"))
        slowest = max(report["sections"].items(), key=lambda item: item[1]["duration_ms"])
    return {
        "slowest": f"{slowest[0]} {slowest[1]['duration_ms']} ms",
        "python": median(py),
        "imports": median(imp),
        "bare": median(nd),
        "cold": median(cold),
        "hc_wall": median([w for w, _ in hc]),
        "hc_rss": median([r for _, r in hc]),
        "sh_wall": median([w for w, _ in sh]),
        "sh_rss": median([r for _, r in sh]),
        "many_logs": median(ml),
        "long_lines": median(ll),
        "processes": median(pr),
        "walk_floor": median(walk_floor),
        "proc_floor": median(proc_floor),
        "first_read": median(first_read),
        "crowded_imports": median(crowded),
        "before": {name: median(values) for name, values in old.items()},
    }


# --- the git repository after many runs -----------------------------------------------------


def bench_git(root: Path) -> dict[str, Any]:
    """The workspace repository after SIMULATED_RUNS runs' commits.

    A real run costs most of a second, so the runs are simulated: the last plain run's
    reports are committed SIMULATED_RUNS times through healthcheck's own History.commit (the
    code a run commits with, whatever housekeeping it does), each time with the report's
    time and its volatile figures changed as they change between two real runs.
    """
    from healthcheck import history as hist
    from healthcheck.redact import Redactor

    source = root / "full" / "ws-plain"
    workspace = root / "git-ws"
    workspace.mkdir()
    names = ["system_status.md", "system_status.json", "docs_vast-ai-environment.md"]
    texts = {n: (source / n).read_text(encoding="utf-8") for n in names}
    history = hist.History.open(workspace, Redactor.from_config(Config(), []))
    start = time.perf_counter()
    for run in range(SIMULATED_RUNS):
        stamp = f"2026-01-01 {run // 3600:02d}:{run // 60 % 60:02d}:{run % 60:02d}"
        for name, text in texts.items():
            (workspace / name).write_text(
                f"{text}\n<!-- run {run} at {stamp}, load {run % 97 / 10:.2f} -->\n",
                encoding="utf-8",
            )
        history.commit([workspace / n for n in names], f"healthcheck: run {run}\n")
    per_commit = (time.perf_counter() - start) / SIMULATED_RUNS
    git_dir = workspace / ".git"
    deadline = time.monotonic() + 120  # a background `git gc` started by the last commits
    while (git_dir / "gc.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    counts = dict(
        line.split(": ", 1)
        for line in subprocess.run(
            ["git", "-C", str(workspace), "count-objects", "-v"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    )
    size = sum(f.stat().st_size for f in git_dir.rglob("*") if f.is_file())
    return {
        "git_size": size / MiB,
        "git_loose": int(counts["count"]),
        "git_packs": int(counts["packs"]),
        "git_commit_ms": per_commit * 1000,
    }


# --- the parts alone ------------------------------------------------------------------------


def per_call_ms(func: Callable[[], object], calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return median(times)


def bench_tail(rounds: int, root: Path) -> dict[str, float]:
    ten = root / "ten-mib.log"
    sparse_log(ten, 10 * MiB)
    huge = root / "eight-gib.log"
    sparse_log(huge, 8 * GiB)
    calls = rounds * 50
    return {
        "tail_10m": per_call_ms(lambda: read_tail(ten, 20), calls),
        "tail_8g": per_call_ms(lambda: read_tail(huge, 20), calls),
    }


def bench_files(rounds: int, root: Path) -> dict[str, float]:
    results = {}
    for count in (10, MANY_LOGS):
        logs = root / f"files-{count}"
        logs.mkdir()
        write_logs(logs, count, lines=30)
        config = Config()
        config.logs.dirs = [str(logs)]
        collector = LogsCollector()
        collector.collect(config)  # page cache
        results[f"files_{count}"] = per_call_ms(
            lambda c=config, lc=collector: lc.collect(c), rounds
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 rounds, for a smoke test")
    parser.add_argument(
        "--before",
        metavar="DIR",
        help="a folder holding another version's healthcheck package (e.g. `git archive "
        "main healthcheck | tar -x -C DIR`): its runs alternate with this code's, and a "
        "second table compares them",
    )
    args = parser.parse_args()
    global BEFORE
    rounds = 3 if args.quick else args.rounds
    # Measure the package as an install runs it: `pip install .` byte-compiles it, but an
    # editable checkout under PYTHONDONTWRITEBYTECODE (as this machine sets) recompiles every
    # module on every run, about 100 ms that no installed box pays.
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(HERE.parent / "healthcheck")], check=True
    )
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        root = Path(tmp)
        if args.before:
            # Both versions are run the same way, each from a copy of its package first on
            # PYTHONPATH: this checkout's editable install is found through another import
            # path than a folder on PYTHONPATH, and that alone moved a run by 10-20 ms.
            BEFORE = root / "before"
            shutil.copytree(Path(args.before) / "healthcheck", BEFORE / "healthcheck")
            now = root / "now"
            shutil.copytree(
                HERE.parent / "healthcheck",
                now / "healthcheck",
                ignore=shutil.ignore_patterns("__pycache__"),
            )
            for version in (BEFORE, now):
                subprocess.run([sys.executable, "-m", "compileall", "-q", str(version)], check=True)
            os.environ["PYTHONPATH"] = str(now)  # every command below that runs this code
        (root / "full").mkdir()
        full = bench_full_run(rounds, root / "full")
        git = bench_git(root)
        tail = bench_tail(rounds, root)
        files = bench_files(rounds, root)

    plain = full["hc_wall"]
    hc_cpu, sh_cpu = median(CPU["healthcheck"]), median(CPU["bash"])

    def cpu_ratio(label: str) -> str:
        return f"{median(CPU[label]) / hc_cpu:.2f}"

    rows = [
        ("`healthcheck run` (docs + git commit), wall", f"{plain * 1000:.0f} ms"),
        ("bash baseline (seed's health_check.sh), wall", f"{full['sh_wall'] * 1000:.0f} ms"),
        ("**ratio healthcheck / bash** (goal <= 1.5)", f"**{plain / full['sh_wall']:.2f}**"),
        ("`healthcheck run`, CPU time (user + system, its tree)", f"{hc_cpu * 1000:.0f} ms"),
        ("bash baseline, CPU time (user + system, its tree)", f"{sh_cpu * 1000:.0f} ms"),
        ("ratio healthcheck / bash in CPU time", f"{hc_cpu / sh_cpu:.2f}"),
        ("`healthcheck run` peak RSS (goal <= 45 MiB)", f"{full['hc_rss']:.1f} MiB"),
        ("bash baseline peak RSS", f"{full['sh_rss']:.1f} MiB"),
        ("slowest collector in the last plain run", full["slowest"]),
        ("of which: Python start-up alone", f"{full['python'] * 1000:.0f} ms"),
        ("of which: start-up and every import of a run", f"{full['imports'] * 1000:.0f} ms"),
        ("`healthcheck run --no-docs --no-commit`, wall", f"{full['bare'] * 1000:.0f} ms"),
        (
            "`healthcheck run` with an empty user cache (first run after an install), wall",
            f"{full['cold'] * 1000:.0f} ms",
        ),
        (f"run with {MANY_LOGS:,} more log files", f"{full['many_logs'] * 1000:.0f} ms"),
        ("**ratio to the plain run** (goal <= 1.3)", f"**{full['many_logs'] / plain:.2f}**"),
        ("ratio to the plain run in CPU time", cpu_ratio("many_logs")),
        (
            f"of its extra, the kernel alone: a bare stat of the {MANY_LOGS:,} files",
            f"{full['walk_floor'] * 1000:.0f} ms of {(full['many_logs'] - plain) * 1000:.0f} ms",
        ),
        ("run with ten logs ending in a 5 MB line", f"{full['long_lines'] * 1000:.0f} ms"),
        ("**ratio to the plain run** (goal <= 1.3)", f"**{full['long_lines'] / plain:.2f}**"),
        ("ratio to the plain run in CPU time", cpu_ratio("long_lines")),
        (
            f"run with {EXTRA_PROCESSES:,} more processes, env.source = process:supervisord",
            f"{full['processes'] * 1000:.0f} ms",
        ),
        ("**ratio to the plain run** (goal <= 1.3)", f"**{full['processes'] / plain:.2f}**"),
        ("ratio to the plain run in CPU time", cpu_ratio("processes")),
        (
            "of its extra, the kernel alone: a bare read of every process's stat and cmdline",
            f"{full['proc_floor'] * 1000:.0f} ms of {(full['processes'] - plain) * 1000:.0f} ms",
        ),
        (
            "the same bare read by the first reader of the new processes",
            f"{full['first_read'] * 1000:.0f} ms",
        ),
        (
            "the box's own toll: every import of a run (no process read) while they exist",
            f"{full['crowded_imports'] * 1000:.0f} ms against {full['imports'] * 1000:.0f} ms "
            f"({full['crowded_imports'] / full['imports']:.2f}x)",
        ),
        (
            f"git repository after {SIMULATED_RUNS} run commits (simulated)",
            f"{git['git_size']:.1f} MiB, {git['git_loose']} loose objects, "
            f"{git['git_packs']} packs",
        ),
        ("one run's commit (History.commit)", f"{git['git_commit_ms']:.0f} ms"),
        ("tail of a 10 MiB log", f"{tail['tail_10m']:.3f} ms"),
        ("tail of a sparse 8 GiB log", f"{tail['tail_8g']:.3f} ms"),
        ("logs collector alone, 10 files", f"{files['files_10']:.1f} ms"),
        (
            f"logs collector alone, {MANY_LOGS:,} files (50 read)",
            f"{files[f'files_{MANY_LOGS}']:.1f} ms",
        ),
    ]
    print(f"| measure ({rounds} rounds, median) | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    if BEFORE:
        print_before(full, rounds, args.before)


def print_before(full: dict[str, Any], rounds: int, before: str) -> None:
    """This code against the code in --before, measured in the same rounds, turn about."""
    old = full["before"]
    sh_wall, sh_cpu = full["sh_wall"], median(CPU["bash"])

    def cpu(label: str) -> float:
        return median(CPU[label])

    pairs = [
        ("`healthcheck run`, wall", full["hc_wall"], old["healthcheck"], "ms"),
        ("`healthcheck run`, CPU", cpu("healthcheck"), cpu("healthcheck_before"), "ms"),
        ("ratio to bash, wall", full["hc_wall"] / sh_wall, old["healthcheck"] / sh_wall, ""),
        (
            "ratio to bash, CPU",
            cpu("healthcheck") / sh_cpu,
            cpu("healthcheck_before") / sh_cpu,
            "",
        ),
        ("peak RSS (MiB)", full["hc_rss"], old["rss"], "MiB"),
    ]
    for name in ("many_logs", "long_lines", "processes"):
        pairs.append(
            (
                f"{name}: ratio to the plain run, wall",
                full[name] / full["hc_wall"],
                old[name] / old["healthcheck"],
                "",
            )
        )
        pairs.append(
            (
                f"{name}: ratio to the plain run, CPU",
                cpu(name) / cpu("healthcheck"),
                cpu(f"{name}_before") / cpu("healthcheck_before"),
                "",
            )
        )
    print(f"\n| this code against --before {before} ({rounds} rounds, median) | now | before |")
    print("|---|---|---|")
    for label, now, then, unit in pairs:
        scale = 1000 if unit == "ms" else 1
        digits = 0 if unit == "ms" else (1 if unit == "MiB" else 2)
        print(f"| {label} | {now * scale:.{digits}f} {unit} | {then * scale:.{digits}f} {unit} |")


if __name__ == "__main__":
    main()
