"""GET /api/v1/live, as the production server answers it (uvicorn + the ASGI front + the push hub):
scope filtering on the server, resume by Last-Event-ID without gap or duplicate, gap, heartbeat,
one Redis connection per web process however many pages, a page that stops reading dropped
without slowing the others, Redis going away and coming back. The Flask route that WSGI servers
still use is checked under gunicorn's gthread worker (feed057)."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from contextlib import contextmanager
from types import SimpleNamespace

import flask
import pytest
import requests

from dashboard.api import health, live
from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import DELTAS
from dashboard.push import hub as hubmod
from dashboard.web.asgi import CommandCenterASGI
from tests.integration.wallkit import UvicornThread, free_port

from . import feed_support as F


@pytest.fixture
def svc(stack, make_services):
    # the push's mechanics, with access off (on by default): who may open a page, for which scope,
    # and the end of a revoked one are tests/unit/test_access110_push.py
    services = make_services(*stack, access_required=False)
    F.seed_regions(services.engine)
    return services


def consume(services):
    return Consumer(services, name="live-test").run(burst=True)


def parse_sse(text: str) -> list[dict]:
    """Blocks of an SSE stream -> [{"id", "event", "data", "comment"}]."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        ev = {"id": None, "event": None, "data": None, "comment": None}
        data = []
        for line in block.split("\n"):
            if line.startswith(":"):
                ev["comment"] = line[1:].strip()
            elif ":" in line:
                k, _, v = line.partition(":")
                v = v[1:] if v.startswith(" ") else v
                if k == "data":
                    data.append(v)
                elif k in ("id", "event"):
                    ev[k] = v
        if data:
            ev["data"] = json.loads("\n".join(data))
        if any(v is not None for v in ev.values()):  # a bare "retry:" block carries nothing
            out.append(ev)
    return out


def live_asgi(services, **settings) -> CommandCenterASGI:
    """The ASGI front over a Flask app holding only the old route: any answer from it would be
    the thread-per-page one, so the tests below see the hub's only if the front takes the path."""
    if settings:
        services.settings = services.settings.replace(**settings)
    app = flask.Flask("live-test")
    live.register(app, services)
    return CommandCenterASGI(SimpleNamespace(server=app), services, threads=4)


@contextmanager
def serving(services, **settings):
    asgi = live_asgi(services, **settings)
    port = free_port(9500)
    srv = UvicornThread(asgi, port).start()
    try:
        yield asgi, port
    finally:
        srv.stop()


