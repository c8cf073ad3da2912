"""10,000 fuzzed messages through one running consumer loop: the workloads of the unit fuzz test
(tests/unit/test_feed003_fuzz.py: wrong types, missing fields, oversized text, bad ids, NUL,
out-of-order steps, replays) drawn a few hundred times into one stream, plus what that test does
not send: invalid UTF-8, deeply nested JSON, 1 MB bodies, huge fields, replayed ids of stored
messages and steps whose predecessor never comes. The loop stays alive, every bad message is a
dead letter with a reason, every good one is applied once."""
from __future__ import annotations

import json
import random
import threading
import time

import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, given, settings

from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import GROUP, STREAM
from dashboard.geo.locate import Locator
from dashboard.redis_server import connect
from dashboard.store.engine import make_engine, migrate
from dashboard.store.schema import event, event_step, feed_message, feed_pending
from tests.unit import feed_support as F
from tests.unit.test_feed003_fuzz import workloads

from . import kit
from .procs import report, wait_until

EXAMPLES = 560     # hypothesis workloads (~16 entries each)
TOTAL = 10_000


def _extras(rnd: random.Random, n: int, prefix: str):
    """(kind, payload, expect) for the categories the unit fuzz does not draw."""
    out = []
    for k in range(n):
        what = k % 8
        if what == 0:    # invalid UTF-8 inside a JSON string
            out.append(("bad", b'{"v":1,"id":"' + prefix.encode() + b'u%d","type":"event.reported","x":"\xff\xfe\xc3"}' % k))
        elif what == 1:  # nested deeper than any parser should follow
            depth = rnd.choice([1_000, 20_000, 200_000])
            out.append(("bad", ('{"a":' * depth + "1" + "}" * depth).encode() if k % 2 else b"[" * depth))
        elif what == 2 and k % 40 == 2:  # a 1 MB body: a report whose description is a megabyte
            m = dict(F.reported(f"{prefix}BIG{k}", mid=f"{prefix}big{k}"), description="长" * 350_000)
            out.append(("bad", json.dumps(m, ensure_ascii=False).encode()))
        elif what == 2:  # 1 MB of noise (fewer of these: the dead-letter stream keeps each payload)
            out.append(("bad", bytes(rnd.getrandbits(8) for _ in range(64)) * (1 << 14) if k % 80 == 10
                        else rnd.randbytes(rnd.randrange(1, 300))))
        elif what == 3:  # a huge field of the wrong kind: a 100k-character id, a list for a region code
            m = F.reported(f"{prefix}E{k}", mid=f"{prefix}h{k}")
            if k % 2:
                m["id"] = "x" * 100_000
            else:
                m["region_code"] = [F.GRIDS[0]] * 50_000
            out.append(("bad", json.dumps(m).encode()))
        elif what == 4:  # a step whose predecessor never comes: held, then dead-lettered with a reason
            out.append(("good_report", json.dumps(F.reported(f"{prefix}O{k}", mid=f"{prefix}or{k}")).encode()))
            out.append(("orphan", json.dumps(F.step(f"{prefix}O{k}", 3, mid=f"{prefix}os{k}")).encode()))
        elif what == 5:  # a valid report, and the same message replayed later (below)
            out.append(("good", json.dumps(F.reported(f"{prefix}R{k}", k % 3, mid=f"{prefix}r{k}")).encode()))
        elif what == 6:  # steps sent before their report (out of order): held, then applied
            eid = f"{prefix}Q{k}"
            out.append(("good", json.dumps(F.step(eid, 3, "dispatched", mid=f"{prefix}q3-{k}")).encode()))
            out.append(("good", json.dumps(F.step(eid, 2, "registered", mid=f"{prefix}q2-{k}")).encode()))
            out.append(("good", json.dumps(F.reported(eid, 1, mid=f"{prefix}q1-{k}")).encode()))
        else:            # wrong JSON types at the top
            out.append(("bad", json.dumps(rnd.choice([[], 1, "text", None, True, {"type": 5}])).encode()))
    replays = [("replay", p) for kind, p in out if kind in ("good", "good_report")][: n // 10]
    return out + replays


def test_faults003_ten_thousand_fuzzed_messages(stack, tmp_path):
    db_url, redis_url = stack
    examples = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(workloads())
    def collect(work):
        examples.append(work)
    collect()

    rnd = random.Random(15)
    entries: list[tuple[str, bytes]] = []
    final_seq: dict[str, int] = {}
    boundaries = [0]
    for prefix, items, seqs, _reports in examples:
        final_seq.update(seqs)
        for kind, m in items:
            payload = m if isinstance(m, (bytes, bytearray)) else json.dumps(m, ensure_ascii=False).encode()
            entries.append(({"valid": "good", "invalid": "bad", "dup": "replay"}[kind], bytes(payload)))
        boundaries.append(len(entries))
    extras = _extras(rnd, max(0, TOTAL - len(entries)) * 4 // 5, "z" + str(rnd.randrange(10**6)) + "-")
    # the extras go in as one block between two workloads (inside one, a step could wait longer than
    # PENDING_MAX_AGE for its report behind the block and be dead-lettered, as it should)
    at = rnd.choice(boundaries)
    entries[at:at] = extras
    assert len(entries) >= TOTAL

    engine = make_engine(db_url)
    migrate(engine)
    F.seed_regions(engine)
    r = connect(redis_url)
    ids = F.xadd_all(r, [p for _k, p in entries])
    stop = threading.Event()
    consumer = Consumer(engine, connect(redis_url), Locator.from_engine(engine), name="fuzz", batch=200,
                        block_ms=200, pending_max_age_s=2.0, stop_event=stop)
    thread = threading.Thread(target=consumer.run, daemon=True)
    started = time.monotonic()
    thread.start()
    expected_dead = {sid for sid, (k, _p) in zip(ids, entries) if k in ("bad", "orphan")}
    try:
        assert kit.drained(r, 300), "the consumer did not get through the stream"
        # orphans wait PENDING_MAX_AGE (2 s here) before they are dead letters, and a step held for a
        # report that a later batch brought is released by the consumer's held pass (every 2 s)
        wait_until(lambda: {d["stream_id"] for d in F.dead_letters(r)} >= expected_dead
                   and F.count(engine, feed_pending) == 0, 60)
        alive = thread.is_alive()
    finally:
        stop.set()
        thread.join(30)
    seconds = time.monotonic() - started

    dead = F.dead_letters(r)
    dead_by_sid = {d["stream_id"]: d for d in dead}
    good_ids = {json.loads(p)["id"] for k, p in entries if k in ("good", "good_report", "orphan")}
    with engine.connect() as conn:
        ledger = set(conn.execute(sa.select(feed_message.c.message_id)).scalars())
        held = conn.execute(sa.select(sa.func.count()).select_from(feed_pending)).scalar_one()
        steps_doubled = conn.execute(sa.select(sa.func.count()).select_from(
            sa.select(event_step.c.event_id, event_step.c.seq).group_by(event_step.c.event_id, event_step.c.seq)
            .having(sa.func.count() > 1).subquery())).scalar_one()
        seqs = dict(conn.execute(sa.select(event.c.id, event.c.last_seq).where(event.c.id.in_(list(final_seq)))).all())
    orphan_ids = {json.loads(p)["id"] for k, p in entries if k == "orphan"}
    applied_ids = ledger  # the ledger holds applied and held (later expired) messages
    kinds = {k: sum(1 for kk, _ in entries if kk == k) for k in ("good", "good_report", "bad", "orphan", "replay")}
    line = report("faults003 fuzz", messages=len(entries), **kinds, dead=len(dead_by_sid),
                  dead_expected=len(expected_dead), dead_without_reason=sum(1 for d in dead if not d["reason"].strip()),
                  lost=len(good_ids - applied_ids), doubled=steps_doubled, held_left=held,
                  consumer_alive=alive, stats=consumer.stats, seconds=round(seconds, 1))
    assert alive, line
    unexpected = [(d["reason"], d["payload"][:150]) for sid, d in dead_by_sid.items() if sid not in expected_dead]
    assert set(dead_by_sid) == expected_dead, line + f" unexpected: {unexpected[:3]}"
    assert all(d["reason"].strip() for d in dead), line
    assert good_ids <= applied_ids and steps_doubled == 0 and held == 0, line
    assert orphan_ids <= ledger, line
    assert {e: s for e, s in seqs.items() if s != final_seq[e]} == {}, line
    assert r.xpending(STREAM, GROUP)["pending"] == 0, line
