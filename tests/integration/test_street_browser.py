"""The street secretary's view in headless Chromium, signed in through the real /signin form with
ACCESS_REQUIRED on: at 360 px (a phone: no horizontal scroll, the English switch) and at 1440 px (a
laptop: a tap on a grid of the map). What a person sees: their street's name, its figures beside the
district's average, the ranking of its communities, the lists; no other street's name anywhere; a
drill-down to a community (a tap on its name in the ranking) and to a grid (a tap on the map) moves
every panel, and Back returns; no console error. Writes docs/street-360.png and docs/street-1440.png."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.actions.action_builder import ActionBuilder
from selenium.webdriver.common.by import By

from dashboard import kpi
from dashboard import synthetic_city as sc
from dashboard.access.users import add_user
from dashboard.app import create_app
from dashboard.store.schema import hazard
from tests.integration.wallkit import AppServer, Browsers, sign_in_page, free_port, severe_logs, wait_for

pytestmark = pytest.mark.browser

DOCS = Path(__file__).resolve().parents[2] / "docs"
STREET, COMMUNITY = "370202001", "370202001002"
PASSWORD = "street secretary 7"
# a hazard under rectification in the case engine's states (kpi.HAZARD_OPEN; "open" before it named them)
OPEN_HAZARD = tuple(getattr(kpi, "HAZARD_OPEN", ("open",)))[0]


@pytest.fixture
def server(stack, make_services):
    svc = make_services(*stack, access_required=True)
    rows = sc.city_regions(streets=3, communities=2, grids=4)
    sc.insert_regions(svc.engine, rows)
    sc.insert_events(svc.engine, rows, 150, open_share=0.8)
    sc.insert_hazards(svc.engine, rows, 12)
    past = datetime.now(timezone.utc) - timedelta(days=6)
    grids = [r.code for r in rows if r.level == "grid"]
    with svc.engine.begin() as conn:  # hazards past their rectification deadline, some in the street
        conn.execute(hazard.insert(), [
            {"id": f"late{i}", "grid_code": grids[i * 3 % len(grids)], "kind": "gas_pipe", "state": OPEN_HAZARD,
             "lon": None, "lat": None, "description": "隐患", "found_at": past, "deadline_at": past + timedelta(days=i),
             "updated_at": past, "last_seq": 1} for i in range(1, 6)])
    add_user(svc.engine, "secretary", PASSWORD, "street_secretary", STREET, actor="test")
    with AppServer(create_app(svc.settings, svc), port=free_port(18200), sign_in=False) as srv:
        yield srv, svc, rows


@pytest.fixture
def browser():
    opened = Browsers()
    yield opened
    opened.close()


def sign_in(d, url: str) -> None:
    sign_in_page(d, url, "secretary", PASSWORD)
    wait_for(d, "!!window.wallReady && !!document.querySelector('#street-figures .st-fig')", timeout=90)


def text(d, css: str) -> str:
    return d.find_element(By.CSS_SELECTOR, css).text


def figure(d, key: str) -> str:
    return d.execute_script(f"return document.querySelector('#street-figures [data-kpi={key}] .st-fig-value').textContent")


def others(rows) -> set[str]:
    """Names of every street, community and grid outside the secretary's street."""
    return {r.name for r in rows if r.level in ("street", "community", "grid") and not r.code.startswith(STREET)}


def shown_unit(d) -> str:
    return d.execute_script("var h = document.querySelector('#street-unit h2'); return h ? h.textContent : ''")


