"""Dispatch and escalation through the consumer against the register of handling units (issue 17):
a unit of the wrong tier or outside the case's area is refused, a dispatch without a unit is routed,
a return passes the returning unit over, an escalation goes to a unit of the next tier."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from dashboard.cases.units import seed_demo_units
from dashboard.feed.consumer import Consumer
from dashboard.store.schema import event, event_step

from . import feed_support as F

NOW = datetime.now(F.CST)
COMMUNITY = F.COMMUNITY + ":community"             # tier 3, serves the case's community
OTHER_COMMUNITY = F.OTHER_STREET + "001:community"   # tier 3, another street's community
STREET_URBAN = F.STREET + ":street_urban"            # tier 2, the case's street
STREET_OFFICE = F.STREET + ":street_office"


@pytest.fixture
def svc(stack, make_services):
    services = F.case_services(stack, make_services)
    with services.engine.begin() as conn:
        seed_demo_units(conn)
    return services


def consume(services) -> dict:
    return Consumer(services, name="c1").run(burst=True)


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def report(eid: str, **kw) -> dict:
    return F.envelope(f"{eid}-r", type="event.reported", event_id=eid, category="environment", subcategory="garbage",
                      level=3, region_code=F.GRIDS[0], occurred_at=at(100), **kw)


def step(eid: str, seq: int, name: str, minutes_ago: float, mid: str | None = None, **kw) -> dict:
    return F.envelope(mid or f"{eid}-s{seq}", type="event.step", event_id=eid, seq=seq, step=name,
                      region_code=F.GRIDS[0], occurred_at=at(minutes_ago), **kw)


def rows(engine) -> dict:
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(sa.select(event)).mappings()}


def reasons(r) -> dict:
    return {json.loads(d["payload"])["id"]: d["reason"] for d in F.dead_letters(r)}


def test_cases150_dispatch_to_a_unit_of_the_wrong_tier_or_place_is_refused(svc):
    r = svc.redis
    F.xadd_all(r, [report("U1"), step("U1", 2, "registered", 90)])
    consume(svc)
    before = rows(svc.engine)
    F.xadd_all(r, [step("U1", 3, "dispatched", 80, mid="tier", unit=STREET_URBAN),
                   step("U1", 3, "dispatched", 80, mid="place", unit=OTHER_COMMUNITY),
                   step("U1", 3, "dispatched", 80, mid="unknown", unit="NO-SUCH-UNIT")])
    stats = consume(svc)
    assert stats["dead"] == 3 and stats["applied"] == 0
    why = reasons(r)
    head = "illegal step 'dispatched' on case U1 in state 'registered': "
    assert why["tier"] == head + f"unit {STREET_URBAN} is tier 2, the case is tier 3"
    assert why["place"] == head + f"unit {OTHER_COMMUNITY} serves {F.OTHER_STREET}001, not the case's grid {F.GRIDS[0]}"
    assert why["unknown"] == head + "unit NO-SUCH-UNIT is not in the register of handling units"
    assert rows(svc.engine) == before
    F.xadd_all(r, [step("U1", 3, "dispatched", 80, mid="right", unit=COMMUNITY)])
    assert consume(svc)["dead"] == 0
    assert rows(svc.engine)["U1"]["unit_code"] == COMMUNITY


def test_cases151_routing_return_and_escalation(svc):
    r = svc.redis
    F.xadd_all(r, [report("U2"), step("U2", 2, "registered", 90), step("U2", 3, "dispatched", 80)])
    consume(svc)
    assert rows(svc.engine)["U2"]["unit_code"] == COMMUNITY      # routed: the case's community committee
    F.xadd_all(r, [step("U2", 4, "returned", 70, note="不属于本社区职责")])
    consume(svc)
    ev = rows(svc.engine)["U2"]
    assert ev["state"] == "returned" and ev["returns"] == 1 and ev["unit_code"] is None
    # escalated to the street (tier 2): routed to a street unit serving the case's grid, a fresh allowance
    F.xadd_all(r, [step("U2", 5, "escalated", 60)])
    assert consume(svc)["dead"] == 0
    ev = rows(svc.engine)["U2"]
    assert ev["level"] == 2 and ev["unit_code"].startswith(F.STREET + ":")
    with svc.engine.connect() as conn:
        payloads = dict(conn.execute(sa.select(event_step.c.step, event_step.c.payload)
                                     .where(event_step.c.event_id == "U2")).all())
    assert json.loads(payloads["returned"])["unit"] == COMMUNITY        # who sent it back
    assert json.loads(payloads["escalated"])["unit"] == ev["unit_code"]
    # a tier-3 unit cannot take the escalated case
    F.xadd_all(r, [step("U2", 6, "dispatched", 50, mid="low", unit=COMMUNITY)])
    assert consume(svc)["dead"] == 1
    assert reasons(r)["low"].endswith(f"unit {COMMUNITY} is tier 3, the case is tier 2")


def test_cases152_a_return_passes_the_returning_unit_over(svc):
    r = svc.redis
    F.xadd_all(r, [report("U3"), step("U3", 2, "registered", 90), step("U3", 3, "dispatched", 80),
                   step("U3", 4, "returned", 70, note="不归我们管"), step("U3", 5, "dispatched", 60)])
    assert consume(svc)["dead"] == 0
    ev = rows(svc.engine)["U3"]
    # the community committee returned it: re-dispatch finds no other tier-3 unit there (None)
    assert ev["state"] == "dispatched" and ev["unit_code"] is None
