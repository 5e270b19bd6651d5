"""How often diagnosis names the cause of real failures: one command, a table per family.

    .venv/bin/python benchmarks/diagnosis_eval.py [--verbose] [--excerpts FILE]

benchmarks/diagnosis_excerpts.toml holds failure output that users posted in public issue
trackers (each with its source), none of it a catalogue case. Each excerpt runs through the
same path a run takes: a supervisor program's log lines, exit status and spawn error through
healthcheck.collectors.supervisor.rules.explain_program (the supervisor collector's
diagnosis), kernel lines through
the gpu collector's Xid parser and kernel-message entries. An excerpt is "named" when the
finding id is the one it expects (or one of them). The table is per batch: "tuning", the
excerpts the catalogue was widened on, and "held-out", ones collected afterwards. Healthy
excerpts (a running program's normal output) must give no warn or crit finding, from the
program's judgement or from the logs collector's "ends with an error". Exit status: 0 when
every healthy excerpt stays quiet, 1 otherwise; tests/test_catalogue.py also wants every
cause named.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from healthcheck.collectors.gpu import kernel_findings, xid_findings
from healthcheck.collectors.supervisor.rules import CannedProbe, explain_program
from healthcheck.config import Config
from healthcheck.loglines import ends_with_error
from healthcheck.logtail import looks_like_error
from healthcheck.model import Finding, Status
from healthcheck.program import Program
from healthcheck.xid import KernelLog, find_xids

EXCERPTS = Path(__file__).with_name("diagnosis_excerpts.toml")
LOUD = {Status.WARN, Status.CRIT}


def lines_of(excerpt: dict[str, Any]) -> list[str]:
    text = excerpt.get("lines", "")
    return [line.rstrip("\r") for line in text.splitlines()] if text else []


def program_of(excerpt: dict[str, Any]) -> Program:
    """The supervisor's view of the program the excerpt came from."""
    name = excerpt.get("program", "app")
    # Healthy output comes from a running program; failure output from one that stopped.
    state = excerpt.get("state", "RUNNING" if excerpt.get("kind") == "healthy" else "FATAL")
    return Program(
        group=name,
        name=name,
        state=state,
        pid=4242 if state == "RUNNING" else None,
        started="2026-11-28T10:00:00Z",
        exitstatus=excerpt.get("exitstatus", None if state == "RUNNING" else 1),
        exitsignal=excerpt.get("signal"),
        spawnerr=excerpt.get("spawnerr"),
        log={"stdout": [], "stderr": lines_of(excerpt)},
    )


def findings_of(excerpt: dict[str, Any]) -> list[Finding]:
    kind = excerpt.get("kind", "program")
    lines = lines_of(excerpt)
    if kind == "kernel":
        dated: list[tuple[str | None, str]] = [(None, line) for line in lines]
        events = find_xids(KernelLog(lines=dated))
        _, xids = xid_findings(events, {}, "kern.log")
        fallen = {e.pci for e in events if e.code == 79}
        return [*xids, *kernel_findings(dated, "kern.log", fallen)]
    config = Config()
    probe = CannedProbe(config, excerpt.get("probe", {}))
    found = explain_program(program_of(excerpt), config, probe)
    findings = [found] if found is not None else []
    if kind == "healthy":
        flagged = [i for i, line in enumerate(lines) if looks_like_error(line)]
        ended = ends_with_error(f"/var/log/{excerpt.get('program', 'app')}.log", lines, flagged)
        findings += [ended] if ended is not None else []
    return findings


def expected(excerpt: dict[str, Any]) -> set[str]:
    want = excerpt.get("expect", [])
    return {want} if isinstance(want, str) else set(want)


def judge(excerpt: dict[str, Any]) -> tuple[bool, str]:
    """(whether the excerpt came out right, what it gave)."""
    try:
        findings = findings_of(excerpt)
    except Exception as exc:  # a crash in diagnosis is a miss, and the table still prints
        return False, f"crashed: {type(exc).__name__}: {exc}"
    ids = [f"{f.collector}.{f.rule}" for f in findings]
    if excerpt.get("kind") == "healthy":
        loud = [
            f"{f.collector}.{f.rule} ({f.severity.value})" for f in findings if f.severity in LOUD
        ]
        return not loud, ", ".join(loud) or "quiet"
    named = bool(expected(excerpt) & set(ids))
    if named and "decisive" in excerpt:
        decisive = f"Decisive line: {excerpt['decisive']}"
        named = any(f.detail.endswith(decisive) for f in findings)
    return named, ", ".join(ids) or "no finding"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--excerpts", type=Path, default=EXCERPTS)
    parser.add_argument("--verbose", "-v", action="store_true", help="list every excerpt")
    args = parser.parse_args(argv)
    excerpts = tomllib.loads(args.excerpts.read_text(encoding="utf-8"))["excerpt"]
    # batch -> family -> [named, total]
    tally: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for excerpt in excerpts:
        ok, gave = judge(excerpt)
        family = excerpt["family"]
        batch = excerpt.get("batch", "tuning")
        tally[batch][family][0] += ok
        tally[batch][family][1] += 1
        if args.verbose or not ok:
            mark = "ok  " if ok else "MISS"
            want = "no warn/crit" if excerpt.get("kind") == "healthy" else sorted(expected(excerpt))
            print(f"{mark} {family:<10} {excerpt['source']}\n       want {want}, gave {gave}")
    quiet = healthy = 0
    for batch, families in tally.items():
        print(f"\n{batch}")
        print(f"{'family':<12}{'named':>7}{'total':>7}")
        failures = [(f, t) for f, t in families.items() if f != "healthy"]
        for family, (named, total) in failures:
            print(f"{family:<12}{named:>7}{total:>7}")
        named = sum(t[0] for _, t in failures)
        total = sum(t[1] for _, t in failures)
        print(f"{'TOTAL':<12}{named:>7}{total:>7}  ({100 * named / max(total, 1):.0f}%)")
        if "healthy" in families:
            q, h = families["healthy"]
            quiet, healthy = quiet + q, healthy + h
            print(f"{'healthy':<12}{q:>7}{h:>7}  (quiet / total: no warn or crit)")
    return 0 if quiet == healthy else 1


if __name__ == "__main__":
    sys.exit(main())
