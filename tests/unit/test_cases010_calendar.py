"""The working calendar: holidays with make-up days, the 2026->2027 boundary, suspension,
extension, the clock's states, the override file's errors and /healthz's warning."""
from __future__ import annotations

import textwrap
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dashboard.cases import clock
from dashboard.cases.taxonomy import Deadline
from dashboard.cases.workcalendar import (
    DEFAULT_HOLIDAYS_PATH, CalendarError, Overrides, UnknownYear, WorkCalendar, load_holidays, parse_holidays,
    parse_work_hours, unknown_years_warning,
)

TZ = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar("Asia/Shanghai")


def at(y, mo, d, h=0, mi=0):
    return datetime(y, mo, d, h, mi, tzinfo=TZ)


def cal_2027(tmp_path):
    """A calendar whose override file holds a (test) 2027 with New Year's Day off."""
    path = tmp_path / "holidays.yaml"
    path.write_text("2027:\n  holidays:\n    2027-01-01: 元旦\n", encoding="utf-8")
    return WorkCalendar("Asia/Shanghai", overrides=parse_holidays(path))


def test_cases010_days_of_2026_follow_the_state_council_schedule():
    assert CAL.is_working_day(date(2026, 10, 10))        # Saturday, National Day make-up day
    assert CAL.is_working_day(date(2026, 9, 20))         # Sunday, make-up day
    assert CAL.is_working_day(date(2026, 2, 14))         # Saturday, Spring Festival make-up day
    assert not CAL.is_working_day(date(2026, 10, 5))     # Monday inside the National Day holiday
    assert not CAL.is_working_day(date(2026, 2, 16))     # Monday inside the Spring Festival
    assert not CAL.is_working_day(date(2026, 10, 11))    # an ordinary Sunday
    assert CAL.is_working_day(date(2026, 10, 12))        # an ordinary Monday
    assert CAL.is_working_day(at(2026, 10, 10, 23, 0).astimezone(ZoneInfo("UTC")))  # local date counts


def test_cases011_working_days_skip_the_national_day_and_use_the_make_up_saturday():
    assert CAL.add_working_days(at(2026, 9, 30, 10), 1).at == at(2026, 10, 8, 10)
    assert CAL.add_working_days(at(2026, 10, 9, 10), 1).at == at(2026, 10, 10, 10)   # make-up Saturday
    assert CAL.add_working_days(at(2026, 10, 9, 10), 2).at == at(2026, 10, 12, 10)   # skips Sunday 11th
    assert CAL.add_working_days(at(2026, 9, 30, 17, 30), 1).at == at(2026, 10, 8, 17, 30)
    # reported on a day off: the allowance starts when work does
    assert CAL.add_working_hours(at(2026, 10, 3, 15), 1).at == at(2026, 10, 8, 9, 30)
    assert CAL.add_working_hours(at(2026, 9, 19, 15), 1).at == at(2026, 9, 20, 9, 30)  # Sat -> make-up Sun


def test_cases012_working_hours_across_the_spring_festival_and_lunch():
    # Fri 13 Feb 16:00: 1.5 h that day, then the make-up Saturday 14th from 08:30
    assert CAL.add_working_hours(at(2026, 2, 13, 16), 4).at == at(2026, 2, 14, 11)
    # Sat 14th 17:00: half an hour, then nothing until Tue 24th (15th-23rd off)
    assert CAL.add_working_hours(at(2026, 2, 14, 17), 1).at == at(2026, 2, 24, 9)
    assert CAL.add_working_hours(at(2026, 3, 2, 11), 2).at == at(2026, 3, 2, 14, 30)   # lunch 12:00-13:30
    assert CAL.add_working_hours(at(2026, 3, 2, 8, 30), 3.5).at == at(2026, 3, 2, 12, 0)  # the morning's close, not 13:30
    span = CAL.working_time_between(at(2026, 2, 13, 8), at(2026, 2, 25, 8))
    assert span.hours == pytest.approx(7.5 * 3) and not span.provisional  # 13th, 14th, 24th


