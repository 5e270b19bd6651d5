"""Alerts: a chat message (Apprise) when findings change, and a dead man's switch ping.

After a full run the open findings are compared, by id, with what the operator was last
told (kept in a small state file in the workspace, or on the first run the previous JSON
report); per `notify.on` a message goes to every `notify.urls` channel. Every channel, and
the ping, costs at most `notify.timeout` seconds: each runs in a thread of its own that is
abandoned when the time is up. A channel that fails becomes a warn finding in the next
report, never a failed run. Apprise is imported only when a message is sent.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from healthcheck import __version__
from healthcheck.config import Config
from healthcheck.lazyre import lazy
from healthcheck.lock import NOTIFY_STATE_NAME
from healthcheck.model import Finding, Status
from healthcheck.redact import Redactor
from healthcheck.text import cut_line

log = logging.getLogger(__name__)

COLLECTOR = "notify"  # the `collector` of the findings this module makes
STATE_NAME = NOTIFY_STATE_NAME  # in the workspace, git-excluded like the lock
STATE_VERSION = 1
# A chat message, title and body: under Discord's 2000 characters (Telegram's 4096, Slack's
# 40000), and short enough to read on a phone's lock screen.
MESSAGE_CAP = 1800
_LINE_CAP = 200  # one finding's title or fix, in a message
_ERROR_CAP = 300  # one channel's error, in a finding
_PING_BODY_CAP = 1000
_MENTION_RE = lazy(r"@(everyone|here|channel)\b")


class NotifyUnavailable(Exception):
    """Apprise is not installed; the message says how to install it."""


INSTALL_HINT = "pip install 'healthcheck[notify]'"


# -- calls bounded in time -----------------------------------------------------------------


def _bounded(calls: Sequence[Callable[[], str | None]], timeout: float) -> list[str | None]:
    """Run the calls in parallel and wait for them at most `timeout` seconds in all.

    Each call returns None when it worked, else its error; one still running when the time
    is up counts as timed out and is left behind in a daemon thread (a hung channel must not
    hold up the run, and the process exit ends it).
    """
    results: list[str | None] = [None] * len(calls)

    def runner(index: int, call: Callable[[], str | None]) -> None:
        try:
            results[index] = call()
        except Exception as exc:  # a channel library's bug is a failed delivery, not a crash
            results[index] = f"{type(exc).__name__}: {exc}"

    threads = [
        threading.Thread(target=runner, args=(i, call), daemon=True, name=f"healthcheck-notify-{i}")
        for i, call in enumerate(calls)
    ]
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [
        f"no answer within {timeout:g} s (notify.timeout)" if thread.is_alive() else results[i]
        for i, thread in enumerate(threads)
    ]


# -- Apprise channels ----------------------------------------------------------------------


@dataclass
class Delivery:
    """One channel's outcome."""

    number: int  # 1-based, in the order of notify.urls
    label: str  # scheme and host with Apprise's privacy masking: never the token itself
    error: str | None = None  # None: delivered

    @property
    def ok(self) -> bool:
        return self.error is None


def _import_apprise() -> Any:
    try:
        import apprise
    except ImportError:
        raise NotifyUnavailable(f"Apprise is not installed ({INSTALL_HINT})") from None
    # Its log holds the channels' URLs: it never reaches our (or anyone's) handlers; the
    # reason a channel failed comes from the result instead.
    logging.getLogger("apprise").propagate = False
    return apprise


def apprise_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("apprise") is not None


def send(
    urls: Sequence[str],
    title: str,
    body: str,
    redactor: Redactor,
    timeout: float,
    notify_type: str = "info",
) -> list[Delivery]:
    """Send one message to each URL, all at once, within `timeout` seconds in all.

    Title and body pass through the redactor here, whoever built them. Raises
    NotifyUnavailable when Apprise is not installed.
    """
    apprise = _import_apprise()
    title, body = redactor.text(title), redactor.text(body)
    deliveries: list[Delivery] = []
    calls: list[Callable[[], str | None]] = []
    for number, url in enumerate(urls, start=1):
        channel = apprise.Apprise()
        try:
            added = bool(channel.add(url))
        except Exception:  # a plugin's parser choking on odd input: a URL it cannot use
            added = False
        if not added or len(channel) == 0:
            deliveries.append(Delivery(number, _scheme_label(url)))
            calls.append(lambda: "Apprise does not understand this URL (check its scheme)")
            continue
        for server in channel:
            _bound_sockets(server, timeout)
        deliveries.append(Delivery(number, _label(next(iter(channel)), url)))
        calls.append(_apprise_call(channel, title, body, notify_type))
    for delivery, error in zip(deliveries, _bounded(calls, timeout), strict=True):
        delivery.error = _clip(redactor.text(error), _ERROR_CAP) if error else None
        delivery.label = redactor.text(delivery.label)
    return deliveries


