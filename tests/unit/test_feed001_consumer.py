"""The feed consumer on a real Redis and a real database (embedded pair, and the external pair when set)."""
from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from dashboard.domain import CATEGORIES
from dashboard.feed.apply import deadline_for
from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import DEAD_LETTER, DELTAS, GROUP, STREAM
from dashboard.feed.deltas import decode
from dashboard.feed.health import read_health
from dashboard.store.schema import event, event_step, feed_message, feed_pending, hazard, patrol, position

from . import feed_support as F


@pytest.fixture
def svc(stack, make_services):
    services = make_services(*stack)
    F.seed_regions(services.engine)
    return services


def consume(services, **kw) -> dict:
    kw.setdefault("name", "c1")
    return Consumer(services, **kw).run(burst=True)


def all_deltas(r) -> list[dict]:
    out = []
    for _sid, fields in r.xrange(DELTAS):
        out += decode(fields[b"d"])
    return out


def table_dump(engine) -> dict:
    out = {}
    with engine.connect() as conn:
        for t in (event, event_step, hazard, position, patrol, feed_message, feed_pending):
            cols = [c for c in t.c if c.name not in ("applied_at",)]
            out[t.name] = sorted(tuple(r) for r in conn.execute(sa.select(*cols)).all())
    return out


def test_feed001_each_kind_is_stored_with_its_place(svc):
    r = svc.redis
    rep = F.reported("E1", 1, level=None, urgent=True, address="香港中路1号")
    F.xadd_all(r, [rep, F.hazard_found("H1", 2), F.position("S7", 2), F.patrol("S000001", 0),
                   F.reported("E2", location=None, region_code=F.MICRO)])
    stats = consume(svc)
    assert stats["applied"] == 5 and stats["dead"] == 0
    with svc.engine.connect() as conn:
        e1 = conn.execute(sa.select(event).where(event.c.id == "E1")).mappings().one()
        e2 = conn.execute(sa.select(event).where(event.c.id == "E2")).mappings().one()
        hz = conn.execute(sa.select(hazard)).mappings().one()
        pos = conn.execute(sa.select(position)).mappings().one()
        pat = conn.execute(sa.select(patrol)).mappings().one()
    assert e1["grid_code"] == F.GRIDS[1]
    assert e1["level"] == CATEGORIES["safety"][2] and e1["urgent"] and e1["state"] == "reported"
    reported_at = datetime.fromisoformat(rep["occurred_at"])
    assert e1["reported_at"] == reported_at
    # the 小类's allowance (gas: 2 natural hours) from the report (issue 17: taxonomy deadlines)
    assert e1["deadline_at"] == deadline_for("safety", e1["level"], reported_at, "gas")
    assert e1["deadline_at"] == reported_at + timedelta(hours=2) and e1["deadline_basis"] == "natural_hours"
    assert e1["allowance_s"] == 2 * 3600 and e1["due_soon_at"] == reported_at + timedelta(hours=1.6)
    assert e2["grid_code"] == F.GRIDS[0]  # the micro-grid's grid
    assert e2["lon"] is None
    # found with a deadline: rectification ordered at once (the hazard cycle, issue 17)
    assert hz["grid_code"] == F.GRIDS[2] and hz["state"] == "ordered" and hz["ordered_at"] == hz["found_at"]
    assert pos["actor_id"] == "S7" and pos["grid_code"] == F.GRIDS[2]
    assert pat["issues"] == 1 and json.loads(pat["checklist"])["gas_pipe"] == "issue"
    assert F.count(svc.engine, feed_message) == 5
    deltas = all_deltas(r)
    kinds = sorted(d["k"] for d in deltas)
    assert kinds == ["event", "event", "hazard", "patrol", "position"]
    ev = next(d for d in deltas if d.get("id") == "E1")
    assert ev["g"] == F.GRIDS[1] and ev["op"] == "upsert" and ev["urg"] is True and ev["st"] == "reported"
    assert ev["at"].endswith("+08:00") and ev["addr"] == "香港中路1号" and len(ev["txt"]) <= 60
    assert r.xpending(STREAM, GROUP)["pending"] == 0


