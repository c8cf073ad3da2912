"""The street page's HTML carries its first picture (dashboard/street/snapshot.py): the signed-in
street secretary's own street, name and figures, and nothing of another street; its scripts are all
deferred behind that picture, Dash is started by an external script (no new inline script: the
CSP allows nonce'd ones only), and the page loads none of the bundles it does not use. Other pages
(the wall) keep their index as it was. On both stacks."""
from __future__ import annotations

import re
from datetime import datetime, timezone

from dash import html

from dashboard import kpi
from dashboard.app import create_app
from dashboard.street.snapshot import render, snapshot
from tests.unit.test_street001_view import MINE, OTHER, city, names_of  # noqa: F401 - the fixture
from tests.unit.test_street001_view import _client

SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


def _picture(page: str) -> str:
    start = page.index('<div class="st-snap" inert>')
    return page[start:page.index('<div id="react-entry-point"', start)]


def test_street031_the_first_html_holds_the_secretarys_street_and_figures_and_nothing_of_another(city):
    svc, rows = city
    server = create_app(svc.settings, svc).server
    c, _ = _client(server, "secretary")
    resp = c.get(f"/street?scope={MINE}")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    picture = _picture(page)
    # before the entry point Dash renders into, so React's first render does not wipe it
    assert page.index(picture) < page.index('id="react-entry-point"')
    assert '<h1 class="st-name">第1街道</h1>' in picture and "街道书记视图" in picture
    opened = kpi.open_counts(svc.engine, MINE, datetime.now(timezone.utc))
    for key in ("open", "overdue"):
        value = re.search(rf'data-kpi="{key}"[^>]*><div class="st-fig-value">([^<]*)<', picture)
        assert value is not None and value.group(1) == f"{opened[key]:,}", key
    assert "区均" in picture and "1街1社区" in picture  # the average, the ranking of its communities
    others = {n for code, n in {**names_of(rows, "street"), **names_of(rows, "community"),
                                **names_of(rows, "grid")}.items() if not code.startswith(MINE)}
    assert not [n for n in others if n in page]
    assert ' id="' not in picture  # the live page's ids are the live page's alone
    # another street's secretary gets theirs, never this one's
    from dashboard.access.users import add_user
    from tests.unit import access_support as A

    add_user(svc.engine, "secretary2", A.PASSWORD, "street_secretary", OTHER, actor="test")
    c2, landing = _client(server, "secretary2")
    theirs = _picture(c2.get(landing.headers["Location"]).get_data(as_text=True))
    assert "第2街道" in theirs and "第1街道" not in theirs and "1街1社区" not in theirs
    # a foreign ?scope= is refused by the gate before any picture is made
    forged = c2.get(f"/street?scope={MINE}")
    assert forged.status_code == 403 and "st-snap" not in forged.get_data(as_text=True)


def test_street032_street_scripts_run_after_the_picture_and_only_the_bundles_it_uses(city):
    svc, _rows = city
    server = create_app(svc.settings, svc).server
    c, _ = _client(server, "secretary")
    page = c.get(f"/street?scope={MINE}").get_data(as_text=True)
    tags = SCRIPT_TAG.findall(page)
    external = [a for a in tags if " src=" in a]
    # the one script that runs by itself: the start, deferred (nomodule: fetched by no current browser)
    running = [a for a in external if " nomodule" not in a]
    assert len(running) == 1 and " defer" in running[0] and 'id="_dash-renderer"' in running[0]
    assert re.search(r'src="/assets/street-start\.js[?"]', running[0])
    # Dash's scripts: fetched from the start, at low priority, run by the start in this order
    links = re.findall(r'<link rel="preload" as="script" fetchpriority="low" href="([^"]+)" data-src="([^"]+)">', page)
    srcs = [src for href, src in links if href == src]
    assert len(srcs) == len(links) >= 8
    assert srcs.index(next(s for s in srcs if "dash_renderer" in s)) > srcs.index(next(s for s in srcs if "/react@" in s))
    assert "new DashRenderer" not in page  # no inline start; the inline scripts left all carry the nonce
    inline = [a for a in tags if " src=" not in a]
    assert inline and all(" nonce=" in a for a in inline)
    for unused in ("plotly", "dash_ag_grid", "dash_table", "/dcc/", "dash_core_components"):
        assert not [s for s in srcs if unused in s], unused
    assert any("dash_leaflet" in s for s in srcs) and any("dash_renderer" in s for s in srcs)
    # the wall's index is as it was: its scripts run in order as they come, Dash's own inline start
    wall = c.get(f"/wall?scope={MINE}").get_data(as_text=True)
    assert "data-src" not in wall and "street-start.js" not in wall and "st-snap" not in wall
    assert "new DashRenderer()" in wall and re.search(r'<script src="[^"]*dash_renderer', wall)


def test_street033_the_picture_is_text_never_markup():
    evil = '<img src=x onerror="alert(1)">'
    out = snapshot(html.Div(className="street", children=[
        html.P(evil, title=evil, **{"data-x": evil}), html.Button("b", id="live-id", n_clicks=0)]))
    assert "<img" not in out and "&lt;img src=x" in out and 'title="&lt;img' in out
    assert ' id="' not in out and "n_clicks" not in out
    assert render(html.Div(html.Br())) == "<div><br></div>"
