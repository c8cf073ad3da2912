"""The wall in headless Chromium: the real app (create_app on the test stack) with a small synthetic city."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from dashboard import synthetic_city as sc
from dashboard.app import create_app
from dashboard.geo.coords import wgs84_to_gcj02
from tests.integration.wallkit import AppProcess, AppServer, chrome, network_bodies, severe_logs, wait_for

pytestmark = pytest.mark.browser

STREET = "370202002"
LAYERS_DRAWN = "window.wallReady && document.querySelectorAll('.ev, .evc').length > 0"
# How many hazards show the hazard colours (#CC79A7, late #F0E442) at their centre on the map's canvas.
HAZARD_PIXELS = """
const map = wallMap.map, canvas = map.getContainer().querySelector('canvas.leaflet-zoom-animated');
const ctx = canvas.getContext('2d'), box = canvas.getBoundingClientRect(), k = canvas.width / box.width;
const mapBox = map.getContainer().getBoundingClientRect();
let n = 0;
for (const id of wallMap.onMap('hz')) {
  const p = map.latLngToContainerPoint(wallMap.hazardMarkers[id].getLatLng());
  const x = Math.round((p.x + mapBox.left - box.left) * k), y = Math.round((p.y + mapBox.top - box.top) * k);
  const [r, g, b] = ctx.getImageData(x, y, 1, 1).data;
  if ((Math.abs(r - 0xCC) < 8 && Math.abs(g - 0x79) < 8 && Math.abs(b - 0xA7) < 8) ||
      (Math.abs(r - 0xF0) < 8 && Math.abs(g - 0xE4) < 8 && Math.abs(b - 0x42) < 8)) n++;
}
return n;
"""


class City:
    def __init__(self, svc, rows, events, hazards, positions):
        self.svc, self.rows, self.events, self.hazards, self.positions = svc, rows, events, hazards, positions

    def grids(self, prefix: str = "") -> list[str]:
        return sorted(r.code for r in self.rows if r.level == "grid" and r.code.startswith(prefix))


def build_city(svc) -> City:
    rows = sc.city_regions(streets=3, communities=2, grids=4)
    sc.insert_regions(svc.engine, rows)
    events = sc.insert_events(svc.engine, rows, 150, open_share=0.8)
    hazards = sc.insert_hazards(svc.engine, rows, 9)
    positions = sc.insert_positions(svc.engine, rows, 12)
    sc.insert_patrols(svc.engine, [r.code for r in rows if r.level == "grid"][:4])
    sc.insert_assets(svc.engine, rows, 90)
    return City(svc, rows, events, hazards, positions)


@pytest.fixture
def city(stack, make_services):
    svc = make_services(*stack)
    return build_city(svc)


@pytest.fixture
def server(city):
    app = create_app(city.svc.settings, city.svc)
    with AppServer(app, sign_in=True) as srv:  # an administrator
        yield srv


@pytest.fixture
def browser():
    drivers = []

    def _open(width=1920, height=1080):
        d = chrome(width, height)
        drivers.append(d)
        return d
    yield _open
    for d in drivers:
        d.quit()


# Events on the map: the counts on the clusters plus the single markers
SHOWN_EVENTS = ("Array.from(document.querySelectorAll('.evc span')).reduce((a, s) => a + Number(s.textContent), 0)"
                " + document.querySelectorAll('.ev').length")


def open_events(city) -> int:
    return sum(e["state"] != "closed" for e in city.events)


def open_wall(driver, url):
    driver.get(url)
    wait_for(driver, LAYERS_DRAWN, 30)


def no_scrollbars(driver):
    return driver.execute_script(
        "const d = document.documentElement;"
        "return [d.scrollHeight, innerHeight, d.scrollWidth, innerWidth, document.body.scrollHeight]")


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160)], ids=["1080p", "2160p"])
def test_wall011_renders_every_panel_and_layer_without_scrollbars(city, server, browser, size):
    d = browser(*size)
    open_wall(d, server.url + "/wall")
    assert d.find_element(By.CLASS_NAME, "wall-jurisdiction").text == "测试区"
    wait_for(d, "document.getElementById('wall-clock').textContent.length > 8")
    # feed health comes from the SSE ping
    wait_for(d, "document.querySelector('#feed-status.feed-ok')", 10)
    assert d.execute_script("return Object.keys(wallMap.grids).length") == len(city.grids())
    assert d.execute_script("return Object.keys(wallMap.regions).length") == 3 + 6  # streets + communities
    # hazards, workers and vehicles are drawn on the map's canvas: every one is on the map, and the
    # canvas shows a hazard's colour where most hazards are
    # (they load after the first paint: wait for them, then count exactly)
    wait_for(d, "wallLive.ready.hazards && wallLive.ready.positions", 10)
    assert len(d.execute_script("return wallMap.onMap('hz')")) == len(city.hazards)
    assert len(d.execute_script("return wallMap.onMap('pos')")) == len(city.positions)
    # the canvas paints on the next animation frame after the markers join it: a loaded machine
    # can be read in between, so wait for the paint (a wrong colour still times out and fails)
    wait_for(d, f"(() => {{ {HAZARD_PIXELS} }})() >= {len(city.hazards) // 2}", 10)
    wait_for(d, f"({SHOWN_EVENTS}) === {open_events(city)}", 10)
    # the test city's three streets are one clustered layer (callbacks/wall.py event_groups)
    assert d.execute_script("return wallLive.groups()") == [["370202001", ["370202001", "370202002", "370202003"]]]
    assert len(d.find_elements(By.CSS_SELECTOR, "#wall-ticker li")) == 20
    assert "在办事件" in d.find_element(By.ID, "map-legend").text
    # panels (from layouts.panels) are filled by their callback
    wait_for(d, "document.querySelector('#wall-left').innerText.trim().length > 10 && "
                "document.querySelector('#wall-right').innerText.trim().length > 10", 20)
    # every asset overlay is in the control, off at first, and loads when switched on
    labels = d.execute_script(
        "return Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label')).map(l => l.textContent.trim())")
    for name in ("网格", "今日巡查覆盖", "社区边界", "街道边界", "在办事件", "隐患整改", "在岗网格员与巡逻车",
                 "出租/空置房屋", "重点人群(楼栋计数)", "车辆", "部件设施"):
        assert name in labels
    assert d.execute_script("return document.querySelectorAll('.as, .asc').length") == 0
    d.execute_script("document.querySelector('.leaflet-control-layers').classList.add('leaflet-control-layers-expanded')")
    for name in ("出租/空置房屋", "重点人群(楼栋计数)", "车辆", "部件设施"):
        label = next(lb for lb in d.find_elements(By.CSS_SELECTOR, ".leaflet-control-layers-overlays label")
                     if lb.text.strip() == name)
        d.execute_script("arguments[0].click()", label.find_element(By.TAG_NAME, "input"))
    layer_classes = ("asc-houses", "asc-keypop", "asc-vehicles", "asc-facilities")
    wait_for(d, " && ".join(f"document.querySelector('.{c}, .{c[:2]}-{c[4:]}')" for c in layer_classes), 15)
    h, ih, w, iw, bh = no_scrollbars(d)
    assert h <= ih and w <= iw and bh <= ih, (h, ih, w, iw, bh)
    # Dash took the layout the page preloaded: one request, and no "preloaded but not used" warning
    assert d.execute_script("return performance.getEntriesByType('resource')"
                            ".filter(e => new URL(e.name).pathname === '/_dash-layout').length") == 1
    logs = d.get_log("browser")
    assert [e["message"] for e in logs if e["level"] == "SEVERE"] == []
    assert [e["message"] for e in logs if "preload" in e["message"]] == []


def click_grid(d, code):
    """Click a free spot (no marker on top) inside a grid polygon on the canvas map."""
    point = d.execute_script("""
        const layer = wallMap.grids[arguments[0]], map = wallMap.map;
        const c = layer.getCenter(), ring = layer.getLatLngs()[0];
        const box = map.getContainer().getBoundingClientRect();
        for (const f of [0, 0.3, 0.55, 0.75]) for (const v of ring) {
            const ll = L.latLng(c.lat + (v.lat - c.lat) * f, c.lng + (v.lng - c.lng) * f);
            const p = map.latLngToContainerPoint(ll);
            const hit = document.elementFromPoint(box.left + p.x, box.top + p.y);
            if (hit && hit.tagName === 'CANVAS') return [p.x, p.y];
        }
        return null;""", code)
    assert point, f"no free spot inside {code}"
    el = d.find_element(By.ID, "wall-map")
    # selenium 4.2 measures these offsets from the element's top-left corner
    ActionChains(d).move_to_element_with_offset(el, round(point[0]), round(point[1])).click().perform()


def test_wall012_drill_down_district_street_community_grid_and_back(city, server, browser):
    d = browser()
    open_wall(d, server.url + "/wall")
    grid = city.grids(STREET)[5]
    crumbs = "document.getElementById('map-crumbs').dataset.code"
    assert d.execute_script(f"return {crumbs}") == "370202"
    assert d.find_element(By.ID, "map-back").get_attribute("disabled")
    steps = [grid[:9], grid[:12], grid]
    for want in steps:
        d.execute_script("wallMap.map.closePopup()")
        click_grid(d, grid)
        wait_for(d, f"{crumbs} === '{want}'", 20)
        # the map shows the chosen region
        inside = d.execute_script(
            "const b = wallMap.boundsOf(arguments[0]); return wallMap.map.getBounds().pad(0.05).contains(b)", want)
        assert inside
    text = d.find_element(By.ID, "map-crumbs").text
    assert "测试区" in text and "第2街道" in text and "2街" in text
    assert grid in d.find_element(By.ID, "map-info").text
    for want in (grid[:12], grid[:9], "370202"):
        d.find_element(By.ID, "map-back").click()
        wait_for(d, f"{crumbs} === '{want}'", 20)
    assert d.find_element(By.ID, "map-back").get_attribute("disabled")
    assert severe_logs(d) == []


def test_wall023_measure_buttons_recolour_grids_and_legend(city, server, browser):
    # the measure switch is dashboard.components.RadioItems (no dcc on the page): a click recolours
    # the same grid layers in place and the legend follows
    d = browser()
    open_wall(d, server.url + "/wall")
    fills = "return Object.values(wallMap.grids).map(function (l) { return l.options.fillColor + l.options.fillOpacity; })"
    legend = lambda: d.find_element(By.CSS_SELECTOR, "#map-legend .legend-title").text  # noqa: E731
    checked = "return document.querySelector('.map-measure input:checked').value"
    assert legend() == "在办事件" and d.execute_script(checked) == "open"
    before, layers = d.execute_script(fills), d.execute_script("return Object.keys(wallMap.grids).length")
    label = next(e for e in d.find_elements(By.CSS_SELECTOR, ".map-measure label") if e.text == "整改中隐患")
    label.click()
    wait_for(d, "document.querySelector('#map-legend .legend-title').textContent === '整改中隐患'", 20)
    assert d.execute_script(checked) == "hazards" and d.execute_script("return wallMap.measure") == "hazards"
    wait_for(d, f"(function () {{ {fills} }})().join() !== {before!r}.join()", 20)
    assert d.execute_script("return Object.keys(wallMap.grids).length") == layers  # recoloured, not redrawn
    assert severe_logs(d) == []


def test_wall024_event_popup_fetches_its_details_in_scope(city, server, browser):
    # the clustered layer carries what the map draws; a popup asks for category, source, time and
    # handler when it opens (/api/v1/events/<id>, scoped like every other query)
    from dashboard import domain

    d = browser()
    open_wall(d, server.url + f"/wall?scope={STREET}")
    mine = [e for e in city.events if e["grid_code"].startswith(STREET) and e["state"] not in ("closed", "evaluated")]
    target = mine[0]
    d.execute_script("wallMap.map.setView([arguments[1], arguments[0]], 19, {animate: false})",
                     target["lon"], target["lat"])
    wait_for(d, f"!!wallMap.evMarkers[{target['id']!r}]", 10)
    assert d.execute_script(f"return wallMap.evMarkers[{target['id']!r}].feature.properties.cat") is None
    d.execute_script(f"wallMap.evMarkers[{target['id']!r}].openPopup()")
    category = domain.CATEGORIES[target["category"]][0]
    source = domain.SOURCES[target["source"]][0]
    wait_for(d, f"(document.querySelector('.wall-popup .ev-popup') || {{}}).textContent.indexOf({category!r}) >= 0", 20)
    text = d.find_element(By.CSS_SELECTOR, ".wall-popup .ev-popup").text
    assert source in text and "来源" in text and "正在读取详情" not in text
    assert severe_logs(d) == []


def test_wall025_urgent_marker_pulses_in_place_and_stops(city, server, browser):
    # Leaflet places a marker with an inline translate3d: the pulse is a ring (::after), so the
    # marker never leaves its place, and it is finite (an endless animation restyles the page all day)
    d = browser()
    open_wall(d, server.url + "/wall")
    urgent = next(e for e in city.events if e["urgent"] and e["state"] not in ("closed", "evaluated"))
    d.execute_script("wallMap.map.setView([arguments[1], arguments[0]], 19, {animate: false})",
                     urgent["lon"], urgent["lat"])
    wait_for(d, f"!!document.querySelector('.ev-urgent[data-ev=\"{urgent['id']}\"]')", 10)
    sample = f"""const e = document.querySelector('.ev-urgent[data-ev="{urgent['id']}"]');
                 return [getComputedStyle(e).transform, e.getBoundingClientRect().left, e.getBoundingClientRect().top]"""
    seen = []
    for _ in range(6):
        seen.append(d.execute_script(sample))
        time.sleep(0.15)
    assert len({tuple(s) for s in seen}) == 1, seen                  # the marker stays put
    assert seen[0][0].startswith("matrix(1, 0, 0, 1,")                # translated by Leaflet, not scaled
    ring = d.execute_script(f"""const s = getComputedStyle(document.querySelector('.ev-urgent[data-ev="{urgent['id']}"]'), '::after');
                                return [s.animationName, s.animationIterationCount]""")
    assert ring == ["pulse", "5"]
    assert severe_logs(d) == []


def every_payload(d, origin: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Everything the page received from ``origin``: (url, body) of every response, and the data
    of every server-sent event. Reads the DevTools log once (reading drains it). A response whose
    body cannot be read is an error, not a body left unchecked."""
    import base64
    import json

    bodies, sse, unread, streams = [], [], [], set()
    for entry in d.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        params = msg.get("params", {})
        if msg.get("method") == "Network.eventSourceMessageReceived":
            sse.append(params.get("data", ""))
        elif msg.get("method") == "Network.responseReceived" and params["response"]["url"].startswith(origin):
            url = params["response"]["url"]
            if params["response"].get("mimeType") == "text/event-stream":
                streams.add(url)  # its messages come as eventSourceMessageReceived
                continue
            try:
                got = d.execute_cdp_cmd("Network.getResponseBody", {"requestId": params["requestId"]})
            except Exception as exc:  # noqa: BLE001 - reported below
                unread.append((url, str(exc)[:100]))
                continue
            body = got.get("body", "")
            if got.get("base64Encoded"):
                body = base64.b64decode(body).decode("utf-8", "replace")
            bodies.append((url, body))
    assert unread == [], unread
    assert streams, "the page opened no server-sent event stream"
    return bodies, sse


