"""Benchmark of the redactor: what it masks, what it leaves readable, and what it costs.

    .venv/bin/python benchmarks/bench_redact.py [--before PATH] [--rounds N]

Over the families of tests/secrets_corpus.py (obviously fake secrets in real formats, in the
places they turn up, and look-alikes that hold no secret), prints per family:

- recall: the share of secrets that no longer appear in the redacted line;
- look-alikes kept: the share of look-alike lines that come out unchanged;

then the median time to redact a full report (sample_reports/faulty/system_status.json as
data, then system_status.md as text, with a fresh Redactor each round, the two versions
alternating; CPU time of the process, which other work on a shared machine disturbs less than
wall time), and the one-off cost of the first redaction in a fresh process (loading the
module, and for the new version healthcheck/knowledge/secrets.toml; wall time).

"Before" is another redact.py, loaded from PATH (default: /work/main/healthcheck/redact.py,
the main branch's checkout; or pass a file from `git show main:healthcheck/redact.py`).
Nothing asserts a figure: they go into the issue notes.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from healthcheck import redact as after  # noqa: E402

from secrets_corpus import LOOKALIKE_FAMILIES, SECRET_FAMILIES  # noqa: E402

DEFAULT_BEFORE = Path("/work/main/healthcheck/redact.py")
REPORT = ROOT / "sample_reports" / "faulty"


def load(path: Path) -> ModuleType:
    """The module at `path`, loaded from a copy (its byte code is cached there, as the
    current version's is in the checkout, and nothing is written beside the original)."""
    spec = importlib.util.spec_from_file_location("redact_before", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench_redact: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["redact_before"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def quality(module: ModuleType) -> dict[str, tuple[int, int, int, int]]:
    """family -> (secrets masked, secrets, look-alikes kept, look-alikes)."""
    redactor = module.Redactor()
    out: dict[str, tuple[int, int, int, int]] = {}
    for family, items in SECRET_FAMILIES.items():
        masked = sum(secret not in redactor.text(line) for line, secret in items)
        out[family] = (masked, len(items), 0, 0)
    for family, lines in LOOKALIKE_FAMILIES.items():
        kept = sum(redactor.text(line) == line for line in lines)
        masked, total, _, _ = out.get(family, (0, 0, 0, 0))
        out[family] = (masked, total, kept, len(lines))
    return out


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}% ({part}/{whole})" if whole else "-"


def print_quality(before: ModuleType) -> None:
    old, new = quality(before), quality(after)
    print("| family | secrets masked, before | after | look-alikes kept, before | after |")
    print("|---|---|---|---|---|")
    totals = [0] * 8
    for family in new:
        row = old[family] + new[family]
        totals = [t + v for t, v in zip(totals, row, strict=True)]
        m0, s0, k0, l0, m1, s1, k1, l1 = row
        cells = [percent(m0, s0), percent(m1, s1), percent(k0, l0), percent(k1, l1)]
        print(f"| {family} | " + " | ".join(cells) + " |")
    m0, s0, k0, l0, m1, s1, k1, l1 = totals
    cells = [percent(m0, s0), percent(m1, s1), percent(k0, l0), percent(k1, l1)]
    print("| **all** | " + " | ".join(f"**{c}**" for c in cells) + " |")


def report_seconds(module: ModuleType, data: object, markdown: str) -> float:
    redactor = module.Redactor()
    start = time.process_time()
    redactor.obj(data)
    redactor.text(markdown)
    return time.process_time() - start


def first_use_ms(before_path: Path) -> tuple[float, float]:
    """Milliseconds from loading the module to a first redaction, in a fresh interpreter that
    has already done what every run does anyway (import the config, and open the package's
    resources, which the report templates need), median of 9."""
    load_before = (
        f"spec = importlib.util.spec_from_file_location('redact_before', {str(before_path)!r}); "
        "m = importlib.util.module_from_spec(spec); sys.modules['redact_before'] = m; "
        "spec.loader.exec_module(m)"
    )
    load_after = "from healthcheck import redact as m"
    codes = [
        (
            "import importlib.util, sys, time, importlib.resources, healthcheck.config; "
            "importlib.resources.files('healthcheck'); "
            f"t = time.perf_counter(); {load_it}; m.Redactor().text('warm up'); "
            "print((time.perf_counter() - t) * 1000)"
        )
        for load_it in (load_before, load_after)
    ]
    runs: list[list[float]] = [[], []]
    for _ in range(9):  # alternating, like the report rounds
        for which, code in enumerate(codes):
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
            )
            runs[which].append(float(done.stdout))
    figures = [statistics.median(r) for r in runs]
    return figures[0], figures[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=DEFAULT_BEFORE)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    copy = Path(tempfile.mkdtemp(prefix="bench_redact.")) / "redact_before.py"
    shutil.copyfile(args.before, copy)
    before = load(copy)

    print(f"Before: {args.before}\nAfter: {after.__file__}\n")
    print_quality(before)

    data = json.loads((REPORT / "system_status.json").read_text())
    markdown = (REPORT / "system_status.md").read_text()
    for module in (before, after):  # warm up: imports, rule data, regex caches
        report_seconds(module, data, markdown)
    times: dict[str, list[float]] = {"before": [], "after": []}
    for _ in range(args.rounds):  # alternating, so that the machine's load hits both alike
        times["before"].append(report_seconds(before, data, markdown))
        times["after"].append(report_seconds(after, data, markdown))
    old, new = (statistics.median(times[k]) * 1000 for k in ("before", "after"))
    print(
        f"\nFull report ({REPORT.name}/system_status.json + .md), CPU time,"
        f" median of {args.rounds}: before {old:.2f} ms, after {new:.2f} ms ({new / old:.2f}x)"
    )
    first_old, first_new = first_use_ms(copy)
    print(
        "First redaction in a fresh process (loading the module and its rules), median of 9:"
        f" before {first_old:.1f} ms, after {first_new:.1f} ms"
    )


if __name__ == "__main__":
    main()
