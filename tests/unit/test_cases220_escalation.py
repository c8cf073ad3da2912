"""Automatic escalation on breach (dashboard/cases/escalation.py): exactly once per breach with
sweepers racing, re-published after a crash between the commit and the XADD, nothing for cases
that are suspended, handled, not yet registered or at tier 1. Each test runs on SQLite with the
embedded Redis and on PostgreSQL with the external Redis (``stack``)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from dashboard.cases import escalation as esc
from dashboard.cases.machine import Case, IllegalStep, Step, apply_step
from dashboard.feed.contract import STREAM, parse
from dashboard.redis_server import connect
from dashboard.store.engine import make_engine, migrate
from dashboard.store.schema import case_escalation as C
from dashboard.store.schema import event as E
from tests.unit.feed_support import GRIDS, seed_regions

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(stack):
    db_url, redis_url = stack
    engine = make_engine(db_url)
    migrate(engine)
    seed_regions(engine)
    r = connect(redis_url)
    yield engine, r, db_url, redis_url
    r.close()
    engine.dispose()


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def add_event(engine, eid: str, *, level: int = 3, state: str = "dispatched", overdue_h: float = 1.0, **extra):
    """An event row as the consumer leaves it; deadline ``overdue_h`` hours ago (negative: ahead)."""
    now = now_utc()
    row = {"id": eid, "grid_code": GRIDS[0], "category": "environment", "subcategory": "garbage",
           "level": level, "urgent": False, "state": state, "source": "grid_patrol",
           "occurred_at": now - timedelta(days=2), "reported_at": now - timedelta(days=2),
           "deadline_at": now - timedelta(hours=overdue_h), "updated_at": now, "last_seq": 3, **extra}
    with engine.begin() as conn:
        conn.execute(insert(E), [row])
    return row


def escalations(r) -> list[dict]:
    """The case.escalate messages on the feed stream, in order."""
    out = []
    for _sid, fields in r.xrange(STREAM):
        m = json.loads(fields[b"m"])
        if m.get("type") == esc.MESSAGE_TYPE:
            out.append(m)
    return out


def claims(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(select(C).order_by(C.c.event_id, C.c.deadline_at)).all()


def test_cases220_due_cases_are_claimed_and_published_once(env):
    engine, r, *_ = env
    due = [add_event(engine, "E-due3", level=3, state="dispatched"),
           add_event(engine, "E-due2", level=2, state="handling", overdue_h=30),
           add_event(engine, "E-returned", level=3, state="returned"),
           add_event(engine, "E-registered", level=2, state="registered")]
    # not due: tier 1, suspended, fed back (state or first feedback kept), closed, deadline ahead,
    # not registered yet, merged
    add_event(engine, "N-tier1", level=1, state="handling")
    add_event(engine, "N-suspended", state="suspended", suspended_at=now_utc() - timedelta(hours=2),
              resume_state="handling")
    add_event(engine, "N-suspended-flag", state="handling", suspended_at=now_utc() - timedelta(hours=2))
    add_event(engine, "N-feedback", state="feedback", feedback_at=now_utc() - timedelta(hours=3))
    add_event(engine, "N-reopened", state="reopened", feedback_at=now_utc() - timedelta(hours=3))
    add_event(engine, "N-closed", state="closed", closed_at=now_utc())
    add_event(engine, "N-ahead", state="handling", overdue_h=-2)
    add_event(engine, "N-reported", state="reported")
    add_event(engine, "N-merged", state="merged", merged_into="E-due3")
    add_event(engine, "N-nodeadline", state="handling", deadline_at=None)
    now = now_utc()
    ids = esc.sweep(engine, r, now=now, worker="w1")
    assert len(ids) == len(set(ids)) == 4
    rows = claims(engine)
    assert sorted(c.event_id for c in rows) == sorted(d["id"] for d in due)
    by = {c.event_id: c for c in rows}
    assert (by["E-due3"].from_level, by["E-due3"].to_level) == (3, 2)
    assert (by["E-due2"].from_level, by["E-due2"].to_level) == (2, 1)
    assert all(c.claimed_by == "w1" and c.published_at == now for c in rows)
    msgs = escalations(r)
    assert sorted(m["id"] for m in msgs) == sorted(ids) == sorted(c.message_id for c in rows)
    for m in msgs:
        parsed = parse(json.dumps(m))           # the feed's contract accepts it
        assert parsed.type == "case.escalate"
        d = next(d for d in due if d["id"] == m["event_id"])
        assert datetime.fromisoformat(m["deadline_at"]) == d["deadline_at"]
        assert m["id"] == esc.message_id(d["id"], d["deadline_at"])
        assert "passed unhandled" in m["reason"]
    # a second sweep, by the same or another worker: nothing new
    assert esc.sweep(engine, r, now=now + timedelta(seconds=1), worker="w1") == []
    assert esc.sweep(engine, r, now=now + timedelta(minutes=5), worker="w2") == []
    assert len(escalations(r)) == 4 and len(claims(engine)) == 4


def test_cases221_two_sweepers_racing_on_the_same_rows_claim_each_breach_once(env):
    """Both sweepers read the due cases before either claims (the race's worst interleaving,
    forced), then claim and publish at the same moment from their own engines and connections."""
    engine, r, db_url, redis_url = env
    n = 40
    for i in range(n):
        add_event(engine, f"R{i:03d}", level=2 + i % 2)
    now = now_utc()
    engines = [make_engine(db_url) for _ in range(2)]
    clients = [connect(redis_url) for _ in range(2)]
    seen = [esc.due(e, now) for e in engines]
    assert [len(s) for s in seen] == [n, n]              # each saw every breach unclaimed
    barrier = threading.Barrier(2)
    won: list[list[str]] = [[], []]
    errors: list[BaseException] = []

    def run(k):
        try:
            barrier.wait()
            won[k] = esc.settle(engines[k], clients[k], seen[k], now=now, worker=f"sweeper-{k}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for e in engines:
        e.dispose()
    for c in clients:
        c.close()
    assert not errors, errors
    assert not set(won[0]) & set(won[1])
    assert len(won[0]) + len(won[1]) == n
    msgs = escalations(r)
    assert len(msgs) == n and len({m["id"] for m in msgs}) == n
    assert len({m["event_id"] for m in msgs}) == n
    rows = claims(engine)
    assert len(rows) == n and all(c.published_at is not None for c in rows)
    assert {c.claimed_by for c in rows} <= {"sweeper-0", "sweeper-1"}


def test_cases222_full_sweeps_racing_in_threads_over_rounds(env):
    engine, r, db_url, redis_url = env
    engines = [make_engine(db_url) for _ in range(2)]
    clients = [connect(redis_url) for _ in range(2)]
    total = 0
    try:
        for rnd in range(4):
            for i in range(15):
                add_event(engine, f"T{rnd}-{i:02d}", level=3 - i % 2)
            total += 15
            now = now_utc() + timedelta(seconds=rnd)
            barrier = threading.Barrier(2)
            results: list[list[str]] = [[], []]

            def run(k, now=now, barrier=barrier, results=results):
                barrier.wait()
                results[k] = esc.sweep(engines[k], clients[k], now=now, worker=f"w{k}")

            threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert len(results[0]) + len(results[1]) == 15
            assert not set(results[0]) & set(results[1])
    finally:
        for e in engines:
            e.dispose()
        for c in clients:
            c.close()
    msgs = escalations(r)
    assert len(msgs) == total == len({m["event_id"] for m in msgs})


CRASHING_SWEEP = """
import os, sys
from datetime import datetime
from dashboard.cases import escalation
from dashboard.redis_server import connect
from dashboard.store.engine import make_engine

