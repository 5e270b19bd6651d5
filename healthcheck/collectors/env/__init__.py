"""Environment variables of the container, even under cron's nearly empty environment."""

from __future__ import annotations

import re
from typing import ClassVar

from healthcheck.config import Config, EnvConfig
from healthcheck.model import Finding, RunContext, Section, Status, as_context


class EnvCollector:
    """Variables whose name matches `env.include`, read from `env.source`.

    Values are reported as they are: the redactor masks secret-named ones (and their values
    wherever else they appear) on the way out, like everything else.
    """

    name: ClassVar[str] = "env"
    description: ClassVar[str] = "environment variables matching env.include, from env.source"
    timeout: ClassVar[float | None] = None
    # The [collectors.env] table (first spelt [env], still read so).
    Options: ClassVar[type] = EnvConfig

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        config = ctx.config
        snapshot = ctx.facts.environment(ctx.options.source, config.supervisor.serverurl)
        include = re.compile(config.env.include)
        variables = {
            name: value
            for name, value in sorted(snapshot.variables.items())
            if include.search(name)
        }
        data = {
            "source": snapshot.source_used,
            "include": config.env.include,
            "count": len(variables),
            "variables": variables,
        }
        findings = []
        if snapshot.fallback_reason:
            data["fallback_reason"] = snapshot.fallback_reason
            findings.append(
                Finding(
                    collector=self.name,
                    rule="source-unreadable",
                    subject=config.env.source,
                    severity=Status.UNKNOWN,
                    title=f"Could not read the environment of {config.env.source}; "
                    "showing healthcheck's own instead",
                    detail=f"{snapshot.fallback_reason}. Under cron healthcheck's own "
                    "environment is nearly empty, so the container's variables may be missing.",
                    hint="Reading another process's environment needs root or the same user; or "
                    'set [env] source = "process:supervisord" (any long-lived container process).',
                )
            )
        return Section.from_findings(self.name, data, findings)
