"""Provisioning scripts: present, executable, how big, when changed.

gather.py inspects each configured script; judge.py says what is wrong with it.
"""

from __future__ import annotations

from typing import ClassVar

from healthcheck.collectors.provisioning import gather, judge
from healthcheck.collectors.provisioning.changes import DRIFT
from healthcheck.collectors.provisioning.gather import MAX_HASHED_BYTES, inspect_script
from healthcheck.collectors.provisioning.judge import merge_missing, script_findings
from healthcheck.config import Config, ProvisioningConfig
from healthcheck.model import RunContext, Section, as_context
from healthcheck.tracking import DriftSpec


class ProvisioningCollector:
    """Each configured provisioning script, as the on-start script would find it."""

    name: ClassVar[str] = "provisioning"
    description: ClassVar[str] = "provisioning scripts: present, executable, size, last modified"
    timeout: ClassVar[float | None] = None
    # The [collectors.provisioning] table (first spelt [provisioning], still read so).
    Options: ClassVar[type] = ProvisioningConfig
    # What `healthcheck diff` says of its scripts (changes.py).
    drift: ClassVar[DriftSpec] = DRIFT

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        scripts = gather.gather(ctx.config.provisioning.scripts)
        return Section.from_findings(self.name, {"scripts": scripts}, judge.assess(scripts))


__all__ = [
    "MAX_HASHED_BYTES",
    "ProvisioningCollector",
    "inspect_script",
    "merge_missing",
    "script_findings",
]
