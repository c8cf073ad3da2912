"""case.escalate in the consumer (issue 17 item 3, C1's side): applied once as a system step with a
negative seq whether delivered twice or taken by two consumers racing; a stale one is recorded
and changes nothing; the producer's own seq numbering is untouched."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from dashboard.feed.consumer import Consumer
from dashboard.store.schema import event, event_step, feed_message

from . import feed_support as F

NOW = datetime.now(F.CST)


@pytest.fixture
def svc(stack, make_services):
    return F.case_services(stack, make_services)


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat()


def case(eid: str) -> list[dict]:
    rep = F.envelope(f"{eid}-r", type="event.reported", event_id=eid, category="environment", subcategory="garbage",
                     level=3, region_code=F.GRIDS[0], occurred_at=at(120))
    return [rep] + [F.envelope(f"{eid}-s{i}", type="event.step", event_id=eid, seq=i, step=s,
                               region_code=F.GRIDS[0], occurred_at=at(110 - i))
                    for i, s in ((2, "registered"), (3, "dispatched"))]


def escalate(mid: str, eid: str, deadline: datetime, minutes_ago: float = 5) -> dict:
    return {"v": 1, "type": "case.escalate", "id": mid, "event_id": eid, "deadline_at": deadline.isoformat(),
            "occurred_at": at(minutes_ago), "reason": "deadline passed unhandled"}


def rows(engine) -> dict:
    with engine.connect() as conn:
        return {r["id"]: dict(r) for r in conn.execute(sa.select(event)).mappings()}


def system_steps(engine, eid: str) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.select(event_step.c.seq, event_step.c.step, event_step.c.actor, event_step.c.note,
                                      event_step.c.payload, event_step.c.message_id)
                            .where(event_step.c.event_id == eid, event_step.c.seq < 0)).all()


def test_cases140_applied_once_when_delivered_twice(svc):
    r = svc.redis
    F.xadd_all(r, case("X1"))
    Consumer(svc, name="c1").run(burst=True)
    deadline = rows(svc.engine)["X1"]["deadline_at"]
    msg = escalate("esc-X1", "X1", deadline)
    F.xadd_all(r, [msg, msg])          # the sweep re-published its claim
    stats = Consumer(svc, name="c1").run(burst=True)
    assert stats["applied"] == 1 and stats["duplicates"] == 1 and stats["dead"] == 0
    ev = rows(svc.engine)["X1"]
    assert ev["state"] == "escalated" and ev["level"] == 2 and ev["escalations"] == 1
    assert ev["last_seq"] == 3 and ev["system_steps"] == 1
    escalated_at = datetime.fromisoformat(msg["occurred_at"])
    assert ev["deadline_at"] > escalated_at and ev["allowance_s"] == 7.5 * 3600  # the new tier's working day
    (seq, step, actor, note, payload, mid), = system_steps(svc.engine, "X1")
    assert (seq, step, actor, note, mid) == (-1, "escalated", "system:auto-escalation", "deadline passed unhandled",
                                             "esc-X1")
    p = json.loads(payload)
    assert p["level"] == 2 and datetime.fromisoformat(p["breached"]) == deadline
    # the producer's next step keeps its own numbering (seq 4 follows 3)
    F.xadd_all(r, [F.envelope("X1-s4", type="event.step", event_id="X1", seq=4, step="handling",
                              region_code=F.GRIDS[0], occurred_at=at(2))])
    assert Consumer(svc, name="c1").run(burst=True)["dead"] == 0
    ev = rows(svc.engine)["X1"]
    assert ev["state"] == "handling" and ev["last_seq"] == 4 and ev["system_steps"] == 1


def test_cases141_a_stale_escalation_is_recorded_and_changes_nothing(svc):
    r = svc.redis
    F.xadd_all(r, case("X2") + case("X3"))
    Consumer(svc, name="c1").run(burst=True)
    evs = rows(svc.engine)
    # X2: the claim names an older deadline; X3: handled (feedback) since the claim
    F.xadd_all(r, [F.envelope(f"X3-s{i}", type="event.step", event_id="X3", seq=i, step=s, region_code=F.GRIDS[0],
                              occurred_at=at(50 - i)) for i, s in ((4, "handling"), (5, "feedback"))])
    Consumer(svc, name="c1").run(burst=True)
    before = rows(svc.engine)
    F.xadd_all(r, [escalate("esc-X2", "X2", evs["X2"]["deadline_at"] - timedelta(hours=1)),
                   escalate("esc-X3", "X3", evs["X3"]["deadline_at"]),
                   escalate("esc-none", "NOPE", evs["X3"]["deadline_at"])])
    stats = Consumer(svc, name="c1").run(burst=True)
    assert stats["stale"] == 2 and stats["applied"] == 0 and stats["dead"] == 1
    assert F.dead_letters(r)[-1]["reason"] == "case.escalate: case NOPE does not exist"
    assert rows(svc.engine) == before
    assert system_steps(svc.engine, "X2") == [] and system_steps(svc.engine, "X3") == []
    with svc.engine.connect() as conn:   # recorded: a replay is a duplicate, not a second look
        ledger = set(conn.execute(sa.select(feed_message.c.message_id)).scalars())
    assert {"esc-X2", "esc-X3"} <= ledger and "esc-none" not in ledger


def test_cases142_two_consumers_racing_apply_each_escalation_once(svc):
    r = svc.redis
    ids = [f"R{i}" for i in range(30)]
    F.xadd_all(r, [m for eid in ids for m in case(eid)])
    Consumer(svc, name="c1").run(burst=True)
    deadlines = {eid: ev["deadline_at"] for eid, ev in rows(svc.engine).items()}
    # every claim published twice, the copies next to each other: with one-message batches the two
    # consumers take the two copies of most claims at the same time
    F.xadd_all(r, [escalate(f"esc-{eid}", eid, deadlines[eid]) for eid in ids for _ in range(2)])
    stats, threads = [], []
    start = threading.Barrier(2)

    def run(name):
        start.wait()
        stats.append(Consumer(svc, name=name, batch=1).run(burst=True))
    for name in ("a", "b"):
        threads.append(threading.Thread(target=run, args=(name,)))
        threads[-1].start()
    for th in threads:
        th.join(300)
    assert len(stats) == 2
    assert sum(s["applied"] for s in stats) == len(ids)
    assert sum(s["duplicates"] for s in stats) == len(ids)
    assert sum(s["dead"] for s in stats) == 0
    evs = rows(svc.engine)
    for eid in ids:
        assert evs[eid]["level"] == 2 and evs[eid]["escalations"] == 1 and evs[eid]["system_steps"] == 1
        assert [(s.seq, s.step) for s in system_steps(svc.engine, eid)] == [(-1, "escalated")]


def test_cases143_the_api_reads_a_history_in_time_order(stack, make_services):
    """GET /api/v1/reports/<id>: the automatic escalation shows where it happened, between the
    dispatch and the handling; ordered by seq it came first (its seq is -1)."""
    from dashboard.app import create_app

    svc = F.case_services(stack, make_services, ingest_api_keys="k-hist", api_read_rate_limit="1000/second")
    r = svc.redis
    F.xadd_all(r, case("H1"))
    Consumer(svc, name="c1").run(burst=True)
    F.xadd_all(r, [escalate("esc-H1", "H1", rows(svc.engine)["H1"]["deadline_at"], minutes_ago=20)])
    Consumer(svc, name="c1").run(burst=True)
    F.xadd_all(r, [F.envelope("H1-s4", type="event.step", event_id="H1", seq=4, step="handling",
                              region_code=F.GRIDS[0], occurred_at=at(10), note="到场处置")])
    assert Consumer(svc, name="c1").run(burst=True)["dead"] == 0
    client = create_app(svc.settings, svc).server.test_client()
    resp = client.get("/api/v1/reports/H1", headers={"X-API-Key": "k-hist"})
    assert resp.status_code == 200, resp.get_json()
    steps = resp.get_json()["steps"]
    assert [(s["seq"], s["step"]) for s in steps] == [(2, "registered"), (3, "dispatched"), (-1, "escalated"),
                                                      (4, "handling")]
    times = [datetime.fromisoformat(s["at"]) for s in steps]
    assert times == sorted(times)
    assert steps[2]["note"] == "deadline passed unhandled" and steps[3]["note"] == "到场处置"
    assert "actor" not in steps[0]   # staff identities stay off the API-key read, as the reporter does