def test_wall013_scoped_wall_shows_nothing_outside_its_scope(city, server, browser):
    from dashboard.feed.publish import publish

    d = browser()
    # room for every body the page gets, so none is evicted before it is read
    d.execute_cdp_cmd("Network.enable", {"maxTotalBufferSize": 200_000_000, "maxResourceBufferSize": 50_000_000})
    open_wall(d, server.url + f"/wall?scope={STREET}&rotate=60")
    wait_for(d, "wallMap.onMap('hz').length > 0 && document.querySelector('#wall-right').innerText.length > 10", 15)
    assert d.find_element(By.CLASS_NAME, "wall-jurisdiction").text == "第2街道"
    grids = d.execute_script("return Object.keys(wallMap.grids)")
    assert sorted(grids) == city.grids(STREET)
    hz = set(d.execute_script("return wallMap.onMap('hz')"))
    assert hz == {h["id"] for h in city.hazards if h["grid_code"].startswith(STREET)}
    ticker = d.execute_script("return Array.from(document.querySelectorAll('#wall-ticker li')).map(e => e.dataset.ev)")
    inside = {e["id"] for e in city.events if e["grid_code"].startswith(STREET)}
    assert ticker and set(ticker) <= inside
    # every overlay on (houses, key population, vehicles, facilities load their points) ...
    wait_for(d, "wallLive.ready.hazards && wallLive.ready.positions", 10)
    d.execute_script("document.querySelector('.leaflet-control-layers').classList.add('leaflet-control-layers-expanded')")
    for box in d.find_elements(By.CSS_SELECTOR, ".leaflet-control-layers-overlays input:not(:checked)"):
        d.execute_script("arguments[0].click()", box)
    wait_for(d, " && ".join(f"document.querySelector('.{c}, .{c[:2]}-{c[4:]}')"
                            for c in ("asc-houses", "asc-keypop", "asc-vehicles", "asc-facilities")), 15)
    # ... an event's popup details ...
    mine = next(e for e in city.events if e["grid_code"].startswith(STREET) and e["state"] not in ("closed", "evaluated"))
    d.execute_script("wallMap.map.setView([arguments[1], arguments[0]], 19, {animate: false})", mine["lon"], mine["lat"])
    wait_for(d, f"!!wallMap.evMarkers[{mine['id']!r}]", 10)
    d.execute_script(f"wallMap.evMarkers[{mine['id']!r}].openPopup()")
    wait_for(d, "(document.querySelector('.wall-popup .ev-popup') || {textContent: '正在读取详情'})"
                ".textContent.indexOf('正在读取详情') < 0", 10)
    # ... and the live feed: one report in this street, one in another street
    wait_for(d, "document.querySelector('#feed-status.feed-ok')", 10)
    wait_for(d, "document.querySelector('[data-kpi=\"reported\"] .pn-value')", 15)
    before = int(kpi_value(d, "reported").replace(",", ""))
    mine_grid = next(r for r in city.rows if r.level == "grid" and r.code.startswith(STREET)).geom.representative_point()
    other_grid = next(r for r in city.rows if r.level == "grid" and not r.code.startswith(STREET)).geom.representative_point()
    publish(city.svc.redis, report("other-street-001", other_grid.x, other_grid.y, level=3, urgent=False))
    publish(city.svc.redis, report("this-street-001", mine_grid.x, mine_grid.y, level=3, urgent=False))
    consume(city.svc)
    # pushed in stream order: once this street's report is shown, the other one has gone past
    wait_for(d, "document.querySelector('#wall-ticker li[data-ev=\"this-street-001\"]')", 10)
    # the tick the report caused has been answered (the panels count it)
    wait_for(d, "document.querySelector('[data-kpi=\"reported\"] .pn-value').textContent.replace(',', '')"
                f" == '{before + 1}'", 15)
    # nothing from another street in any payload the page received: page, layout, callbacks,
    # geometry, points, popup details, server-sent events (codes, names and ids)
    bodies, sse = every_payload(d, server.url)
    paths = {url.split("?")[0].replace(server.url, "") for url, _ in bodies}
    assert {"/wall", "/_dash-layout", "/_dash-update-component", "/api/v1/geo/regions", "/api/v1/geo/points",
            f"/api/v1/events/{mine['id']}"} <= paths, paths
    assert any("this-street-001" in m for m in sse)
    others = [r for r in city.rows if r.level in ("street", "community", "grid") and not r.code.startswith(STREET)]
    outside = ([e["id"] for e in city.events if not e["grid_code"].startswith(STREET)] + ["other-street-001"]
               + [h["id"] for h in city.hazards if not h["grid_code"].startswith(STREET)]
               + [p["actor_id"] for p in city.positions if not p["grid_code"].startswith(STREET)])
    for where, body in bodies + [("sse", m) for m in sse]:
        for r in others:
            assert r.code not in body and r.name not in body, (where, r.code, r.name)
        for ident in outside:
            assert ident not in body, (where, ident)
    assert severe_logs(d) == []


