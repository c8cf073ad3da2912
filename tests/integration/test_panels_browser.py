"""The panels in headless Chromium: figures from the store, live refresh on a tick, no console errors.

A page holding only the panels (the wall helper's tests cover the whole wall):
the real callbacks.panels on the real store, LIVE_TICK set from the browser
the way live.js sets it. One test loads the real /wall to prove it pulls no
plotly.js.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone

import dash
import pytest
from dash import html

from callbacks import panels as panel_callbacks
from dashboard import ids
from dashboard.components import Location, Store
from dashboard import synthetic_city as sc
from dashboard.app import ASSETS, create_app
from dashboard.store.schema import event
from layouts import panels
from tests.integration.wallkit import AppServer, chrome, network_bodies, severe_logs, wait_for
from tests.unit.kpi_fixtures import STREET_A, World, make_event, seeded

pytestmark = pytest.mark.browser

GRID_A, GRID_B = "370202001001001", "370202002001001"


def panels_app(services) -> dash.Dash:
    # live.js, map.js and router.js belong to the wall page; this page has only the panels.
    app = dash.Dash(__name__, assets_folder=str(ASSETS), assets_ignore=r"(live|map|router)\.js$",
                    suppress_callback_exceptions=True, serve_locally=True)
    slots = panels.containers(None, "zh")
    # The wall's frame (classes from wall.css): the panels must fit the slots it gives them.
    app.layout = html.Div(className="wall", children=[
        Location(id=ids.URL, refresh=False),
        Store(id=ids.LIVE_TICK, data={"n": 0, "at": 0}),
        html.Header(className="wall-header", children=[
            html.Div("市南区", className="wall-title"),
            html.Div(slots["figures"], className="wall-figures"),
            html.Div("12:00:00", className="wall-status"),
        ]),
        html.Aside(slots["left"], className="wall-left"),
        html.Main(className="wall-center"),
        html.Aside(slots["right"], className="wall-right"),
        html.Section(className="wall-ticker-box"),
    ])
    panel_callbacks.register(app, services)
    return app


def panel_patches(driver) -> list[dict]:
    """What the panels' callback sent (PANEL_PATCH data) since the performance log was last read."""
    return [json.loads(b).get("response", {}).get(ids.PANEL_PATCH, {}).get("data") or {}
            for b in network_bodies(driver, "_dash-update-component")]


