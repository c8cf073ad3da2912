"""The consumer writes moments through orjson rather than ``isoformat`` (see ``_utc_text`` and
``deltas.iso``): the text must be exactly what the slower, obvious form gives, for any moment in
any zone, as the store orders by it and screens compare it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from dashboard.feed.apply import _utc_text
from dashboard.feed.deltas import fixed_zone, iso

ZONES = [timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30)),
         timezone(timedelta(hours=5, minutes=45)), timezone(timedelta(hours=8, minutes=5, seconds=43)),
         ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York"), ZoneInfo("UTC")]

# Years 2..9998 so that shifting into any of the zones above stays inside datetime's range.
MOMENTS = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
                       timezones=st.sampled_from(ZONES))


@settings(max_examples=3000, deadline=None)
@given(MOMENTS)
def test_feed006_utc_text_is_sqlalchemys_text(value):
    expected = value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")
    assert _utc_text(value) == expected


@settings(max_examples=3000, deadline=None)
@given(MOMENTS, st.sampled_from(ZONES))
def test_feed006_iso_is_isoformat_to_the_second(value, tz):
    assert iso(value, tz) == value.astimezone(tz).isoformat(timespec="seconds")


@settings(max_examples=500, deadline=None)
@given(MOMENTS)
def test_feed006_iso_in_the_consumers_fixed_zone(value):
    tz = fixed_zone(ZoneInfo("Asia/Shanghai"), datetime(2026, 12, 7, tzinfo=timezone.utc))
    assert iso(value, tz) == value.astimezone(tz).isoformat(timespec="seconds")


@pytest.mark.parametrize("value, text", [
    (datetime(2026, 12, 7, 8, 0, tzinfo=timezone(timedelta(hours=8))), "2026-12-07 00:00:00.000000"),
    (datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=timezone.utc), "2026-12-31 23:59:59.999999"),
    (datetime(2027, 1, 1, 7, 30, 0, 5, tzinfo=ZoneInfo("Asia/Shanghai")), "2026-12-31 23:30:00.000005"),
])
def test_feed006_utc_text_known_moments(value, text):
    assert _utc_text(value) == text


def test_feed006_naive_moment_is_refused():
    with pytest.raises(ValueError, match="naive"):
        _utc_text(datetime(2026, 12, 7, 8, 0))
    assert iso(None, timezone.utc) is None
