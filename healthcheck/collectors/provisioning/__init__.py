"""Provisioning scripts: present, executable, how big, when changed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import stat
from typing import Any, ClassVar

from healthcheck.config import Config, ProvisioningConfig
from healthcheck.model import Finding, RunContext, Section, Status, as_context
from healthcheck.timestamps import utc_stamp_of

# Enough to fingerprint a script for drift without reading a huge file dropped in its place.
MAX_HASHED_BYTES = 4 * 1024 * 1024


class ProvisioningCollector:
    """Each configured provisioning script, as the on-start script would find it."""

    name: ClassVar[str] = "provisioning"
    description: ClassVar[str] = "provisioning scripts: present, executable, size, last modified"
    timeout: ClassVar[float | None] = None
    # The [collectors.provisioning] table (first spelt [provisioning], still read so).
    Options: ClassVar[type] = ProvisioningConfig

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        config = ctx.config
        scripts = [inspect_script(path) for path in config.provisioning.scripts]
        findings = merge_missing([f for script in scripts for f in script_findings(script)])
        return Section.from_findings(self.name, {"scripts": scripts}, findings)


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


def inspect_script(path: str) -> dict[str, Any]:
    """What one script path holds; never raises."""
    info: dict[str, Any] = {
        "path": path,
        "present": False,
        "kind": None,
        "executable": False,
        "size": None,
        "modified": None,
        "sha256": None,
        "first_line": None,
        "crlf": False,
        "link_target": None,
        "error": None,
    }
    if os.path.islink(path):
        with contextlib.suppress(OSError):
            info["link_target"] = os.readlink(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return info  # a dangling symlink too: `[ -f ]` in the on-start script is false
    except OSError as exc:
        info["error"] = exc.strerror or str(exc)
        return info
    info["present"] = True
    info["kind"] = "file" if stat.S_ISREG(st.st_mode) else _kind(st.st_mode)
    # Mode bits, not os.access: root may "execute" anything, but the kernel still refuses a
    # file without an x bit, which is what Vast.ai's direct invocation runs into.
    info["executable"] = bool(st.st_mode & 0o111) and stat.S_ISREG(st.st_mode)
    info["size"] = st.st_size
    info["modified"] = utc_stamp_of(st.st_mtime)
    if stat.S_ISREG(st.st_mode):
        try:
            info["sha256"], info["first_line"], info["crlf"] = _fingerprint(path)
        except OSError as exc:
            info["error"] = exc.strerror or str(exc)
    return info


def _fingerprint(path: str) -> tuple[str, str, bool]:
    """Short sha256 (of the first MAX_HASHED_BYTES), first line, and CRLF line endings."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        head = handle.read(MAX_HASHED_BYTES)
    digest.update(head)
    line = head.split(b"\n", 1)[0]
    first = line.rstrip(b"\r")[:120].decode("utf-8", "replace")
    return digest.hexdigest()[:12], first, b"\r\n" in head


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


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
