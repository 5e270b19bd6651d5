"""How the provisioning collector judges its scripts: missing, unreadable, not a file, empty,
not executable, CRLF line endings; several missing ones as one finding. Pure: no I/O.
"""

from __future__ import annotations

import shlex
from typing import Any

from healthcheck.model import Finding, Status


def assess(scripts: list[dict[str, Any]]) -> list[Finding]:
    """All findings for the scripts gather inspected."""
    return merge_missing([f for script in scripts for f in script_findings(script)])


def merge_missing(findings: list[Finding]) -> list[Finding]:
    """Several scripts missing is one fact (the image lacks them, or the list names scripts
    this box never had): one finding listing them, not one warning each."""
    missing = [f for f in findings if f.rule == "missing"]
    if len(missing) < 2:
        return findings
    paths = [f.subject for f in missing]
    dangling = " ".join(
        f.detail.split("whatever it sets up is not there.", 1)[1].strip() for f in missing
    ).strip()
    merged = Finding(
        "provisioning",
        "missing",
        "",
        Status.WARN,
        f"{len(paths)} provisioning scripts are missing: {', '.join(paths)}",
        "The on-start script skips a missing script, so whatever they set up is not there."
        + (f" {dangling}" if dangling else ""),
        "Restore them, or remove from [provisioning] scripts the ones this box does not use.",
    )
    rest = [f for f in findings if f.rule != "missing"]
    return [merged, *rest]


def script_findings(script: dict[str, Any]) -> list[Finding]:
    path = script["path"]
    quoted = shlex.quote(path)

    def finding(
        rule: str, title: str, detail: str, hint: str, severity: Status = Status.WARN
    ) -> Finding:
        return Finding("provisioning", rule, path, severity, title, detail, hint)

    if script["error"]:
        # Not a fault of the script, as far as we know: we could not look (unknown).
        return [
            finding(
                "unreadable",
                f"Provisioning script {path} cannot be read",
                script["error"],
                f"ls -l {quoted} (healthcheck runs from root's crontab to see every script)",
                Status.UNKNOWN,
            )
        ]
    if not script["present"]:
        dangling = (
            f" {path} is a symlink to {script['link_target']}, which does not exist."
            if script.get("link_target")
            else ""
        )
        return [
            finding(
                "missing",
                f"Provisioning script {path} is missing",
                "The on-start script skips a missing script, so whatever it sets up is not there."
                + dangling,
                "Restore it, or remove it from [provisioning] scripts if this box does not use it.",
            )
        ]
    if script["kind"] != "file":
        return [
            finding(
                "not-a-file",
                f"Provisioning script {path} is a {script['kind']}",
                "A script path must be a regular file.",
                f"ls -ld {quoted}",
            )
        ]
    if script["size"] == 0:
        return [
            finding(
                "empty",
                f"Provisioning script {path} is empty",
                "Running it does nothing.",
                "Restore its content from the image or repo.",
            )
        ]
    findings = []
    if not script["executable"]:
        findings.append(
            finding(
                "not-executable",
                f"Provisioning script {path} is not executable",
                "Run directly (as Vast.ai runs the root script) it fails with 'Permission denied'.",
                f"chmod +x {quoted}",
            )
        )
    if script.get("crlf"):
        findings.append(
            finding(
                "crlf-line-endings",
                f"Provisioning script {path} has Windows (CRLF) line endings",
                "bash reads the carriage returns as part of each line: the shebang fails with "
                "'bad interpreter: /bin/bash^M' and commands with '$'\\r': command not found'.",
                f"sed -i 's/\\r$//' {quoted}",
            )
        )
    return findings
