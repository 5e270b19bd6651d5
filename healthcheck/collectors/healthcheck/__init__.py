"""healthcheck itself: when it last ran and with what result, is it scheduled, does cron run.

One cause, one finding: a report that is old because no entry is installed, or because no
cron daemon runs, is explained by that finding (its detail gives the age); `stale` is kept
for the case cron should have run it and did not leave a report (the job itself fails).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, ClassVar

from healthcheck import cron as schedule
from healthcheck.config import Config
from healthcheck.model import Finding, RunContext, Section, Status, as_context
from healthcheck.output import report_paths
from healthcheck.timestamps import parse_utc_stamp

NAME = "healthcheck"


class HealthcheckCollector:
    """The previous run (from its JSON report), the cron entry and the cron daemon."""

    name: ClassVar[str] = NAME
    description: ClassVar[str] = "itself: the previous run's time and status, cron entry, daemon"
    timeout: ClassVar[float | None] = None
    # The run's shared facts it reads that the runner reads ahead (Facts.read_ahead).
    facts: ClassVar[tuple[str, ...]] = ("processes",)

    def collect(self, ctx: RunContext | Config) -> Section:
        ctx = as_context(self, ctx)
        config = ctx.config
        now = datetime.now(timezone.utc)
        # Read before this run writes its own report: the runner collects before writing.
        previous = previous_run(report_paths(config)[1], now)
        cron = cron_state()
        # The previous run's time and age change on every run: volatile, kept apart.
        stable = {k: v for k, v in previous.items() if k not in ("age_s", "generated_at")}
        data = {"previous": stable, "cron": cron}
        volatile = {
            "previous_generated_at": previous.get("generated_at"),
            "previous_age_s": previous.get("age_s"),
        }
        return Section.from_findings(NAME, data, assess(previous, cron), volatile)


def previous_run(path: Any, now: datetime) -> dict[str, Any]:
    """The last report's time and status; `found` False on the first run ever."""
    info: dict[str, Any] = {"path": str(path), "found": False, "generated_at": None}
    info.update(status=None, error=None, age_s=None)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return info
    except (OSError, UnicodeDecodeError) as exc:
        info["error"] = getattr(exc, "strerror", None) or str(exc)
        return info
    info["found"] = True
    try:
        report = json.loads(raw)
        stamp = parse_utc_stamp(report["generated_at"], "generated_at")
        info["generated_at"] = report["generated_at"]
        info["status"] = str(report.get("status"))
    except (ValueError, KeyError, TypeError) as exc:
        info["error"] = f"not a healthcheck JSON report ({type(exc).__name__}: {exc})"
        return info
    info["age_s"] = max(0, round((now - stamp).total_seconds()))
    return info


def cron_state(user: str | None = None) -> dict[str, Any]:
    """Our crontab entry (one `crontab -l`, under a timeout) and the cron daemon."""
    owner = user or schedule.current_user()
    state: dict[str, Any] = {"user": owner, "crontab": None, "entry": None, "error": None}
    try:
        entry = schedule.find_entry(schedule.read_crontab(owner))
        state["crontab"] = True
    except schedule.CronError as exc:
        entry = None
        state["crontab"] = False if "no crontab command" in str(exc) else None
        state["error"] = str(exc)
    if entry is not None:
        state["entry"] = entry.to_dict()
        hours = schedule.interval(entry.schedule).total_seconds() / 3600
        state["interval_h"] = round(hours, 2)
    else:
        state["interval_h"] = schedule.DEFAULT_INTERVAL.total_seconds() / 3600
    state["daemon"] = schedule.cron_daemon()
    return state


def _age(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def assess(previous: dict[str, Any], cron: dict[str, Any]) -> list[Finding]:
    """The findings, from the gathered data alone (so each rule is testable on its own)."""

    def finding(rule: str, severity: Status, title: str, detail: str, hint: str) -> Finding:
        return Finding(NAME, rule, "", severity, title, detail, hint)

    findings = []
    age = previous.get("age_s")
    limit_s = 2 * cron["interval_h"] * 3600
    old = (
        f" The last report is {_age(age)} old ({previous['generated_at']})."
        if age is not None and age > limit_s
        else ""
    )
    if previous.get("error"):
        findings.append(
            finding(
                "previous-unreadable",
                Status.UNKNOWN,
                "The previous report cannot be read",
                f"{previous['path']}: {previous['error']}",
                "The next `healthcheck run` replaces it.",
            )
        )
    entry = cron.get("entry")
    if cron.get("crontab") is False:
        findings.append(
            finding(
                "not-scheduled",
                Status.WARN,
                "healthcheck is not scheduled: cron is not installed",
                "There is no crontab command, so no report is written unless someone runs "
                "`healthcheck run`." + old,
                "apt-get install cron, then healthcheck cron install",
            )
        )
    elif cron.get("error"):
        findings.append(
            finding(
                "crontab-unreadable",
                Status.UNKNOWN,
                "Whether healthcheck is scheduled could not be checked",
                cron["error"],
                "healthcheck cron status",
            )
        )
    elif entry is None or not entry["enabled"]:
        how = "is commented out" if entry else "is missing"
        findings.append(
            finding(
                "not-scheduled",
                Status.WARN,
                f"healthcheck is not scheduled: its cron entry {how}",
                f"The crontab of {cron['user']} has no active healthcheck entry, so reports are "
                "only written when someone runs `healthcheck run`." + old,
                "healthcheck cron install",
            )
        )
    if cron.get("daemon") is None and cron.get("crontab") is not False:
        findings.append(
            finding(
                "cron-not-running",
                Status.WARN,
                "No cron daemon is running",
                "Nothing fires crontab entries: containers have no init to start cron." + old,
                "Run cron under supervisord: a [program:cron] entry with command=cron -f "
                "(`healthcheck cron status` prints it; cron/supervisord-cron.conf in the "
                "source), then supervisorctl reread && supervisorctl update.",
            )
        )
    if old and not findings and entry is not None and age is not None:
        findings.append(
            finding(
                "stale",
                Status.WARN,
                "The last scheduled report is overdue",
                f"cron runs and the entry is installed ({entry['schedule']}), yet the last "
                f"report is {_age(age)} old ({previous['generated_at']}), more than twice the "
                f"schedule's interval ({cron['interval_h']:g} h): the scheduled run fails.",
                "Look at the end of the log the cron line writes to (healthcheck cron status "
                "shows the line), or run the line by hand.",
            )
        )
    return findings
