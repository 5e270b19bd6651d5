"""Write the README's known-failures table from the catalogue (healthcheck/knowledge/failures).

    python scripts/known_failures_table.py          # rewrite the table in README.md
    python scripts/known_failures_table.py --check  # exit 1 when README.md's table is stale

The table sits between `<!-- known-failures:begin -->` and `<!-- known-failures:end -->`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from healthcheck.catalogue import Entry, catalogue

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- known-failures:begin -->"
END = "<!-- known-failures:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fix(entry: Entry) -> str:
    """The fix, its {placeholders} as they are (angle brackets would read as HTML)."""
    return entry.fix


def table() -> str:
    entries = catalogue().entries
    rows = [
        "| id | recognised by | severity | the fix it gives |",
        "|---|---|---|---|",
    ]
    for entry in entries:
        if entry.kind in ("program", "kernel"):
            rows.append(
                f"| `{entry.id}` | {_cell(entry.recognised_by)} | {entry.severity} "
                f"| {_cell(_fix(entry))} |"
            )
    xids = sorted(catalogue().xids().values(), key=lambda e: e.code or 0)
    by_severity: dict[str, list[str]] = {}
    for entry in xids:
        by_severity.setdefault(entry.severity, []).append(str(entry.code))
    summary = "; ".join(f"{sev}: {', '.join(codes)}" for sev, codes in sorted(by_severity.items()))
    rows.append(
        f"| `gpu.xid-N` | kernel: `NVRM: Xid (PCI:...): N` ({len(xids)} codes; {summary}); "
        "an unlisted code is warn, crit when its line says Fatal | per code | per code "
        "(reset the GPU, reboot, restart the application, ...) |"
    )
    worded = [e.id for e in entries if e.kind == "wording"]
    return (
        "\n".join(rows)
        + "\n\nChecks that decide in code take their wording from the catalogue too: "
        + ", ".join(f"`{i}`" for i in worded)
        + ".\n"
    )


def main(argv: list[str]) -> int:
    text = README.read_text(encoding="utf-8")
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        print(f"README.md has no {BEGIN} ... {END} block", file=sys.stderr)
        return 2
    new = f"{head}{BEGIN}\n{table()}{END}{tail}"
    if "--check" in argv:
        if new != text:
            print(
                "README.md's known-failures table is stale: "
                "run python scripts/known_failures_table.py",
                file=sys.stderr,
            )
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