def kpi_text(driver, key: str) -> str:
    return driver.execute_script(
        f"var e=document.querySelector('[data-kpi=\"{key}\"] .pn-value');return e?e.textContent:null")


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160)])
def test_kpi030_panels_render_and_follow_live_ticks(engine, make_services, tmp_path, size):
    now = datetime.now(timezone.utc)
    hazard_row = lambda hid, grid, soon, due: {  # noqa: E731
        "id": hid, "grid_code": grid, "kind": "gas_pipe", "state": "ordered", "found_at": now - timedelta(days=1),
        "ordered_at": now - timedelta(days=1), "due_soon_at": soon, "deadline_at": due, "lon": None, "lat": None,
        "last_seq": 1, "updated_at": now}
    seeded(engine, World(events=[
        make_event(1, GRID_A, now - timedelta(seconds=20), deadline_at=now - timedelta(seconds=5)),
        make_event(2, GRID_A, now - timedelta(seconds=10), category="petition", level=1),
        make_event(3, GRID_B, now - timedelta(seconds=10)),  # another street: never shown
    ], hazards=[
        hazard_row("hz1", GRID_A, now - timedelta(hours=1), now + timedelta(hours=1)),   # due soon
        hazard_row("hz2", GRID_A, now + timedelta(hours=1), now + timedelta(hours=2)),   # not yet
        hazard_row("hz3", GRID_A, now - timedelta(hours=2), now - timedelta(hours=1)),   # overdue
        hazard_row("hz4", GRID_B, now - timedelta(hours=1), now + timedelta(hours=1)),   # another street
    ]))
    # the panels' own page is a bare Dash app without the sign-in (access off): what each role may see
    # is tests/unit/test_access101_scope.py, and kpi031 below serves the whole app signed in
    services = make_services(engine.url.render_as_string(hide_password=False), "", access_required=False)
    driver = chrome(*size)
    try:
        with AppServer(panels_app(services)) as srv:
            driver.get(f"{srv.url}/?scope={STREET_A}")
            wait_for(driver, "document.querySelector('[data-kpi=\"reported\"] .pn-value')")
            assert kpi_text(driver, "reported") == "2"
            assert kpi_text(driver, "overdue") == "1" and kpi_text(driver, "open") == "2"
            # the hazards panel: five tiles in a row, 即将到期 among them
            assert [kpi_text(driver, k) for k in ("hazards_open", "hazards_overdue", "hazards_due_soon")] == \
                ["3", "1", "1"]
            assert driver.execute_script("""return Array.from(document.querySelectorAll('.pn-hazards .pn-label'))
                .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)""") == []
            # every chart drew as plain boxes: 3 level bars, 7 categories, the channel ring, 7 + 30 days
            wait_for(driver, "document.querySelectorAll('.ch-bars--level .ch-bar-row').length === 3")
            counts = driver.execute_script("""return ['.ch-bars--category .ch-bar-row', '.ch-ring', '.pn-trend7 .ch-day',
                '.pn-trend30 .ch-day', '.pn-graph', '.main-svg'].map(s => document.querySelectorAll(s).length)""")
            assert counts == [7, 1, 7, 30, 0, 0]
            body = driver.execute_script("return document.body.innerText")
            assert "今日上报" in body and "社区排名" in body and "三零社区" in body
            assert "云南路街道" not in body and "社区001" in body  # street A's communities only
            # the numbers are text a person reads: level 1 has one event (the petition), the ring's total is 2
            level_1 = driver.execute_script(
                "return document.querySelector('.ch-bars--level [data-key=\"1\"] .ch-bar-value').textContent")
            assert level_1 == "1"
            assert driver.execute_script("return document.querySelector('.ch-ring-total').textContent") == "2"
            # the trend's columns have height (the panel gives them the column's spare space)
            heights = driver.execute_script(
                "return Array.from(document.querySelectorAll('.pn-trend7 .ch-col--reported')).map(e => e.offsetHeight)")
            assert heights[-1] >= 0.03 * size[1] and heights[:-1] == [0] * 6
            # type grows with the wall: ≥ 16 px at 1080p, twice that at 4K
            font = driver.execute_script(
                "return parseFloat(getComputedStyle(document.querySelector('.ch-bar-label')).fontSize)")
            assert font >= 16 * (size[0] / 1920) - 1
            # no plotly anywhere on the page
            assert driver.execute_script(
                "return performance.getEntriesByType('resource').filter(e => /plotly/i.test(e.name)).length"
                " + (window.Plotly ? 1 : 0)") == 0
            # nothing scrolls, and no panel is cut off inside its column
            assert driver.execute_script(
                "return document.documentElement.scrollHeight <= window.innerHeight"
                " && document.documentElement.scrollWidth <= window.innerWidth")
            clipped = driver.execute_script("""
                var out = [];
                document.querySelectorAll('.pn-slot--left, .pn-slot--right, .pn-slot--header').forEach(function (slot) {
                    var box = slot.getBoundingClientRect();
                    slot.querySelectorAll('.pn-panel, .pn-tile').forEach(function (p) {
                        var r = p.getBoundingClientRect();
                        if (r.bottom > box.bottom + 1 || r.right > box.right + 1 || p.scrollHeight > p.clientHeight + 1)
                            out.push((p.dataset.panel || p.dataset.kpi) + ':' + Math.round(r.bottom) + '>' + Math.round(box.bottom));
                    });
                });
                return out;""")
            assert clipped == []

            # a delta arrives: the consumer commits, then the browser hears of it and ticks
            with engine.begin() as conn:
                conn.execute(event.insert(), [make_event(4, GRID_A, datetime.now(timezone.utc) - timedelta(seconds=1),
                                                         category="safety", level=1, urgent=True)])
            time.sleep(0.05)
            driver.get_log("performance")  # only this tick's responses below (cleared before it can answer)
            driver.execute_script(
                "window.dash_clientside.set_props('live-tick', {data: {n: 1, at: Date.now()}})")
            wait_for(driver, "document.querySelector('[data-kpi=\"reported\"] .pn-value').textContent === '3'")
            assert kpi_text(driver, "open") == "3"
            assert driver.execute_script(
                "return document.querySelector('.ch-bars--level [data-key=\"1\"] .ch-bar-value').textContent") == "2"
            # only what changed came back, as values for the elements already shown (no component
            # was sent); the staff and people panels kept their hash
            sent, patched = set(), set()
            for data in panel_patches(driver):
                sent |= set(data.get("trees", {}))
                patched |= set(data.get("parts", {}))
            assert {ids.PANEL_HEADER, ids.panel("level")} <= patched and not sent & patched
            assert ids.panel("category") in sent | patched  # a new category reorders its bars: maybe whole
            assert not (sent | patched) & {ids.panel("staff"), ids.panel("people"), ids.panel("hazards")}
            # the patched tile kept its classes and the alert colour of overdue is still applied
            assert driver.execute_script(
                "return document.querySelector('[data-kpi=\"overdue\"]').className") == "pn-tile pn-tile--alert"

            # the page's hashes dropped (as panels.js does when elements do not match): the next
            # refresh sends the panels whole, and what shows is what the store holds, even where
            # a value went back to the one the components were first drawn with
            with engine.begin() as conn:
                conn.execute(event.delete().where(event.c.id == "e4"))
            driver.execute_script("window.dash_clientside.set_props('panel-hashes', {data: {}});"
                                  "window.dash_clientside.set_props('live-tick', {data: {n: 2, at: Date.now()}})")
            wait_for(driver, "document.querySelector('[data-kpi=\"reported\"] .pn-value').textContent === '2'")
            assert kpi_text(driver, "open") == "2"
            assert driver.execute_script(
                "return document.querySelector('.ch-bars--level [data-key=\"1\"] .ch-bar-value').textContent") == "1"

            # elements that no longer match the values (here: a tile removed behind the page's back)
            # are not written to; the hashes are dropped and the next refresh rebuilds the panel
            driver.execute_script("document.querySelector('[data-kpi=\"closed\"]').remove()")
            with engine.begin() as conn:
                conn.execute(event.insert(), [make_event(5, GRID_A, datetime.now(timezone.utc) - timedelta(seconds=1))])
            driver.get_log("performance")
            driver.execute_script("window.dash_clientside.set_props('live-tick', {data: {n: 3, at: Date.now()}})")
            deadline, answered = time.time() + 15, False
            while not answered and time.time() < deadline:  # the tick's answer: the header's values
                answered = any(ids.PANEL_HEADER in data.get("parts", {}) for data in panel_patches(driver))
                time.sleep(0.1)
            assert answered
            time.sleep(0.3)  # the clientside patch runs right after the response is applied
            assert kpi_text(driver, "reported") == "2"  # nothing written into the mismatched strip
            driver.execute_script("window.dash_clientside.set_props('live-tick', {data: {n: 4, at: Date.now()}})")
            wait_for(driver, "document.querySelector('[data-kpi=\"reported\"] .pn-value').textContent === '3'")
            assert kpi_text(driver, "closed") is not None

            driver.get(f"{srv.url}/?scope={STREET_A}&lang=en")
            wait_for(driver, "document.body.innerText.indexOf('Reported today') >= 0")
            assert "Community ranking" in driver.execute_script("return document.body.innerText")
            # in English too: every hazards label whole (a long one on two lines), nothing cut off
            assert driver.execute_script("""return Array.from(document.querySelectorAll('.pn-hazards .pn-label'))
                .filter(e => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1)
                .map(e => [e.textContent, e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight])""") == []
            assert kpi_text(driver, "hazards_due_soon") == "1"
            assert driver.execute_script(
                "return document.querySelector('[data-kpi=\"hazards_due_soon\"] .pn-label').textContent") == "Due soon"
            assert driver.execute_script("""var slot = document.querySelector('.pn-slot--right').getBoundingClientRect();
                return Array.from(document.querySelectorAll('.pn-slot--right .pn-panel'))
                    .every(p => p.getBoundingClientRect().bottom <= slot.bottom + 1)""")
            driver.save_screenshot(str(tmp_path / f"panels_{size[0]}.png"))
            assert severe_logs(driver) == []
    finally:
        driver.quit()