def test_cases013_a_deadline_into_2027_is_provisional_until_the_file_knows_2027(tmp_path):
    due = CAL.add_working_hours(at(2026, 12, 31, 16), 4)
    assert due.at == at(2027, 1, 1, 11) and due.provisional and due.unknown_years == (2027,)  # weekday rule
    in_2026 = CAL.add_working_days(at(2026, 12, 28, 9), 3)
    assert in_2026.at == at(2026, 12, 31, 9) and not in_2026.provisional
    assert CAL.add_working_days(at(2026, 12, 28, 9), 5).at == at(2027, 1, 4, 9)
    assert CAL.add_natural_hours(at(2026, 12, 31, 22), 4) == CAL.add_natural_hours(at(2026, 12, 31, 22), 4)
    assert not CAL.add_natural_hours(at(2026, 12, 31, 22), 4).provisional  # natural hours need no calendar
    with pytest.raises(UnknownYear, match="2027"):
        CAL.is_working_day(date(2027, 1, 4), strict=True)

    known = cal_2027(tmp_path)
    due = known.add_working_hours(at(2026, 12, 31, 16), 4)
    assert due.at == at(2027, 1, 4, 11) and not due.provisional  # New Year's Day is off now
    assert known.is_working_day(date(2027, 1, 4), strict=True)
    assert not known.is_working_day(date(2027, 1, 1), strict=True)


def test_cases014_unknown_years_ahead_warns_60_days_before():
    assert CAL.unknown_years_ahead(at(2026, 10, 1)) == []
    assert CAL.unknown_years_ahead(at(2026, 11, 2)) == [2027]   # 60 days later is 1 January 2027
    assert CAL.unknown_years_ahead(at(2026, 11, 1)) == []
    assert CAL.unknown_years_ahead(at(2026, 12, 6), days=400) == [2027, 2028]
    assert unknown_years_warning(CAL, at(2026, 10, 1)) is None
    warning = unknown_years_warning(CAL, at(2026, 12, 28))
    assert "2027" in warning and "provisional" in warning


def test_cases015_suspension_stops_the_clock():
    start = at(2026, 11, 2, 9)  # Monday
    assert CAL.add_working_days(start, 1).at == at(2026, 11, 3, 9)
    # suspended 10:00-14:00: 2 h of the morning and 30 min after lunch do not count
    due = CAL.add_working_days(start, 1, [(at(2026, 11, 2, 10), at(2026, 11, 2, 14))])
    assert due.at == at(2026, 11, 3, 11, 30)
    # a suspension over the night costs no working time
    assert CAL.add_working_days(start, 1, [(at(2026, 11, 2, 18), at(2026, 11, 3, 8))]).at == at(2026, 11, 3, 9)
    # a suspension after the deadline changes nothing; natural hours stop too
    assert CAL.add_working_days(start, 1, [(at(2026, 11, 4, 9), at(2026, 11, 5, 9))]).at == at(2026, 11, 3, 9)
    assert CAL.add_natural_hours(start, 24, [(at(2026, 11, 2, 12), at(2026, 11, 2, 15))]).at == at(2026, 11, 3, 12)
    # overlapping suspensions count once
    two = [(at(2026, 11, 2, 10), at(2026, 11, 2, 11)), (at(2026, 11, 2, 10, 30), at(2026, 11, 2, 11, 30))]
    assert CAL.add_working_hours(start, 2, two).at == at(2026, 11, 2, 14)  # 1 h, 11:30-12:00, 13:30-14:00


