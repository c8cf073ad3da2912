"""Redis restarted under load, and PostgreSQL restarted under load, behind a served app
(``python -m dashboard serve``: the production server and its consumer) on servers of the
test's own (its own redis-server; a throwaway PostgreSQL cluster made with initdb, never the
machine's). Producers get a clear error (503 with Retry-After) or retry; the consumer waits and
resumes; the open page's live connection reports the outage within 5 s and carries on without
a reload; /healthz says what is down within 5 s and recovers; nothing accepted is lost."""
from __future__ import annotations

import threading
import time

import requests

from dashboard.feed.publish import publish_retrying
from dashboard.redis_server import connect
from dashboard.store.schema import event
from tests.unit import feed_support as F

from . import kit
from .procs import Postgres, RedisNode, free_port, report

OUTAGE_S = 4.0
SHOWN_WITHIN_S = 5.0


class ApiProducer(threading.Thread):
    """A mini-program backend posting reports: 202, or a clear 503 with Retry-After."""

    def __init__(self, base: str, every: float = 0.1):
        super().__init__(daemon=True)
        self.base, self.every = base, every
        self.accepted: list[str] = []
        self.unavailable = 0
        self.other: list[str] = []
        self.stop_event = threading.Event()

    def run(self):
        i = 0
        while not self.stop_event.is_set():
            body = {"category": "safety", "subcategory": "gas", "description": f"restart {i}",
                    "location": F.point_in(i % 3), "source": "mini_program"}
            try:
                r = requests.post(f"{self.base}/api/v1/reports", json=body, headers={"X-API-Key": "faults-key"},
                                  timeout=15)
                if r.status_code == 202:
                    self.accepted.append(r.json()["id"])
                elif r.status_code == 503 and r.headers.get("Retry-After") and r.json().get("error") == "unavailable":
                    self.unavailable += 1
                else:
                    self.other.append(f"{r.status_code} {r.text[:200]}")
            except requests.RequestException as exc:
                self.other.append(f"{exc.__class__.__name__}: {exc}")
            i += 1
            self.stop_event.wait(self.every)


class StreamProducer(threading.Thread):
    """A producer on the stream (publish_retrying): rides out the outage, counts its retries."""

    def __init__(self, url: str, prefix: str, every: float = 0.05):
        super().__init__(daemon=True)
        self.r = connect(url, socket_timeout=2, socket_connect_timeout=1)
        self.prefix, self.every = prefix, every
        self.acked: list[str] = []
        self.retries = 0
        self.failed: list[str] = []
        self.stop_event = threading.Event()

    def run(self):
        i = 0
        while not self.stop_event.is_set():
            m = F.reported(f"{self.prefix}E{i}", i % 3, mid=f"{self.prefix}m{i}")

            def sleep(s):
                self.retries += 1
                time.sleep(s)
            try:
                publish_retrying(self.r, m, deadline_s=60, lo=0.05, hi=1.0, sleep=sleep)
                self.acked.append(m["event_id"])
            except Exception as exc:  # noqa: BLE001
                self.failed.append(f"{exc.__class__.__name__}: {exc}")
            i += 1
            self.stop_event.wait(self.every)


def _events(engine, ids) -> set[str]:
    import sqlalchemy as sa

    found = set()
    ids = list(ids)
    with engine.connect() as conn:
        for i in range(0, len(ids), 500):
            found |= set(conn.execute(sa.select(event.c.id).where(event.c.id.in_(ids[i:i + 500]))).scalars())
    return found