def test_feed002_replay_changes_nothing(svc):
    r = svc.redis
    msgs = [F.reported("E1"), F.step("E1", 2, "registered"), F.step("E1", 3, "dispatched", handler="城管"),
            F.hazard_found("H1"), F.envelope(type="hazard.rectified", hazard_id="H1", region_code=F.GRIDS[1]),
            F.position("S1"), F.patrol()]
    F.xadd_all(r, msgs)
    consume(svc)
    before = table_dump(svc.engine)
    deltas_before = r.xlen(DELTAS)
    F.xadd_all(r, msgs)                  # the producer sends everything again
    r.xgroup_setid(STREAM, GROUP, "0")   # and the group re-reads the whole stream
    stats = consume(svc, name="c2")
    assert stats["applied"] == 0 and stats["duplicates"] == 2 * len(msgs) and stats["dead"] == 0
    assert table_dump(svc.engine) == before
    assert r.xlen(DELTAS) == deltas_before  # nothing changed, nothing pushed
    assert r.xlen(DEAD_LETTER) == 0


def test_feed003_steps_apply_in_order_when_late_or_twice(svc):
    r = svc.redis
    s2 = F.step("E1", 2, "registered", minutes_ago=50)
    s3 = F.step("E1", 3, "dispatched", handler="张三", minutes_ago=40)
    s4 = F.step("E1", 4, "escalated", minutes_ago=30)
    # the case engine's path from escalated to closed (closed follows verification only)
    s5, s6, s7 = (F.step("E1", 5, "handling", minutes_ago=27), F.step("E1", 6, "feedback", minutes_ago=24),
                  F.step("E1", 7, "verified", minutes_ago=22))
    s8 = F.step("E1", 8, "closed", minutes_ago=20)
    rep = F.reported("E1", occurred_at=F.when(55))
    # steps before their event, reversed, one of them twice, across two batches
    F.xadd_all(r, [s8, s7, s6, s5, s4, s4])
    consume(svc, batch=2)
    assert F.count(svc.engine, feed_pending) == 5
    assert F.count(svc.engine, event) == 0
    F.xadd_all(r, [s3, rep, s3, s2])
    stats = consume(svc, batch=2)
    assert stats["dead"] == 0
    with svc.engine.connect() as conn:
        ev = conn.execute(sa.select(event)).mappings().one()
        steps = conn.execute(sa.select(event_step.c.seq, event_step.c.step).order_by(event_step.c.seq)).all()
    assert [tuple(s) for s in steps] == [(2, "registered"), (3, "dispatched"), (4, "escalated"), (5, "handling"),
                                         (6, "feedback"), (7, "verified"), (8, "closed")]
    assert ev["last_seq"] == 8 and ev["state"] == "closed"
    assert ev["handler"] == "张三" and ev["escalations"] == 1
    assert ev["level"] == CATEGORIES["safety"][2] - 1  # escalation moved it one tier up
    assert ev["responded_at"] == datetime.fromisoformat(s2["occurred_at"])
    assert ev["registered_at"] == datetime.fromisoformat(s2["occurred_at"])
    assert ev["closed_at"] == datetime.fromisoformat(s8["occurred_at"])
    assert F.count(svc.engine, feed_pending) == 0
    assert r.xlen(DEAD_LETTER) == 0
    # the last delta of E1 carries the final state
    last = [d for d in all_deltas(r) if d.get("id") == "E1"][-1]
    assert last["st"] == "closed" and last["h"] == "张三"


