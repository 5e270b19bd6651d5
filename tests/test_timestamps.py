"""The one time format: stamps written, read back, and shown to people the same way."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from healthcheck.timestamps import (
    parse_utc_stamp,
    readable,
    readable_stamp,
    stamp_seconds,
    utc_date,
    utc_stamp,
)

MOMENT = datetime(2026, 11, 29, 4, 0, 5, 123456, tzinfo=timezone.utc)


def test_a_moment_reads_the_same_as_a_stamp_and_as_words() -> None:
    stamp = utc_stamp(MOMENT)
    assert stamp == "2026-11-29T04:00:05Z"
    assert parse_utc_stamp(stamp) == MOMENT.replace(microsecond=0)
    assert readable(MOMENT) == readable_stamp(stamp) == "2026-11-29 04:00:05 UTC"
    assert utc_date(MOMENT) == "2026-11-29"


def test_another_zone_is_shown_in_utc() -> None:
    east = MOMENT.astimezone(timezone(timedelta(hours=9)))  # 13:00 on the 29th in Tokyo
    assert readable(east) == "2026-11-29 04:00:05 UTC"
    late = datetime(2026, 11, 30, 2, 0, tzinfo=timezone(timedelta(hours=5)))
    assert utc_date(late) == "2026-11-29"


def test_an_odd_stamp_is_shown_as_it_is() -> None:
    assert readable_stamp("?") == "?"
    assert readable_stamp(None) == "None"


def test_stamp_seconds_reads_a_stamp_and_refuses_anything_else() -> None:
    assert stamp_seconds("2026-11-29T04:00:05Z") == MOMENT.replace(microsecond=0).timestamp()
    assert stamp_seconds(None) is None
    assert stamp_seconds("yesterday") is None