@pytest.fixture
def gcj_server(stack, make_services):
    svc = make_services(*stack, tile_crs="gcj02")
    c = build_city(svc)
    with AppServer(create_app(svc.settings, svc), sign_in=True) as srv:  # an administrator
        yield c, srv


def marker_latlng(d, attr, ident):
    return d.execute_script(
        "let out = null; wallMap.map.eachLayer(l => { const e = l.getElement && l.getElement();"
        f" if (e && e.dataset && e.dataset.{attr} === arguments[0]) {{ const p = l.getLatLng(); out = [p.lng, p.lat]; }} }});"
        "return out", ident)


def test_wall014_gcj02_mode_shifts_every_layer_consistently(gcj_server, browser):
    city, srv = gcj_server
    d = browser()
    open_wall(d, srv.url + "/wall")
    wait_for(d, f"wallMap.onMap('hz').length === {len(city.hazards)}", 10)
    for h in city.hazards[:3]:
        lon, lat = d.execute_script("const p = wallMap.hazardMarkers[arguments[0]].getLatLng(); return [p.lng, p.lat]",
                                    h["id"])
        glon, glat = wgs84_to_gcj02(h["lon"], h["lat"])
        assert abs(lon - glon) < 2e-5 and abs(lat - glat) < 2e-5
        assert abs(lon - h["lon"]) > 1e-4
    ev = next(e for e in city.events if e["state"] != "closed")
    glon, glat = wgs84_to_gcj02(ev["lon"], ev["lat"])
    d.execute_script("wallMap.map.setView([arguments[1], arguments[0]], 19, {animate: false})", float(glon), float(glat))
    wait_for(d, f"document.querySelector('[data-ev=\"{ev['id']}\"]')", 10)
    lon, lat = marker_latlng(d, "ev", ev["id"])
    assert abs(lon - glon) < 2e-5 and abs(lat - glat) < 2e-5
    # grid polygons are shifted by the same transform
    grid = next(r for r in city.rows if r.level == "grid")
    ring = d.execute_script("return wallMap.grids[arguments[0]].getLatLngs()[0].map(p => [p.lng, p.lat])", grid.code)
    import shapely
    from shapely.geometry import Polygon
    from dashboard.geo.coords import geometry_wgs84_to_gcj02
    shifted = geometry_wgs84_to_gcj02(grid.geom)
    drawn = Polygon(ring)
    assert shapely.symmetric_difference(drawn, shifted).area < shifted.area * 0.01
    # a live event (the feed speaks WGS-84) lands where the server would have put it
    from dashboard.feed.publish import publish
    c = grid.geom.representative_point()
    wait_for(d, "document.querySelector('#feed-status.feed-ok')", 10)
    publish(city.svc.redis, report("gcj-live", c.x, c.y, level=3, urgent=False))
    consume(city.svc)
    wait_for(d, "document.querySelector('.leaflet-marker-pane [data-ev=\"gcj-live\"]')", 10)
    lon, lat = marker_latlng(d, "ev", "gcj-live")
    glon, glat = wgs84_to_gcj02(c.x, c.y)
    assert abs(lon - glon) < 1e-6 and abs(lat - glat) < 1e-6
    assert severe_logs(d) == []