def test_feed004_held_step_gives_up_after_the_bounded_wait(svc):
    r = svc.redis
    orphan = F.step("NOPE", 2, "registered")
    gap = [F.reported("E9"), F.step("E9", 3, "dispatched")]  # seq 2 never comes
    F.xadd_all(r, [orphan, *gap])
    consume(svc)
    assert F.count(svc.engine, feed_pending) == 2 and r.xlen(DEAD_LETTER) == 0
    consume(svc, pending_max_age_s=0)
    assert F.count(svc.engine, feed_pending) == 0
    reasons = {d["stream_id"]: d["reason"] for d in F.dead_letters(r)}
    assert len(reasons) == 2
    texts = sorted(reasons.values())
    assert any("event NOPE not known yet" in t and "gave up" in t for t in texts)
    assert any("waiting for step seq 2 of event E9" in t for t in texts)
    payloads = [json.loads(d["payload"])["id"] for d in F.dead_letters(r)]
    assert sorted(payloads) == sorted([orphan["id"], gap[1]["id"]])


def _bad_cases():
    base = F.reported("BAD")
    future = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
    cases = {
        "not json": (b"{nope", "Invalid JSON"),
        "no type": (json.dumps({k: v for k, v in base.items() if k != "type"}), "type: missing"),
        "unknown type": (json.dumps({**base, "type": "event.deleted"}), "unknown message type"),
        "wrong type": (json.dumps({**base, "urgent": "yes"}), "urgent"),
        "missing field": (json.dumps({k: v for k, v in base.items() if k != "category"}), "category"),
        "unknown category": (json.dumps({**base, "category": "aliens"}), "category"),
        "outside": (json.dumps({**base, "location": F.OUTSIDE}), "outside the jurisdiction"),
        "unknown region": (json.dumps({**{k: v for k, v in base.items() if k != "location"},
                                       "region_code": "370202999999999"}), "does not exist"),
        "community code": (json.dumps({**{k: v for k, v in base.items() if k != "location"},
                                       "region_code": F.COMMUNITY}), "is a community"),
        "future": (json.dumps({**base, "occurred_at": future}), "future"),
        "before 2000": (json.dumps({**base, "occurred_at": "1999-12-31T00:00:00+08:00"}), "before 2000"),
        "no zone": (json.dumps({**base, "occurred_at": "2026-01-01T09:00:00"}), "time zone"),
        "oversized": (json.dumps({**base, "description": "很" * 5000}), "description"),
        "not placed": (json.dumps({k: v for k, v in base.items() if k != "location"}), "location or a region_code"),
        "deadline first": (json.dumps(F.hazard_found("HX") | {"deadline_at": "2020-01-01T00:00:00+08:00"}),
                           "deadline_at must be after"),
    }
    return cases


def test_feed005_every_invalid_message_is_dead_lettered_with_its_reason(svc):
    r = svc.redis
    cases = _bad_cases()
    good = [F.reported("G1"), F.step("G1", 2, "registered")]
    ids = F.xadd_all(r, [p for p, _ in cases.values()] + good)
    r.xadd(STREAM, {"x": "no m field"})
    F.xadd_all(r, [F.reported("G1", mid="other-id"),            # the event exists already
                   F.step("G1", 2, "dispatched", mid="late-2"),   # seq 2 applied already
                   F.step("G1", 3, "closed", minutes_ago=600)])   # closed before it was reported
    stats = consume(svc)
    dead = F.dead_letters(r)
    by_sid = {d["stream_id"]: d for d in dead}
    for (name, (payload, needle)), sid in zip(cases.items(), ids):
        assert sid in by_sid, name
        d = by_sid[sid]
        assert needle in d["reason"], (name, d["reason"])
        original = payload.decode() if isinstance(payload, bytes) else payload
        assert d["payload"] == original
        assert d["consumer"] == "c1" and d["at"]
    reasons = [d["reason"] for d in dead]
    assert "entry has no field m" in reasons
    assert any("event G1 already exists" in x for x in reasons)
    assert any("step seq 2 of event G1 is already applied" in x for x in reasons)
    assert any("step seq 3 of event G1" in x and "is before the event was reported" in x for x in reasons)
    assert len(dead) == len(cases) + 4 == stats["dead"]
    assert F.count(svc.engine, event) == 1 and F.count(svc.engine, event_step) == 1
    assert r.xpending(STREAM, GROUP)["pending"] == 0
    assert read_health(r)["dead_letters"] == len(dead)


