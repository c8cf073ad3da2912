"""GET /api/v1/live: scope filtering on the server, resume by Last-Event-ID without a gap, heartbeat."""
from __future__ import annotations

import json
import threading
import time

import flask
import pytest
import requests
from werkzeug.serving import make_server

from dashboard.api import health, live
from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import DELTAS
from dashboard.feed.deltas import decode

from . import feed_support as F


@pytest.fixture
def svc(stack, make_services):
    services = make_services(*stack)
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


def read_stream(services, scope, since, seconds) -> list[dict]:
    return parse_sse("".join(live.stream(services, scope, since, max_seconds=seconds)))


def two_streets_batch(tag: str) -> list[dict]:
    return [F.reported(f"{tag}-in-{i}", i % 3) for i in range(4)] + \
           [F.reported(f"{tag}-out-{i}", 3) for i in range(3)] + \
           [F.position(f"{tag}-walker", 3), F.position(f"{tag}-local", 0)]


def test_feed050_scope_is_filtered_on_the_server(svc):
    F.xadd_all(svc.redis, two_streets_batch("a"))
    consume(svc)
    events = read_stream(svc, F.STREET, "0-0", 0.3)
    assert events[0]["event"] == "hello"
    data = [e for e in events if e["event"] is None and e["data"] is not None]
    got = [d for e in data for d in e["data"]]
    assert got and all(d["g"].startswith(F.STREET) for d in got)
    ids = {d["id"] for d in got}
    assert {f"a-in-{i}" for i in range(4)} <= ids and "a-local" in ids
    assert not any("out" in i or "walker" in i for i in ids)  # another street's deltas never reach it
    everything = read_stream(svc, None, "0-0", 0.3)
    all_ids = {d["id"] for e in everything if e["event"] is None and e["data"] for d in e["data"]}
    assert {f"a-out-{i}" for i in range(3)} | {"a-walker"} <= all_ids
    pings = [e for e in events if e["event"] == "ping"]
    assert pings and "lag" in pings[0]["data"] and "dead_letters" in pings[0]["data"]


def test_feed051_an_entry_with_nothing_in_scope_still_moves_the_resume_point(svc):
    F.xadd_all(svc.redis, [F.reported("far", 3)])
    consume(svc)
    newest = svc.redis.xrevrange(DELTAS, count=1)[0][0].decode()
    events = read_stream(svc, F.STREET, "0-0", 0.3)
    assert not [e for e in events if e["event"] is None and e["data"]]
    assert any(e["comment"] == "skip" and e["id"] == newest for e in events)


def _serve(services):
    app = flask.Flask("live-test")
    live.register(app, services)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _read_until(resp, want_ids: set[str], timeout: float = 10.0) -> list[dict]:
    """Read SSE blocks until every id in ``want_ids`` came (or timeout)."""
    buf, events, seen = "", [], set()
    end = time.monotonic() + timeout
    for chunk in resp.iter_content(chunk_size=None, decode_unicode=True):
        buf += chunk
        while "\n\n" in buf:
            block, buf = buf.split("\n\n", 1)
            for ev in parse_sse(block + "\n\n"):
                events.append(ev)
                if ev["id"] and ev["event"] is None:
                    seen.add(ev["id"])
        if want_ids <= seen or time.monotonic() > end:
            break
    return events


def test_feed052_resume_with_last_event_id_has_no_gap(svc):
    r = svc.redis
    server, thread = _serve(svc)
    url = f"http://127.0.0.1:{server.server_port}/api/v1/live"
    try:
        F.xadd_all(r, two_streets_batch("b1")[:4])
        consume(svc)
        first = [e[0].decode() for e in r.xrange(DELTAS)]
        with requests.get(url, params={"since": "0-0", "scope": F.DISTRICT}, stream=True, timeout=10) as resp:
            assert resp.status_code == 200
            assert resp.headers["Content-Type"].startswith("text/event-stream")
            assert resp.headers["Cache-Control"] == "no-cache" and resp.headers["X-Accel-Buffering"] == "no"
            events = _read_until(resp, set(first))
        got = [e["id"] for e in events if e["event"] is None and e["id"]]
        assert got == first
        resume = got[-1]
        # while the page is away, more happens
        for k in range(3):
            F.xadd_all(r, [F.reported(f"b2-{k}-{i}", i % 3) for i in range(3)])
            consume(svc)
        later = [e[0].decode() for e in r.xrange(DELTAS, "(" + resume, "+")]
        assert len(later) == 3
        with requests.get(url, params={"scope": F.DISTRICT}, headers={"Last-Event-ID": resume},
                          stream=True, timeout=10) as resp:
            events = _read_until(resp, set(later))
        hello = events[0]
        assert hello["event"] == "hello" and hello["data"]["last"] == resume
        got2 = [e["id"] for e in events if e["event"] is None and e["id"]]
        assert got2 == later  # every entry after the resume point, once, in order
        delivered = [d["id"] for e in events if e["event"] is None and e["data"] for d in e["data"]]
        assert sorted(delivered) == sorted(f"b2-{k}-{i}" for k in range(3) for i in range(3))
    finally:
        server.shutdown()
        thread.join(5)


