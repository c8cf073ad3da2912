"""Two consumer processes SIGKILLed at random points through a mixed feed (20,000 messages in CI,
100,000 with FAULTS_LONG=1): the store equals a clean replay of the same messages into a fresh
store by one consumer, with 0 lost and 0 doubled; every invalid message is a dead letter."""
from __future__ import annotations

import os
import random
import signal
import time

import pytest
import sqlalchemy as sa

from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import GROUP, STREAM
from dashboard.geo.locate import Locator
from dashboard.store.schema import event_step
from tests.conftest import TEST_DATABASE_URL, make_database_url
from tests.unit import feed_support as F

from . import kit, workload
from .procs import RedisNode, report, wait_until


@pytest.fixture
def db_urls(tmp_path):
    """Two fresh stores of the same kind: PostgreSQL when TEST_DATABASE_URL is set (CI), else SQLite."""
    kind = "postgres" if TEST_DATABASE_URL else "sqlite"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, clean_a = make_database_url(kind, tmp_path / "a")
    b, clean_b = make_database_url(kind, tmp_path / "b")
    yield a, b
    clean_a()
    clean_b()


def _pending_of(r, name: str) -> int:
    try:
        members = r.xinfo_consumers(STREAM, GROUP)
    except Exception:  # noqa: BLE001 - no group yet: nothing read
        return 0
    for c in members:
        if c["name"].decode() == name:
            return int(c["pending"])
    return 0


def test_faults002_consumers_sigkilled_at_random_points(procs, tmp_path, db_urls, long_run):
    n = 100_000 if long_run else 20_000
    max_kills = 40 if long_run else 10
    seed = int(os.environ.get("FAULTS_SEED") or random.randrange(1_000_000))
    rnd = random.Random(seed)
    payloads, valid_ids, invalid = workload.build(n, seed=seed)
    node = procs.add(RedisNode(tmp_path).start())
    r = node.client()
    url, replay_url = db_urls
    engine = kit.new_store(url)
    ids = F.xadd_all(r, payloads)
    env = kit.env_for(url, node.url, tmp_path / "var", CLAIM_IDLE_MS=1000)
    log = tmp_path / "consumers.log"
    names = ["k1", "k2"]
    running = {nm: procs.add(kit.start_consumer(env, nm, log=log)) for nm in names}

    kills = mid_batch = renamed = 0
    started = time.monotonic()
    # kill points drawn as shares of the work done, not as pauses: a quiet machine drains 20,000
    # messages in seconds, and random pauses then ended the run after two kills
    marks = sorted(rnd.uniform(0.02, 0.9) for _ in range(max_kills))
    assert wait_until(lambda: len(kit.ledger_ids(engine)) > 0, 120), log.read_text()[-3000:]
    while kills < max_kills and len(kit.ledger_ids(engine)) < len(valid_ids) * 0.97 \
            and time.monotonic() - started < (900 if long_run else 150):
        mark = marks[kills] * len(valid_ids)
        wait_until(lambda: len(kit.ledger_ids(engine)) >= mark, 120, step=0.05)
        victim = rnd.choice(list(running))
        if kills % 2 == 0:  # every other kill waits for the victim to hold a batch: inside one, surely
            wait_until(lambda: _pending_of(r, victim) > 0, 10, step=0.005)
        proc = running.pop(victim)
        assert proc.poll() is None, f"consumer {victim} died by itself: {log.read_text()[-3000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        if _pending_of(r, victim):
            mid_batch += 1           # read, not acknowledged: killed inside a batch
        if rnd.random() < 0.5:       # half come back under their name, half as a new member
            victim = f"{victim}-{kills}"
            renamed += 1
        running[victim] = procs.add(kit.start_consumer(env, victim, log=log))

    assert kit.drained(r, 300), "the consumers did not drain the stream"
    # held steps wait for their report: give the consumers' release pass time to apply them
    wait_until(lambda: F.count(engine, kit.feed_pending) == 0, 30)
    outs = [kit.stop(p) for p in running.values()]
    drain_s = time.monotonic() - started

    # the clean replay: the same payloads, in the same order, one consumer, a fresh store
    replay = kit.new_store(replay_url)
    r1 = node.client(db=1)
    F.xadd_all(r1, payloads)
    Consumer(replay, r1, Locator.from_engine(replay), name="replay", sweep=False).run(burst=True)  # as the killed ones (kit.env_for)

    got, want = kit.snapshot(engine), kit.snapshot(replay)
    stored = kit.ledger_ids(engine)
    lost = valid_ids - stored
    with engine.connect() as conn:
        doubled = conn.execute(sa.select(sa.func.count()).select_from(
            sa.select(event_step.c.event_id, event_step.c.seq).group_by(event_step.c.event_id, event_step.c.seq)
            .having(sa.func.count() > 1).subquery())).scalar_one()
    dead = F.dead_letters(r)
    dead_ids = {d["stream_id"] for d in dead}
    invalid_ids = {ids[i] for i in invalid}
    differences = kit.diff(got, want)
    line = report("faults002 consumer SIGKILL", messages=len(payloads), valid=len(valid_ids), seed=seed,
                  kills=kills, kills_mid_batch=mid_batch, restarted_as_new_member=renamed,
                  lost=len(lost), doubled=doubled, dead=len(dead_ids), dead_expected=len(invalid_ids),
                  dead_letters_repeated=len(dead) - len(dead_ids), store_equals_replay=not differences,
                  seconds=round(drain_s, 1), db=engine.dialect.name)
    assert not lost and doubled == 0, line + f" lost e.g. {sorted(lost)[:5]}"
    unexpected = [(d["reason"], d["payload"][:200]) for d in dead if d["stream_id"] not in invalid_ids]
    assert dead_ids == invalid_ids, line + f" dead letters of valid messages: {unexpected[:5]}"
    assert not differences, line + f" {differences}"
    assert r.xpending(STREAM, GROUP)["pending"] == 0, line
    assert all("applied=" in o for o in outs), outs
    assert kills >= 3 and mid_batch >= 1, line  # the kills really hit the consumers at work