def test_cases016_the_clock_of_a_case_time_left_due_soon_overdue_multiple():
    tl = clock.Timeline(start=at(2026, 11, 2, 9), deadline=Deadline("working_hours", 4))
    s = clock.status(CAL, tl, at(2026, 11, 2, 12))
    assert s.deadline.at == at(2026, 11, 2, 14, 30)
    assert s.left_s == pytest.approx(3600) and not s.due_soon and not s.overdue
    s = clock.status(CAL, tl, at(2026, 11, 2, 13, 50))  # 40 min left of 4 h: in the last 20 %
    assert s.due_soon and not s.overdue and s.left_s == pytest.approx(40 * 60)
    s = clock.status(CAL, tl, at(2026, 11, 2, 13, 50), due_soon_share=0.1)
    assert not s.due_soon
    s = clock.status(CAL, tl, at(2026, 11, 3, 9, 30))  # 8 working hours used of 4
    assert s.overdue and not s.due_soon and s.overtime_multiple == pytest.approx(1.0)
    finished = clock.Timeline(tl.start, tl.deadline, finished_at=at(2026, 11, 2, 14))
    s = clock.status(CAL, finished, at(2026, 11, 9, 9))  # done in time: not overdue a week later
    assert not s.overdue and not s.due_soon and s.used_s == pytest.approx(3.5 * 3600)


def test_cases017_an_open_suspension_freezes_time_left_and_extension_moves_the_deadline():
    start = at(2026, 11, 2, 9)
    tl = clock.Timeline(start, Deadline("working_days", 1), suspensions=((at(2026, 11, 2, 10), None),))
    monday = clock.status(CAL, tl, at(2026, 11, 2, 11))
    a_week_later = clock.status(CAL, tl, at(2026, 11, 9, 11))
    assert monday.left_s == a_week_later.left_s == pytest.approx(6.5 * 3600)
    assert not a_week_later.overdue
    # extended on Monday at 11:00 to Wednesday 17:30
    ext = clock.Timeline(start, Deadline("working_days", 1), extensions=((at(2026, 11, 2, 11), at(2026, 11, 4, 17, 30)),))
    s = clock.status(CAL, ext, at(2026, 11, 3, 17, 30))
    assert s.deadline.at == at(2026, 11, 4, 17, 30) and not s.overdue
    assert s.allowance_s == pytest.approx((7.5 * 3 - 0.5) * 3600)
    # a suspension after the extension still stops the clock: Wed 09:30-10:30 pushes it to Thu 09:30
    later = clock.Timeline(start, ext.deadline, suspensions=((at(2026, 11, 4, 9, 30), at(2026, 11, 4, 10, 30)),),
                           extensions=ext.extensions)
    assert clock.status(CAL, later, at(2026, 11, 4, 12)).deadline.at == at(2026, 11, 5, 9, 30)


def test_cases018_work_hours_are_a_setting():
    assert parse_work_hours("08:30-12:00,13:30-17:30")[1][0].hour == 13
    for bad in ("8-12", "12:00-08:30", "08:00-12:00,11:00-17:00", "25:00-26:00"):
        with pytest.raises(ValueError):
            parse_work_hours(bad)
    nine_to_five = WorkCalendar("Asia/Shanghai", "09:00-17:00")
    assert nine_to_five.add_working_hours(at(2026, 11, 2, 16), 2).at == at(2026, 11, 3, 10)


def test_cases019_the_shipped_override_file_loads():
    assert isinstance(load_holidays(DEFAULT_HOLIDAYS_PATH), Overrides)
    assert load_holidays("/nonexistent/holidays.yaml").years == {}


GOOD = """\
2027:
  holidays:
    2027-01-01: 元旦
    2027-01-02: 元旦
  workdays:
    2027-02-20: 春节调休
"""

BAD = [
    ("2027-01-02: 元旦", "2027-02-30: 元旦", 4, "'2027-02-30' is not a date"),
    ("2027-01-02: 元旦", "2028-01-02: 元旦", 4, "listed under year 2027"),
    ("2027-01-02: 元旦", "2027-01-01: 又一个", 4, "given twice"),
    ("2027-02-20: 春节调休", "2027-02-22: 春节调休", 6, "make-up working day falls on a Saturday or Sunday"),
    ("2027-02-20: 春节调休", "2027-01-02: 元旦", 6, "both as a holiday and as a working day"),
    ("2027:", "twenty27:", 1, "not a year"),
    ("  workdays:", "  weekends:", 5, "unknown key 'weekends'"),
    ("    2027-01-02: 元旦", "    2027-01-02:", 4, "the name of 2027-01-02 must be non-empty text"),
]