def _install_poison_trigger(engine):
    """A real database refusal: the store rejects any event whose description says POISON."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON event WHEN NEW.description LIKE '%POISON%' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END")
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF position('POISON' in NEW.description) > 0 THEN "
                "RAISE EXCEPTION 'poisoned row' USING ERRCODE = 'check_violation'; END IF; "
                "RETURN NEW; END $$")
            conn.exec_driver_sql("CREATE TRIGGER poison BEFORE INSERT ON event FOR EACH ROW EXECUTE FUNCTION poison()")


def test_feed006_a_poison_message_is_isolated_and_the_rest_stored(svc):
    _install_poison_trigger(svc.engine)
    r = svc.redis
    msgs = [F.reported(f"P{i}") for i in range(6)]
    msgs[3]["description"] = "POISON here"
    ids = F.xadd_all(r, msgs)
    stats = consume(svc)
    assert F.count(svc.engine, event) == 5
    dead = F.dead_letters(r)
    assert [d["stream_id"] for d in dead] == [ids[3]]
    assert "database rejected it" in dead[0]["reason"] and "poisoned row" in dead[0]["reason"]
    assert stats["applied"] == 5 and r.xpending(STREAM, GROUP)["pending"] == 0


def test_feed007_two_consumers_share_the_stream_without_double_application(svc):
    r = svc.redis
    msgs = []
    n_events = 300
    for i in range(n_events):
        msgs.append(F.reported(f"T{i}", i % 3))
    for i in range(n_events):  # each case's steps, interleaved and partly out of order
        msgs += [F.step(f"T{i}", 3, "dispatched"), F.step(f"T{i}", 2, "registered")]
    msgs += [F.position(f"W{i % 20}", minutes_ago=100 - i % 50) for i in range(200)]
    F.xadd_all(r, msgs)
    stop = threading.Event()
    # small batches: 100+ reads to share, so a consumer thread started late still gets some
    a = Consumer(svc, name="A", batch=10, block_ms=100, stop_event=stop)
    b = Consumer(svc, name="B", batch=10, block_ms=100, stop_event=stop)
    threads = [threading.Thread(target=c.run) for c in (a, b)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 180  # a bound for a loaded machine, not a speed check
    try:
        while time.monotonic() < deadline:
            with svc.engine.connect() as conn:
                done = conn.execute(sa.select(sa.func.count()).select_from(event)
                                    .where(event.c.last_seq == 3)).scalar_one()
            # every message in the ledger too: the pings come after the steps in the stream, and
            # entries not delivered yet are not pending, so the cases alone can finish first
            if done == n_events and F.count(svc.engine, feed_message) == len(msgs) \
                    and r.xpending(STREAM, GROUP)["pending"] == 0:
                break
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert a.stats["applied"] > 0 and b.stats["applied"] > 0  # both did work
    assert a.stats["applied"] + b.stats["applied"] + a.stats["released"] + b.stats["released"] >= len(msgs)
    assert F.count(svc.engine, feed_message) == len(msgs)
    assert F.count(svc.engine, event) == n_events
    assert F.count(svc.engine, event_step) == 2 * n_events
    assert F.count(svc.engine, feed_pending) == 0
    with svc.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(event)
                            .where(event.c.last_seq == 3)).scalar_one() == n_events
        assert conn.execute(sa.select(sa.func.count()).select_from(position)).scalar_one() == 20
        # each worker's newest ping won, whichever consumer saw it
        newest = {}
        for m in msgs:
            if m["type"] == "position":
                at = datetime.fromisoformat(m["occurred_at"])
                newest[m["actor"]["id"]] = max(newest.get(m["actor"]["id"], at), at)
        for aid, at in conn.execute(sa.select(position.c.actor_id, position.c.at)):
            assert at == newest[aid]
    assert r.xlen(DEAD_LETTER) == 0


def wait_idle(r, idle_ms: int, timeout: float = 30.0) -> bool:
    """Every pending entry of the group has been idle at least ``idle_ms`` (Redis's own clock)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = r.xpending_range(STREAM, GROUP, min="-", max="+", count=1000)
        if rows and all(row["time_since_delivered"] >= idle_ms for row in rows):
            return True
        time.sleep(0.02)
    return False


def test_feed008_pending_entries_of_a_dead_consumer_are_claimed(svc):
    r = svc.redis
    msgs = [F.reported(f"C{i}") for i in range(30)]
    F.xadd_all(r, msgs)
    r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    taken = r.xreadgroup(GROUP, "ghost", {STREAM: ">"}, count=30)  # reads, then "dies" without acking
    assert len(taken[0][1]) == 30
    # idle for less than the threshold (a minute: however slow this machine is): left alone
    stats = Consumer(svc, name="alive", claim_idle_ms=60_000).run(burst=True)
    assert stats["applied"] == 0
    # idle past the threshold (wait until Redis itself says so): claimed
    assert wait_idle(r, 50)
    stats = Consumer(svc, name="alive", claim_idle_ms=50).run(burst=True)
    assert stats["applied"] == 30
    assert F.count(svc.engine, event) == 30
    assert r.xpending(STREAM, GROUP)["pending"] == 0


def test_feed009_trim_never_drops_unacknowledged_entries(svc):
    r = svc.redis
    F.xadd_all(r, [F.reported(f"R{i}") for i in range(300)])
    r.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    held = r.xreadgroup(GROUP, "slow", {STREAM: ">"}, count=10)[0][1]  # unacknowledged
    c = Consumer(svc, name="c1", stream_maxlen=100)
    c.run(burst=True)
    assert F.count(svc.engine, event) == 290
    kept = {e[0] for e in r.xrange(STREAM)}
    assert all(sid in kept for sid, _ in held)
    assert r.xlen(STREAM) == 300  # the oldest pending entry pins the whole tail
    r.xack(STREAM, GROUP, *[sid for sid, _ in held])
    removed = c.trim()
    assert removed == 200 and r.xlen(STREAM) == 100
    # with everything delivered and acked, trimming keeps the newest STREAM_MAXLEN entries
    assert [e[0] for e in r.xrange(STREAM)] == [e[0] for e in r.xrevrange(STREAM, count=100)][::-1]


def test_feed010_health_says_lag_rate_dead_letters_and_last_message(svc):
    r = svc.redis
    F.xadd_all(r, [F.reported(f"H{i}") for i in range(20)] + [b"garbage"])
    h0 = read_health(r)
    assert h0["group"] is False and h0["consumers"] == []
    consume(svc, name="health-1")
    h = read_health(r)
    assert h["lag"] == 0 and h["pending"] == 0
    assert h["dead_letters"] == 1
    assert "health-1" in h["consumers"] and h["rate"] > 0
    assert h["last_message_at"] and h["last_message_age_s"] < 60
    F.xadd_all(r, [F.reported(f"L{i}") for i in range(7)])
    assert read_health(r)["lag"] == 7


def test_feed011_log_names_the_failed_message(svc, caplog):
    r = svc.redis
    bad = F.reported("X1", location=F.OUTSIDE)
    sid = F.xadd_all(r, [bad])[0]
    with caplog.at_level(logging.WARNING, logger="dashboard.feed.consumer"):
        consume(svc)
    recs = [x for x in caplog.records if x.getMessage() == "dead letter"]
    assert len(recs) == 1
    assert recs[0].message_id == bad["id"] and recs[0].stream_id == sid and "outside" in recs[0].reason


def test_feed012_healthz_reports_the_consumer_lag(svc):
    import flask

    from dashboard.api import health

    app = flask.Flask("health-test")
    health.register(app, svc)
    F.xadd_all(svc.redis, [F.reported(f"Z{i}") for i in range(5)])
    svc.redis.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
    body = app.test_client().get("/healthz")
    assert body.status_code == 503  # messages wait and no consumer runs
    assert body.get_json()["consumer_lag"] == 5 and body.get_json()["consumer"] == "no consumer is running"
    consume(svc, name="hz")
    body = app.test_client().get("/healthz")
    data = body.get_json()
    assert body.status_code == 200 and data["status"] == "ok"
    assert data["consumer_lag"] == 0 and data["feed"]["pending"] == 0 and "hz" in data["feed"]["consumers"]


def test_feed013_docs_show_a_valid_example_of_every_message_type():
    import re
    from pathlib import Path

    from dashboard.feed.contract import MESSAGE_TYPES, parse

    text = (Path(__file__).resolve().parents[2] / "docs" / "feed.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```json\n(.*?)```", text, re.S) if '"type"' in b]
    parsed = [parse(b) for b in blocks]  # raises InvalidMessage with the reason if one drifted
    assert sorted({m.type for m in parsed}) == sorted(MESSAGE_TYPES)