def test_wall017_first_screen_renders_grids_in_chinese(city, server, browser):
    d = browser()
    open_wall(d, server.url + "/")
    assert d.execute_script("return Object.keys(wallMap.grids).length") == len(city.grids())
    paths = d.execute_script("return document.querySelectorAll('.leaflet-overlay-pane canvas').length")
    assert paths >= 1
    assert "网格化治理指挥中心" in d.find_element(By.CLASS_NAME, "wall-subtitle").text
    assert severe_logs(d) == []


# The wall's rotation timer (setTimeout(rotate, ?rotate= seconds)) is held instead of run, so the
# test turns the wall on when it has checked a street, however slowly that street loaded
HOLD_ROTATION = """window.__rotations = []; const realSetTimeout = window.setTimeout;
window.setTimeout = function (fn, ms) {
  if (ms === 7000) { window.__rotations.push(fn); return 0; }
  return realSetTimeout.apply(window, arguments);
};"""


def test_wall018_english_and_rotation_through_the_streets(city, server, browser):
    # an unattended district wall cycles through its streets; each street's page keeps the
    # district's list because its URL names it (within=), a street wall opened alone has none
    d = browser()
    d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOLD_ROTATION})
    open_wall(d, server.url + "/wall?lang=en&rotate=7")
    texts = d.execute_script("return [document.querySelector('.wall-ticker-title').textContent, "
                             "document.getElementById('map-back').textContent]")
    assert texts == ["Newest events", "Back"]
    held = wait_for(d, "window.__rotations.length", 10)  # the district page set its timer
    for street, name in (("370202001", "第1街道"), ("370202002", "第2街道"), ("370202003", "第3街道"),
                         ("370202001", "第1街道")):  # and round again
        d.execute_script("window.__rotations[window.__rotations.length - 1]()")
        wait_for(d, f"new URLSearchParams(location.search).get('scope') === '{street}'", 10)
        assert d.execute_script("return new URLSearchParams(location.search).get('within')") == ""
        wait_for(d, f"document.querySelector('.wall-jurisdiction').textContent === '{name}' && "
                    "Object.keys(wallMap.grids).length > 0 && "
                    f"Object.keys(wallMap.grids).every(c => c.startsWith('{street}'))", 15)
        # the street's page set its own timer: it has the list to go on with
        held = wait_for(d, f"window.__rotations.length > {held} && window.__rotations.length", 10)
    assert d.execute_script("return document.querySelector('.wall-ticker-title').textContent") == "Newest events"
    assert severe_logs(d) == []


