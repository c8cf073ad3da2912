"""The street page's first picture in headless Chromium (dashboard/street/snapshot.py), at 360 px:
with scripts off, a person already sees their street's name and figures (the HTML alone paints them,
before any of Dash's scripts ran); with scripts on, Dash's page takes the picture's place with every
heading and figure where the picture had it (nothing moves: layout shift), the picture leaves the
document, and no console error."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from selenium.webdriver.common.by import By

from dashboard import kpi
from tests.integration.test_street_browser import STREET, others, server  # noqa: F401 - the fixture
from tests.integration.test_street_browser import PASSWORD
from tests.integration.wallkit import chrome, severe_logs, wait_for

pytestmark = pytest.mark.browser

# where each thing is on the first screen: [selector inside the page root, its box]
BOXES = """
const root = arguments[0] ? document.querySelector('.st-snap') : document.getElementById('street');
if (!root) return null;
return ['.st-name', '.st-unit-name', '.st-fig-value', '.st-figs', '.st-map-wrap', '.st-card--ranking .st-h']
  .map(function (s) { const e = root.querySelector(s); if (!e) return [s, null];
                      const r = e.getBoundingClientRect();
                      return [s, [Math.round(r.x), Math.round(r.y), Math.round(r.width), Math.round(r.height)]]; });
"""


def test_street034_the_html_paints_the_street_before_scripts_and_dash_takes_its_place_unmoved(server):
    srv, svc, rows = server
    d = chrome(360, 740, performance_log=False)
    try:
        d.get(srv.url + "/signin")
        wait_for(d, "document.querySelector('#username') !== null")
        d.find_element(By.ID, "username").send_keys("secretary")
        d.find_element(By.ID, "password").send_keys(PASSWORD)
        d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait_for(d, "!!document.getElementById('street')", timeout=90)
        page_url = d.current_url

        d.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        d.get(page_url)
        opened = kpi.open_counts(svc.engine, STREET, datetime.now(timezone.utc))
        seen = d.find_element(By.CSS_SELECTOR, ".st-snap").text
        assert "第1街道" in seen and "今日与当前" in seen and "区均" in seen
        shown = d.execute_script(
            "return document.querySelector('.st-snap [data-kpi=open] .st-fig-value').textContent")
        assert shown == f"{opened['open']:,}"
        assert d.find_element(By.CSS_SELECTOR, ".st-snap .st-fig").is_displayed()
        assert not [n for n in others(rows) if n in d.execute_script("return document.body.textContent")]
        picture = d.execute_script(BOXES, True)
        assert all(box for _s, box in picture), picture

        d.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
        d.get(page_url)
        wait_for(d, "!!window.wallReady && !!document.querySelector('#street-figures .st-fig')", timeout=90)
        wait_for(d, "!document.querySelector('.st-snap')", timeout=10)  # hidden, then gone
        live = d.execute_script(BOXES, False)
        assert live == picture
        assert not severe_logs(d)
    finally:
        d.quit()