def _bound_sockets(server: Any, timeout: float) -> None:
    """Apprise's own socket timeouts (4 s by default) cut to ours.

    Its worker threads are joined when the interpreter exits, so a channel we stopped
    waiting for would otherwise hold the process open until Apprise gives up on it.
    """
    for name in ("socket_connect_timeout", "socket_read_timeout"):
        current = getattr(server, name, None)
        if isinstance(current, (int, float)) and current > timeout:
            setattr(server, name, timeout)


def _apprise_call(
    channel: Any, title: str, body: str, notify_type: str
) -> Callable[[], str | None]:
    def call() -> str | None:
        result = channel.notify(body=body, title=title, notify_type=notify_type, body_format="text")
        if result:
            return None
        # Apprise 2 keeps the warnings of the call with its result; 1.x only says False.
        reasons = [
            " ".join(str(entry.message).split())
            for entry in (result.logs() if hasattr(result, "logs") else ())
            if str(getattr(entry, "level", "")) in ("WARNING", "ERROR", "CRITICAL")
        ]
        return " / ".join(dict.fromkeys(reasons)) or "the channel did not accept it"

    return call


def _label(server: Any, url: str) -> str:
    try:
        text = str(server.url(privacy=True))
    except Exception:  # an Apprise plugin that cannot print itself: the scheme will do
        return _scheme_label(url)
    return text.split("?", 1)[0]


def _scheme_label(url: str) -> str:
    return url.split("://", 1)[0] + "://…"


# -- the dead man's switch -----------------------------------------------------------------


def ping_target(url: str, kind: str) -> str:
    """healthchecks.io's convention: URL/start, URL (success), URL/fail; a query string stays
    at the end (`https://hc/uuid?create=1` -> `https://hc/uuid/start?create=1`)."""
    if kind == "success":
        return url
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{kind}"))