def test_feed014_a_step_held_while_another_consumer_filled_the_gap_is_released(svc):
    """Consumer A held seq 3 at the moment consumer B applied seq 2 without seeing it (two
    concurrent transactions); the next housekeeping pass of any consumer applies it."""
    r = svc.redis
    F.xadd_all(r, [F.reported("RACE"), F.step("RACE", 2, "registered")])
    consume(svc)
    s3 = F.step("RACE", 3, "dispatched", handler="网格员甲")
    now = datetime.now(timezone.utc)
    with svc.engine.begin() as conn:  # what consumer A committed
        conn.execute(feed_pending.insert(), [{
            "message_id": s3["id"], "kind": "event.step", "target": "RACE", "seq": 3, "stream_id": "1-0",
            "payload": json.dumps(s3, ensure_ascii=False), "reason": "waiting for step seq 2 of event RACE",
            "received_at": now}])
        conn.execute(feed_message.insert(), [{"message_id": s3["id"], "kind": "event.step",
                                              "stream_id": "1-0", "applied_at": now}])
    stats = consume(svc, name="c3")
    assert stats["released"] == 1
    with svc.engine.connect() as conn:
        ev = conn.execute(sa.select(event)).mappings().one()
    assert ev["last_seq"] == 3 and ev["state"] == "dispatched" and ev["handler"] == "网格员甲"
    assert F.count(svc.engine, feed_pending) == 0 and F.count(svc.engine, event_step) == 2
    last = [d for d in all_deltas(r) if d.get("id") == "RACE"][-1]
    assert last["st"] == "dispatched"


