"""POST /api/v1/reports: validation naming the field, API keys, content type and size,
and the round trip API -> stream -> consumer -> GET, on the real stack."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.app import create_app
from dashboard.feed.contract import STREAM, parse
from dashboard.geo.coords import wgs84_to_gcj02
from tests.unit.tiling_small import X0, Y0, D, grid_codes, upsert_small_district

KEY = "k-test-1"
UNLIMITED = "1000000/second"  # these tests are about the answers; tests/faults/test_faults005 the limits
INSIDE = {"lon": X0 + 0.5 * D, "lat": Y0 + 0.5 * D}


@pytest.fixture
def api(stack, make_services):
    db_url, redis_url = stack
    services = make_services(db_url, redis_url, ingest_api_keys=f"{KEY}, k-test-2",
                             api_rate_limit=UNLIMITED, api_read_rate_limit=UNLIMITED)
    upsert_small_district(services.engine)
    app = create_app(services.settings, services)
    return services, app.server.test_client()


def good_body(**over):
    body = {"category": "safety", "subcategory": "gas", "description": "三楼燃气味道很重",
            "location": dict(INSIDE), "source": "mini_program", "reporter": "王女士",
            "address": "永嘉路社区1号楼", "urgent": True}
    body.update(over)
    return body


def post(client, body, key=KEY, headers=None, **kw):
    headers = {**({"X-API-Key": key} if key else {}), **(headers or {})}
    return client.post("/api/v1/reports", json=body, headers=headers, **kw)


def stream_messages(services):
    return [parse(fields[b"m"]) for _sid, fields in services.redis.xrange(STREAM)]


def test_api001_post_report_queues_one_contract_message(api):
    services, client = api
    body = good_body(description="<script>alert('x')</script><b>楼道</b> & 堆物")
    resp = post(client, body)
    assert resp.status_code == 202, resp.get_json()
    out = resp.get_json()
    assert out["status_url"] == f"/api/v1/reports/{out['id']}"
    msgs = stream_messages(services)
    assert len(msgs) == 1
    m = msgs[0]
    assert (m.type, m.event_id, m.id) == ("event.reported", out["id"], out["message_id"])
    assert (m.category, m.subcategory, m.source, m.urgent) == ("safety", "gas", "mini_program", True)
    assert m.description == body["description"]  # HTML is text: kept verbatim, never interpreted
    assert m.actor.kind == "resident" and m.actor.name == "王女士"
    assert m.occurred_at.tzinfo is not None
    assert abs((datetime.now(timezone.utc) - m.occurred_at).total_seconds()) < 60


def test_api017_ids_are_unique(api):
    services, client = api
    ids = {post(client, good_body()).get_json()["id"] for _ in range(20)}
    assert len(ids) == 20
    assert len({m.id for m in stream_messages(services)}) == 20


FUTURE = (datetime.now(timezone.utc) + timedelta(days=2)).isoformat()
BAD_FIELDS = [
    ("location.lon", {"location": {"lon": "east", "lat": INSIDE["lat"]}}),
    ("location.lat", {"location": {"lon": INSIDE["lon"], "lat": 123.0}}),
    ("location.crs", {"location": {**INSIDE, "crs": "bd09"}}),
    ("location", {"location": {"lon": 116.4, "lat": 39.9}}),           # Beijing: outside the jurisdiction
    ("location", {"location": None}),                                   # neither location nor region_code
    ("region_code", {"location": None, "region_code": "370202009001001"}),
    ("region_code", {"location": None, "region_code": "370202001"}),   # a street, not a grid
    ("region_code", {"location": None, "region_code": "abc"}),
    ("category", {"category": "aliens"}),
    ("subcategory", {"subcategory": "noise"}),                          # noise is a disputes subcategory
    ("occurred_at", {"occurred_at": "2026-11-01T10:00:00"}),           # no time zone
    ("occurred_at", {"occurred_at": FUTURE}),
    ("occurred_at", {"occurred_at": "yesterday"}),
    ("occurred_at", {"occurred_at": ""}),
    ("occurred_at", {"occurred_at": 0}),                                 # 1970: before 2000
    ("source", {"source": "fax"}),
    ("source", {"source": "system"}),
    ("source", {"source": None}),
    ("description", {"description": "x" * 2001}),
    ("address", {"address": "路" * 201}),
    ("urgent", {"urgent": "maybe"}),
    ("level", {"level": 7}),
    ("reporter.name", {"reporter": "名" * 65}),
    ("reporter.kind", {"reporter": {"kind": "alien"}}),
    ("reporter", {"reporter": 42}),
    ("colour", {"colour": "red"}),
]


@pytest.mark.parametrize("field,change", BAD_FIELDS, ids=[f"{f}-{i}" for i, (f, _c) in enumerate(BAD_FIELDS)])
def test_api002_each_bad_field_is_named(api, field, change):
    services, client = api
    body = good_body()
    for k, v in change.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    resp = post(client, body)
    assert 400 <= resp.status_code < 500
    out = resp.get_json()
    assert out["error"] == "invalid"
    named = [f["field"] for f in out["fields"]]
    assert field in named, out
    assert all(f["error"] for f in out["fields"])
    assert services.redis.xlen(STREAM) == 0  # nothing queued


def test_api018_all_problems_reported_together(api):
    _services, client = api
    body = good_body(colour="red", source="fax", location={"lon": "x", "lat": 1})
    named = {f["field"] for f in post(client, body).get_json()["fields"]}
    assert {"colour", "source", "location.lon"} <= named


def test_api003_api_key_required(api):
    services, client = api
    assert post(client, good_body(), key=None).status_code == 401
    resp = post(client, good_body(), key="wrong")
    assert resp.status_code == 401 and resp.get_json()["error"] == "unauthorized"
    assert post(client, good_body(), key="k-test-2").status_code == 202  # second key of the setting
    resp = client.post(f"/api/v1/reports?api_key={KEY}", json=good_body())
    assert resp.status_code == 202
    assert services.redis.xlen(STREAM) == 2
    assert client.get("/api/v1/reports/EVx").status_code == 401


def test_api004_content_type_size_and_json(api):
    services, client = api
    h = {"X-API-Key": KEY}
    resp = client.post("/api/v1/reports", data=json.dumps(good_body()), headers=h, content_type="text/plain")
    assert resp.status_code == 415 and resp.get_json()["error"] == "unsupported_media_type"
    resp = client.post("/api/v1/reports", data=json.dumps(good_body()), headers=h,
                       content_type="application/x-www-form-urlencoded")
    assert resp.status_code == 415
    big = json.dumps(good_body(description="x" * 70_000))
    resp = client.post("/api/v1/reports", data=big, headers=h, content_type="application/json")
    assert resp.status_code == 413 and resp.get_json()["error"] == "too_large"
    resp = client.post("/api/v1/reports", data="{not json", headers=h, content_type="application/json")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_json"
    resp = client.post("/api/v1/reports", data="[1, 2]", headers=h, content_type="application/json")
    assert resp.status_code == 422 and resp.get_json()["fields"][0]["field"] == "(body)"
    resp = client.post("/api/v1/reports", data=b"\xff\xfe", headers=h, content_type="application/json")
    assert resp.status_code == 400
    assert services.redis.xlen(STREAM) == 0


def test_api005_region_code_and_gcj02_reports(api):
    services, client = api
    grid = grid_codes()[4]
    body = good_body(region_code=grid, source="hotline_12345")
    body.pop("location")
    assert post(client, body).status_code == 202
    glon, glat = wgs84_to_gcj02(INSIDE["lon"], INSIDE["lat"])
    assert post(client, good_body(location={"lon": float(glon), "lat": float(glat), "crs": "gcj02"})).status_code == 202
    m1, m2 = stream_messages(services)
    assert m1.region_code == grid and m1.location is None and m1.actor.kind == "operator"
    assert m2.location.crs == "gcj02"
    lon, lat = m2.location.wgs84()
    assert abs(lon - INSIDE["lon"]) < 1e-6 and abs(lat - INSIDE["lat"]) < 1e-6


def test_api006_html_description_accepted_as_text(api):
    services, client = api
    text = '<img src=x onerror="alert(1)"> 噪音 &amp; <a href="javascript:x">link</a>'
    assert post(client, good_body(description=text)).status_code == 202
    assert stream_messages(services)[0].description == text


def test_api007_report_reads_back_after_the_consumer_stores_it(api):
    from dashboard.feed import consumer as consumer_mod

    services, client = api
    h = {"X-API-Key": KEY}
    body = good_body(description="<b>井盖</b>缺失", category="facilities", subcategory="manhole")
    out = post(client, body).get_json()
    pending = client.get(out["status_url"], headers=h)
    assert pending.status_code == 404 and pending.get_json()["status"] == "pending"
    unknown = client.get("/api/v1/reports/EVnope", headers=h)
    assert unknown.status_code == 404 and unknown.get_json()["error"] == "not_found"
    consumer_mod.Consumer(services).run(burst=True)
    resp = client.get(out["status_url"], headers=h)
    assert resp.status_code == 200, resp.get_json()
    ev = resp.get_json()
    assert ev["id"] == out["id"]
    assert (ev["category"], ev["subcategory"], ev["source"], ev["state"]) == ("facilities", "manhole",
                                                                             "mini_program", "reported")
    assert ev["description"] == body["description"]
    assert ev["grid_code"] == grid_codes()[0]
    assert ev["status"] == "open"
    assert "reporter" not in ev
    assert abs(ev["lon"] - INSIDE["lon"]) < 1e-9


def test_api008_redis_down_answers_503(api):
    services, client = api
    real = services.redis
    services.redis = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens there
    try:
        resp = post(client, good_body())
    finally:
        services.redis.close()
        services.redis = real
    assert resp.status_code == 503 and resp.get_json()["error"] == "unavailable"
    assert real.xlen(STREAM) == 0


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)
FIELD_VALUES = {
    "category": st.sampled_from(["safety", "order", "aliens", ""]) | JSONISH,
    "subcategory": st.sampled_from(["gas", "parking", "noise", "x"]) | JSONISH,
    "location": st.fixed_dictionaries({"lon": st.floats(119, 122) | JSONISH, "lat": st.floats(35, 37) | JSONISH})
    | JSONISH,
    "region_code": st.sampled_from(grid_codes() + ["370202", "12"]) | JSONISH,
    "occurred_at": st.sampled_from(["2026-11-01T10:00:00+08:00", "2026-11-01T10:00:00", "1999-01-01T00:00:00Z",
                                    "9999-01-01T00:00:00Z"]) | JSONISH,
    "source": st.sampled_from(["mini_program", "hotline_12345", "system", "fax"]) | JSONISH,
    "description": st.text(max_size=300) | JSONISH,
    "reporter": JSONISH, "address": JSONISH, "urgent": JSONISH, "level": JSONISH,
    "colour": JSONISH,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.fixed_dictionaries({}, optional=FIELD_VALUES) | JSONISH)
def test_api009_fuzzed_bodies_get_202_or_a_named_4xx(api, body):
    services, client = api
    before = services.redis.xlen(STREAM)
    resp = client.post("/api/v1/reports", data=json.dumps(body), content_type="application/json",
                       headers={"X-API-Key": KEY})
    out = resp.get_json()
    assert out is not None  # always a JSON answer
    if resp.status_code == 202:
        assert services.redis.xlen(STREAM) == before + 1
        [(_sid, fields)] = services.redis.xrevrange(STREAM, count=1)
        assert parse(fields[b"m"]).event_id == out["id"]
    else:
        assert resp.status_code in (400, 422), out
        assert services.redis.xlen(STREAM) == before
        if resp.status_code == 422:
            assert out["fields"] and all(f["field"] and f["error"] for f in out["fields"])


def test_api010_explicit_occurred_at_is_kept(api):
    services, client = api
    when = (datetime.now(timezone.utc) - timedelta(hours=3)).astimezone(timezone(timedelta(hours=8)))
    assert post(client, good_body(occurred_at=when.isoformat())).status_code == 202
    [m] = stream_messages(services)
    assert m.occurred_at == when and m.occurred_at.utcoffset() == timedelta(hours=8)


def test_api030_the_default_key_opens_the_demo_only(stack, make_services):
    """INGEST_API_KEYS left at its default, demo-key (printed in the README): accepted by the demo,
    refused by a server outside it; a key the operator set is accepted either way."""
    services = make_services(*stack, api_rate_limit=UNLIMITED, api_read_rate_limit=UNLIMITED)
    upsert_small_district(services.engine)
    base = services.settings
    outcomes = {}
    for demo in (True, False):
        services.settings = base.replace(demo=demo)  # INGEST_API_KEYS at its default
        client = create_app(services.settings, services).server.test_client()
        outcomes[demo] = post(client, good_body(), key="demo-key").status_code
        services.settings = base.replace(demo=demo, ingest_api_keys="demo-key,k-set")
        client = create_app(services.settings, services).server.test_client()
        assert post(client, good_body(), key="k-set").status_code == 202
        assert post(client, good_body(), key="demo-key").status_code == (202 if demo else 401)
    assert outcomes == {True: 202, False: 401}


def test_api031_a_retry_with_the_same_idempotency_key_is_one_report(api):
    """A client that lost the answer sends again with the same Idempotency-Key: the same ids come
    back, and the consumer stores one report; another body under the key is refused; another API
    key's same Idempotency-Key is its own."""
    from sqlalchemy import func, select

    from dashboard.feed.consumer import Consumer
    from dashboard.store.schema import event

    services, client = api
    body = good_body(description="同一上报，重试")
    first = post(client, body, headers={"Idempotency-Key": "mp-7f3a-0001"})
    again = post(client, body, headers={"Idempotency-Key": "mp-7f3a-0001"})
    assert first.status_code == again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["message_id"] == first.get_json()["message_id"]
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    other_body = post(client, good_body(description="另一件事"), headers={"Idempotency-Key": "mp-7f3a-0001"})
    assert other_body.status_code == 422 and other_body.get_json()["error"] == "idempotency_key_reused"
    other_key = post(client, body, key="k-test-2", headers={"Idempotency-Key": "mp-7f3a-0001"})
    assert other_key.status_code == 202 and other_key.get_json()["id"] != first.get_json()["id"]
    assert post(client, body, headers={"Idempotency-Key": "x" * 256}).status_code == 400
    assert post(client, body, headers={"Idempotency-Key": "有中文"}).status_code == 400
    stats = Consumer(services).run(burst=True)
    assert stats["duplicates"] == 1  # the retry went out again under the first one's id
    with services.engine.connect() as conn:
        ids = conn.execute(select(event.c.id)).scalars().all()
        assert conn.execute(select(func.count()).select_from(event)).scalar_one() == 2
    assert sorted(ids) == sorted([first.get_json()["id"], other_key.get_json()["id"]])