def ping(url: str, kind: str, body: str, timeout: float) -> str | None:
    """POST `body` to the ping URL for `kind` ("start", "success", "fail"); the error, or
    None. The error never holds the URL (its path is the check's secret)."""
    import urllib.error
    import urllib.request

    def call() -> str | None:
        request = urllib.request.Request(
            ping_target(url, kind),
            data=body[:_PING_BODY_CAP].encode("utf-8"),
            method="POST",
            headers={
                "Content-Type": "text/plain; charset=utf-8",
                "User-Agent": f"healthcheck/{__version__}",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(4096)
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code} {exc.reason}"
        except urllib.error.URLError as exc:
            return str(exc.reason)
        except (OSError, ValueError) as exc:
            return str(exc)
        return None

    return _bounded([call], timeout)[0]


class DeadMansSwitch:
    """`notify.ping_url` around one `healthcheck run`: /start, then success or /fail.

    A failed ping is recorded for the next report (a warn finding); it never fails the run.
    Does nothing without a ping URL.
    """

    def __init__(self, config: Config, redactor: Redactor) -> None:
        self.url = config.notify.ping_url
        self.timeout = config.notify.timeout
        self.redactor = redactor
        self.workspace = Path(config.paths.workspace).expanduser()

    def start(self) -> None:
        self._ping("start", "")

    def finish(self, failed: bool, summary: str) -> None:
        self._ping("fail" if failed else "success", summary)

    def _ping(self, kind: str, body: str) -> None:
        if not self.url:
            return
        error = ping(self.url, kind, self.redactor.text(body), self.timeout)
        if error is None:
            log.info("notify: pinged %s", kind)
            return
        error = _clip(self.redactor.text(error), _ERROR_CAP)
        log.warning("notify: the %s ping failed: %s", kind, error)
        # Waits for a run that holds the workspace no longer than the ping itself could take.
        record_failure(self.workspace, self.timeout, ping_failed(kind, error))


# -- findings ------------------------------------------------------------------------------


def delivery_failed(delivery: Delivery) -> Finding:
    return Finding(
        collector=COLLECTOR,
        rule="delivery-failed",
        subject=str(delivery.number),
        severity=Status.WARN,
        title=f"The last alert did not reach channel {delivery.number} ({delivery.label})",
        detail=delivery.error or "",
        hint="`healthcheck notify test` tries each channel and says which works; what the "
        "alert said is in the report history (`healthcheck diff`).",
    )


def ping_failed(kind: str, error: str) -> Finding:
    return Finding(
        collector=COLLECTOR,
        rule="ping-failed",
        subject="",
        severity=Status.WARN,
        title=f"The dead man's switch ping ({kind}) did not get through",
        detail=error,
        hint="Check notify.ping_url and that this box can reach it; the monitor raises its "
        "own alarm when the pings stop.",
    )


def unavailable() -> Finding:
    return Finding(
        collector=COLLECTOR,
        rule="unavailable",
        subject="",
        severity=Status.WARN,
        title="Alerts are configured but Apprise is not installed",
        detail="notify.urls is set, so changes should be sent, but the apprise library is "
        "missing: no alert was sent.",
        hint=f"{INSTALL_HINT} (or pip install apprise) in healthcheck's environment.",
    )


def _finding_from_dict(data: dict[str, Any]) -> Finding | None:
    try:
        return Finding(
            collector=COLLECTOR,
            rule=str(data["rule"]),
            subject=str(data.get("subject", "")),
            severity=Status.WARN,
            title=str(data["title"]),
            detail=str(data.get("detail", "")),
            hint=str(data.get("hint", "")),
        )
    except (KeyError, TypeError):
        return None


def _finding_to_dict(finding: Finding) -> dict[str, str]:
    return {
        "rule": finding.rule,
        "subject": finding.subject,
        "title": finding.title,
        "detail": finding.detail,
        "hint": finding.hint,
    }


# -- the state file ------------------------------------------------------------------------


@dataclass
class State:
    """What the operator was last told, and what went wrong for the next report.

    `told`: the open findings as last told, id -> {"severity", "title", "at"} (when told).
    `resolved_at`: id -> when the operator was told it resolved (kept for min_interval).
    `failures`: findings (as dicts) the next full run's report carries.
    `told_known`: False until a run has recorded what was told (no usable state file, or
    one holding only a ping failure): the first run with alerts on.
    """

    told: dict[str, dict[str, Any]] = field(default_factory=dict)
    resolved_at: dict[str, float] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    told_known: bool = False

    def to_json(self) -> str:
        data = {
            "version": STATE_VERSION,
            "told": self.told,
            "resolved_at": self.resolved_at,
            "failures": self.failures,
            "told_known": self.told_known,
        }
        return json.dumps(data, indent=1, sort_keys=True) + "\n"


def state_path(workspace: Path) -> Path:
    return workspace / STATE_NAME


def load_state(path: Path) -> State:
    """The state file, or an empty State when it is missing or unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return State()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("notify: ignoring unreadable %s: %s", path, exc)
        return State()
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        log.warning("notify: ignoring %s (not a state file of this version)", path)
        return State()
    told = data.get("told")
    resolved = data.get("resolved_at")
    failures = data.get("failures")
    return State(
        told={
            k: v
            for k, v in (told.items() if isinstance(told, dict) else [])
            if isinstance(v, dict) and isinstance(v.get("severity"), str)
        },
        resolved_at={
            k: float(v)
            for k, v in (resolved.items() if isinstance(resolved, dict) else [])
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        },
        failures=[f for f in failures if isinstance(f, dict)] if isinstance(failures, list) else [],
        told_known=data.get("told_known") is True,
    )


def save_state(path: Path, state: State) -> str | None:
    """Write the state atomically; the error as a warning, or None."""
    from healthcheck.output import WriteError, write_files_atomically

    try:
        write_files_atomically([(path, state.to_json())])
    except WriteError as exc:
        return f"alert state not saved: {exc}"
    return None


def record_failure(workspace: Path, lock_timeout: float, finding: Finding) -> None:
    """Add `finding` to the failures the next report carries (under the workspace lock: a
    ping is sent outside the run's own hold of it)."""
    from healthcheck.lock import LockBusy, LockError, workspace_lock

    path = state_path(workspace)
    try:
        workspace.mkdir(parents=True, exist_ok=True)  # the run creates it anyway
        with workspace_lock(workspace, lock_timeout, purpose="notify"):
            state = load_state(path)
            entry = _finding_to_dict(finding)
            state.failures = [f for f in state.failures if f.get("rule") != finding.rule]
            state.failures.append(entry)
            if error := save_state(path, state):
                log.warning("notify: %s", error)
    except (LockBusy, LockError, OSError) as exc:
        log.warning("notify: failure not recorded for the next report: %s", exc)


# -- deciding what to tell ------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    kind: str  # "new", "worse", "better" or "resolved"
    id: str
    severity: str  # now; for "resolved", the severity it had
    title: str
    hint: str = ""
    was: str = ""  # for "worse" and "better": the severity the operator was told
    detail: str = ""


@dataclass
class Plan:
    changes: list[Change]  # what this run has to tell, in the order of the message
    held: list[str]  # ids whose change is held back: it flapped within min_interval
    send: bool


def _rank(severity: str) -> int:
    try:
        return Status(severity).rank
    except ValueError:
        return 0


def plan(
    current: Sequence[dict[str, Any]],
    state: State,
    on: str,
    now: float,
    min_interval: float,
) -> Plan:
    """What to tell: the open findings (report dicts, ranked) against what was told.

    A finding told less than `min_interval` ago that resolves or gets better, or one told
    resolved that opens again, is held: a program that flaps between runs is reported once,
    not on every run; once the interval has passed, whatever state it settled in is told.
    Getting worse is never held.
    """
    current_by_id = {f["id"]: f for f in current}
    changes: list[Change] = []
    held: list[str] = []

    def recent(moment: Any) -> bool:
        return isinstance(moment, (int, float)) and now - moment < min_interval

    for f in current:
        told = state.told.get(f["id"])
        if told is None:
            kind, was = "new", ""
            if recent(state.resolved_at.get(f["id"])):
                held.append(f["id"])
                continue
        else:
            diff = _rank(f["severity"]) - _rank(told["severity"])
            if diff == 0:
                continue
            kind, was = ("worse" if diff > 0 else "better"), told["severity"]
            # Getting worse is always told; only the way back down waits out the interval.
            if kind == "better" and recent(told.get("at")):
                held.append(f["id"])
                continue
        changes.append(
            Change(
                kind,
                f["id"],
                f["severity"],
                f["title"],
                f.get("hint", ""),
                was,
                f.get("detail", ""),
            )
        )
    for finding_id, told in state.told.items():
        if finding_id in current_by_id:
            continue
        if recent(told.get("at")):
            held.append(finding_id)
            continue
        changes.append(Change("resolved", finding_id, told["severity"], str(told.get("title", ""))))
    order = {"new": 0, "worse": 1, "better": 2, "resolved": 3}
    changes.sort(key=lambda c: order[c.kind])  # stable: ranked order within each kind
    if on == "always":
        send = True
    elif on == "worse":
        send = any(c.kind in ("new", "worse") for c in changes)
    else:
        send = bool(changes)
    return Plan(changes, held, send)


def advance(state: State, planned: Plan, told_now: bool, now: float, min_interval: float) -> None:
    """Record in `state` what the operator now knows.

    `told_now`: the message reached at least one channel. When nothing was sent because
    `notify.on = "worse"` let improvements pass, they are recorded silently (no flapping
    clock: nobody was told). When every channel failed nothing moves, so the changes go out
    with the next message.
    """
    if planned.send and not told_now:
        return
    for change in planned.changes:
        if change.kind == "resolved":
            state.told.pop(change.id, None)
            if told_now:
                state.resolved_at[change.id] = now
        else:
            state.told[change.id] = {"severity": change.severity, "title": change.title, "at": now}
            state.resolved_at.pop(change.id, None)
    state.resolved_at = {k: v for k, v in state.resolved_at.items() if now - v < min_interval}


# -- the message ---------------------------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return cut_line(text, limit, trim_before_marker=True)


def headline(report: dict[str, Any]) -> str:
    """`healthcheck: HOST CRIT (1 crit, 2 warn, 0 unknown)`."""
    counts = report.get("counts", {})
    tally = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("crit", "warn", "unknown"))
    status = str(report.get("status", "?")).upper()
    return f"healthcheck: {report.get('host', '?')} {status} ({tally})"


def build_message(
    report: dict[str, Any], planned: Plan, report_path: str, cap: int = MESSAGE_CAP
) -> tuple[str, str]:
    """Title and body: what opened or got worse (why, and its fix), what got better or resolved,
    the report's path last. Cut to `cap` characters in all, saying how much was left out."""
    title = headline(report)
    items: list[str] = []
    for change in planned.changes:
        severity = change.severity.upper()
        name = f"{_clip(change.title, _LINE_CAP)} [{change.id}]"
        if change.kind == "new":
            text = f"- NEW {severity}: {name}"
        elif change.kind == "resolved":
            text = f"- RESOLVED: {name}"
        else:
            text = f"- {change.kind.upper()} {severity} (was {change.was.upper()}): {name}"
        if change.kind in ("new", "worse"):
            if change.detail:
                text += f"\n  {_clip(change.detail, _LINE_CAP)}"
            if change.hint:
                text += f"\n  Fix: {_clip(change.hint, _LINE_CAP)}"
        items.append(text)
    if not items:
        open_findings = report.get("findings", [])
        items.append(
            f"No change since the last alert; {len(open_findings)} open finding"
            f"{'' if len(open_findings) == 1 else 's'}."
        )
        items += [
            f"- {str(f.get('severity', '?')).upper()}: {_clip(str(f.get('title', '')), _LINE_CAP)}"
            f" [{f.get('id', '?')}]"
            for f in open_findings
        ]
    footer = f"Report: {report_path}"
    budget = cap - len(title) - len(footer) - 2
    kept: list[str] = []
    for index, item in enumerate(items):
        more = len(items) - index - 1
        reserve = len(f"… and {more} more in the report") + 1 if more else 0
        if sum(len(k) + 1 for k in kept) + len(item) + 1 + reserve > budget:
            kept.append(f"… and {len(items) - index} more in the report")
            break
        kept.append(item)
    # Log text in a detail must not page a whole chat room (Discord, Slack, Mattermost).
    body = _MENTION_RE.sub("@\u200b\\1", "\n".join([*kept, footer]))
    return title, body


def notify_type(status: str) -> str:
    """Apprise's message type, which channels show as a colour or an icon."""
    return {"crit": "failure", "warn": "warning", "unknown": "warning", "ok": "success"}.get(
        status, "info"
    )


# -- one run -------------------------------------------------------------------------------


class RunNotifier:
    """The alerts of one full run, held under the run's workspace lock.

    Opened before the run writes its report (it reads the previous one on a first run);
    `carried_findings` go into the report; `after_run` decides, sends and saves the state.
    """

    def __init__(self, config: Config, workspace: Path, previous_json: Path) -> None:
        self.settings = config.notify
        self.path = state_path(workspace)
        self.state = load_state(self.path)
        if not self.state.told_known:
            # Alerts just switched on: the last report is what the operator has seen.
            self.state.told = _told_from_report(previous_json)

    def carried_findings(self) -> list[Finding]:
        """The last run's failed alerts and pings, and Apprise missing now."""
        carried = [f for d in self.state.failures if (f := _finding_from_dict(d)) is not None]
        if self.settings.urls and not apprise_available():
            carried.append(unavailable())
        return carried

    def after_run(self, report: dict[str, Any], report_path: Path, redactor: Redactor) -> list[str]:
        """Send what changed, as `notify.on` says; the console warnings."""
        warnings: list[str] = []
        self.state.failures = []  # the report just written carries them
        current = [f for f in report.get("findings", []) if f.get("collector") != COLLECTOR]
        now = time.time()
        planned = plan(current, self.state, self.settings.on, now, self.settings.min_interval)
        told_now = False
        if planned.send and self.settings.urls:
            told_now = self._send(report, planned, report_path, redactor, warnings)
        elif planned.send:
            planned.send = False  # a ping without channels: nothing to tell anyone
        if planned.held:
            log.info("notify: held back (flapping within min_interval): %s", planned.held)
        advance(self.state, planned, told_now, now, self.settings.min_interval)
        self.state.told_known = True
        if error := save_state(self.path, self.state):
            warnings.append(error)
        return warnings

    def _send(
        self,
        report: dict[str, Any],
        planned: Plan,
        report_path: Path,
        redactor: Redactor,
        warnings: list[str],
    ) -> bool:
        title, body = build_message(report, planned, str(report_path))
        try:
            deliveries = send(
                self.settings.urls,
                title,
                body,
                redactor,
                self.settings.timeout,
                notify_type(str(report.get("status"))),
            )
        except NotifyUnavailable as exc:
            warnings.append(f"no alert sent: {exc}")
            return False
        for delivery in deliveries:
            if delivery.ok:
                log.info("notify: alert sent to channel %d (%s)", delivery.number, delivery.label)
            else:
                warnings.append(
                    f"alert to channel {delivery.number} ({delivery.label}) failed: "
                    f"{delivery.error}"
                )
                self.state.failures.append(_finding_to_dict(delivery_failed(delivery)))
        return any(d.ok for d in deliveries)


def _told_from_report(path: Path) -> dict[str, dict[str, Any]]:
    """The findings of a JSON report as `State.told` (told long ago: no flapping clock)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        findings = data["findings"]
        return {
            str(f["id"]): {"severity": str(f["severity"]), "title": str(f.get("title", ""))}
            for f in findings
            if f.get("collector") != COLLECTOR
        }
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        return {}
