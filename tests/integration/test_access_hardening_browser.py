"""The hardened pages in headless Chromium: the wall runs under the CSP (every Dash script carries the
request's nonce; an inline script the page did not send is refused by the browser), the page says
its language, the /record page shows a resident masked and, for a community worker, in full after
"show in full" (audited), and the administrator's /audit page draws its AG Grid. No console error
but the one refusal the test provokes."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from dashboard import synthetic_city as sc
from dashboard.access import audit
from dashboard.access.users import add_user
from dashboard.app import create_app
from dashboard.store.schema import person
from tests.integration.wallkit import AppServer, Browsers, sign_in_page, free_port, severe_logs, wait_for

pytestmark = pytest.mark.browser

PASSWORD = "hardened pages 1"
RESIDENT = {"id": 77, "name": "王小明", "id_number": "370202198001011235", "phone": "13912345678", "gender": "M",
            "birth_year": 1980, "key_class": "elderly_alone"}


@pytest.fixture
def city(stack, make_services):
    svc = make_services(*stack, access_required=True)
    rows = sc.city_regions(streets=2, communities=2, grids=3)
    sc.insert_regions(svc.engine, rows)
    sc.insert_events(svc.engine, rows, 20, open_share=0.8)
    community = next(r.code for r in rows if r.level == "community")
    grid = next(r.code for r in rows if r.level == "grid" and r.code.startswith(community))
    with svc.engine.begin() as conn:
        conn.execute(person.insert(), [dict(RESIDENT, grid_code=grid)])
    add_user(svc.engine, "admin", PASSWORD, "administrator", "", actor="test")
    add_user(svc.engine, "worker", PASSWORD, "community_worker", community, actor="test")
    add_user(svc.engine, "secretary", PASSWORD, "street_secretary", community[:9], actor="test")
    return svc, community


@pytest.fixture
def server(city):
    svc, _ = city
    with AppServer(create_app(svc.settings, svc), port=free_port(18320)) as srv:
        yield srv


@pytest.fixture
def browser():
    opened = Browsers(1440, 900)
    yield opened
    opened.close()


def sign_in(d, url: str, username: str, next_path: str) -> None:
    sign_in_page(d, url, username, PASSWORD, next_path)


def test_access280_the_wall_runs_under_the_csp_and_refuses_a_foreign_inline_script(server, browser):
    d = browser(1920, 1080)
    sign_in(d, server.url, "admin", "/wall")
    wait_for(d, "!!window.wallReady && document.querySelectorAll('.ev, .evc').length > 0", 60)
    assert d.execute_script("return document.documentElement.lang") == "zh-CN"
    assert severe_logs(d) == []  # Dash's renderer, the prefetch and every asset ran with the policy on
    d.execute_script("const s = document.createElement('script'); s.textContent = 'window.__inline = 1';"
                     "document.body.appendChild(s);")
    assert d.execute_script("return window.__inline") is None
    refused = severe_logs(d)
    assert len(refused) == 1 and "Content Security Policy" in refused[0]
    d.get(server.url + "/wall?lang=en")
    wait_for(d, "!!window.wallReady", 60)
    assert d.execute_script("return document.documentElement.lang") == "en"
    assert severe_logs(d) == []


def test_access281_a_community_worker_reveals_one_resident_and_the_view_is_audited(city, server, browser):
    svc, community = city
    d = browser()
    sign_in(d, server.url, "worker", f"/record?kind=person&id={RESIDENT['id']}")
    wait_for(d, "document.querySelector('.rec-name') !== null", 30)
    assert d.find_element(By.CSS_SELECTOR, ".rec-name").text == "王*明"
    assert d.find_element(By.CSS_SELECTOR, ".rec-id_number").text == "370202********1235"
    assert d.find_element(By.CSS_SELECTOR, ".rec-phone").text == "139****5678"
    assert audit.query(svc.engine, action=audit.RECORD_REVEALED) == []
    d.find_element(By.CSS_SELECTOR, ".rec-reveal").click()
    wait_for(d, "document.querySelector('.rec-name').textContent === '王小明'", 20)
    assert d.find_element(By.CSS_SELECTOR, ".rec-phone").text == RESIDENT["phone"]
    assert "审计日志" in d.find_element(By.CSS_SELECTOR, ".rec-note").text
    (row,) = audit.query(svc.engine, action=audit.RECORD_REVEALED)
    assert row["actor"] == "worker" and row["details"]["record"] == str(RESIDENT["id"]) and row["ip"] == "127.0.0.1"
    assert severe_logs(d) == []
    # a street secretary sees the record masked, with no button
    s = browser()
    sign_in(s, server.url, "secretary", f"/record?kind=person&id={RESIDENT['id']}")
    wait_for(s, "document.querySelector('.rec-name') !== null", 30)
    assert s.find_element(By.CSS_SELECTOR, ".rec-name").text == "王*明"
    assert s.find_elements(By.CSS_SELECTOR, ".rec-reveal") == []
    assert severe_logs(s) == []


def test_access282_the_audit_page_lists_the_log_in_a_grid_for_the_administrator(city, server, browser):
    svc, _ = city
    d = browser()
    sign_in(d, server.url, "admin", "/audit?lang=en")
    wait_for(d, "document.querySelectorAll('.ag-row').length > 0", 40)
    assert d.execute_script("return document.documentElement.lang") == "en"
    cells = d.execute_script("return Array.from(document.querySelectorAll('.ag-cell[col-id=action]')).map(c => c.textContent)")
    assert "signin_ok" in cells
    assert d.find_element(By.CSS_SELECTOR, "h1").text == "Audit log"
    assert severe_logs(d) == []  # AG Grid's injected styles and lazy chunk load under the policy
    # a community worker is refused the page
    w = browser()
    sign_in(w, server.url, "worker", "/audit")
    wait_for(w, "document.querySelector('.message') !== null", 30)
    assert "Only administrators" in w.find_element(By.CSS_SELECTOR, ".message").text or \
        "仅管理员" in w.find_element(By.CSS_SELECTOR, ".message").text
    assert [r["actor"] for r in audit.query(svc.engine, action=audit.PAGE_REFUSED)] == ["worker"]
