"""What `healthcheck serve` makes of the faulty sample report, kept beside it.

    .venv/bin/python scripts/sample_serve.py [SAMPLES_DIR]   (default: sample_reports/)

Writes `faulty/metrics.prom` (the `/metrics` exposition, which tests/test_metrics.py checks
is current) and `faulty/report.png`, a screenshot of the `/` page served by a real server on
a free loopback port and rendered by headless Chromium (skipped, with a warning, when
chromium is not installed). scripts/sample_reports.py runs this after writing the samples.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from healthcheck.metrics import exposition  # noqa: E402
from healthcheck.model import Status  # noqa: E402
from healthcheck.redact import Redactor  # noqa: E402
from healthcheck.serve import HealthApp, ReportStore, make_server  # noqa: E402


def write(samples: Path) -> None:
    faulty = samples / "faulty"
    redactor = Redactor()
    store = ReportStore(faulty / "system_status.md", faulty / "system_status.json", redactor)
    (faulty / "metrics.prom").write_bytes(exposition(store.current().data, redactor))
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("warning: chromium not installed: report.png not refreshed", file=sys.stderr)
        return
    server = make_server(HealthApp(store, redactor, Status.CRIT), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with tempfile.TemporaryDirectory(prefix="sample-serve-") as profile:
            subprocess.run(
                [
                    chromium,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--no-proxy-server",
                    "--hide-scrollbars",
                    f"--user-data-dir={profile}",
                    "--window-size=1200,1500",
                    f"--screenshot={faulty / 'report.png'}",
                    f"http://127.0.0.1:{server.server_address[1]}/",
                ],
                capture_output=True,
                timeout=120,
                check=True,
            )
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    samples = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "sample_reports"
    write(samples)
    print(f"metrics.prom and report.png written to {samples / 'faulty'}")


if __name__ == "__main__":
    main()