# --- live: the stream reaches the page -----------------------------------------------------------

def report(event_id: str, lon: float, lat: float, level: int = 1, urgent: bool = True, text: str = "燃气泄漏，需要立即处置"):
    return {"type": "event.reported", "id": f"m-{event_id}", "event_id": event_id, "source": "whistle",
            "occurred_at": datetime.now(timezone.utc).isoformat(), "location": {"lon": lon, "lat": lat},
            "actor": {"kind": "resident"}, "category": "safety", "subcategory": "gas", "level": level,
            "urgent": urgent, "description": text, "address": "测试路1号"}


def consume(svc):
    from dashboard.feed.consumer import Consumer

    # no escalation sweep: the fixture's cases are long past their deadlines, and a sweep would
    # escalate dozens of them in the same breath, flooding the ticker these tests read
    # (the sweep's own tests: tests/unit/test_cases2NN)
    return Consumer(svc, sweep=False).run(burst=True)


def kpi_value(d, key):
    return d.execute_script(f"const e = document.querySelector('[data-kpi=\"{key}\"] .pn-value'); return e ? e.textContent : null")


def test_wall015_stream_event_appears_on_map_counters_and_ticker(city, server, browser):
    from dashboard.feed.publish import publish

    d = browser()
    open_wall(d, server.url + "/wall")
    wait_for(d, "document.querySelector('#feed-status.feed-ok')", 10)
    wait_for(d, "document.querySelector('[data-kpi=\"reported\"] .pn-value')", 15)
    before = int(kpi_value(d, "reported").replace(",", ""))
    grid = next(r for r in city.rows if r.level == "grid" and r.code.startswith(STREET))
    c = grid.geom.representative_point()
    d.execute_script("window.__marker = Date.now()")
    publish(city.svc.redis, report("live-001", c.x, c.y))
    consume(city.svc)
    wait_for(d, "document.querySelector('#wall-ticker li[data-ev=\"live-001\"]')", 10)
    wait_for(d, "document.querySelector('.leaflet-marker-pane [data-ev=\"live-001\"]')", 10)
    li = d.find_element(By.CSS_SELECTOR, '#wall-ticker li[data-ev="live-001"]')
    assert "燃气" in li.text and "tick-flash" in li.get_attribute("class")
    # a level-1 report: the map flies to it
    wait_for(d, "wallMap.map.getZoom() >= 16 && wallMap.map.getBounds().contains([arguments_lat, arguments_lon])"
             .replace("arguments_lat", str(c.y)).replace("arguments_lon", str(c.x)), 10)
    wait_for(d, f"document.querySelector('[data-kpi=\"reported\"] .pn-value').textContent.replace(',', '') == '{before + 1}'", 10)
    assert d.execute_script("return window.__marker") is not None  # no reload happened
    # closing it removes the marker without reloading the layer
    for seq, step in enumerate(("registered", "dispatched", "handling", "feedback", "verified", "closed"), 2):
        publish(city.svc.redis, {"type": "event.step", "id": f"m-live-001-{seq}", "event_id": "live-001", "seq": seq,
                                 "step": step, "source": "system", "occurred_at": datetime.now(timezone.utc).isoformat(),
                                 "region_code": grid.code, "actor": {"kind": "operator"}})
    consume(city.svc)
    wait_for(d, "!document.querySelector('.leaflet-marker-pane [data-ev=\"live-001\"]')", 10)
    assert d.execute_script("return window.__marker") is not None
    assert severe_logs(d) == []


