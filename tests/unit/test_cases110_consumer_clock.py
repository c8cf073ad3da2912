"""Deadlines in working time through the consumer (issue 17): the taxonomy's allowance on the
working calendar across a holiday with a make-up working day, suspension and resumption,
extension, escalation, provisional deadlines in a year the calendar does not know."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from dashboard.cases.workcalendar import WorkCalendar, load_holidays, parse_holidays
from dashboard.feed.casework import CaseContext
from dashboard.feed.contract import DELTAS
from dashboard.feed.deltas import decode
from dashboard.store.schema import event, event_step, hazard

from . import feed_support as F

CST = F.CST


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CST)


@pytest.fixture
def svc(stack, make_services):
    return F.case_services(stack, make_services)


consume = F.consume
report = F.report_at
step = F.step_at


def row(engine, eid: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(event).where(event.c.id == eid)).mappings().one())


def test_cases110_working_days_across_national_day_with_its_make_up_saturday(svc):
    # 2026: 1-7 October off, Saturday 10 October a make-up working day (调休). 乱堆乱放 (clutter):
    # 4 working days from Wednesday 30 September 16:00 -> 8, 9, 10 (Sat) and 12 October, 16:00
    F.xadd_all(svc.redis, [report("H1", "clutter", "environment", t("2026-09-30T16:00:00"))])
    assert consume(svc)["dead"] == 0
    ev = row(svc.engine, "H1")
    assert ev["deadline_at"] == t("2026-10-12T16:00:00")   # weekdays alone: 6 October; no make-up day: 13
    assert ev["deadline_basis"] == "working_days" and ev["allowance_s"] == 4 * 7.5 * 3600
    # 即将到期 in the last 20% (6 working hours): from the close of Saturday 10 October
    assert ev["due_soon_at"] == t("2026-10-10T17:30:00")
    assert ev["deadline_provisional"] is False


def test_cases111_fast_clock_is_the_calendars(svc):
    # the consumer's clock (casework.FastClock) gives the calendar's own values and instants
    ctx = CaseContext()
    rnd = random.Random(17)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for _ in range(3000):
        at = start + timedelta(seconds=rnd.random() * 3 * 365 * 86400)
        v = ctx.cal.working_clock(at)
        assert ctx.fast.value(at) == pytest.approx(v, abs=1e-6)
        for value in (v, v + rnd.random() * 40 * 86400):
            want = ctx.cal._from_working_clock(value, ctx.cal.local(at).year)
            assert ctx.fast.instant(value, ctx.fast.year(at)) == want


def test_cases112_suspension_stops_the_clock_and_resumption_restarts_it(svc):
    # 消防通道堵塞 (fire_lane): 4 working hours. Reported Tuesday 29 September 09:00 -> 14:30
    r = svc.redis
    F.xadd_all(r, [report("S1", "fire_lane", "safety", t("2026-09-29T09:00:00")),
                   step("S1", 2, "registered", t("2026-09-29T09:10:00")),
                   step("S1", 3, "suspended", t("2026-09-29T10:00:00"), note="等待业主配合")])
    assert consume(svc)["dead"] == 0
    ev = row(svc.engine, "S1")
    assert ev["state"] == "suspended" and ev["resume_state"] == "registered"
    assert ev["suspended_at"] == t("2026-09-29T10:00:00")
    assert ev["remaining_s"] == 3 * 3600          # one working hour used of four
    assert ev["deadline_at"] == t("2026-09-29T14:30:00")   # unchanged while suspended (the wall skips suspended)
    # resumed Wednesday 30 September 16:00: 1.5 h that day, the rest after National Day: 8 October 10:00
    F.xadd_all(r, [step("S1", 4, "resumed", t("2026-09-30T16:00:00"))])
    assert consume(svc)["dead"] == 0
    ev = row(svc.engine, "S1")
    assert ev["state"] == "registered" and ev["resume_state"] is None and ev["suspended_at"] is None
    assert ev["remaining_s"] is None
    assert ev["deadline_at"] == t("2026-10-08T10:00:00")
    assert ev["allowance_s"] == 4 * 3600
    # extended to Friday 9 October 10:00 (延期, with a reason): the allowance grows by 7.5 working hours
    F.xadd_all(r, [step("S1", 5, "extended", t("2026-10-08T09:00:00"), note="材料未到",
                        deadline_at=t("2026-10-09T10:00:00").isoformat())])
    assert consume(svc)["dead"] == 0
    ev = row(svc.engine, "S1")
    assert ev["deadline_at"] == t("2026-10-09T10:00:00") and ev["extensions"] == 1
    assert ev["allowance_s"] == (4 + 7.5) * 3600
    # the last 20% (2.3 working hours) before it: 1.5 h on the 9th, 0.8 h before the 8th's close
    assert ev["due_soon_at"] == t("2026-10-08T16:42:00")
    with svc.engine.connect() as conn:
        steps = conn.execute(sa.select(event_step.c.seq, event_step.c.step, event_step.c.actor, event_step.c.note,
                                       event_step.c.payload).where(event_step.c.event_id == "S1")
                             .order_by(event_step.c.seq)).all()
    assert [(s, n) for s, n, *_ in steps] == [(2, "registered"), (3, "suspended"), (4, "resumed"), (5, "extended")]
    assert steps[1].note == "等待业主配合" and steps[1].actor == "S000001"
    assert json.loads(steps[1].payload) == {"remaining_s": 10800.0}
    assert datetime.fromisoformat(json.loads(steps[2].payload)["deadline_at"]) == t("2026-10-08T10:00:00")
    assert datetime.fromisoformat(json.loads(steps[3].payload)["deadline_at"]) == t("2026-10-09T10:00:00")
    # the wall's delta: the state and the clock's moments, and nobody's identity (the reporter S000001)
    last = [d for _sid, f in svc.redis.xrange(DELTAS) for d in decode(f[b"d"]) if d.get("id") == "S1"][-1]
    assert last["st"] == "registered" and last["pv"] is False
    assert datetime.fromisoformat(last["dl"]) == t("2026-10-09T10:00:00")
    assert datetime.fromisoformat(last["ds"]) == t("2026-10-08T16:42:00")
    assert "S000001" not in json.dumps(last)


def test_cases113_escalation_gives_the_new_tier_its_allowance(svc):
    # 垃圾堆积 (garbage): 1 working day. Reported Monday 28 September 09:00 (deadline 29th 09:00),
    # escalated at 10:00: the street gets a working day of its own, to Tuesday 10:00
    F.xadd_all(svc.redis, [report("G1", "garbage", "environment", t("2026-09-28T09:00:00"), level=3),
                           step("G1", 2, "registered", t("2026-09-28T09:05:00")),
                           step("G1", 3, "escalated", t("2026-09-28T10:00:00"))])
    assert consume(svc)["dead"] == 0
    ev = row(svc.engine, "G1")
    assert ev["level"] == 2 and ev["escalations"] == 1
    assert ev["deadline_at"] == t("2026-09-29T10:00:00") and ev["allowance_s"] == 7.5 * 3600


def test_cases114_a_deadline_into_2027_is_provisional(svc):
    # an extension to January 2027 (no holiday schedule for 2027 in the package or the file yet)
    F.xadd_all(svc.redis, [report("Y1", "road", "facilities", t("2026-11-30T09:00:00")),
                           step("Y1", 2, "registered", t("2026-11-30T09:30:00")),
                           step("Y1", 3, "extended", t("2026-12-01T09:00:00"), note="冬季施工",
                                deadline_at=t("2027-01-05T12:00:00").isoformat()),
                           F.envelope("Y1-hz", type="hazard.found", hazard_id="HZ-Y1", kind="gas_pipe",
                                      region_code=F.GRIDS[0], occurred_at=t("2026-12-01T10:00:00").isoformat(),
                                      working_days=30)])
    assert consume(svc)["dead"] == 0
    ev = row(svc.engine, "Y1")
    assert ev["deadline_at"] == t("2027-01-05T12:00:00") and ev["deadline_provisional"] is True
    with svc.engine.connect() as conn:
        hz = conn.execute(sa.select(hazard)).mappings().one()
    # 30 working days from Tuesday 1 December 10:00: 22 more in December 2026 (no holiday), then 8 in
    # January 2027 counted on weekdays (1 January a Friday, so a working day)
    assert hz["state"] == "ordered" and hz["deadline_provisional"] is True
    assert hz["deadline_at"] == t("2027-01-12T10:00:00")


def test_cases115_reported_28_december_2026_with_and_without_the_2027_schedule(tmp_path):
    # the issue's example: a case reported on 28 December 2026 already needs 2027's calendar
    ctx = CaseContext(WorkCalendar("Asia/Shanghai", overrides=load_holidays(tmp_path / "none.yaml")))
    d = ctx.fresh("safety", "sandwich_panel", t("2026-12-28T10:00:00"))   # 15 working days
    # weekdays: 29-31 December (3), 1 January (a Friday), 4-8, 11-15 and 18 January 2027, 10:00
    assert d.at == t("2027-01-18T10:00:00") and d.provisional is True
    d = ctx.fresh("safety", "hydrant", t("2026-12-31T10:00:00"))           # 3 working days
    assert d.at == t("2027-01-05T10:00:00") and d.provisional is True      # 1, 4, 5 January
    path = tmp_path / "holidays.yaml"
    path.write_text("2027:\n  holidays:\n    2027-01-01: 元旦\n    2027-01-02: 元旦\n    2027-01-03: 元旦\n"
                    "  workdays:\n    2027-01-09: 调休\n", encoding="utf-8")
    known = CaseContext(WorkCalendar("Asia/Shanghai", overrides=parse_holidays(path)))
    d = known.fresh("safety", "hydrant", t("2026-12-31T10:00:00"))
    assert d.at == t("2027-01-06T10:00:00") and d.provisional is False     # 4, 5, 6 January: the 1st is off
    d = known.fresh("safety", "sandwich_panel", t("2026-12-28T10:00:00"))
    # 29-31 December, 4-8 January, Saturday 9 January (worked), 11-15, 18 January
    assert d.at == t("2027-01-18T10:00:00") and d.provisional is False
