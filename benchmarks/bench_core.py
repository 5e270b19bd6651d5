"""Core benchmark: `healthcheck run` wall time and peak RSS; tail cost vs log size.

    python benchmarks/bench_core.py [--rounds N]

Prints a Markdown table of medians. Nothing here asserts a speed: the figures are for the
issue notes and for spotting regressions by eye.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from healthcheck.config import parse_config
from healthcheck.logtail import read_tail

GiB = 1024**3


def timed_child(args: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process, from its own rusage."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{args} failed: {proc.stderr.read().decode() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def make_box(root: Path) -> Path:
    logs = root / "logs"
    logs.mkdir()
    for i in range(20):
        (logs / f"service{i}.log").write_text(
            "".join(f"line {n} of service {i}\n" for n in range(2000))
        )
    # Sparse, so it costs no disk; its last 8 KiB are real lines, as in a real 8 GiB log.
    tail = b"".join(b"line %d near the end of a sparse 8 GiB log\n" % n for n in range(160))
    big = logs / "huge.log"
    with big.open("wb") as handle:
        handle.truncate(8 * GiB - len(tail))
        handle.seek(0, os.SEEK_END)
        handle.write(tail)
    config = root / "healthcheck.toml"
    config.write_text(f'[paths]\nworkspace = "{root / "ws"}"\n[logs]\ndirs = ["{logs}"]\n')
    return config


def bench_run(rounds: int, root: Path) -> dict[str, float]:
    config = make_box(root)
    cmd = [sys.executable, "-m", "healthcheck", "run", "--config", str(config), "-q"]
    timed_child(cmd, root)  # warm the page cache and .pyc files
    samples = [timed_child(cmd, root) for _ in range(rounds)]
    walls, rss = zip(*samples, strict=False)
    return {"wall_s": statistics.median(walls), "rss_mib": statistics.median(rss)}


def bench_tail(rounds: int, root: Path) -> dict[str, float]:
    small = root / "small.log"
    small.write_text("".join(f"line {n}\n" for n in range(128)))  # ~1 KiB
    big = root / "logs" / "huge.log"
    lines = parse_config({}).logs.tail_lines

    def median_ms(path: Path) -> float:
        times = []
        for _ in range(rounds * 20):
            start = time.perf_counter()
            read_tail(path, lines)
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)

    return {"tail_1k_ms": median_ms(small), "tail_8g_ms": median_ms(big)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        run = bench_run(args.rounds, root)
        tail = bench_tail(args.rounds, root)
    print(f"| measure ({args.rounds} rounds, median) | value |")
    print("|---|---|")
    print(f"| `healthcheck run` wall time | {run['wall_s'] * 1000:.0f} ms |")
    print(f"| `healthcheck run` peak RSS | {run['rss_mib']:.1f} MiB |")
    print(f"| tail of a 1 KiB log | {tail['tail_1k_ms']:.3f} ms |")
    print(f"| tail of a sparse 8 GiB log | {tail['tail_8g_ms']:.3f} ms |")
    print(f"| ratio 8 GiB / 1 KiB | {tail['tail_8g_ms'] / tail['tail_1k_ms']:.2f} |")


if __name__ == "__main__":
    main()
