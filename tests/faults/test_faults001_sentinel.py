"""Redis Sentinel fail-over under load: a primary, a replica and three sentinels on this machine;
the primary is SIGKILLed while a producer publishes through feed/publish.py and a consumer process
(``python -m dashboard consume`` with REDIS_SENTINELS) applies to the store.

Asynchronous replication can lose what the old primary acknowledged but had not yet sent to the
replica: without WAIT the test counts those (printed, not asserted, since it is what Redis
promises); with REDIS_WAIT_REPLICAS=1 a message is acknowledged only once the replica holds it,
and 0 lost is asserted. WAIT needs a live replica: after the fail-over the dead primary is started
again (as a machine would be) and the sentinels make it the new primary's replica; until then the
producer's publishes fall short of WAIT and are retried.
"""
from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from dashboard.feed.contract import STREAM
from dashboard.feed.publish import publish_retrying
from dashboard.redis_server import connect
from dashboard.store.schema import event
from tests.unit import feed_support as F

from . import kit
from .procs import RedisNode, SentinelNode, report, wait_until


class Producer(threading.Thread):
    """Publishes reports at ``rate`` a second, retrying across the fail-over; records what was acknowledged."""

    def __init__(self, r, prefix: str, replicas: int, rate: float = 400.0):
        super().__init__(daemon=True)
        self.r, self.prefix, self.replicas, self.rate = r, prefix, replicas, rate
        self.acked: list[tuple[str, float]] = []  # (message id, monotonic time of the acknowledgement)
        self.retried = 0
        self.failed: list[str] = []
        self.stop_event = threading.Event()

    def run(self):
        i = 0
        while not self.stop_event.is_set():
            msg = F.reported(f"{self.prefix}E{i}", i % 3, mid=f"{self.prefix}m{i}")
            tries = []

            def count(_s, tries=tries):
                tries.append(1)
                time.sleep(_s)
            try:
                publish_retrying(self.r, msg, deadline_s=60, replicas=self.replicas, timeout_ms=500,
                                 lo=0.05, hi=1.0, sleep=count)
                self.acked.append((msg["id"], time.monotonic()))
            except Exception as exc:  # noqa: BLE001 - counted: a producer that gave up
                self.failed.append(f"{msg['id']}: {exc.__class__.__name__}: {exc}")
            self.retried += len(tries)
            i += 1
            time.sleep(1.0 / self.rate)


def _cluster(procs, tmp_path):
    primary = procs.add(RedisNode(tmp_path).start())
    replica = procs.add(RedisNode(tmp_path, replica_of=primary.port).start())
    sentinels = [procs.add(SentinelNode(tmp_path, primary.port).start()) for _ in range(3)]
    assert wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up", 30)

    def known():  # every sentinel sees the replica and the two other sentinels (a quorum can elect)
        return all(len(s.client().sentinel_slaves("mymaster")) == 1
                   and len(s.client().sentinel_sentinels("mymaster")) == 2 for s in sentinels)
    assert wait_until(known, 60), "the sentinels never found each other"
    return primary, replica, sentinels


