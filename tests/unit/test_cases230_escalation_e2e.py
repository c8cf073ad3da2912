"""Automatic escalation end to end: two consumers racing on the feed (each sweeping in its loop)
and two more sweepers beside them; every breached case gets exactly one escalation step, to a
unit of the next tier up, however the claims and their messages interleave."""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from dashboard.cases import escalation as esc
from dashboard.cases.routing import Register
from dashboard.cases.units import seed_demo_units
from dashboard.feed.consumer import Consumer
from dashboard.feed.publish import publish_all
from dashboard.redis_server import connect
from dashboard.store.schema import case_escalation as C
from dashboard.store.schema import event as E
from dashboard.store.schema import event_step as S
from tests.unit.feed_support import CST, GRIDS, dead_letters, envelope, point_in, seed_regions

N = 12


def _cases(t0: datetime) -> list[dict]:
    msgs = []
    for i in range(N):
        eid, level = f"AE{i:02d}", 3 - i % 2
        at = t0 + timedelta(minutes=i)
        msgs += [envelope(None, type="event.reported", event_id=eid, category="environment", subcategory="garbage",
                          level=level, location=point_in(i % 3), occurred_at=at.isoformat()),
                 envelope(None, type="event.step", event_id=eid, seq=2, step="registered", region_code=GRIDS[i % 3],
                          occurred_at=(at + timedelta(minutes=10)).isoformat()),
                 envelope(None, type="event.step", event_id=eid, seq=3, step="dispatched", region_code=GRIDS[i % 3],
                          occurred_at=(at + timedelta(minutes=20)).isoformat())]
    return msgs


def _wait(cond, bound_s: float = 240.0, every: float = 0.2) -> bool:
    end = time.monotonic() + bound_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(every)
    return cond()


def test_cases230_two_consumers_and_two_sweepers_escalate_each_breach_once(stack, make_services):
    db_url, redis_url = stack
    svcs = [make_services(db_url, redis_url, escalation_sweep_s=0.05) for _ in range(2)]
    engine = svcs[0].engine
    seed_regions(engine)
    with engine.begin() as conn:
        seed_demo_units(conn)
        register = Register.load(conn)
    # ten days ago: each case's deadline (one working day) has passed, at tier 3 or 2
    publish_all(svcs[0].redis, _cases(datetime.now(CST) - timedelta(days=10)))

    stop = threading.Event()
    consumers = [Consumer(svc, name=f"consumer-{k}", stop_event=stop, block_ms=100) for k, svc in enumerate(svcs)]
    passes = [0, 0]
    errors: list[BaseException] = []

    def sweeper(k):
        r = connect(redis_url)
        try:
            while not stop.is_set():
                # the second re-publishes others' unpublished claims at once: more duplicates on the
                # stream for the consumers' ledger to absorb
                esc.sweep(engine, r, now=datetime.now(timezone.utc), worker=f"sweeper-{k}",
                          republish_after_s=esc.REPUBLISH_AFTER_S if k == 0 else 0.0)
                passes[k] += 1
                stop.wait(0.02)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            r.close()

    threads = [threading.Thread(target=c.run, daemon=True) for c in consumers]
    threads += [threading.Thread(target=sweeper, args=(k,), daemon=True) for k in range(2)]
    for t in threads:
        t.start()

    def escalated() -> int:
        with engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(E).where(E.c.escalations > 0)).scalar_one()

    try:
        assert _wait(lambda: escalated() == N), f"{escalated()} of {N} cases escalated"
        # keep every party sweeping and consuming a while longer: a second escalation would show now
        before = list(passes)
        assert _wait(lambda: all(p >= b + 5 for p, b in zip(passes, before)))
        assert _wait(lambda: all(c.redis.xpending("grid:feed", "store")["pending"] == 0 for c in consumers[:1]))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors

    with engine.connect() as conn:
        events = {r.id: r for r in conn.execute(select(E))}
        steps = conn.execute(select(S.c.event_id, S.c.actor, S.c.message_id).where(S.c.step == "escalated")).all()
        claims = conn.execute(select(C)).all()
    assert len(events) == N
    assert sorted(s.event_id for s in steps) == sorted(events)            # one escalation step per case
    assert all(s.actor == esc.ACTOR for s in steps)
    assert len(claims) == N and all(c.published_at is not None for c in claims)
    assert {s.message_id for s in steps} == {c.message_id for c in claims}
    for i in range(N):
        ev = events[f"AE{i:02d}"]
        assert ev.escalations == 1 and ev.state == "escalated"
        assert ev.level == (3 - i % 2) - 1
        unit = register.get(ev.unit_code)
        assert unit is not None and unit.tier == ev.level and ev.grid_code.startswith(unit.region_code)
        assert ev.deadline_at > datetime.now(timezone.utc)                 # a new deadline, not yet due
    assert [d for d in dead_letters(svcs[0].redis)] == []
