"""The ingest API (POST /api/v1/reports) and Open311 under a burst of 10x their normal rate,
from 16 concurrent clients over real HTTP: every answer is a correct 202 or a 429 with
Retry-After (no 5xx), exactly the limit is accepted per key and endpoint, another key is not
starved, and every accepted report ends in the store (the consumer drains the stream after)."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from xml.etree import ElementTree as ET

import requests
import sqlalchemy as sa
from werkzeug.serving import make_server

from dashboard.app import create_app
from dashboard.feed.consumer import Consumer
from dashboard.store.schema import event
from tests.unit.tiling_small import D, X0, Y0, upsert_small_district

from .procs import report

NORMAL = 20           # requests per key and endpoint in the window: the "normal rate"
WINDOW = "hour"       # long enough that the burst always ends inside it, however slow the machine
BURST = 10 * NORMAL
KEY_A, KEY_B = "burst-a", "burst-b"
LAT, LON = Y0 + 1.5 * D, X0 + 2.5 * D


def _server(services):
    app = create_app(services.settings, services)
    httpd = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd, thread, f"http://127.0.0.1:{httpd.server_port}"


def _ingest(base, key, i):
    body = {"category": "safety", "subcategory": "gas", "description": f"burst report {key} {i}",
            "location": {"lon": LON, "lat": LAT}, "source": "mini_program"}
    return requests.post(f"{base}/api/v1/reports", json=body, headers={"X-API-Key": key}, timeout=30)


def _open311(base, key, i, fmt):
    form = {"api_key": key, "service_code": "safety-gas", "lat": str(LAT), "long": str(LON),
            "description": f"burst open311 {key} {i}"}
    return requests.post(f"{base}/open311/v2/requests.{fmt}", data=form, timeout=30)


def _check(resp, kind: str, fmt: str = "json") -> str | None:
    """The accepted id, or None for a well-formed 429; anything else fails."""
    if resp.status_code == 429:
        wait = resp.headers.get("Retry-After")
        assert wait and wait.isdigit() and int(wait) >= 1, (kind, resp.headers)
        if fmt == "xml":
            root = ET.fromstring(resp.content)
            assert root.tag == "errors" and root.find("error/code").text == "429"
        elif kind == "open311":
            assert resp.json()[0]["code"] == 429
        else:
            assert resp.json()["error"] == "rate_limited"
        return None
    if kind == "ingest":
        assert resp.status_code == 202, (resp.status_code, resp.text[:300])
        return resp.json()["id"]
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    if fmt == "xml":
        return ET.fromstring(resp.content).find("request/service_request_id").text
    return resp.json()[0]["service_request_id"]


def test_faults005_ingest_and_open311_under_a_10x_burst(stack, make_services, tmp_path):
    db_url, redis_url = stack
    limit = f"{NORMAL}/{WINDOW}"
    services = make_services(db_url, redis_url, ingest_api_keys=f"{KEY_A},{KEY_B}", api_rate_limit=limit,
                             api_read_rate_limit=f"{2 * NORMAL}/{WINDOW}")
    upsert_small_district(services.engine)
    httpd, thread, base = _server(services)
    try:
        with ThreadPoolExecutor(16) as pool:
            ingest = list(pool.map(lambda i: _ingest(base, KEY_A, i), range(BURST)))
            o311 = list(pool.map(lambda i: _open311(base, KEY_A, i, "xml" if i % 2 else "json"), range(BURST)))
            reads = list(pool.map(lambda i: requests.get(f"{base}/open311/v2/services.json", timeout=30),
                                  range(BURST)))
            other = [_ingest(base, KEY_B, i) for i in range(5)]  # another key is not starved
        ingest_ids = [x for x in (_check(r, "ingest") for r in ingest) if x]
        o311_ids = [x for x in (_check(r, "open311", "xml" if i % 2 else "json") for i, r in enumerate(o311)) if x]
        other_ids = [_check(r, "ingest") for r in other]
        read_ok = [r for r in reads if r.status_code == 200]
        assert all(r.status_code in (200, 429) for r in reads)
        assert all(len(r.json()) > 10 for r in read_ok)   # the answers stay whole
    finally:
        httpd.shutdown()
        thread.join(10)

    # the consumer stores what was accepted
    Consumer(services, name="burst").run(burst=True)
    accepted = set(ingest_ids) | set(o311_ids) | set(other_ids)
    with services.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(event.c.id, event.c.description)
                                   .where(event.c.id.in_(list(accepted)))).all())
    lost = accepted - set(stored)
    descriptions = {i: d for i, d in stored.items()}
    line = report("faults005 API burst", limit=limit, sent_ingest=BURST, accepted_ingest=len(ingest_ids),
                  sent_open311=BURST, accepted_open311=len(o311_ids), reads_ok=len(read_ok),
                  reads_429=BURST - len(read_ok), other_key_accepted=sum(1 for x in other_ids if x),
                  lost=len(lost), server_errors=sum(1 for r in ingest + o311 + reads if r.status_code >= 500))
    assert len(ingest_ids) == NORMAL and len(o311_ids) == NORMAL and len(read_ok) == 2 * NORMAL, line
    assert all(other_ids), line
    assert not lost, line
    assert len(set(descriptions.values())) == len(accepted), line  # each accepted report once, its own text
    # the counts live in the feed's Redis, shared by every web process
    assert services.redis.keys("*grid:ratelimit*"), line

