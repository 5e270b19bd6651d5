"""Helpers the tests share: a small, real box layout in a temporary directory."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from healthcheck.collectors import BUILTIN_COLLECTORS


@dataclass
class Box:
    """A workspace, log dirs and provisioning scripts, plus a config file pointing at them."""

    root: Path
    workspace: Path
    logs: Path
    config: Path
    script: Path  # present and executable
    missing_script: Path
    port: int  # something listens here for the test's duration
    closed_port: int  # nothing listens here

    def write_config(self, extra: str = "") -> Path:
        self.config.write_text(
            f"""
[paths]
workspace = "{self.workspace}"

[logs]
dirs = ["{self.logs}", "{self.root / "Logs-absent"}"]
tail_lines = 5

[env]
source = "self"

[services.ports]
web = {self.port}
ghost = {self.closed_port}

[provisioning]
scripts = ["{self.script}", "{self.missing_script}"]

[collectors]
timeout = 10
{extra}
""",
            encoding="utf-8",
        )
        return self.config

    def only(self, *names: str, extra: str = "") -> Path:
        """A config whose `collectors.disable` leaves only `names`: a whole run (recorded,
        the main report written) of these collectors, unlike a partial `--only` run."""
        disabled = [name for name in BUILTIN_NAMES if name not in names]
        return self.write_config(f"disable = {disabled!r}\n{extra}".replace("'", '"'))


# Every built-in collector's name, from the package itself (so that a new one is disabled too).
BUILTIN_NAMES = tuple(sorted(c.name for c in BUILTIN_COLLECTORS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
