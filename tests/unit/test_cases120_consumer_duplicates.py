"""Likely duplicates flagged on arrival in the consumer, and merging that keeps both histories
(issue 17 item 6)."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import DELTAS
from dashboard.feed.deltas import decode
from dashboard.store.schema import event, event_step

from . import feed_support as F

NOW = datetime.now(F.CST)
LON, LAT = F.point_in(1)["lon"], F.point_in(1)["lat"]
M_LAT = 1 / 111_320            # one metre north, in degrees


@pytest.fixture
def svc(stack, make_services):
    return F.case_services(stack, make_services)


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def report(eid: str, minutes_ago: float, north_m: float = 0.0, sub: str = "noise", cat: str = "disputes") -> dict:
    return F.envelope(f"{eid}-r", type="event.reported", event_id=eid, category=cat, subcategory=sub,
                      location={"lon": LON, "lat": LAT + north_m * M_LAT}, occurred_at=at(minutes_ago),
                      description="夜间噪音")


def step(eid: str, seq: int, name: str, minutes_ago: float, **kw) -> dict:
    return F.envelope(f"{eid}-s{seq}", type="event.step", event_id=eid, seq=seq, step=name,
                      region_code=F.GRIDS[1], occurred_at=at(minutes_ago), **kw)


def dup_of(engine) -> dict:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(event.c.id, event.c.duplicate_of)).all())


def test_cases120_same_kind_near_and_recent_is_flagged_within_a_batch_and_across(svc):
    r = svc.redis
    F.xadd_all(r, [report("A", 600),                         # the original, 10 h ago
                   report("B", 30, north_m=40),              # 40 m away, same 小类: duplicate of A
                   report("C", 30, north_m=70),              # 70 m from A (30 m from B): duplicate of B
                   report("D", 30, north_m=10, sub="clutter", cat="environment"),  # another 小类: not
                   report("E", 60 * 25 + 30, north_m=-400),  # 25.5 h ago, elsewhere
                   report("F", 30, north_m=-420)])           # 20 m from E but E is older than 24 h
    Consumer(svc, name="c1", batch=500).run(burst=True)      # one batch: flagged within it
    flags = dup_of(svc.engine)
    assert flags == {"A": None, "B": "A", "C": "B", "D": None, "E": None, "F": None}
    # a later batch, a new consumer (its index seeded from the store): near A and B, A is nearer
    F.xadd_all(r, [report("G", 5, north_m=5)])
    Consumer(svc, name="c2").run(burst=True)
    assert dup_of(svc.engine)["G"] == "A"
    # a closed case is no longer open: a report next to it is not its duplicate
    F.xadd_all(r, [step("A", 2, "rejected", 4, note="重复上报"), step("B", 2, "rejected", 4, note="重复上报"),
                   step("G", 2, "rejected", 4, note="重复上报")])
    Consumer(svc, name="c1").run(burst=True)
    F.xadd_all(r, [report("H", 2, north_m=2)])
    Consumer(svc, name="c1").run(burst=True)
    assert dup_of(svc.engine)["H"] is None
    # the wall's delta carries the flag
    last = [d for _sid, f in r.xrange(DELTAS) for d in decode(f[b"d"]) if d.get("id") == "B"][0]
    assert last["dup"] == "A"


def test_cases121_another_consumers_reports_are_seen_through_the_deltas(svc):
    r = svc.redis
    first = Consumer(svc, name="c1")
    F.xadd_all(r, [report("P", 60, north_m=-300)])
    first.run(burst=True)                                     # c1's index is seeded now
    F.xadd_all(r, [report("Q", 20)])
    Consumer(svc, name="c2").run(burst=True)                  # another consumer applies Q
    F.xadd_all(r, [report("R", 10, north_m=15)])
    first.run(burst=True)                                     # c1 learns Q from grid:deltas
    assert dup_of(svc.engine)["R"] == "Q"


def test_cases122_merge_keeps_both_histories(svc):
    r = svc.redis
    F.xadd_all(r, [report("M1", 60), step("M1", 2, "registered", 55), step("M1", 3, "dispatched", 50),
                   report("M2", 40, north_m=20), step("M2", 2, "registered", 35),
                   step("M2", 3, "merged", 30, into="M1", note="同一噪音源")])
    stats = Consumer(svc, name="c1").run(burst=True)
    assert stats["dead"] == 0
    with svc.engine.connect() as conn:
        ev = {row["id"]: dict(row) for row in conn.execute(sa.select(event)).mappings()}
        steps = conn.execute(sa.select(event_step.c.event_id, event_step.c.seq, event_step.c.step,
                                       event_step.c.actor, event_step.c.note, event_step.c.payload)
                             .order_by(event_step.c.event_id, event_step.c.seq)).all()
    assert ev["M2"]["duplicate_of"] == "M1"
    assert ev["M2"]["state"] == "merged" and ev["M2"]["merged_into"] == "M1" and ev["M2"]["last_seq"] == 3
    assert ev["M1"]["state"] == "dispatched" and ev["M1"]["last_seq"] == 3 and ev["M1"]["system_steps"] == 1
    by_case = {}
    for s in steps:
        by_case.setdefault(s.event_id, []).append((s.seq, s.step))
    assert by_case["M2"] == [(2, "registered"), (3, "merged")]            # the merged case keeps its steps
    assert by_case["M1"] == [(-1, "merged_in"), (2, "registered"), (3, "dispatched")]
    merged_in = next(s for s in steps if s.step == "merged_in")
    assert json.loads(merged_in.payload) == {"from": "M2"} and merged_in.actor == "S000001"
    assert merged_in.note == "M2 merged into this case: 同一噪音源"
    assert json.loads(next(s for s in steps if s.step == "merged").payload) == {"into": "M1"}
    # the target's producer steps carry on with their own seq; the merged case takes no more
    F.xadd_all(r, [step("M1", 4, "handling", 20), step("M2", 4, "supervised", 20, note="催办")])
    stats = Consumer(svc, name="c1").run(burst=True)
    assert stats["dead"] == 1 and stats["applied"] == 1
    reason = F.dead_letters(r)[-1]["reason"]
    assert reason.startswith("illegal step 'supervised' on case M2 in state 'merged': not allowed")