def screenshot(d, path: Path, full: bool) -> None:
    """The page as a person scrolls through it (full) or its first screen."""
    if full:
        # the cards below the first screen are painted when scrolled to (content-visibility): as if scrolled
        d.execute_script("document.querySelectorAll('.st-card').forEach(c => c.style.contentVisibility = 'visible')")
        height = d.execute_script("return document.documentElement.scrollHeight")
        shot = d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                            "clip": {"x": 0, "y": 0, "width": 360, "height": height,
                                                                     "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
    else:
        d.save_screenshot(str(path))


def check_first_screen(d, svc, rows) -> None:
    now = datetime.now(timezone.utc)
    assert urlsplit(d.current_url).path == "/street" and f"scope={STREET}" in d.current_url
    assert d.execute_script("return document.documentElement.lang") == "zh-CN"
    assert text(d, "h1.st-name") == "第1街道" and text(d, ".st-sub") == "街道书记视图"
    assert shown_unit(d) == "第1街道"
    opened = kpi.open_counts(svc.engine, STREET, now)
    assert figure(d, "open") == f"{opened['open']:,}"
    assert figure(d, "overdue") == f"{opened['overdue']:,}"
    avg = d.execute_script("return document.querySelector('#street-figures [data-kpi=open] .st-fig-avg').textContent")
    assert avg.startswith("区均 ")
    ranked = d.execute_script("return [...document.querySelectorAll('#street-ranking .st-drill')].map(b => b.textContent)")
    expected = [r["name"] for r in kpi.ranking(svc.engine, STREET, now, *kpi.days_bounds(now, "Asia/Shanghai", 30))]
    assert ranked == expected and sorted(ranked) == ["1街1社区", "1街2社区"]
    assert d.execute_script("return document.querySelectorAll('#street-events .st-list').length") == 3
    page = d.execute_script("return document.getElementById('street').textContent")  # below the fold too
    assert "1街1社区" in page and not [n for n in others(rows) if n in page]
    wait_for(d, "document.querySelector('#feed-status').classList.contains('feed-ok')", timeout=30)


def drill_to_community(d, svc) -> None:
    """A tap on the community's name in the ranking: the map and every panel move to it."""
    before = figure(d, "open")
    btn = d.find_element(By.CSS_SELECTOR, f"#street-ranking .st-drill[data-drill='{COMMUNITY}']")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", btn)
    btn.click()
    wait_for(d, f"document.querySelector('#street-unit h2').textContent === '1街2社区'", timeout=30)
    opened = kpi.open_counts(svc.engine, COMMUNITY, datetime.now(timezone.utc))
    assert figure(d, "open") == f"{opened['open']:,}" != before
    assert text(d, "#street-unit .st-unit-level") == "社区 · 第1街道"
    assert d.execute_script("return document.querySelector('#map-crumbs').dataset.code") == COMMUNITY
    ranked = d.execute_script("return [...document.querySelectorAll('#street-ranking .st-drill')].map(b => b.dataset.drill)")
    assert ranked and all(code.startswith(COMMUNITY) and len(code) == 15 for code in ranked)
    assert text(d, "#street-ranking h2") == "网格排名"


def back_to_street(d) -> None:
    btn = d.find_element(By.ID, "map-back")
    d.execute_script("arguments[0].scrollIntoView({block: 'center'})", btn)
    btn.click()
    wait_for(d, "document.querySelector('#street-unit h2').textContent === '第1街道'", timeout=30)
    assert d.execute_script("return document.querySelector('#map-back').disabled") is True


def test_street020_a_street_secretary_on_a_phone(server, browser):
    srv, svc, rows = server
    d = browser(360, 740)
    sign_in(d, srv.url)
    check_first_screen(d, svc, rows)
    # a phone: nothing wider than the screen, the map and the controls within it
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    # (the map's own panes are larger than the map and clipped by it: they are not the page's width)
    wide = d.execute_script("return [...document.querySelectorAll('#street *')].filter(e => !e.closest('.leaflet-container')"
                            " && e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.className).slice(0, 5)")
    assert wide == []
    screenshot(d, DOCS / "street-360.png", full=True)
    drill_to_community(d, svc)
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    back_to_street(d)
    # the English switch
    d.find_element(By.CSS_SELECTOR, ".st-nav a[lang=en]").click()
    wait_for(d, "document.documentElement.lang === 'en' && !!document.querySelector('#street-figures .st-fig')",
             timeout=60)
    assert text(d, ".st-sub") == "Street secretary's view" and "lang=en" in d.current_url
    assert d.execute_script("return document.querySelector('#street-figures [data-kpi=open] .st-fig-avg')"
                            ".textContent").startswith("District avg ")
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    assert severe_logs(d) == []


def test_street021_a_street_secretary_on_a_laptop_drills_into_a_grid_on_the_map(server, browser):
    srv, svc, rows = server
    d = browser(1440, 900)
    sign_in(d, srv.url)
    check_first_screen(d, svc, rows)
    assert d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    # the map and the panels side by side
    assert d.execute_script("return document.querySelector('.st-card--map').getBoundingClientRect().right <= "
                            "document.querySelector('.st-card--figures').getBoundingClientRect().left")
    screenshot(d, DOCS / "street-1440.png", full=False)
    drill_to_community(d, svc)
    # a tap on a grid of the map (its centre, on the map's canvas) drills on into that grid
    grid = COMMUNITY + "003"
    d.execute_script("window.scrollTo(0, 0)")
    x, y = d.execute_script(f"""var W = window.wallMap, g = W.grids['{grid}'];
        var p = W.map.latLngToContainerPoint(g.getCenter()), r = W.map.getContainer().getBoundingClientRect();
        return [Math.round(r.left + p.x), Math.round(r.top + p.y)];""")
    assert 0 < x < 1440 and 0 < y < 900, (x, y)
    tap = ActionBuilder(d)
    tap.pointer_action.move_to_location(x, y).click()
    tap.perform()
    name = next(r.name for r in rows if r.code == grid)
    wait_for(d, f"document.querySelector('#street-unit h2').textContent === '{name}'", timeout=30)
    opened = kpi.open_counts(svc.engine, grid, datetime.now(timezone.utc))
    assert figure(d, "open") == f"{opened['open']:,}"
    assert text(d, "#street-unit .st-unit-level") == "网格 · 1街2社区"
    assert d.execute_script("return document.querySelector('#street-ranking').children.length") == 0
    d.find_element(By.ID, "map-back").click()
    wait_for(d, "document.querySelector('#street-unit h2').textContent === '1街2社区'", timeout=30)
    back_to_street(d)
    page = d.execute_script("return document.getElementById('street').textContent")
    assert "1街1社区" in page and not [n for n in others(rows) if n in page]
    assert severe_logs(d) == []
