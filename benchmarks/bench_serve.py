"""Load on `healthcheck serve`: latency, throughput and memory, loopback only.

    .venv/bin/python benchmarks/bench_serve.py [--requests N] [--clients C] [--memory-requests M]

Serves the faulty sample report (a real run of the test environment) from a temporary
workspace with a real `healthcheck serve` process on a free loopback port, then:

* `/metrics` and `/healthz` from the last report, C concurrent clients (default 50), N
  requests each endpoint (default 5,000), once over kept-alive connections (as Prometheus
  scrapes) and once with a new connection per request (as curl-style probes do): median and
  p99 latency, requests per second;
* the server's resident memory (RSS) before and after M requests (default 10,000) across all
  endpoints, bad ones included (404, 400), to show it stays flat.

The clients are threads of this process; on a small machine they compete with the server for
the CPU, so the figures are a floor. Every loop is bounded; nothing asserts a speed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_reports" / "faulty"
TIMEOUT_S = 30


def start_server(root: Path) -> tuple[subprocess.Popen[str], int]:
    workspace = root / "workspace"
    workspace.mkdir()
    for name in ("system_status.md", "system_status.json"):
        shutil.copyfile(SAMPLE / name, workspace / name)
    config = root / "healthcheck.toml"
    config.write_text(f'[paths]\nworkspace = "{workspace}"\n\n[env]\nsource = "self"\n')
    env = {k: v for k, v in os.environ.items() if k != "HEALTHCHECK_CONFIG"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "healthcheck", "serve", "--config", str(config), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if not line.startswith("Serving http://127.0.0.1:"):
        proc.kill()
        raise SystemExit(f"serve did not start: {line}{proc.stderr.read()}")
    return proc, int(line.split(":")[2].split("/")[0])


def get(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    response = conn.getresponse()
    response.read()
    return response.status


def load(
    port: int, paths: list[str], total: int, clients: int, keep_alive: bool
) -> tuple[list[float], float, dict[int, int]]:
    """`total` requests spread over `clients` threads; latencies (s), wall time, statuses."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    per_client = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    start_gate = threading.Barrier(clients + 1)

    def client(count: int, offset: int) -> None:
        mine: list[float] = []
        codes: dict[int, int] = {}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
        start_gate.wait()
        for i in range(count):
            path = paths[(offset + i) % len(paths)]
            begin = time.perf_counter()
            try:
                code = get(conn, path)
            except (OSError, http.client.HTTPException):
                code = 0
                conn.close()
            mine.append(time.perf_counter() - begin)
            codes[code] = codes.get(code, 0) + 1
            if not keep_alive:
                conn.close()
        conn.close()
        with lock:
            latencies.extend(mine)
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n

    threads = [
        threading.Thread(target=client, args=(n, i), daemon=True) for i, n in enumerate(per_client)
    ]
    for thread in threads:
        thread.start()
    start_gate.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=600)
    return latencies, time.perf_counter() - began, statuses


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def raw_bad_request(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        while sock.recv(65536):
            pass


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / (1 << 20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="per endpoint and mode")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--memory-requests", type=int, default=10_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        proc, port = start_server(Path(tmp))
        try:
            run(port, proc.pid, args)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)


def run(port: int, pid: int, args: argparse.Namespace) -> None:
    # Warm: the first request of each kind parses the report and builds its output once.
    warm = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    for path in ("/metrics", "/healthz", "/", "/status.json", "/report.md"):
        get(warm, path)
    warm.close()

    print(
        f"healthcheck serve on 127.0.0.1:{port}, {args.clients} concurrent clients, "
        f"{args.requests} requests per row"
    )
    header = (
        f"{'endpoint':<10} {'connections':<12} {'median ms':>10} {'p99 ms':>8} {'req/s':>8}  status"
    )
    print(header)
    print("-" * len(header))
    for path in ("/metrics", "/healthz"):
        for keep_alive in (True, False):
            latencies, wall, statuses = load(port, [path], args.requests, args.clients, keep_alive)
            print(
                f"{path:<10} {'kept alive' if keep_alive else 'one each':<12} "
                f"{statistics.median(latencies) * 1000:>10.2f} "
                f"{percentile(latencies, 0.99) * 1000:>8.2f} {len(latencies) / wall:>8.0f}  "
                + ", ".join(f"{code}: {n}" for code, n in sorted(statuses.items()))
            )

    mixed = ["/metrics", "/healthz", "/", "/status.json", "/report.md", "/nope", "/../etc/passwd"]
    before = rss_mib(pid)
    samples: list[tuple[int, float]] = [(0, before)]
    done = 0
    step = max(1, args.memory_requests // 5)
    while done < args.memory_requests:
        batch = min(step, args.memory_requests - done)
        load(port, mixed, batch, args.clients, keep_alive=False)
        for _ in range(max(1, batch // 100)):
            raw_bad_request(port)  # malformed requests too (400)
        done += batch
        samples.append((done, rss_mib(pid)))
    print()
    print(
        f"server RSS over {args.memory_requests} requests (all endpoints, 404s and 400s "
        "included, a new connection each):"
    )
    print("  " + "  ".join(f"{n}: {mib:.1f} MiB" for n, mib in samples))
    growth = samples[-1][1] - samples[1][1]
    print(
        f"  growth after the first {samples[1][0]} requests: {growth:+.1f} MiB "
        f"({'flat' if abs(growth) < 2 else 'NOT flat'})"
    )


if __name__ == "__main__":
    main()