def test_wall022_counters_keep_following_the_feed_after_a_scope_change(city, server, browser):
    # A scope change restarts the live client while a tick's throttle window may be open;
    # the restart must not leave that window looking open for ever (the counters would freeze).
    from dashboard.feed.publish import publish

    d = browser()
    open_wall(d, server.url + "/wall")
    wait_for(d, "document.querySelector('#feed-status.feed-ok')", 10)
    d.execute_script("wallLive.tickTimer = setTimeout(function () {}, 600000)")  # a window in flight
    d.execute_script(f"window.dash_clientside.set_props('url', {{search: '?scope={STREET}'}})")
    wait_for(d, f"document.getElementById('map-crumbs').dataset.code === '{STREET}'", 10)
    wait_for(d, "document.querySelector('#feed-status.feed-ok')", 10)
    # the scope change's own refresh has answered: the counter shows the street's figure
    from callbacks.panels import figures

    before = figures(city.svc, STREET)["today"]["reported"]
    wait_for(d, "document.querySelector('[data-kpi=\"reported\"] .pn-value') && document.querySelector("
                f"'[data-kpi=\"reported\"] .pn-value').textContent.replace(',', '') == '{before}'", 10)
    grid = next(r for r in city.rows if r.level == "grid" and r.code.startswith(STREET))
    c = grid.geom.representative_point()
    publish(city.svc.redis, report("scope-001", c.x, c.y, level=3, urgent=False, text="切换范围后上报"))
    consume(city.svc)
    wait_for(d, "document.querySelector('#wall-ticker li[data-ev=\"scope-001\"]')", 10)
    # well inside the 15 s panel refresh: it is the live tick that moved the counter
    wait_for(d, "document.querySelector('[data-kpi=\"reported\"] .pn-value').textContent.replace(',', '')"
                f" == '{before + 1}'", 8)
    assert severe_logs(d) == []