def test_feed015_each_kind_replayed_alone_is_a_duplicate_not_a_dead_letter(svc):
    # The consumer's first try at a batch skips the replay lookups; a batch that is nothing but a
    # replay must still come out as duplicates, whichever kind of message it holds.
    r = svc.redis
    msgs = [F.reported("E1"), F.step("E1", 2, "registered"), F.step("E1", 3, "dispatched", handler="城管"),
            F.hazard_found("H1"), F.envelope(type="hazard.rectified", hazard_id="H1", region_code=F.GRIDS[1]),
            F.position("S1"), F.patrol(), F.step("E1", 5, "closed")]  # seq 5 is held: 4 never came
    F.xadd_all(r, msgs)
    consume(svc)
    before = table_dump(svc.engine)
    F.xadd_all(r, msgs)
    stats = consume(svc, name="c2", batch=1)
    assert stats["applied"] == 0 and stats["duplicates"] == len(msgs) and stats["dead"] == 0
    assert table_dump(svc.engine) == before
    assert r.xlen(DEAD_LETTER) == 0


def test_feed016_a_new_message_reusing_an_event_id_is_dead_lettered(svc):
    r = svc.redis
    F.xadd_all(r, [F.reported("E1")])
    consume(svc)
    F.xadd_all(r, [F.reported("E1"), F.reported("E2")])  # a new message id, an existing event id
    stats = consume(svc)
    assert stats["applied"] == 1 and stats["dead"] == 1
    [(_sid, fields)] = r.xrange(DEAD_LETTER)
    assert b"event E1 already exists" in fields[b"reason"]
    assert F.count(svc.engine, event) == 2