@pytest.mark.parametrize("old,new,line,words", BAD, ids=[b[3][:28] for b in BAD])
def test_cases020_a_bad_override_file_is_refused_naming_the_line(tmp_path, old, new, line, words):
    assert old in GOOD
    path = tmp_path / "holidays.yaml"
    path.write_text(textwrap.dedent(GOOD.replace(old, new, 1)), encoding="utf-8")
    with pytest.raises(CalendarError) as err:
        parse_holidays(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and words in str(err.value), str(err.value)


def test_cases021_healthz_reads_the_calendar_and_a_bad_file_stops_the_start(stack, make_services, tmp_path):
    import flask

    from dashboard.api import health

    now = datetime.now(TZ)
    good = tmp_path / "good.yaml"
    # every year from now to 60 days ahead is known (the file lists those the package does not)
    years = [y for y in range(now.year, (now + timedelta(days=61)).year + 1) if not CAL.knows_year(y)]
    good.write_text("".join(f"{y}:\n  holidays:\n    {y}-01-01: 元旦\n" for y in years) or "{}\n", encoding="utf-8")
    svc = make_services(*stack, holidays_file=str(good))
    app = flask.Flask("health-cal")
    health.register(app, svc)
    assert app.test_client().get("/healthz").get_json()["calendar"] == "ok"

    bad = tmp_path / "bad.yaml"
    bad.write_text("2027:\n  holidays:\n    2027-13-01: 元旦\n", encoding="utf-8")
    svc2 = make_services(*stack, holidays_file=str(bad))
    with pytest.raises(CalendarError, match=r"bad\.yaml:3: '2027-13-01' is not a date"):
        health.register(flask.Flask("health-bad"), svc2)


def test_cases022_healthz_warns_when_the_next_60_days_reach_an_unknown_year(stack, make_services, tmp_path):
    import flask

    from dashboard.api import health

    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    svc = make_services(*stack, holidays_file=str(empty))
    app = flask.Flask("health-warn")
    health.register(app, svc)
    body = app.test_client().get("/healthz").get_json()
    cal = svc.cache["work_calendar"]
    expected = unknown_years_warning(cal, datetime.now(TZ))
    if expected is None:  # the package knows every year of the next 60 days: no warning then
        assert body["calendar"] == "ok"
    else:
        assert body["calendar"] == expected and str(cal.unknown_years_ahead(datetime.now(TZ))[0]) in expected


from hypothesis import given, settings as hsettings, strategies as st  # noqa: E402

_instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(tzinfo=TZ))


@hsettings(max_examples=300, deadline=None)
@given(start=_instants, minutes=st.integers(min_value=0, max_value=60 * 200),
       pause=st.tuples(st.integers(0, 60 * 24 * 20), st.integers(0, 60 * 24 * 5)))
def test_cases023_adding_working_time_and_measuring_it_agree(start, minutes, pause):
    """Whatever the start, suspension and holidays: the working time from a start to the
    deadline of N minutes is N minutes, the deadline is inside working hours of a working day,
    and it is provisional exactly when the way there touches a year the package lacks."""
    sus = [(start + timedelta(minutes=pause[0]), start + timedelta(minutes=pause[0] + pause[1]))]
    due = CAL.add_working_hours(start, minutes / 60, sus)
    span = CAL.working_time_between(start, due.at, sus)
    assert span.seconds == pytest.approx(minutes * 60, abs=1e-3)
    if minutes:
        loc = due.at.astimezone(TZ)
        assert CAL.is_working_day(loc.date())
        t = loc.time()
        assert (datetime.min.replace(hour=8, minute=30).time() < t <= datetime.min.replace(hour=12).time()
                or datetime.min.replace(hour=13, minute=30).time() < t <= datetime.min.replace(hour=17, minute=30).time())
    assert due.provisional == (due.at.astimezone(TZ).year >= 2027)
