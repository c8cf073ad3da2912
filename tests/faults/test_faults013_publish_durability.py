"""The publish path's guarantees in isolation: WAIT that falls short is an error the caller sees
(NotReplicated; the ingest API's 503 with Retry-After), a retry of the same message is applied
once, and the sentinel settings are checked when read."""
from __future__ import annotations

import pytest

from dashboard.app import create_app
from dashboard.feed.consumer import Consumer
from dashboard.feed.contract import STREAM
from dashboard.feed.publish import NotReplicated, publish, publish_retrying
from dashboard.redis_server import connect, parse_sentinels
from dashboard.settings import Settings, SettingsError
from tests.unit import feed_support as F
from tests.unit.tiling_small import D, X0, Y0, upsert_small_district

from . import kit
from .procs import RedisNode, report


def test_faults013_wait_short_of_replicas_is_an_error_and_a_retry_applies_once(procs, tmp_path):
    node = procs.add(RedisNode(tmp_path).start())   # a primary with no replica
    r = connect(node.url)
    m = F.reported("DUR1", mid="dur-1")
    with pytest.raises(NotReplicated):
        publish(r, m, replicas=1, timeout_ms=50)
    retries = []
    with pytest.raises(NotReplicated):
        publish_retrying(r, m, replicas=1, timeout_ms=50, deadline_s=0.5, sleep=lambda s: retries.append(s))
    assert retries and max(retries) <= 2.0           # capped back-off
    publish(r, m)                                   # at last without WAIT
    copies = r.xlen(STREAM)
    engine = kit.new_store(f"sqlite:///{tmp_path / 's.db'}")
    from dashboard.geo.locate import Locator

    stats = Consumer(engine, r, Locator.from_engine(engine), name="d").run(burst=True)
    line = report("faults013 WAIT short", copies_in_stream=copies, applied=stats["applied"],
                  duplicates=stats["duplicates"], retries=len(retries))
    # every attempt's XADD reached the primary (WAIT only failed to see a replica): applied once
    assert copies >= 3 and stats["applied"] == 1 and stats["duplicates"] == copies - 1, line


def test_faults014_ingest_api_answers_503_when_not_replicated(stack, make_services):
    db_url, redis_url = stack
    services = make_services(db_url, redis_url, ingest_api_keys="k", redis_wait_replicas=1, redis_wait_timeout_ms=50)
    upsert_small_district(services.engine)
    client = create_app(services.settings, services).server.test_client()
    body = {"category": "safety", "subcategory": "gas", "description": "无副本", "source": "mini_program",
            "location": {"lon": X0 + 2.5 * D, "lat": Y0 + 1.5 * D}}
    resp = client.post("/api/v1/reports", json=body, headers={"X-API-Key": "k"})
    assert resp.status_code == 503 and resp.get_json()["error"] == "unavailable", resp.get_json()
    assert int(resp.headers["Retry-After"]) >= 1


def test_faults015_sentinel_settings_are_checked():
    assert parse_sentinels("10.0.0.1:26379, 10.0.0.2:26380") == [("10.0.0.1", 26379), ("10.0.0.2", 26380)]
    assert parse_sentinels("[::1]:26379") == [("::1", 26379)]
    s = Settings.from_env({"REDIS_SENTINELS": "a:1,b:2", "REDIS_SENTINEL_MASTER": "grid", "REDIS_WAIT_REPLICAS": "1"})
    assert s.redis_sentinels == "a:1,b:2" and s.redis_sentinel_master == "grid" and s.redis_wait_replicas == 1
    for bad in ("a", "a:b", ":1"):
        with pytest.raises(SettingsError):
            Settings.from_env({"REDIS_SENTINELS": bad})