def _run(procs, tmp_path, db_url: str, node: RedisNode, outage, what: str):
    """Serve, open a page, produce, cause ``outage()`` (returns when the part is back), count."""
    engine = kit.new_store(db_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = kit.env_for(db_url, node.url, tmp_path / "var")
    server = procs.add(kit.start_server(env, port, tmp_path / "server.log"))
    assert kit.wait_http(base + "/healthz", server), (tmp_path / "server.log").read_text()[-3000:]
    page = kit.LivePage(base)
    poller = kit.HealthPoller(base)
    api, stream = ApiProducer(base), StreamProducer(node.url, f"{what}-")
    for t in (page, poller, api, stream):
        t.start()
    try:
        assert kit.wait_http(base + "/healthz", server)
        deadline = time.monotonic() + 60
        while (len(api.accepted) < 10 or not page.first(lambda e: e["event"] == "message")) \
                and time.monotonic() < deadline:
            time.sleep(0.1)
        assert page.first(lambda e: e["event"] == "message"), "the page got no live data before the outage"
        down_at = time.monotonic()
        outage()
        back_at = time.monotonic()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not page.first(lambda e: e["event"] == "message", after=back_at + 1):
            time.sleep(0.1)
        # the banner clears on a ping after the consumer's next commit: pings come every PING_S, so
        # wait for that ping itself (bounded) rather than a fixed pause that a slow ping outlasts
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not page.first(
                lambda e: e["event"] == "ping" and isinstance(e["data"], dict) and not e["data"].get("error"),
                after=back_at):
            time.sleep(0.1)
        time.sleep(2.0)
    finally:
        api.stop_event.set()
        stream.stop_event.set()
        api.join(30)
        stream.join(70)
    accepted = set(api.accepted) | set(stream.acked)
    end = time.monotonic() + 90
    while time.monotonic() < end and len(_events(engine, accepted)) < len(accepted):
        time.sleep(0.5)
    stored = _events(engine, accepted)
    healthy_again = poller.first(lambda code, body: code == 200, after=back_at)
    page.close()
    poller.stop_event.set()
    data_ids = [e["id"] for e in page.events if e["event"] == "message"]
    counts = dict(
        api_accepted=len(api.accepted), api_503_retry_after=api.unavailable, api_other=len(api.other),
        stream_acked=len(stream.acked), stream_retries=stream.retries, stream_gave_up=len(stream.failed),
        lost=len(accepted - stored),
        page_connections=page.connections, page_data=len(data_ids), page_duplicate_ids=len(data_ids) - len(set(data_ids)),
        page_gap_events=sum(1 for e in page.events if e["event"] == "gap"),
        page_data_after_restart=sum(1 for e in page.events if e["event"] == "message" and e["t"] > back_at),
        healthz_recovered_s=None if healthy_again is None else round(healthy_again - back_at, 2),
    )
    return counts, page, poller, down_at, back_at, api


def test_faults004_redis_restarted_under_load(procs, tmp_path):
    node = procs.add(RedisNode(tmp_path, appendonly=True).start())

    def outage():
        node.stop()                 # SIGTERM: redis-server writes its AOF and exits
        time.sleep(OUTAGE_S)
        node.start()                # same port, same data

    counts, page, poller, down_at, back_at, api = _run(procs, tmp_path, f"sqlite:///{tmp_path / 'store.db'}",
                                                      node, outage, "redis")
    shown = page.first(lambda e: e["event"] == "ping" and isinstance(e["data"], dict) and e["data"].get("error"),
                       after=down_at)
    hz = poller.first(lambda code, body: code != 200 and str(body.get("redis", "")).startswith("error"), after=down_at)
    line = report("faults004 redis restart", outage_s=OUTAGE_S, **counts,
                  page_shows_outage_s=None if shown is None else round(shown["t"] - down_at, 2),
                  healthz_shows_outage_s=None if hz is None else round(hz - down_at, 2))
    assert counts["lost"] == 0 and counts["stream_gave_up"] == 0, line
    assert counts["api_other"] == 0, line + f" {api.other[:3]}"
    assert shown is not None and shown["t"] - down_at <= SHOWN_WITHIN_S, line
    assert hz is not None and hz - down_at <= SHOWN_WITHIN_S, line
    # recovered without a reload: the same connection carries data again, nothing twice, no gap
    assert counts["page_connections"] == 1 and counts["page_data_after_restart"] > 0, line
    assert counts["page_duplicate_ids"] == 0 and counts["page_gap_events"] == 0, line
    assert counts["healthz_recovered_s"] is not None, line


def test_faults012_postgres_restarted_under_load(procs, tmp_path):
    pg = procs.add(Postgres().init().start())
    node = procs.add(RedisNode(tmp_path).start())

    def outage():
        pg.stop("fast")             # every connection is cut
        time.sleep(OUTAGE_S)
        pg.start()

    counts, page, poller, down_at, back_at, api = _run(procs, tmp_path, pg.url, node, outage, "pg")
    hz = poller.first(lambda code, body: code != 200 and str(body.get("database", "")).startswith("error"),
                      after=down_at)
    shown = page.first(lambda e: e["event"] == "ping" and isinstance(e["data"], dict) and e["data"].get("error"),
                       after=down_at)
    cleared = None if shown is None else page.first(
        lambda e: e["event"] == "ping" and isinstance(e["data"], dict) and not e["data"].get("error"), after=shown["t"])
    line = report("faults012 postgres restart", outage_s=OUTAGE_S, **counts,
                  healthz_shows_outage_s=None if hz is None else round(hz - down_at, 2),
                  page_shows_outage_s=None if shown is None else round(shown["t"] - down_at, 2),
                  page_error=None if shown is None else shown["data"]["error"],
                  page_clear_after_restart_s=None if cleared is None else round(cleared["t"] - back_at, 2))
    assert counts["lost"] == 0 and counts["stream_gave_up"] == 0, line
    assert counts["api_other"] == 0, line + f" {api.other[:3]}"
    assert hz is not None and hz - down_at <= SHOWN_WITHIN_S, line
    # the page's banner: the consumer marks the store down in the feed health its pings carry
    assert shown is not None and shown["t"] - down_at <= SHOWN_WITHIN_S, line
    assert "store unavailable" in shown["data"]["error"] and cleared is not None, line
    assert counts["page_connections"] == 1 and counts["page_data_after_restart"] > 0, line
    assert counts["page_duplicate_ids"] == 0 and counts["page_gap_events"] == 0, line
    assert counts["healthz_recovered_s"] is not None, line