class Page:
    """One live page over HTTP/1.1 (http.client reads the chunked body as it comes)."""

    def __init__(self, port: int, scope: str | None = None, since: str | None = None,
                 last_event_id: str | None = None, token: str | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        q = []
        if scope:
            q.append(f"scope={scope}")
        if token:  # a wall display's token (ACCESS_REQUIRED on)
            q.append(f"token={token}")
        if since:
            q.append(f"since={since}")
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", "/api/v1/live" + ("?" + "&".join(q) if q else ""), headers=headers)
        self.resp = self.conn.getresponse()
        self.text = ""
        self.buf = ""  # an incomplete block, kept for the next read
        self.events: list[dict] = []

    def read_until(self, done, timeout: float = 15.0) -> list[dict]:
        end = time.monotonic() + timeout
        while not done(self.events):
            assert time.monotonic() < end, f"timed out; got {self.events[-5:]}"
            chunk = self.resp.read1(65536).decode()
            assert chunk, "the server closed the stream"
            self.buf += chunk
            self.text += chunk
            if "\n\n" in self.buf:
                head, _, self.buf = self.buf.rpartition("\n\n")
                self.events.extend(parse_sse(head + "\n\n"))
        return self.events

    def data_ids(self) -> list[str]:
        return [e["id"] for e in self.events if e["event"] is None and e["data"] is not None]

    def deltas(self) -> list[dict]:
        return [d for e in self.events if e["event"] is None and e["data"] for d in e["data"]]

    def close(self):
        self.conn.close()


def has_id(want):
    return lambda events: any(e["id"] == want for e in events)


def hello(events):
    return any(e["event"] == "hello" for e in events)


def newest(r) -> str:
    return r.xrevrange(DELTAS, count=1)[0][0].decode()


def two_streets_batch(tag: str) -> list[dict]:
    return [F.reported(f"{tag}-in-{i}", i % 3) for i in range(4)] + \
           [F.reported(f"{tag}-out-{i}", 3) for i in range(3)] + \
           [F.position(f"{tag}-walker", 3), F.position(f"{tag}-local", 0)]


def wait(cond, timeout: float = 10.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def push_clients(r, db: int | None = None, others: frozenset = frozenset()) -> list[dict]:
    """This Redis's clients named like the push reader (on a shared server: only our db's), less
    ``others``: the ids of those there before the test's server started (the session's Redis is
    shared, and CI once met a reader another test's server had left, 876 s old)."""
    return [c for c in r.client_list() if c.get("name") == hubmod.CLIENT_NAME
            and (db is None or int(c.get("db", 0)) == db) and c["id"] not in others]


def reader_ids(r, db: int | None = None) -> frozenset:
    return frozenset(c["id"] for c in push_clients(r, db))


def test_feed050_scope_is_filtered_on_the_server(svc):
    F.xadd_all(svc.redis, two_streets_batch("a"))
    consume(svc)
    with serving(svc) as (_, port):
        page = Page(port, scope=F.STREET, since="0-0")
        everything = Page(port, since="0-0")
        last = newest(svc.redis)
        page.read_until(lambda ev: has_id(last)(ev) and any(e["event"] == "ping" for e in ev))
        everything.read_until(has_id(last))
    assert page.resp.headers["Content-Type"].startswith("text/event-stream")
    assert page.events[0]["event"] == "hello"
    got = page.deltas()
    assert got and all(d["g"].startswith(F.STREET) for d in got)
    ids = {d["id"] for d in got}
    assert {f"a-in-{i}" for i in range(4)} <= ids and "a-local" in ids
    assert not any("out" in i or "walker" in i for i in ids)  # another street's deltas never reach it
    all_ids = {d["id"] for d in everything.deltas()}
    assert {f"a-out-{i}" for i in range(3)} | {"a-walker"} <= all_ids
    pings = [e for e in page.events if e["event"] == "ping"]
    assert "lag" in pings[0]["data"] and "dead_letters" in pings[0]["data"]


def test_feed051_an_entry_with_nothing_in_scope_still_moves_the_resume_point(svc):
    F.xadd_all(svc.redis, [F.reported("far", 3)])
    consume(svc)
    last = newest(svc.redis)
    with serving(svc) as (_, port):
        page = Page(port, scope=F.STREET, since="0-0")  # replayed: a skip ends the replay
        page.read_until(has_id(last))
        assert any(e["comment"] == "skip" and e["id"] == last for e in page.events)
        F.xadd_all(svc.redis, [F.reported("far-2", 3)])  # live: the next ping carries the id
        consume(svc)
        later = newest(svc.redis)
        page.read_until(has_id(later))
    assert not page.deltas()
    assert any(e["id"] == later and e["event"] in ("ping", None) for e in page.events)


def test_feed052_resume_with_last_event_id_has_no_gap(svc):
    r = svc.redis
    with serving(svc) as (_, port):
        F.xadd_all(r, two_streets_batch("b1")[:4])
        consume(svc)
        first = [e[0].decode() for e in r.xrange(DELTAS)]
        page = Page(port, scope=F.DISTRICT, since="0-0")
        page.read_until(has_id(first[-1]))
        page.close()
        got = page.data_ids()
        assert got == first
        resume = got[-1]
        for k in range(3):  # while the page is away, more happens
            F.xadd_all(r, [F.reported(f"b2-{k}-{i}", i % 3) for i in range(3)])
            consume(svc)
        later = [e[0].decode() for e in r.xrange(DELTAS, "(" + resume, "+")]
        assert len(later) == 3
        page = Page(port, scope=F.DISTRICT, last_event_id=resume)
        page.read_until(has_id(later[-1]))
    hello_ev = page.events[0]
    assert hello_ev["event"] == "hello" and hello_ev["data"]["last"] == resume
    assert page.data_ids() == later  # every entry after the resume point, once, in order
    assert sorted(d["id"] for d in page.deltas()) == sorted(f"b2-{k}-{i}" for k in range(3) for i in range(3))
    assert not any(e["event"] == "gap" for e in page.events)


def test_feed053_default_start_is_now_and_a_new_delta_arrives(svc):
    r = svc.redis
    F.xadd_all(r, [F.reported("old-1")])
    consume(svc)
    with serving(svc) as (_, port):
        page = Page(port, scope=F.STREET)
        page.read_until(hello)
        assert page.events[0]["data"]["last"] == newest(r)
        F.xadd_all(r, [F.reported("new-1", 1)])
        consume(svc)
        page.read_until(has_id(newest(r)))
    assert [d["id"] for d in page.deltas()] == ["new-1"]  # nothing from before the connection


def test_feed054_a_closed_page_leaves_the_hub_and_pages_share_one_redis_connection(svc):
    """Replaces "closing the page closes its Redis connection": pages have none of their own. The
    page is registered before its hello is written, so waiting for the hello is enough."""
    r = svc.redis
    db = r.connection_pool.connection_kwargs.get("db")
    others = reader_ids(r, db)
    with serving(svc) as (asgi, port):
        first = Page(port, scope=F.STREET)
        first.read_until(hello)
        assert len(asgi.hub.pages) == 1
        assert health.check(svc)[0]["live_pages"] == 1  # /healthz counts this process's pages
        wait(lambda: len(push_clients(r, db, others)) == 1, what="the reader's connection")
        first.close()
        wait(lambda: len(asgi.hub.pages) == 0, what="the closed page to leave the hub")
        assert len(push_clients(r, db, others)) == 1  # the process's reader stays; nothing per page
        assert not [c for c in r.client_list() if c.get("name") == live.CLIENT_NAME
                    and int(c.get("db", 0)) == (db or 0)]


def test_feed055_bad_scope_or_resume_point_is_a_json_400(svc):
    with serving(svc) as (_, port):
        resp = requests.get(f"http://127.0.0.1:{port}/api/v1/live?scope=abc", timeout=10)
        assert resp.status_code == 400 and resp.json()["field"] == "scope"
        resp = requests.get(f"http://127.0.0.1:{port}/api/v1/live", headers={"Last-Event-ID": "yesterday"},
                            timeout=10)
        assert resp.status_code == 400 and resp.json()["field"] == "since"
    # the Flask route (WSGI servers) answers the same
    app = flask.Flask("live-test")
    live.register(app, svc)
    client = app.test_client()
    assert client.get("/api/v1/live?scope=abc").get_json()["field"] == "scope"
    assert client.get("/api/v1/live", headers={"Last-Event-ID": "yesterday"}).status_code == 400


def test_feed056_a_trimmed_resume_point_says_gap(svc):
    r = svc.redis
    for i in range(5):
        r.xadd(DELTAS, {"d": json.dumps([{"k": "event", "op": "upsert", "g": F.GRIDS[0], "id": f"g{i}"}])})
    ids = [e[0].decode() for e in r.xrange(DELTAS)]
    r.xtrim(DELTAS, minid=ids[3], approximate=False)
    with serving(svc) as (_, port):
        page = Page(port, since=ids[0])
        page.read_until(has_id(ids[4]))
        whole = Page(port, since=ids[3])
        whole.read_until(has_id(ids[4]))
    assert any(e["event"] == "gap" for e in page.events)
    assert [d["id"] for d in page.deltas()] == ["g3", "g4"]
    assert not any(e["event"] == "gap" for e in whole.events)


def test_feed057_the_wsgi_route_works_under_gunicorn_gthread(svc, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    port = free_port(9540)
    env = dict(os.environ, DATABASE_URL=svc.settings.database_url, REDIS_URL=svc.redis_url,
               VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(root), ACCESS_REQUIRED="false")  # as svc
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-k", "gthread", "--threads", "4", "-w", "1",
                             "-b", f"127.0.0.1:{port}", "tests.unit.feed_support:live_app()"],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/api/v1/live"
        end = time.monotonic() + 30
        while True:
            try:
                requests.get(url + "?scope=x", timeout=2)
                break
            except (requests.ConnectionError, requests.Timeout):  # gunicorn queues requests while its worker boots
                assert proc.poll() is None and time.monotonic() < end, proc.stderr.read().decode()[-2000:]
                time.sleep(0.2)
        pages = [Page(port, scope=F.STREET) for _ in range(2)]
        for p in pages:
            p.read_until(hello)
        F.xadd_all(svc.redis, [F.reported("g-in", 1), F.reported("g-out", 3)])
        consume(svc)
        last = newest(svc.redis)
        for p in pages:  # both open pages get it, concurrently served
            p.read_until(has_id(last))
            assert [d["id"] for d in p.deltas()] == ["g-in"]
            p.close()
    finally:
        proc.terminate()
        proc.wait(15)


# --- what the one-reader design adds ------------------------------------------------------------

def test_push001_one_redis_connection_per_process_however_many_pages(svc):
    r = svc.redis
    db = r.connection_pool.connection_kwargs.get("db")
    others = reader_ids(r, db)
    with serving(svc) as (asgi, port):
        pages = [Page(port, scope=F.STREET if i % 2 else F.OTHER_STREET) for i in range(60)]
        for p in pages:
            p.read_until(hello)
        assert len(asgi.hub.pages) == 60
        mine = push_clients(r, db, others)
        assert len(mine) == 1, mine  # not one per page
        F.xadd_all(r, [F.reported("many-in", 1), F.reported("many-out", 3)])
        consume(svc)
        last = newest(r)
        for p in pages:
            p.read_until(has_id(last))
        for i, p in enumerate(pages):
            assert [d["id"] for d in p.deltas()] == (["many-in"] if i % 2 else ["many-out"])
        assert len(push_clients(r, db, others)) == 1
        for p in pages:
            p.close()
    wait(lambda: not push_clients(r, db, others), what="the reader's connection to close with the server")


def test_push002_a_resuming_page_joins_the_live_fan_out_without_gap_or_duplicate(svc):
    """Entries keep arriving while the page replays what it missed: each reaches it once, in order."""
    r = svc.redis

    def add(tag, n):
        for i in range(n):
            r.xadd(DELTAS, {"d": json.dumps([{"k": "event", "op": "upsert", "g": F.GRIDS[i % 3],
                                              "id": f"{tag}-{i}"}])})

    add("before", 1500)  # longer than one replay round (REPLAY_COUNT)
    resume = r.xrange(DELTAS, count=1)[0][0].decode()
    with serving(svc) as (_, port):
        stop = threading.Event()

        def writer():
            k = 0
            while not stop.is_set() and k < 400:
                add(f"during{k}", 1)
                k += 1
                time.sleep(0.002)

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        page = Page(port, scope=F.COMMUNITY, last_event_id=resume)
        page.read_until(lambda ev: len([e for e in ev if e["event"] is None and e["data"]]) >= 600)
        t.join(30)
        stop.set()
        add("after", 5)
        last = newest(r)
        page.read_until(has_id(last), timeout=30)
    want = [e[0].decode() for e in r.xrange(DELTAS, "(" + resume, "+")]
    assert page.data_ids() == want  # all of them, each once, in stream order
    assert not any(e["event"] == "gap" for e in page.events)


def _stalled_client(port: int, scope: str) -> socket.socket:
    """A page that asks for the stream and then never reads (a frozen tab): a small receive buffer,
    so the kernel holds little for it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(f"GET /api/v1/live?scope={scope} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    return s


def _big_entries(r, n: int, tag: str) -> None:
    text = "x" * 20_000
    for i in range(n):
        r.xadd(DELTAS, {"d": json.dumps([{"k": "event", "op": "upsert", "g": F.GRIDS[0], "id": f"{tag}-{i}",
                                          "txt": text}])})


def test_push003_a_page_that_stops_reading_does_not_slow_the_others(svc):
    r = svc.redis
    # a buffer and a patience large enough that the stalled page stays open through the test
    with serving(svc, push_buffer_kb=200_000, push_stall_s=600) as (asgi, port):
        stalled = _stalled_client(port, F.STREET)
        wait(lambda: len(asgi.hub.pages) == 1, what="the stalled page to open")
        reader = Page(port, scope=F.STREET)
        reader.read_until(hello)
        _big_entries(r, 400, "big")  # ~8 MB: far more than the stalled socket's buffers hold
        last = newest(r)
        reader.read_until(has_id(last), timeout=60)
        assert len(reader.data_ids()) == 400
        stuck = [p for p in asgi.hub.pages if p.size > 0 or p.sending_since is not None]
        assert len(asgi.hub.pages) == 2 and stuck  # the stalled page is still open, its data waiting
        stalled.close()
        reader.close()


def test_push004_a_page_that_stops_reading_is_dropped_and_its_connection_cut(svc):
    r = svc.redis
    with serving(svc, push_buffer_kb=64, push_stall_s=2) as (asgi, port):
        stalled = _stalled_client(port, F.STREET)
        wait(lambda: len(asgi.hub.pages) == 1, what="the stalled page to open")
        reader = Page(port, scope=F.STREET)
        reader.read_until(hello)
        _big_entries(r, 400, "drop")
        reader.read_until(has_id(newest(r)), timeout=60)
        wait(lambda: asgi.hub.dropped == 1, timeout=30, what="the stalled page to be dropped")
        assert len(asgi.hub.pages) == 1  # the reader's page stays
        assert health.check(svc)[0]["web"]["push_dropped"] >= 1
        # its connection is cut: what the kernel held drains, then the end (or a reset)
        stalled.settimeout(10)
        end = time.monotonic() + 30
        closed = False
        while time.monotonic() < end and not closed:
            try:
                closed = stalled.recv(1 << 20) == b""
            except ConnectionResetError:
                closed = True
        assert closed
        stalled.close()
        _big_entries(r, 3, "after")  # the others carry on
        reader.read_until(has_id(newest(r)))
        reader.close()


def test_push005_redis_away_is_told_to_pages_and_they_recover_without_reconnecting(tmp_path, make_services,
                                                                                 database_url):
    """Our own redis-server (the machine's shared one must not be stopped), on a port of our range."""
    import subprocess

    from dashboard.redis_server import redis_server_binary

    port = free_port(9560)
    data = tmp_path / "redis"
    data.mkdir()
    cmd = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data),
           "--appendonly", "yes", "--save", ""]

    def start():
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c = __import__("redis").Redis(port=port)
        wait(lambda: _pings(c), what="redis-server to start")
        return p

    proc = start()
    try:
        svc = make_services(database_url, f"redis://127.0.0.1:{port}/0", access_required=False)  # as svc
        r = svc.redis
        first = r.xadd(DELTAS, {"d": json.dumps([{"k": "event", "op": "upsert", "g": F.GRIDS[0], "id": "first"}])})
        with serving(svc) as (_, sport):
            page = Page(sport, scope=F.STREET)
            page.read_until(lambda ev: hello(ev) and any(e["event"] == "ping" and "error" not in e["data"]
                                                         for e in ev))
            proc.terminate()
            proc.wait(10)
            n = len(page.events)
            page.read_until(lambda ev: any(e["event"] == "ping" and "error" in e["data"] for e in ev[n:]),
                            timeout=20)
            # a page resuming while Redis is away waits for it, then replays and joins
            resumer = Page(sport, scope=F.STREET, last_event_id=first.decode())
            resumer.read_until(lambda ev: hello(ev) and any(e["event"] == "ping" and "error" in e["data"]
                                                            for e in ev), timeout=20)
            time.sleep(3 * hubmod.RETRY_S)  # the reader tries (and fails) its replay while Redis is away
            proc = start()  # the same data (append-only file): the stream is still there
            r.xadd(DELTAS, {"d": json.dumps([{"k": "event", "op": "upsert", "g": F.GRIDS[0], "id": "back"}])})
            page.read_until(lambda ev: "back" in {d["id"] for d in page.deltas()}, timeout=30)
            resumer.read_until(lambda ev: "back" in {d["id"] for d in resumer.deltas()}, timeout=30)
            assert [d["id"] for d in resumer.deltas()] == ["back"]  # nothing before its resume point
            resumer.close()
            n = len(page.events)
            page.read_until(lambda ev: any(e["event"] == "ping" for e in ev[n:]))
            assert "error" not in [e for e in page.events[n:] if e["event"] == "ping"][-1]["data"]
            page.close()
    finally:
        proc.terminate()
        proc.wait(10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False