def test_kpi031_the_wall_page_loads_no_plotly(stack, make_services):
    svc = make_services(*stack)
    rows = sc.city_regions(streets=3, communities=2, grids=4)
    sc.insert_regions(svc.engine, rows)
    sc.insert_events(svc.engine, rows, 120, open_share=0.8)
    driver = chrome(1920, 1080)
    try:
        with AppServer(create_app(svc.settings, svc), sign_in=True) as srv:  # an administrator
            driver.get(f"{srv.url}/wall")
            wait_for(driver, "document.querySelectorAll('#wall-left .ch-bar-row').length >= 10"
                             " && document.querySelectorAll('#wall-right .pn-table tr').length > 1", 30)
            wait_for(driver, "window.wallReady", 30)
            time.sleep(0.5)  # anything loaded lazily after first paint would show up now
            urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
            assert urls and not [u for u in urls if "plotly" in u.lower()]
            assert driver.execute_script("return typeof window.Plotly") == "undefined"
            assert driver.execute_script("return document.querySelectorAll('.js-plotly-plot, .main-svg').length") == 0
            assert driver.execute_script(
                "const d = document.documentElement; return d.scrollHeight <= innerHeight && d.scrollWidth <= innerWidth")
            assert severe_logs(driver) == []
    finally:
        driver.quit()