def die(redis, messages):
    os._exit(17)   # the process dies after the claims' commit, before any XADD

escalation.sweep(make_engine(sys.argv[1]), connect(sys.argv[2]), now=datetime.fromisoformat(sys.argv[3]),
                 worker="crasher", publish=die)
"""


def test_cases223_a_crash_between_commit_and_xadd_is_republished_once(env):
    engine, r, db_url, redis_url = env
    for i in range(3):
        add_event(engine, f"K{i}", level=3)
    now = now_utc()
    proc = subprocess.run([sys.executable, "-c", CRASHING_SWEEP, db_url, redis_url, now.isoformat()],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 17, proc.stderr
    rows = claims(engine)
    assert len(rows) == 3 and all(c.claimed_by == "crasher" and c.published_at is None for c in rows)
    assert escalations(r) == []
    # another sweeper leaves a young claim to its claimer (who may be about to publish) ...
    assert esc.sweep(engine, r, now=now + timedelta(seconds=5), worker="other") == []
    assert escalations(r) == []
    # ... and re-publishes it once it is older than republish_after_s
    later = now + timedelta(seconds=esc.REPUBLISH_AFTER_S + 1)
    ids = esc.sweep(engine, r, now=later, worker="other")
    assert sorted(ids) == sorted(c.message_id for c in rows)
    assert esc.sweep(engine, r, now=later + timedelta(seconds=1), worker="other") == []
    assert esc.sweep(engine, r, now=later + timedelta(seconds=1), worker="crasher") == []
    msgs = escalations(r)
    assert sorted(m["id"] for m in msgs) == sorted(ids)
    assert all(c.published_at == later for c in claims(engine))


def test_cases224_a_failed_publish_is_retried_by_the_same_sweeper_at_once(env):
    engine, r, *_ = env
    add_event(engine, "F1", level=2)
    now = now_utc()

    def broken(redis, messages):
        raise ConnectionError("redis went away")

    with pytest.raises(ConnectionError):
        esc.sweep(engine, r, now=now, worker="w1", publish=broken)
    assert [c.published_at for c in claims(engine)] == [None]
    assert escalations(r) == []
    ids = esc.sweep(engine, r, now=now + timedelta(seconds=2), worker="w1")
    assert ids == [claims(engine)[0].message_id]
    assert len(escalations(r)) == 1


def test_cases225_a_claim_whose_case_moved_on_is_not_republished(env):
    engine, r, *_ = env
    add_event(engine, "M1", level=3)
    add_event(engine, "M2", level=3)
    now = now_utc()

    def broken(redis, messages):
        raise ConnectionError("redis went away")

    with pytest.raises(ConnectionError):
        esc.sweep(engine, r, now=now, worker="w1", publish=broken)
    with engine.begin() as conn:  # M1 was handled meanwhile; M2 suspended
        conn.execute(update(E).where(E.c.id == "M1").values(state="feedback", feedback_at=now))
        conn.execute(update(E).where(E.c.id == "M2").values(state="suspended", suspended_at=now,
                                                               resume_state="dispatched"))
    assert esc.sweep(engine, r, now=now + timedelta(minutes=5), worker="w1") == []
    assert escalations(r) == []


def test_cases226_each_breach_once_a_new_deadline_is_a_new_breach(env):
    engine, r, *_ = env
    row = add_event(engine, "B1", level=3)
    now = now_utc()
    first = esc.sweep(engine, r, now=now, worker="w1")
    assert len(first) == 1
    # the consumer applied it: tier 2 with a new deadline, which passes in turn
    new_deadline = now - timedelta(minutes=1)
    assert new_deadline != row["deadline_at"]
    with engine.begin() as conn:
        conn.execute(update(E).where(E.c.id == "B1").values(state="escalated", level=2, deadline_at=new_deadline,
                                                            escalations=1))
    second = esc.sweep(engine, r, now=now + timedelta(seconds=1), worker="w2")
    assert len(second) == 1 and second != first
    with engine.begin() as conn:  # at tier 1 now, overdue again: nothing, escalation stops there
        conn.execute(update(E).where(E.c.id == "B1").values(level=1, deadline_at=now - timedelta(seconds=30)))
    assert esc.sweep(engine, r, now=now + timedelta(seconds=2), worker="w3") == []
    rows = claims(engine)
    assert [(c.from_level, c.to_level) for c in sorted(rows, key=lambda c: c.deadline_at)] == [(3, 2), (2, 1)]
    assert len(escalations(r)) == 2


def test_cases227_escalation_at_tier_1_is_refused():
    case = Case("E1", state="handling", level=1)
    with pytest.raises(IllegalStep) as err:
        apply_step(case, Step("escalated", esc.ACTOR, now_utc()))
    assert "tier" in str(err.value) or "level" in str(err.value)


def test_cases228_the_consumer_sweeps_at_most_every_escalation_sweep_s(stack, make_services):
    db_url, redis_url = stack
    from dashboard.feed.consumer import Consumer

    svc = make_services(db_url, redis_url, escalation_sweep_s=3600.0)
    seed_regions(svc.engine)
    add_event(svc.engine, "P1", level=3)
    consumer = Consumer(svc, name="c-test")
    try:
        assert len(esc.consumer_tick(consumer)) == 1
        add_event(svc.engine, "P2", level=3)
        assert esc.consumer_tick(consumer) == []          # not again within the hour
        consumer._due["escalation"] = 0.0                  # the hour has passed
        assert len(esc.consumer_tick(consumer)) == 1
        off = Consumer(make_services(db_url, redis_url, escalation_sweep_s=0.0), name="c-off")
        add_event(svc.engine, "P3", level=3)
        assert esc.consumer_tick(off) == []
    finally:
        consumer.redis.close()


def test_cases229_the_due_query_reads_the_open_states_index_on_sqlite(tmp_path):
    """With statistics (ANALYZE) over a year of mostly closed cases, SQLite must still read the due
    cases through ix_event_state_reported, not the deadline index (which holds every past case)."""
    from sqlalchemy import text

    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    migrate(engine)
    seed_regions(engine)
    now = now_utc()
    rows = []
    for i in range(3000):
        at = now - timedelta(hours=3 * i)
        rows.append({"id": f"Y{i}", "grid_code": GRIDS[i % 3], "category": "environment", "level": 2,
                     "urgent": False, "state": "dispatched" if i % 100 == 0 else "closed", "source": "grid_patrol",
                     "occurred_at": at, "reported_at": at, "deadline_at": at + timedelta(days=1),
                     "updated_at": now, "last_seq": 3})
    with engine.begin() as conn:
        conn.execute(insert(E), rows)
        conn.execute(text("ANALYZE"))
    query = esc.due_query(now, 1000, "sqlite")
    sql = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as conn:
        plan = " | ".join(r[3] for r in conn.execute(text("EXPLAIN QUERY PLAN " + sql)))
        assert len(conn.execute(query).all()) == 29      # the newest open one is not due yet
    engine.dispose()
    assert "SEARCH event USING INDEX ix_event_state_reported" in plan, plan
    assert "ix_event_deadline_grid" not in plan, plan
