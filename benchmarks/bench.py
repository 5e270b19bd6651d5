"""Benchmarks: `healthcheck run` against the seed's bash health check, and how its cost scales.

    .venv/bin/python benchmarks/bench.py [--rounds N] [--quick]

Builds a box like the tests' (a real supervisord running the seed's programs and a few
workers, 20 service logs and a sparse 8 GiB log, the seed's docs file in a git workspace),
then measures, in one run:

- `healthcheck run` (docs update and git commit included) and the bash baseline
  (benchmarks/health_check_baseline.sh, the seed's script), alternating, several rounds:
  median wall time, median peak RSS (the largest process of each command's tree), ratio;
- the tail of a 10 MiB log against a sparse 8 GiB one;
- the logs collector over 10 and 10,000 log files;
- `healthcheck run` with 200 and 5,000 extra processes on the box.

Prints a Markdown table of medians. Nothing asserts a speed: the figures go into the issue
notes and make regressions visible.
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


def timed_child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command, from the kernel's rusage of its tree."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{args[:3]} failed: {err}")
    if proc.stderr:
        proc.stderr.close()
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


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


def write_config(root: Path, serverurl: str, logs: Path, extra: str = "") -> Path:
    config = root / "healthcheck.toml"
    config.write_text(
        f"""
[paths]
workspace = "{root / "ws"}"

[logs]
dirs = ["{logs}"]

[supervisor]
serverurl = "{serverurl}"
{extra}
""",
        encoding="utf-8",
    )
    return config


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- the full run against the bash baseline -------------------------------------------------


def bench_full_run(rounds: int, root: Path) -> dict[str, Any]:
    logs = root / "logs"  # supervisord writes its programs' logs here too
    logs.mkdir()
    write_logs(logs, 20)
    sparse_log(logs / "huge.log", 8 * GiB)
    programs = seed_programs(free_port())
    for i in range(3):
        programs[f"worker{i}"] = sleeper()
    workspace = root / "ws"
    workspace.mkdir()
    with start_supervisord(root, programs) as sv:
        sv.wait_for_states({**SEED_STATES, **{f"worker{i}": "RUNNING" for i in range(3)}})
        config = write_config(root, sv.url, logs)
        healthcheck = [str(BIN / "healthcheck"), "run", "--config", str(config), "-q"]
        env = {
            **os.environ,
            "WORKSPACE": str(workspace),
            "LOGS": str(logs),
            "SUPERVISORCTL": f"{BIN / 'supervisorctl'} -c {sv.conf_path}",
        }
        baseline = ["bash", str(BASELINE)]

        def fresh_docs() -> None:
            shutil.copyfile(SEED_DOCS, workspace / "docs_vast-ai-environment.md")

        fresh_docs()
        timed_child(healthcheck)  # first run: git init, .pyc files, page cache
        timed_child(baseline, env)
        # Where the time goes: the interpreter alone, the interpreter with every module a
        # run imports, and a run that neither refreshes the docs nor commits.
        python = [sys.executable, "-c", "pass"]
        imports = [sys.executable, "-c", f"import {', '.join(RUN_MODULES)}"]
        bare = [*healthcheck, "--no-docs", "--no-commit"]
        hc, sh, py, imp, nd = [], [], [], [], []
        for _ in range(rounds):
            sh.append(timed_child(baseline, env))
            hc.append(timed_child(healthcheck))
            py.append(timed_child(python)[0])
            imp.append(timed_child(imports)[0])
            nd.append(timed_child(bare)[0])
        report = json.loads((workspace / "system_status.json").read_text(encoding="utf-8"))
        slowest = max(report["sections"].items(), key=lambda item: item[1]["duration_ms"])
    return {
        "slowest": f"{slowest[0]} {slowest[1]['duration_ms']} ms",
        "python": median(py),
        "imports": median(imp),
        "bare": median(nd),
        "hc_wall": median([w for w, _ in hc]),
        "hc_rss": median([r for _, r in hc]),
        "sh_wall": median([w for w, _ in sh]),
        "sh_rss": median([r for _, r in sh]),
    }


# --- scaling --------------------------------------------------------------------------------


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
    for count in (10, 10_000):
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


def bench_processes(rounds: int, root: Path) -> dict[str, float]:
    workspace = root / "proc-ws"
    config = root / "proc.toml"
    config.write_text(f'[paths]\nworkspace = "{workspace}"\n', encoding="utf-8")
    command = [str(BIN / "healthcheck"), "run", "--config", str(config), "-q", "--no-commit"]
    results = {}
    for count in (200, 5000):
        with extra_processes(count):
            timed_child(command)
            results[f"procs_{count}"] = median([timed_child(command)[0] for _ in range(rounds)])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="3 rounds, for a smoke test")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    with tempfile.TemporaryDirectory(prefix="hc-bench-") as tmp:
        root = Path(tmp)
        (root / "full").mkdir()
        full = bench_full_run(rounds, root / "full")
        tail = bench_tail(rounds, root)
        files = bench_files(rounds, root)
        procs = bench_processes(rounds, root)

    rows = [
        ("`healthcheck run` (docs + git commit), wall", f"{full['hc_wall'] * 1000:.0f} ms"),
        ("bash baseline (seed's health_check.sh), wall", f"{full['sh_wall'] * 1000:.0f} ms"),
        ("ratio healthcheck / bash", f"{full['hc_wall'] / full['sh_wall']:.2f}"),
        ("slowest collector in the last `healthcheck run`", full["slowest"]),
        ("of which: Python start-up alone", f"{full['python'] * 1000:.0f} ms"),
        ("of which: start-up and every import of a run", f"{full['imports'] * 1000:.0f} ms"),
        ("`healthcheck run --no-docs --no-commit`, wall", f"{full['bare'] * 1000:.0f} ms"),
        ("`healthcheck run` peak RSS", f"{full['hc_rss']:.1f} MiB"),
        ("bash baseline peak RSS", f"{full['sh_rss']:.1f} MiB"),
        ("tail of a 10 MiB log", f"{tail['tail_10m']:.3f} ms"),
        ("tail of a sparse 8 GiB log", f"{tail['tail_8g']:.3f} ms"),
        ("ratio 8 GiB / 10 MiB", f"{tail['tail_8g'] / tail['tail_10m']:.2f}"),
        ("logs collector, 10 files", f"{files['files_10']:.1f} ms"),
        ("logs collector, 10,000 files (cap 50 read)", f"{files['files_10000']:.1f} ms"),
        ("ratio 10,000 / 10 files", f"{files['files_10000'] / files['files_10']:.1f}"),
        ("`healthcheck run`, 200 extra processes", f"{procs['procs_200'] * 1000:.0f} ms"),
        ("`healthcheck run`, 5,000 extra processes", f"{procs['procs_5000'] * 1000:.0f} ms"),
        ("ratio 5,000 / 200 processes", f"{procs['procs_5000'] / procs['procs_200']:.2f}"),
    ]
    print(f"| measure ({rounds} rounds, median) | value |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