@pytest.mark.parametrize("wait_replicas", [0, 1], ids=["async", "wait1"])
def test_faults001_sentinel_failover_under_load(procs, tmp_path, wait_replicas):
    primary, replica, sentinels = _cluster(procs, tmp_path)
    addrs = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
    engine = kit.new_store(f"sqlite:///{tmp_path / 'store.db'}")
    env = kit.env_for(f"sqlite:///{tmp_path / 'store.db'}", "redis:///0", tmp_path / "var",
                      REDIS_SENTINELS=addrs, REDIS_SENTINEL_MASTER="mymaster", CLAIM_IDLE_MS=2000)
    consumer = procs.add(kit.start_consumer(env, "c1", log=tmp_path / "consumer.log"))
    r = connect("redis://", sentinels=addrs, master="mymaster", socket_timeout=2, socket_connect_timeout=1)
    producer = Producer(r, f"w{wait_replicas}-", wait_replicas)
    producer.start()
    try:
        assert wait_until(lambda: F.count(engine, event) >= 300, 60), "the consumer never applied the first messages"
        killed_at = time.monotonic()
        primary.kill()                                   # the primary dies mid-stream
        assert wait_until(lambda: sentinels[0].master() == ("127.0.0.1", replica.port), 30), "no fail-over"
        failover_s = time.monotonic() - killed_at
        if wait_replicas:  # the dead machine comes back; the sentinels make it the new primary's replica
            primary.start()
            assert wait_until(lambda: primary.client().info("replication")["role"] == "slave"
                              and primary.client().info("replication")["master_link_status"] == "up", 60)
        after = len(producer.acked)
        assert wait_until(lambda: len(producer.acked) >= after + 500, 60), "the producer did not carry on"
    finally:
        producer.stop_event.set()
        producer.join(90)
    newest = replica.client()
    assert kit.drained(newest, 120), "the consumer did not drain the stream after the fail-over"
    stats = kit.stop(consumer)
    assert consumer.returncode == 0, (tmp_path / "consumer.log").read_text()[-3000:]

    acked = [mid for mid, _t in producer.acked]
    stored = kit.ledger_ids(engine)
    in_stream = {F_id(fields) for _sid, fields in newest.xrange(STREAM)}
    lost = [m for m in acked if m not in stored]
    lost_from_stream = [m for m in acked if m not in in_stream]
    before = [m for m, t in producer.acked if t < killed_at]
    after_failover = [m for m, t in producer.acked if t >= killed_at + failover_s]
    with engine.connect() as conn:
        events = conn.execute(sa.select(sa.func.count()).select_from(event)).scalar_one()
    line = report(f"faults001 sentinel {'WAIT 1' if wait_replicas else 'async replication'}",
                  acked=len(acked), acked_before_kill=len(before), stored=len(stored), events=events,
                  lost=len(lost), missing_from_new_primary=len(lost_from_stream),
                  failover_s=round(failover_s, 2), producer_retries=producer.retried,
                  producer_gave_up=len(producer.failed), consumer=f"[{stats}]")
    assert not producer.failed, line + " " + "; ".join(producer.failed[:3])
    assert events == len(stored), line  # one event per report: nothing applied twice
    # the feed carries on: everything acknowledged once the new primary was in place is stored
    assert [m for m in after_failover if m not in stored] == [], line
    if wait_replicas:
        assert lost == [] and lost_from_stream == [], line  # WAIT bounds the loss to nothing
    # without WAIT, `lost` is what asynchronous replication dropped: reported above, not asserted


def F_id(fields) -> str:
    import json

    return json.loads(fields[b"m"])["id"]


def test_faults011_served_app_follows_the_failover(procs, tmp_path):
    """The served app (web, push reader, consumer) on the sentinels: after the primary dies, the
    open page gets the feed again from the new primary, with no duplicate and no gap."""
    from dashboard.feed.contract import DELTAS
    from dashboard.feed.deltas import decode

    from .procs import free_port

    primary, replica, sentinels = _cluster(procs, tmp_path)
    addrs = ",".join(f"127.0.0.1:{s.port}" for s in sentinels)
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = kit.new_store(db_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = kit.env_for(db_url, "redis:///0", tmp_path / "var", REDIS_SENTINELS=addrs, REDIS_SENTINEL_MASTER="mymaster")
    server = procs.add(kit.start_server(env, port, tmp_path / "server.log"))
    assert kit.wait_http(base + "/healthz", server), (tmp_path / "server.log").read_text()[-3000:]
    page = kit.LivePage(base, reconnect=True)
    page.start()
    r = connect("redis://", sentinels=addrs, master="mymaster", socket_timeout=2, socket_connect_timeout=1)
    producer = Producer(r, "web-", 0, rate=20)
    producer.start()
    try:
        assert wait_until(lambda: page.first(lambda e: e["event"] == "message"), 60), \
            (tmp_path / "server.log").read_text()[-3000:]
        killed_at = time.monotonic()
        primary.kill()
        assert wait_until(lambda: sentinels[0].master() == ("127.0.0.1", replica.port), 30), "no fail-over"
        assert wait_until(lambda: sum(1 for e in page.events if e["event"] == "message" and e["t"] > killed_at + 5)
                          >= 5, 60), "the page got nothing after the fail-over"
    finally:
        producer.stop_event.set()
        producer.join(90)
    newest = replica.client()
    assert kit.drained(newest, 60)
    time.sleep(1.5)
    page.close()
    hello = page.first(lambda e: e["event"] == "hello")
    got = [e["id"] for e in page.events if e["event"] == "message"]
    start = _key(hello["id"])
    want = [sid.decode() for sid, f in newest.xrange(DELTAS) if _key(sid.decode()) > start and decode(f[b"d"])]
    last = max(got, key=_key)
    missing = [sid for sid in want if sid not in set(got) and _key(sid) <= _key(last)]
    stored = kit.ledger_ids(engine)
    lost = [m for m, _t in producer.acked if m not in stored]
    line = report("faults011 sentinel fail-over behind the app", acked=len(producer.acked), lost=len(lost),
                  page_connections=page.connections, page_data=len(got), duplicates=len(got) - len(set(got)),
                  gaps=len(missing), producer_gave_up=len(producer.failed))
    assert not producer.failed and not missing and len(got) == len(set(got)), line
    assert [m for m, t in producer.acked if t > killed_at + 10 and m not in stored] == [], line


def _key(sid: str) -> tuple[int, int]:
    ms, _, n = sid.partition("-")
    return int(ms), int(n or 0)