# What killing the web server under an open page makes Chromium log: the connection-level failures
# (no HTTP answer at all) of requests to it, and Dash's note that a callback got no answer. Which one
# a request gets depends on where it was when the process died (CI met REFUSED, RESET, EMPTY_RESPONSE,
# INCOMPLETE_CHUNKED_ENCODING, then SOCKET_NOT_CONNECTED), so the family is matched, not a list that
# grew one failed run at a time. An HTTP status, a script error or any other message still fails.
SERVER_CUT_ERRORS = re.compile(
    r" - Failed to load resource: net::ERR_(CONNECTION_[A-Z_]+|SOCKET_[A-Z_]+|EMPTY_RESPONSE"
    r"|INCOMPLETE_CHUNKED_ENCODING)$")
CALLBACK_UNANSWERED = "Callback failed: the server did not respond"


def cut_explains(message: str, server_url: str) -> bool:
    """A console error the server's death explains: a request to it got no HTTP answer."""
    return (message.startswith(server_url + "/") and bool(SERVER_CUT_ERRORS.search(message))) \
        or CALLBACK_UNANSWERED in message


def test_wall016_lost_feed_shows_banner_and_catches_up(city, browser, tmp_path):
    from dashboard.feed.publish import publish

    svc = city.svc
    app = AppProcess(svc.settings.database_url, svc.redis_url, str(tmp_path / "var2")).start()
    try:
        d = browser()
        open_wall(d, app.url + "/wall")
        wait_for(d, "document.querySelector('#feed-status.feed-ok')", 10)
        assert d.find_element(By.ID, "feed-banner").get_attribute("hidden")
        app.stop()  # the server goes away with the open stream
        # "within 5 s": the page's rule says so at most this long after its last message; the
        # test checks the rule, and waits for the banner without timing it (no test fails on
        # the machine's speed)
        assert d.execute_script("return wallLive.LOST_AFTER_MS + wallLive.WATCH_MS") <= 5000
        wait_for(d, "!document.getElementById('feed-banner').hidden", 30)
        assert "连接中断" in d.find_element(By.ID, "feed-banner").text
        assert "feed-lost" in d.find_element(By.ID, "feed-status").get_attribute("class")
        # reports keep arriving while the page is cut off ...
        grid = next(r for r in city.rows if r.level == "grid")
        c = grid.geom.representative_point()
        publish(svc.redis, report("gap-001", c.x, c.y, level=3, urgent=False, text="断线期间上报"))
        consume(svc)
        assert not d.find_elements(By.CSS_SELECTOR, '#wall-ticker li[data-ev="gap-001"]')
        # ... and when it is back, the page resumes from its last stream id: nothing is missed
        app.start()
        wait_for(d, "document.getElementById('feed-banner').hidden", 20)
        wait_for(d, "document.querySelector('#wall-ticker li[data-ev=\"gap-001\"]')", 10)
        wait_for(d, "!!wallLive.live.get('gap-001')", 20)
        # what the cut itself makes the browser log: a request in flight when the process died is
        # reset, cut short or unanswered, and one sent while it is down is refused; anything else fails
        logs = [m for m in severe_logs(d) if not cut_explains(m, app.url)]
        assert logs == [], "\n".join(logs)
    finally:
        app.stop()


def test_wall019_page_recovers_after_redis_restarts(database_url, make_services, browser, tmp_path):
    """Redis itself goes away under an open wall (not the web server): the page says so, then catches up.

    On each database (SQLite, and PostgreSQL when TEST_DATABASE_URL is set); the Redis is a private
    redis-server, since the test stops and restarts it (never the shared external one)."""
    from dashboard.feed.publish import publish
    from dashboard.redis_server import EmbeddedRedis

    redis_server = EmbeddedRedis(tmp_path / "redis", appendonly=True).start()
    try:
        svc = make_services(database_url, redis_server.url)
        city = build_city(svc)
        grid = next(r for r in city.rows if r.level == "grid" and r.code.startswith(STREET))
        c = grid.geom.representative_point()
        with AppServer(create_app(svc.settings, svc), sign_in=True) as srv:  # an administrator
            d = browser()
            open_wall(d, srv.url + "/wall")
            wait_for(d, "document.querySelector('#feed-status.feed-ok')", 10)
            publish(svc.redis, report("before-001", c.x, c.y, level=3, urgent=False, text="重启前上报"))
            consume(svc)
            wait_for(d, "document.querySelector('#wall-ticker li[data-ev=\"before-001\"]')", 10)
            d.execute_script("window.__marker = Date.now()")
            redis_server.stop()  # the feed's server goes down; the web server stays up
            wait_for(d, "!document.getElementById('feed-banner').hidden", 8)
            assert "feed-lost" in d.find_element(By.ID, "feed-status").get_attribute("class")
            redis_server.start()  # same data: the stream and the consumer group come back
            publish(svc.redis, report("after-001", c.x, c.y, level=3, urgent=False, text="重启后上报"))
            consume(svc)
            wait_for(d, "document.getElementById('feed-banner').hidden", 20)
            wait_for(d, "document.querySelector('#wall-ticker li[data-ev=\"after-001\"]')", 10)
            wait_for(d, "document.querySelector('.leaflet-marker-pane [data-ev=\"after-001\"]')", 10)
            assert d.execute_script("return window.__marker") is not None  # caught up without a reload
            # before-001 is not shown twice: the resume point was kept across the outage
            assert len(d.find_elements(By.CSS_SELECTOR, '#wall-ticker li[data-ev="before-001"]')) == 1
            assert severe_logs(d) == []
    finally:
        redis_server.stop()