def test_feed053_default_start_is_now_and_a_new_delta_arrives(svc):
    r = svc.redis
    F.xadd_all(r, [F.reported("old-1")])
    consume(svc)
    server, thread = _serve(svc)
    url = f"http://127.0.0.1:{server.server_port}/api/v1/live"
    try:
        with requests.get(url, params={"scope": F.STREET}, stream=True, timeout=10) as resp:
            it = resp.iter_content(chunk_size=None, decode_unicode=True)
            buf = ""
            while "event: hello" not in buf:
                buf += next(it)
            F.xadd_all(r, [F.reported("new-1", 1)])
            consume(svc)
            newest = r.xrevrange(DELTAS, count=1)[0][0].decode()
            events = []
            end = time.monotonic() + 10
            while time.monotonic() < end and not any(e["id"] == newest for e in events):
                buf += next(it)
                events = parse_sse(buf)
        data = [d for e in events if e["event"] is None and e["data"] for d in e["data"]]
        assert [d["id"] for d in data] == ["new-1"]  # nothing from before the connection
    finally:
        server.shutdown()
        thread.join(5)


def test_feed054_closing_the_page_closes_its_redis_connection(svc):
    r = svc.redis
    before = set(live.OPEN_PAGES.snapshot())
    server, thread = _serve(svc)
    url = f"http://127.0.0.1:{server.server_port}/api/v1/live"
    try:
        resp = requests.get(url, params={"scope": F.STREET}, stream=True, timeout=10)
        # Hold the iterator: a dropped one closes the HTTP connection as it is collected.
        body = resp.iter_content(chunk_size=None)
        next(body)  # the stream has connected by its first byte
        mine = {cid: scope for cid, scope in live.OPEN_PAGES.snapshot().items() if cid not in before}
        assert list(mine.values()) == [F.STREET]  # one Redis connection per open page
        (cid,) = mine
        seen = r.client_list(client_id=[cid])  # asked of the server by id: a shared server has others
        assert [c["name"] for c in seen] == [live.CLIENT_NAME], seen
        assert health.check(svc)[0]["live_pages"] >= 1  # /healthz counts the open pages
        got = b""
        while got.count(b"event: ping") < 2:  # two heartbeats later the open page still holds it
            got += next(body)
        assert r.client_list(client_id=[cid])
        resp.close()
        end = time.monotonic() + 8  # noticed at the next write: a heartbeat at most 2 s away
        while time.monotonic() < end and r.client_list(client_id=[cid]):
            time.sleep(0.1)
        assert r.client_list(client_id=[cid]) == []
        assert cid not in live.OPEN_PAGES.snapshot()
    finally:
        server.shutdown()
        thread.join(5)


def test_feed055_bad_scope_or_resume_point_is_a_json_400(svc):
    app = flask.Flask("live-test")
    live.register(app, svc)
    client = app.test_client()
    resp = client.get("/api/v1/live?scope=abc")
    assert resp.status_code == 400 and resp.get_json()["field"] == "scope"
    resp = client.get("/api/v1/live", headers={"Last-Event-ID": "yesterday"})
    assert resp.status_code == 400 and resp.get_json()["field"] == "since"


def test_feed056_a_trimmed_resume_point_says_gap(svc):
    r = svc.redis
    for i in range(5):
        r.xadd(DELTAS, {"d": json.dumps([{"k": "event", "op": "upsert", "g": F.GRIDS[0], "id": f"g{i}"}])})
    ids = [e[0].decode() for e in r.xrange(DELTAS)]
    r.xtrim(DELTAS, minid=ids[3], approximate=False)
    events = read_stream(svc, None, ids[0], 0.2)
    assert any(e["event"] == "gap" for e in events)
    got = [d["id"] for e in events if e["event"] is None and e["data"] for d in e["data"]]
    assert got == ["g3", "g4"]
    assert not any(e["event"] == "gap" for e in read_stream(svc, None, ids[3], 0.2))
    assert decode(r.xrange(DELTAS)[0][1][b"d"])[0]["id"] == "g3"


def test_feed057_works_under_gunicorn_gthread(svc, tmp_path):
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DATABASE_URL=svc.settings.database_url, REDIS_URL=svc.redis_url,
               VAR_DIR=str(tmp_path / "var"), PYTHONPATH=str(root))
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
        pages = [requests.get(url, params={"scope": F.STREET}, stream=True, timeout=10) for _ in range(2)]
        its = [p.iter_content(chunk_size=None, decode_unicode=True) for p in pages]
        bufs = ["", ""]
        for k in range(2):
            while "event: hello" not in bufs[k]:
                bufs[k] += next(its[k])
        F.xadd_all(svc.redis, [F.reported("g-in", 1), F.reported("g-out", 3)])
        consume(svc)
        newest = svc.redis.xrevrange(DELTAS, count=1)[0][0].decode()
        for k in range(2):  # both open pages get it, concurrently served
            while f"id: {newest}" not in bufs[k]:
                bufs[k] += next(its[k])
            got = [d["id"] for e in parse_sse(bufs[k]) if e["event"] is None and e["data"] for d in e["data"]]
            assert got == ["g-in"]
        for p in pages:
            p.close()
    finally:
        proc.terminate()
        proc.wait(15)
