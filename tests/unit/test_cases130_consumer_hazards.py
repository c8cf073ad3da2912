"""The hazard cycle through the consumer (issue 17 item 5): found -> ordered -> rectified ->
passed -> closed, or failed -> ordered again with a new deadline, on the working calendar;
illegal steps dead-lettered, early ones held until their predecessor arrives."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
import sqlalchemy as sa

from dashboard.store.schema import feed_pending, hazard

from . import feed_support as F


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=F.CST)


@pytest.fixture
def svc(stack, make_services):
    return F.case_services(stack, make_services)


consume = F.consume


def msg(mid: str, type_: str, hid: str, when: datetime, **kw) -> dict:
    return F.envelope(mid, type=type_, hazard_id=hid, region_code=F.GRIDS[1], occurred_at=when.isoformat(), **kw)


def found(hid: str, when: datetime, **kw) -> dict:
    return msg(f"{hid}-f", "hazard.found", hid, when, kind="gas_pipe", description="燃气立管锈蚀", **kw)


def row(engine, hid: str) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(hazard).where(hazard.c.id == hid)).mappings().one())


def reasons(r) -> dict:
    return {json.loads(d["payload"])["id"]: d["reason"] for d in F.dead_letters(r)}


def test_cases130_the_whole_cycle_with_a_failed_reinspection(svc):
    r = svc.redis
    # found Monday 28 September 09:00 with 2 working days: ordered at once, due Wednesday 30th 09:00
    F.xadd_all(r, [found("H1", t("2026-09-28T09:00:00"), working_days=2)])
    assert consume(svc)["dead"] == 0
    hz = row(svc.engine, "H1")
    assert hz["state"] == "ordered" and hz["ordered_at"] == t("2026-09-28T09:00:00")
    assert hz["deadline_at"] == t("2026-09-30T09:00:00") and hz["deadline_provisional"] is False
    # rectified, then the re-inspection fails without a new deadline: the same two working days
    # again from the failure (Tuesday 15:00): 30 September, then 8 October (after National Day), 15:00
    F.xadd_all(r, [msg("H1-r1", "hazard.rectified", "H1", t("2026-09-29T10:00:00")),
                   msg("H1-v1", "hazard.reinspected", "H1", t("2026-09-29T15:00:00"), passed=False,
                       note="未整改到位")])
    assert consume(svc)["dead"] == 0
    hz = row(svc.engine, "H1")
    assert hz["state"] == "ordered" and hz["failures"] == 1 and hz["ordered_at"] == t("2026-09-29T15:00:00")
    assert hz["deadline_at"] == t("2026-10-08T15:00:00") and hz["reinspected_at"] == t("2026-09-29T15:00:00")
    F.xadd_all(r, [msg("H1-r2", "hazard.rectified", "H1", t("2026-10-08T10:00:00")),
                   msg("H1-v2", "hazard.reinspected", "H1", t("2026-10-08T14:00:00"), passed=True),
                   msg("H1-c", "hazard.closed", "H1", t("2026-10-09T09:00:00"), note="销号")])
    assert consume(svc)["dead"] == 0
    hz = row(svc.engine, "H1")
    assert hz["state"] == "closed" and hz["closed_at"] == t("2026-10-09T09:00:00")
    assert hz["rectified_at"] == t("2026-10-08T10:00:00") and hz["reinspected_at"] == t("2026-10-08T14:00:00")
    assert hz["failures"] == 1 and hz["last_seq"] == 6   # found+ordered, 5 steps since


def test_cases131_found_without_a_deadline_then_ordered_and_extended(svc):
    r = svc.redis
    F.xadd_all(r, [found("H2", t("2026-11-02T09:00:00")),
                   msg("H2-o", "hazard.ordered", "H2", t("2026-11-02T10:00:00"),
                       deadline_at=t("2026-11-05T17:30:00").isoformat(), note="限期整改")])
    assert consume(svc)["dead"] == 0
    hz = row(svc.engine, "H2")
    assert hz["state"] == "ordered" and hz["found_at"] == t("2026-11-02T09:00:00")
    assert hz["ordered_at"] == t("2026-11-02T10:00:00") and hz["deadline_at"] == t("2026-11-05T17:30:00")
    before = row(svc.engine, "H2")
    F.xadd_all(r, [msg("no-reason", "hazard.deadline", "H2", t("2026-11-03T10:00:00"),
                       deadline_at=t("2026-11-10T17:30:00").isoformat()),
                   msg("earlier", "hazard.deadline", "H2", t("2026-11-03T10:00:00"),
                       deadline_at=t("2026-11-04T17:30:00").isoformat(), note="提前"),
                   msg("again", "hazard.ordered", "H2", t("2026-11-03T10:00:00"), working_days=1)])
    assert consume(svc)["dead"] == 3
    why = reasons(r)
    assert why["no-reason"] == "illegal step 'extended' on hazard H2 in state 'ordered': the step needs a reason (note)"
    assert why["earlier"].startswith("illegal step 'extended' on hazard H2 in state 'ordered': the new deadline ")
    assert why["again"].startswith("illegal step 'ordered' on hazard H2 in state 'ordered': not allowed")
    assert row(svc.engine, "H2") == before
    F.xadd_all(r, [msg("later", "hazard.deadline", "H2", t("2026-11-03T10:00:00"),
                       deadline_at=t("2026-11-10T17:30:00").isoformat(), note="材料未到")])
    assert consume(svc)["dead"] == 0
    assert row(svc.engine, "H2")["deadline_at"] == t("2026-11-10T17:30:00")


def test_cases132_a_step_on_a_closed_hazard_is_dead_at_once_an_early_one_waits(svc):
    r = svc.redis
    F.xadd_all(r, [found("H3", t("2026-11-02T09:00:00"), working_days=1),
                   msg("H3-v", "hazard.reinspected", "H3", t("2026-11-02T15:00:00"), passed=True)])  # before rectified
    stats = consume(svc)
    assert stats["dead"] == 0 and stats["parked"] >= 1
    assert row(svc.engine, "H3")["state"] == "ordered"
    with svc.engine.connect() as conn:
        held = conn.execute(sa.select(feed_pending.c.message_id, feed_pending.c.reason)).all()
    assert [h.message_id for h in held] == ["H3-v"]
    assert held[0].reason.startswith("illegal step 'passed' on hazard H3 in state 'ordered': not allowed")
    F.xadd_all(r, [msg("H3-r", "hazard.rectified", "H3", t("2026-11-02T14:00:00")),
                   msg("H3-c", "hazard.closed", "H3", t("2026-11-03T09:00:00"))])
    assert consume(svc)["dead"] == 0
    assert row(svc.engine, "H3")["state"] == "closed" and F.count(svc.engine, feed_pending) == 0
    closed = row(svc.engine, "H3")
    F.xadd_all(r, [msg("late", "hazard.rectified", "H3", t("2026-11-03T10:00:00"))])
    assert consume(svc)["dead"] == 1
    assert reasons(r)["late"] == ("illegal step 'rectified' on hazard H3 in state 'closed': not allowed from "
                                  "this state (allowed: none: the hazard is finished)")
    assert row(svc.engine, "H3") == closed and F.count(svc.engine, feed_pending) == 0


def test_cases133_an_early_step_that_never_becomes_legal_expires_with_the_machines_reason(svc):
    r = svc.redis
    F.xadd_all(r, [found("H4", t("2026-11-02T09:00:00"), working_days=1),
                   msg("H4-c", "hazard.closed", "H4", t("2026-11-02T11:00:00"))])   # closed before passing
    stats = consume(svc, pending_max_age_s=0)   # held, then given up at the end of the burst
    assert stats["dead"] == 1
    reason = reasons(r)["H4-c"]
    assert reason.startswith("illegal step 'closed' on hazard H4 in state 'ordered': not allowed")
    assert "gave up after" in reason
    assert row(svc.engine, "H4")["state"] == "ordered" and F.count(svc.engine, feed_pending) == 0


def test_cases134_a_hazards_due_soon_mark_and_the_count_it_keeps(svc):
    """即将到期: the last 20% of the working time from the latest order to the deadline (08:30-12:00,
    13:30-17:30: 7.5 h a day). Worked by hand; November 2026 has no holiday."""
    r = svc.redis
    # 2 working days from Monday 2 November 09:00 (15 h): due Wednesday 09:00; due soon 3 h before,
    # Tuesday 15:00 (Wednesday's half hour, then Tuesday 17:30 back 2.5 h)
    F.xadd_all(r, [found("H5", t("2026-11-02T09:00:00"), working_days=2)])
    assert consume(svc)["dead"] == 0
    hz = row(svc.engine, "H5")
    assert hz["deadline_at"] == t("2026-11-04T09:00:00") and hz["due_soon_at"] == t("2026-11-03T15:00:00")
    assert hz["deadline_from"] == t("2026-11-02T09:00:00") and hz["allowance_s"] == 15 * 3600
    # extended to Friday 17:30: the order's allowance is now 37 h (Monday 7 h, then 7.5 h a day), the
    # last 7.4 h from Friday 08:36; an instant the message gave keeps no count
    F.xadd_all(r, [msg("H5-e", "hazard.deadline", "H5", t("2026-11-03T10:00:00"),
                       deadline_at=t("2026-11-06T17:30:00").isoformat(), note="材料未到")])
    assert consume(svc)["dead"] == 0
    hz = row(svc.engine, "H5")
    assert hz["deadline_at"] == t("2026-11-06T17:30:00") and hz["due_soon_at"] == t("2026-11-06T08:36:00")
    assert hz["deadline_from"] is None and hz["allowance_s"] is None
    # rectified, then the re-inspection fails on Thursday 14:00 without a new deadline: the same 37 h
    # again from the failure, to Thursday 12 November 12:00; due soon from Wednesday 11th 13:36
    F.xadd_all(r, [msg("H5-r", "hazard.rectified", "H5", t("2026-11-05T10:00:00")),
                   msg("H5-x", "hazard.reinspected", "H5", t("2026-11-05T14:00:00"), passed=False, note="仍有隐患")])
    assert consume(svc)["dead"] == 0
    hz = row(svc.engine, "H5")
    assert hz["state"] == "ordered" and hz["ordered_at"] == t("2026-11-05T14:00:00")
    assert hz["deadline_at"] == t("2026-11-12T12:00:00") and hz["due_soon_at"] == t("2026-11-11T13:36:00")
    assert hz["deadline_from"] == t("2026-11-05T14:00:00") and hz["allowance_s"] == 37 * 3600
    # the wall's count: due soon between the mark and the deadline, overdue after
    from dashboard import kpi

    def counts(at):
        hz = kpi.hazard_counts(svc.engine, F.DISTRICT, at, at, at)
        return hz["due_soon"], hz["overdue"]
    assert counts(t("2026-11-11T13:30:00")) == (0, 0)
    assert counts(t("2026-11-11T13:36:00")) == (1, 0)
    assert counts(t("2026-11-12T12:30:00")) == (0, 1)
