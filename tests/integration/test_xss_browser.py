"""Text that reporters and the feed supply is shown as text, never run, in real headless Chromium with
the CSP on: a script payload in a report's description and address, posted through the ingest API
(/api/v1/reports) and the Open311 API, and in a case step's note on the feed, reaches the wall's
ticker and its popups (the live one, and the one that asks /api/v1/events/<id>) as the literal
characters, sets no window.__xss, adds no element, and the browser logs no error; the street view
(/street) of the same street runs none of it either."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
import requests

from dashboard import synthetic_city as sc
from dashboard.access.users import add_user
from dashboard.app import create_app
from tests.integration.wallkit import AppServer, Browsers, sign_in_page, free_port, severe_logs, wait_for

pytestmark = pytest.mark.browser

KEY = "xss-test-key"
PASSWORD = "operator password 1"
# short enough to survive the ticker's 40 characters; each would set window.__xss if parsed as HTML
DESCRIPTION = "<img src=x onerror=window.__xss=1>漏水"
ADDRESS = "<svg onload=window.__xss=2>路1号</svg>"
NOTE = "<script>window.__xss=3</script>已派"
OPEN311_DESCRIPTION = "<iframe srcdoc='<script>parent.__xss=4</script>'>"
OPEN311_ADDRESS = "<b onmouseover=window.__xss=5>楼</b>"
INJECTED = "document.querySelectorAll('#wall-ticker img, #wall-ticker svg, #wall-ticker script, #wall-ticker iframe, " \
           "#wall-ticker b, .leaflet-popup img, .leaflet-popup svg, .leaflet-popup iframe, .leaflet-popup b').length"


@pytest.fixture
def city(stack, make_services):
    svc = make_services(*stack, access_required=True, ingest_api_keys=KEY, api_rate_limit="1000/second",
                        api_read_rate_limit="1000/second")
    rows = sc.city_regions(streets=2, communities=2, grids=3)
    sc.insert_regions(svc.engine, rows)
    sc.insert_events(svc.engine, rows, 20, open_share=0.8)
    add_user(svc.engine, "operator", PASSWORD, "district_operator", "370202", actor="test")
    return svc, rows


@pytest.fixture
def server(city):
    svc, _rows = city
    with AppServer(create_app(svc.settings, svc), port=free_port(18300)) as srv:
        yield srv


@pytest.fixture
def browser():
    opened = Browsers(1920, 1080)
    yield opened
    opened.close()


def consume(svc):
    from dashboard.feed.consumer import Consumer

    # no escalation sweep: the fixture's overdue cases would be escalated in the same breath and
    # push the reports this test reads out of the ticker
    return Consumer(svc, sweep=False).run(burst=True)


def sign_in(d, url: str, next_path: str) -> None:
    sign_in_page(d, url, "operator", PASSWORD, next_path)


def popup_text(d, event_id: str) -> str:
    d.execute_script("const m = wallMap.evMarkers[arguments[0]]; wallMap.map.setView(m.getLatLng(), 19, {animate: false});"
                     "m.openPopup();", event_id)
    wait_for(d, "(document.querySelector('.wall-popup .ev-popup') || {}).textContent"
                " && document.querySelector('.wall-popup .ev-popup').textContent.indexOf('·') >= 0", 20)
    return d.execute_script("return document.querySelector('.wall-popup .ev-popup').textContent")


def test_xss001_payloads_from_both_apis_and_the_feed_show_as_text_on_the_wall(city, server, browser):
    from dashboard.feed.publish import publish

    svc, rows = city
    grid, grid2 = [r for r in rows if r.level == "grid"][:2]
    c, c2 = grid.geom.representative_point(), grid2.geom.representative_point()  # one event each: no cluster
    d = browser()
    sign_in(d, server.url, "/wall")
    wait_for(d, "!!window.wallReady", 60)
    wait_for(d, "document.querySelector('#feed-status.feed-ok')", 20)
    csp = requests.get(server.url + "/signin", timeout=10).headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]

    # the ingest API (a mini-program backend) and the Open311 API (a GeoReport client)
    resp = requests.post(server.url + "/api/v1/reports", headers={"X-API-Key": KEY}, timeout=10, json={
        "category": "facilities", "subcategory": "drainage_pump", "description": DESCRIPTION, "address": ADDRESS,
        "location": {"lon": c.x, "lat": c.y}, "source": "mini_program", "urgent": False, "level": 3})
    assert resp.status_code == 202, resp.text
    ingest_id = resp.json()["id"]
    resp = requests.post(server.url + "/open311/v2/requests.json", timeout=10, data={
        "api_key": KEY, "service_code": "safety-gas", "description": OPEN311_DESCRIPTION,
        "address_string": OPEN311_ADDRESS, "lat": str(c2.y), "long": str(c2.x)})
    assert resp.status_code in (200, 201), resp.text
    open311_id = resp.json()[0]["service_request_id"]
    consume(svc)
    # a case step's note, on the feed like every step
    publish(svc.redis, {"type": "event.step", "id": "m-xss-note", "event_id": ingest_id, "seq": 2, "step": "registered",
                        "source": "system", "occurred_at": datetime.now(timezone.utc).isoformat(),
                        "region_code": grid.code, "actor": {"kind": "operator"}, "note": NOTE})
    consume(svc)

    tick = wait_for(d, f"(document.querySelector('#wall-ticker li[data-ev=\"{ingest_id}\"]') || {{}}).textContent", 20)
    assert DESCRIPTION in tick and ADDRESS in tick  # the characters themselves: shown, not parsed
    other = wait_for(d, f"(document.querySelector('#wall-ticker li[data-ev=\"{open311_id}\"]') || {{}}).textContent", 20)
    assert OPEN311_ADDRESS in other and OPEN311_DESCRIPTION[:20] in other
    live = popup_text(d, ingest_id)  # the live layer's popup: the delta's fields
    assert ADDRESS in live

    # the same events from the store after a reload: the popup asks /api/v1/events/<id>
    d.refresh()
    wait_for(d, "!!window.wallReady", 60)
    d.execute_script("wallMap.map.setView([arguments[1], arguments[0]], 19, {animate: false})", c2.x, c2.y)
    wait_for(d, f"!!wallMap.evMarkers[{open311_id!r}]", 30)
    stored = popup_text(d, open311_id)
    assert OPEN311_ADDRESS in stored
    time.sleep(0.5)  # an onerror / onload handler would have run by now
    assert d.execute_script("return window.__xss") is None
    assert d.execute_script(f"return {INJECTED}") == 0
    assert severe_logs(d) == []

    # the street secretary's view of the same street (helper A2's /street): its lists name categories
    # and places, not what reporters wrote; nothing of the payloads runs or becomes an element there
    d.get(f"{server.url}/street?scope={grid.code[:9]}")
    wait_for(d, "document.querySelectorAll('.st-ev-cat').length > 0", 60)
    time.sleep(0.5)
    assert d.execute_script("return window.__xss") is None
    assert d.execute_script("return document.querySelectorAll('img[src=x], svg[onload], iframe, [onmouseover], "
                            "[onerror], [onload]').length") == 0
    assert severe_logs(d) == []