def test_wall020_workers_move_and_patrols_mark_coverage_live(city, server, browser):
    from dashboard.feed.publish import publish

    d = browser()
    open_wall(d, server.url + "/wall")
    wait_for(d, f"wallMap.onMap('pos').length === {len(city.positions)}", 10)
    wait_for(d, "document.querySelector('#feed-status.feed-ok')", 10)
    worker = next(p for p in city.positions if p["actor_kind"] == "staff")
    grid = next(r for r in city.rows if r.level == "grid" and r.code == worker["grid_code"])
    unpatrolled = next(r for r in city.rows if r.level == "grid" and r.code not in city.grids()[:4])
    target = grid.geom.representative_point()
    now = datetime.now(timezone.utc).isoformat()
    publish(city.svc.redis, {"type": "position", "id": "m-pos-1", "source": "grid_patrol", "occurred_at": now,
                             "location": {"lon": target.x, "lat": target.y},
                             "actor": {"kind": "staff", "id": worker["actor_id"]}})
    u = unpatrolled.geom.representative_point()
    publish(city.svc.redis, {"type": "patrol.checkin", "id": "m-pat-1", "source": "grid_patrol", "occurred_at": now,
                             "location": {"lon": u.x, "lat": u.y}, "actor": {"kind": "staff", "id": "stf-x"},
                             "checklist": {"elevator": "ok", "gas_pipe": "issue"}})
    consume(city.svc)
    wait_for(d, "(() => { const p = wallMap.positions[arguments_id].getLatLng();"
                " return Math.abs(p.lng - arguments_x) < 1e-6 && Math.abs(p.lat - arguments_y) < 1e-6; })()"
             .replace("arguments_id", repr(worker["actor_id"])).replace("arguments_x", str(target.x))
             .replace("arguments_y", str(target.y)), 10)
    # the same marker moved: no new marker was made for the worker
    assert len(d.execute_script("return wallMap.onMap('pos')")) == len(city.positions)
    wait_for(d, f"wallMap.values.patrolled[wallMap.gridIndex['{unpatrolled.code}']] === 1", 10)
    dash = d.execute_script(f"return wallMap.grids['{unpatrolled.code}'].options.dashArray")
    assert dash
    assert severe_logs(d) == []


def test_wall021_a_4k_wall_clusters_like_a_1080p_one(city, server, browser):
    # Markers are sized in vh (twice as large at 4K) and the map zooms in a level; the clustering
    # radius grows with them, so a 4K wall shows the same picture, not four times the clusters.
    drawn = {}
    for size in ((1920, 1080), (3840, 2160)):
        d = browser(*size)
        open_wall(d, server.url + "/wall")
        wait_for(d, f"({SHOWN_EVENTS}) === {open_events(city)}", 10)  # clustering done
        drawn[size[0]] = d.execute_script("return document.querySelectorAll('.evc, .ev').length")
        assert severe_logs(d) == []
    assert drawn[1920] > 3
    assert drawn[3840] <= 1.5 * drawn[1920], drawn


def test_wall062_a_grid_without_residents_has_no_rate_not_zero(city, server, browser):
    # kpi.grid_measures: a grid with no residents on record (a school, a market) has no events
    # per 1,000 residents. The map draws it in the legend's "no data" grey and writes "—",
    # where it used to draw and write 0 like a grid with residents and no events.
    from dashboard.store.schema import region
    from layouts.map import NO_DATA

    school = city.grids(STREET)[0]
    with city.svc.engine.begin() as conn:
        conn.execute(region.update().where(region.c.code == school).values(
            population=0, updated_at=datetime.now(timezone.utc)))
    d = browser()
    open_wall(d, server.url + "/wall?measure=per1000")
    assert d.execute_script(f"return wallMap.values.per1000[wallMap.gridIndex['{school}']]") is None
    wait_for(d, f"wallMap.grids['{school}'].options.fillColor === '{NO_DATA}'", 10)
    others = d.execute_script(f"return Object.keys(wallMap.grids).filter(c => c !== '{school}')"
                              ".map(c => wallMap.grids[c].options.fillColor)")
    assert len(others) == len(city.grids()) - 1 and NO_DATA not in others
    assert "无常住人口 · 无比率 —" in d.find_element(By.ID, "map-legend").text
    d.execute_script(f"wallMap.setDrill('{school}')")
    wait_for(d, "document.getElementById('map-info').textContent.indexOf('每千人事件(30天): —') >= 0", 10)
    assert "在办事件: " in d.find_element(By.ID, "map-info").text  # the other measures still read as numbers
    assert severe_logs(d) == []
