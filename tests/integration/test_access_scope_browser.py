"""Scope on the server, as a person at a browser meets it (issue 18): a street secretary signs in
through the real /signin page and gets their street's wall; a request the page forges from its own
console for another street (a Dash callback, a data API, the live push) is refused and shows nothing
of that street; a wall display opened with its token loses its live channel within 5 s of the
token's revocation and shows that it did. On both stacks, ACCESS_REQUIRED on (the default)."""
from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.common.by import By

from dashboard import ids
from dashboard import synthetic_city as sc
from dashboard.access import audit
from dashboard.access.users import add_token, add_user, revoke_token
from dashboard.app import create_app
from tests.integration.wallkit import AppServer, Browsers, severe_logs, wait_for

pytestmark = pytest.mark.browser

STREET, OTHER = "370202002", "370202003"
PASSWORD = "street secretary 2"
REVOKED_WITHIN_S = 5.0
LAYERS_DRAWN = "window.wallReady && document.querySelectorAll('.ev, .evc').length > 0"


@pytest.fixture
def server(stack, make_services):
    svc = make_services(*stack, access_required=True)  # the default
    rows = sc.city_regions(streets=3, communities=2, grids=4)
    sc.insert_regions(svc.engine, rows)
    sc.insert_events(svc.engine, rows, 90, open_share=0.9)
    add_user(svc.engine, "secretary", PASSWORD, "street_secretary", STREET, actor="test")
    with AppServer(create_app(svc.settings, svc), sign_in=False) as srv:
        srv.svc, srv.rows = svc, rows
        yield srv


@pytest.fixture
def browser():
    opened = Browsers(1440, 900)
    yield opened
    opened.close()


FORGE = """
const done = arguments[arguments.length - 1], other = arguments[0], out = {};
const panels = {output: "..%(upd)s.children...%(patch)s.data...%(hashes)s.data..",
  outputs: [{id: "%(upd)s", property: "children"}, {id: "%(patch)s", property: "data"}, {id: "%(hashes)s", property: "data"}],
  inputs: [{id: "%(tick)s", property: "data", value: null}, {id: "%(url)s", property: "search", value: "?scope=" + other},
           {id: "%(refresh)s", property: "n_intervals", value: 0}],
  state: [{id: "%(hashes)s", property: "data", value: null}], changedPropIds: ["%(url)s.search"]};
fetch("/_dash-update-component", {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(panels)})
  .then(r => r.text().then(t => { out.callback = [r.status, t]; }))
  .then(() => fetch("/api/v1/geo/points?layer=events&scope=" + other))
  .then(r => r.text().then(t => { out.points = [r.status, t]; }))
  .then(() => new Promise(resolve => {
    const es = new EventSource("/api/v1/live?scope=" + other);
    let got = "";
    es.onmessage = e => { got += e.data; };
    es.onerror = () => { out.live = [es.readyState, got]; es.close(); resolve(); };
  }))
  .then(() => done(out), e => done({error: String(e)}));
""" % {"upd": ids.PANEL_UPDATED, "patch": ids.PANEL_PATCH, "hashes": ids.PANEL_HASHES, "tick": ids.LIVE_TICK,
       "url": ids.URL, "refresh": ids.PANEL_REFRESH}


def names_outside(rows, prefix: str) -> list[str]:
    return [r.name for r in rows if r.level in ("street", "community") and not r.code.startswith(prefix)
            and not prefix.startswith(r.code)]


def test_access120_a_street_secretary_sees_their_street_and_forged_requests_get_nothing_else(server, browser):
    d = browser()
    d.get(server.url + "/wall")
    wait_for(d, "document.querySelector('#username') !== null")
    d.find_element(By.ID, "username").send_keys("secretary")
    d.find_element(By.ID, "password").send_keys(PASSWORD)
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_for(d, LAYERS_DRAWN, timeout=60)
    assert parse_qs(urlsplit(d.current_url).query)["scope"] == [STREET]
    wait_for(d, "document.querySelectorAll('#wall-right .pn-table tr').length > 1", timeout=30)
    text = d.execute_script("return document.body.innerText")
    for name in names_outside(server.rows, STREET):
        assert name not in text
    assert severe_logs(d) == []
    # the same browser forges requests for the street beside
    d.set_script_timeout(30)
    out = d.execute_async_script(FORGE, OTHER)
    assert "error" not in out, out
    assert out["callback"][0] == 403 and out["points"][0] == 403
    assert out["live"][0] == 2 and out["live"][1] == ""  # refused: EventSource gave up, nothing received
    body = json.dumps(out, ensure_ascii=False)
    for name in names_outside(server.rows, STREET):
        assert name not in body
    assert OTHER + "001" not in body  # no code of the other street's communities or grids
    rows = audit.query(server.svc.engine, action=audit.SCOPE_REFUSED)
    assert sorted(r["details"]["where"] for r in rows) == ["/_dash-update-component", "/api/v1/geo/points",
                                                           "/api/v1/live"]
    assert {r["actor"] for r in rows} == {"secretary"}
    # what the browser complained of is exactly the three refusals it was made to send
    logs = severe_logs(d)
    assert len(logs) <= 3 and all("403" in m for m in logs), logs
    # and the page it shows is still its own street's, live
    assert wait_for(d, "wallLive.connected === true", timeout=10)


def test_access121_a_revoked_wall_display_loses_its_live_channel_within_5_s(server, browser):
    tid, token = add_token(server.svc.engine, "hall-9", STREET, actor="admin")
    d = browser(1920, 1080)
    d.get(f"{server.url}/wall?token={token}")
    wait_for(d, LAYERS_DRAWN, timeout=60)
    assert parse_qs(urlsplit(d.current_url).query) == {"scope": [STREET]}  # the token left the URL
    wait_for(d, "wallLive.connected === true && !!wallLive.lastPing", timeout=15)
    assert d.execute_script("return document.getElementById('feed-banner').hidden") is True
    assert d.execute_script("return wallLive.failures || 0") == 0
    revoke_token(server.svc.engine, tid, actor="admin")
    # the bound as the wait: the server ends the stream, the page's EventSource sees it
    wait_for(d, "(wallLive.failures || 0) > 0", timeout=REVOKED_WITHIN_S)
    # its reconnection is refused (401), so it stays lost, and says so
    wait_for(d, "wallLive.connected === false && !document.getElementById('feed-banner').hidden", timeout=10)
    assert d.execute_script("return wallLive.es.readyState") in (0, 2)
    refused = [r for r in audit.query(server.svc.engine, action=audit.SESSION_REFUSED)
               if r["details"].get("where") == "/api/v1/live"]
    assert refused and refused[0]["details"]["session"] == f"t:{tid}"
