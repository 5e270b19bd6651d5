"""The one way the reports write and read a moment: UTC, to the second, "2026-11-29T04:00:00Z".

Every stamp a report, lock file or log record carries goes through these, so that what one
module writes another can read back; what people read ("2026-11-29 04:00:00 UTC", a date)
is made here too, so that every heading and message says a time the same way.
"""

from __future__ import annotations

from datetime import datetime, timezone

from healthcheck.lazyre import lazy

UTC_STAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
READABLE_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
DATE_FORMAT = "%Y-%m-%d"
_UTC_STAMP = lazy(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def utc_stamp(when: datetime) -> str:
    """`when` as a UTC stamp, the fraction of a second dropped; a naive `when` is taken to be
    UTC already."""
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime(UTC_STAMP_FORMAT)


def utc_stamp_of(timestamp: float) -> str:
    """A POSIX timestamp (seconds since the epoch) as a UTC stamp, the fraction dropped."""
    return datetime.fromtimestamp(int(timestamp), tz=timezone.utc).strftime(UTC_STAMP_FORMAT)


def now_stamp() -> str:
    """This moment as a UTC stamp."""
    return utc_stamp(datetime.now(timezone.utc))


def parse_utc_stamp(value: object, what: str = "a time stamp") -> datetime:
    """A UTC stamp read back as an aware datetime; TypeError for a non-string, ValueError for
    any other shape.

    Not strptime: its module costs every run a few milliseconds to import.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {type(value).__name__}")
    if not _UTC_STAMP.fullmatch(value):
        raise ValueError(f"time data {value!r} does not match {UTC_STAMP_FORMAT!r}")
    return datetime.fromisoformat(value[:-1]).replace(tzinfo=timezone.utc)


def readable(when: datetime) -> str:
    """`when` for people: "2026-11-29 04:00:00 UTC" (a naive `when` is taken to be UTC)."""
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc)
    return when.strftime(READABLE_FORMAT)


def readable_stamp(stamp: object) -> str:
    """A report's UTC stamp for people: "2026-11-29T04:00:00Z" -> "2026-11-29 04:00:00 UTC".
    Whatever else a (hand-edited, older) report holds is shown as it is, never refused."""
    return str(stamp).replace("T", " ").replace("Z", " UTC")


def utc_date(when: datetime | None = None) -> str:
    """The UTC date of `when` (now by default): "2026-11-29"."""
    moment = when or datetime.now(timezone.utc)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime(DATE_FORMAT)


def stamp_seconds(value: object) -> float | None:
    """Seconds since the epoch of a UTC stamp (a report's `mtime`, a program's `started`);
    None for None or anything that is not one."""
    try:
        return parse_utc_stamp(value).timestamp()
    except (TypeError, ValueError):
        return None
