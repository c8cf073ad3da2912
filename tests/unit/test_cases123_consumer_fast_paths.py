"""The consumer's shortcuts on its hot path give what the long way gives: remembered fresh
deadlines (casework.CaseContext.fresh), the duplicate index taking in a committed batch
(DuplicateIndex.merge), and a consumer not reading its own deltas back (issue 17, ingest)."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import orjson
import pytest
import sqlalchemy as sa

from dashboard.feed.casework import CaseContext, DuplicateIndex
from dashboard.feed.consumer import Consumer
from dashboard.store.schema import event

from . import feed_support as F

M_LAT = 1 / 111_320


def _kinds(ctx: CaseContext) -> list[tuple[str, str]]:
    """(大类, 小类) pairs with distinct allowances, working and natural."""
    seen, out = set(), []
    for cat in ctx.tax.categories.values():
        for sub in cat.subcategories.values():
            key = (sub.deadline.kind, sub.deadline.amount)
            if key not in seen:
                seen.add(key)
                out.append((cat.code, sub.code))
    return out


def test_cases123_remembered_fresh_deadlines_are_the_computed_ones():
    ctx = CaseContext()
    kinds = _kinds(ctx)
    assert len({ctx.rule(c, s).deadline.kind for c, s in kinds}) == 3 and len(kinds) >= 5
    rnd = random.Random(23)
    base = datetime(2026, 9, 25, tzinfo=timezone.utc)  # across National Day and its make-up Saturday
    starts = []
    for _ in range(400):
        at = base + timedelta(seconds=rnd.random() * 30 * 86400)
        starts += [at, at + timedelta(minutes=rnd.random() * 90)]  # pairs: often the same night
    starts += [datetime(2026, 12, 27, 23, tzinfo=timezone.utc) + timedelta(hours=h) for h in range(0, 72, 5)]
    for at in starts:
        for cat, sub in rnd.sample(kinds, 3):
            got = ctx.fresh(cat, sub, at)
            want = CaseContext(ctx.cal).fresh(cat, sub, at)   # a context that remembers nothing
            assert got == want, (cat, sub, at)
    assert ctx._fresh_memo  # the shortcut was taken


def _idx() -> DuplicateIndex:
    return DuplicateIndex(50.0, 24.0)


def test_cases124_a_merged_batch_is_found_and_dropped_like_an_added_one():
    lon, lat, t = 120.38, 36.06, 1_790_000_000.0
    main, batch = _idx(), _idx()
    main.add("OLD", "noise", lon, lat + 300 * M_LAT, t - 3600)
    batch.add("B1", "noise", lon, lat, t - 60)
    batch.add("B2", "clutter", lon, lat, t - 60)
    batch.add("OLD", "noise", lon, lat + 5 * M_LAT, t)  # known already: the index keeps its own
    main.merge(batch)
    assert main.find("noise", lon, lat + 10 * M_LAT, t) == "B1"
    assert main.find("clutter", lon + 0.0001, lat, t) == "B2"
    assert main.find("noise", lon, lat + 301 * M_LAT, t) == "OLD"
    assert main.find("noise", lon, lat + 200 * M_LAT, t) is None
    # a batch made like the index (the consumer's): its cells handed over, or added to the same cell
    more = main.like()
    more.add("C1", "noise", lon, lat + 2 * M_LAT, t - 30)          # B1's cell
    more.add("C2", "noise", lon, lat + 120 * M_LAT, t - 30)        # a cell of its own
    more.add("C3", "smell", lon, lat, t - 30)                      # a 小类 the index had not seen
    main.merge(more)
    assert main.find("noise", lon, lat + 3 * M_LAT, t) == "C1"      # nearer than B1
    assert main.find("noise", lon, lat + 119 * M_LAT, t) == "C2"
    assert main.find("smell", lon, lat, t) == "C3"
    main.drop("C1")
    assert main.find("noise", lon, lat + 3 * M_LAT, t) == "B1"
    main.drop("B1")
    assert main.find("noise", lon, lat + 10 * M_LAT, t) is None
    main.prune(datetime.fromtimestamp(t + 26 * 3600, timezone.utc))  # past the window: all gone
    assert main.where == {} and main.cells == {}
    main.merge(None)


def test_cases124_cells_either_side_of_zero_never_share_a_key():
    idx = _idx()
    idx.add("N", "noise", 0.0001, 0.0002, 1.0)
    idx.add("S", "noise", 0.0001, -0.5, 1.0)
    assert idx.find("noise", 0.0001, 0.0002, 2.0) == "N"
    assert idx.find("noise", 0.0001, -0.5, 2.0) == "S"
    assert idx.where["N"] != idx.where["S"]


def test_cases124_report_is_find_on_both_then_add():
    """``report`` (one cell key for the consumer's index and its batch's) against the long way."""
    rnd = random.Random(124)
    lon0, lat0, t0 = 120.38, 36.06, 1_790_000_000.0

    def draw():
        return (rnd.choice(["noise", "smell", None]), lon0 + rnd.uniform(-0.004, 0.004),
                lat0 + rnd.uniform(-0.004, 0.004), t0 + rnd.uniform(0, 3 * 86400))

    for trial in range(20):
        main, twin = _idx(), _idx()
        for i in range(rnd.randrange(0, 300)):
            sub, lon, lat, t = draw()
            main.add(f"M{i}", sub, lon, lat, t)
            twin.add(f"M{i}", sub, lon, lat, t)
        # a batch made like the index (the consumer's), or made apart (another cell width)
        batch = main.like() if trial % 3 else DuplicateIndex(50.0, 24.0, _lon_m=0.0)
        long_batch = twin.like() if trial % 3 else DuplicateIndex(50.0, 24.0, _lon_m=0.0)
        found = 0
        for i in range(400):
            sub, lon, lat, t = draw()
            eid = f"B{i}" if i % 50 else f"M{i}"  # now and then an id the index knows
            expected = twin.find(sub, lon, lat, t) or long_batch.find(sub, lon, lat, t)
            long_batch.add(eid, sub, lon, lat, t)
            assert main.report(batch, eid, sub, lon, lat, t) == expected, (trial, i)
            found += expected is not None
        # the same cases in the batch (an empty batch made apart takes the index's cell width)
        assert {k: v[0] for k, v in batch.where.items()} == {k: v[0] for k, v in long_batch.where.items()}
        for _ in range(200):
            sub, lon, lat, t = draw()
            assert batch.find(sub, lon, lat, t) == long_batch.find(sub, lon, lat, t)
        assert found > 0


@pytest.fixture
def svc(stack, make_services):
    return F.case_services(stack, make_services)


def test_cases125_own_deltas_are_skipped_the_others_followed(svc):
    r = svc.redis
    now = datetime.now(F.CST)
    p = F.point_in(1)

    def report(eid: str, minutes_ago: float, north_m: float = 0.0) -> dict:
        return F.envelope(f"{eid}-r", type="event.reported", event_id=eid, category="disputes",
                          subcategory="noise", location={"lon": p["lon"], "lat": p["lat"] + north_m * M_LAT},
                          occurred_at=(now - timedelta(minutes=minutes_ago)).isoformat(), description="噪音")

    c1 = Consumer(svc, name="c1")
    F.xadd_all(r, [report("S1", 90, north_m=-400)])
    c1.run(burst=True)                       # seeds c1's index and starts following grid:deltas
    F.xadd_all(r, [report("S2", 60)])
    c1.run(burst=True)                       # S2 goes in by merge; its delta entry is c1's own
    own = set(c1._own_deltas)
    assert len(own) == 1
    F.xadd_all(r, [report("S3", 40, north_m=300)])
    Consumer(svc, name="c2").run(burst=True)  # another consumer's report: learnt from its delta
    F.xadd_all(r, [report("S4", 10, north_m=10), report("S5", 5, north_m=310)])
    c1.run(burst=True)
    assert len(c1._own_deltas) == 1 and not own & c1._own_deltas  # what it read back it let go
    with svc.engine.connect() as conn:
        dup = dict(conn.execute(sa.select(event.c.id, event.c.duplicate_of)).all())
    assert dup["S4"] == "S2" and dup["S5"] == "S3"


def test_cases127_the_digest_beside_the_deltas_is_what_following_them_gives(svc):
    """A consumer publishes, beside each batch's deltas, the digest the others' duplicate indexes
    follow (field o); an entry without one (another publisher) is still followed from its deltas."""
    from dashboard.feed.apply import OPEN_STATES
    from dashboard.feed.contract import DELTAS
    from dashboard.feed.deltas import decode

    r = svc.redis
    now = datetime.now(F.CST)
    rnd = random.Random(127)
    msgs = []
    for i in range(40):
        p = F.point_in(i % 3)
        loc = {"lon": p["lon"] + rnd.uniform(-1e-4, 1e-4), "lat": p["lat"] + rnd.uniform(-1e-4, 1e-4)}
        body = dict(type="event.reported", event_id=f"D{i}", category="disputes",
                    occurred_at=(now - timedelta(minutes=90 - i)).isoformat(), description="噪音")
        if i % 5:  # every fifth without a 小类: never in the index
            body["subcategory"] = "noise"
        msgs.append(F.envelope(f"D{i}-r", location=loc, **body))
    F.xadd_all(r, msgs)
    c1 = Consumer(svc, name="c1", batch=7)
    c1.run(burst=True)
    entries = [f for _sid, f in r.xrange(DELTAS)]
    assert entries and all(b"o" in f for f in entries)
    by_digest, by_deltas = _idx(), _idx()
    for f in entries:
        by_digest.follow_digest(decode(f[b"o"]))
        by_deltas.follow(decode(f[b"d"]), OPEN_STATES)
    assert set(by_digest.where) == {f"D{i}" for i in range(40) if i % 5}
    assert by_digest.where == by_deltas.where
    # cases leaving the open states leave the digest's index too
    closed = [{"k": "event", "op": "upsert", "id": "D1", "st": "closed", "sub": "noise"},
              {"k": "event", "op": "delete", "id": "D2"}, {"k": "position", "id": "D3"}]
    assert _idx().digest(closed, OPEN_STATES) == ["D1", "D2"]
    by_digest.follow_digest(_idx().digest(closed, OPEN_STATES))
    assert "D1" not in by_digest.where and "D2" not in by_digest.where and "D3" in by_digest.where

    # another publisher's entry, deltas only: the consumer following grid:deltas learns its case
    p = F.point_in(2, 0.2, 0.2)
    r.xadd(DELTAS, {"d": orjson.dumps([{"k": "event", "op": "upsert", "g": F.GRIDS[2], "id": "EXT1",
                                        "st": "reported", "sub": "noise", "lon": p["lon"],
                                        "lat": p["lat"], "at": (now - timedelta(minutes=5)).isoformat()}])})
    F.xadd_all(r, [F.envelope("X1-r", type="event.reported", event_id="X1", category="disputes",
                              subcategory="noise", location={"lon": p["lon"], "lat": p["lat"] + 5 * M_LAT},
                              occurred_at=now.isoformat(), description="噪音")])
    c1.run(burst=True)
    with svc.engine.connect() as conn:
        assert conn.execute(sa.select(event.c.duplicate_of).where(event.c.id == "X1")).scalar_one() == "EXT1"


def test_cases126_update_rows_checks_the_version_and_counts_what_it_changed(svc):
    from dashboard.feed.apply import EVENT_MUTABLE, _EVENT_VERSION, update_rows

    now = datetime.now(F.CST)
    F.xadd_all(svc.redis, [F.envelope(f"U{i}-r", type="event.reported", event_id=f"U{i}", category="disputes",
                                      subcategory="noise", location=F.point_in(1),
                                      occurred_at=(now - timedelta(minutes=30 - i)).isoformat(), description="噪音")
                           for i in range(3)])
    assert F.consume(svc)["applied"] == 3
    with svc.engine.connect() as conn:
        before = {r["id"]: dict(r) for r in conn.execute(sa.select(event)).mappings()}
    later = datetime(2026, 12, 9, 17, 30, tzinfo=F.CST)  # not UTC: converted on the way in
    rows = []
    for i, eid in enumerate(("U0", "U1", "U2")):
        row = {c: before[eid][c] for c in EVENT_MUTABLE}
        row.update(state="registered", registered_at=later, handler=f"h{i}", last_seq=2, _id=eid,
                   _v=1 if eid != "U1" else 7, _sv=0)  # U1: another version than the store's
        rows.append(row)
    with svc.engine.begin() as conn:
        assert update_rows(conn, event, EVENT_MUTABLE, _EVENT_VERSION, rows) == 2
    with svc.engine.connect() as conn:
        after = {r["id"]: dict(r) for r in conn.execute(sa.select(event)).mappings()}
    for eid in ("U0", "U2"):
        assert (after[eid]["state"], after[eid]["last_seq"]) == ("registered", 2)
        assert after[eid]["registered_at"] == later
        assert after[eid]["reported_at"] == before[eid]["reported_at"]
    assert after["U1"] == before["U1"]  # a stale version changes nothing
