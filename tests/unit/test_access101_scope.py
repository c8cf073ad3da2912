"""Scope on the server, everywhere (issue 18, item 2), with ACCESS_REQUIRED on (the default): for each
role (administrator, district operator, street secretary, community worker, wall token) what the
data APIs, the Dash callbacks, the layout and the Open311 reads give it, and what they refuse:
forged requests for another street get a 403 (or nothing of that street) and an audit row.
On both stacks."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dashboard import ids
from dashboard.access import audit
from dashboard.access.users import add_token
from dashboard.store.schema import event
from tests.unit import access_support as A
from tests.unit import feed_support as F

MINE, OTHERS = "ev-street-1", "ev-other-1"  # an event in the secretary's street (its community) and one beside
REPORTER = "rep-13800138000"

# who sees what: the scopes each principal may ask for (None: its own)
ASKED = (F.DISTRICT, F.STREET, F.COMMUNITY, F.OTHER_STREET)
MAY = {
    "admin": {F.DISTRICT, F.STREET, F.COMMUNITY, F.OTHER_STREET},
    "operator": {F.DISTRICT, F.STREET, F.COMMUNITY, F.OTHER_STREET},
    "secretary": {F.STREET, F.COMMUNITY},
    "worker": {F.COMMUNITY},
    "wall": {F.STREET, F.COMMUNITY},  # a token bound to the secretary's street
}
SEES_OTHERS = {"admin", "operator"}


def add_events(engine) -> None:
    """One open event in the secretary's street (its community's first grid), one in the street beside,
    each with a reporter the answers must never carry."""
    now = datetime.now(timezone.utc)
    rows = [{"id": eid, "grid_code": grid, "category": "safety", "subcategory": "gas", "level": 3, "urgent": False,
             "state": "reported", "source": "grid_patrol", "lon": pt["lon"], "lat": pt["lat"],
             "address": "测试路1号", "description": "楼道燃气味道很重", "handler": "社区网格员", "reporter": REPORTER,
             "occurred_at": now - timedelta(minutes=30), "reported_at": now - timedelta(minutes=30),
             "deadline_at": now + timedelta(hours=4), "closed_at": None, "updated_at": now, "last_seq": 1,
             "escalations": 0, "reopened": 0}
            for eid, grid, pt in ((MINE, F.GRIDS[0], F.point_in(0)), (OTHERS, F.OTHER_GRID, F.point_in(3)))]
    with engine.begin() as conn:
        conn.execute(event.insert(), rows)


@pytest.fixture
def world(stack, make_services):
    services, server = A.app_with_users(make_services, stack, access_required=True)  # the default
    add_events(services.engine)
    _, token = add_token(services.engine, "hall", F.STREET, actor="test")
    return services, server, token


def client_as(server, who: str, token: str, ip: str = "10.1.1.1"):
    c = server.test_client()
    c.environ_base["REMOTE_ADDR"] = ip
    if who == "wall":
        assert c.get(f"/wall?token={token}").status_code == 302  # the display's session
    else:
        assert A.sign_in(c, who).status_code == 302
    return c


def event_ids(client, scope: str | None) -> set[str] | int:
    q = "/api/v1/geo/points?layer=events" + (f"&scope={scope}" if scope else "")
    resp = client.get(q, headers={"Accept-Encoding": "identity"})
    if resp.status_code != 200:
        return resp.status_code
    body = resp.get_json()
    return set(body["c"]["id"]) if body["n"] else set()


def refusals(services) -> list[tuple]:
    return [(r["actor"], r["details"]["requested"], r["details"]["where"])
            for r in audit.query(services.engine, action=audit.SCOPE_REFUSED, limit=1000)]


@pytest.mark.parametrize("who", sorted(MAY))
def test_access101_each_role_gets_its_scope_from_the_data_apis_and_no_wider(world, who):
    services, server, token = world
    c = client_as(server, who, token)
    actor = "token:1" if who == "wall" else who
    # nothing asked: the principal's own scope
    own = event_ids(c, None)
    assert own == ({MINE, OTHERS} if who in SEES_OTHERS else {MINE})
    for scope in ASKED:
        got = event_ids(c, scope)
        if scope in MAY[who]:
            assert got == ({OTHERS} if scope == F.OTHER_STREET else {MINE} if scope != F.DISTRICT else {MINE, OTHERS})
        else:
            assert got == 403, (who, scope)
            assert (actor, scope, "/api/v1/geo/points") in refusals(services)
    # the region outlines and the polling fallback follow the same rule
    for url in ("/api/v1/geo/regions?level=grid&scope=", "/api/v1/wall/recent?scope="):
        for scope in ASKED:
            resp = c.get(url + scope)
            assert resp.status_code == (200 if scope in MAY[who] else 403), (who, url, scope)
            if resp.status_code == 403:
                assert resp.get_json()["error"] == "forbidden" and resp.headers["Cache-Control"] == "no-store"
    # a signed-in body may sit in the browser's cache, never in a shared one
    assert c.get("/api/v1/geo/regions?level=street").headers["Cache-Control"].startswith("private")


@pytest.mark.parametrize("who", sorted(MAY))
def test_access102_a_popup_never_reads_another_streets_event(world, who):
    services, server, token = world
    c = client_as(server, who, token)
    mine = c.get(f"/api/v1/events/{MINE}")
    assert mine.status_code == 200 and mine.get_json()["id"] == MINE and REPORTER not in mine.get_data(as_text=True)
    other = c.get(f"/api/v1/events/{OTHERS}")  # own scope: another street's event reads as absent
    assert other.status_code == (200 if who in SEES_OTHERS else 404)
    forged = c.get(f"/api/v1/events/{OTHERS}?scope={F.OTHER_STREET}")
    assert forged.status_code == (200 if who in SEES_OTHERS else 403)
    if who not in SEES_OTHERS:
        assert OTHERS not in forged.get_data(as_text=True)


def dash_post(client, output: str, inputs: list, state: list | None = None, changed: str | None = None):
    body = {"output": output, "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]}
                                          for o in output.strip(".").split("...")] if output.startswith("..")
            else {"id": output.split(".")[0], "property": output.split(".")[1]},
            "inputs": inputs, "state": state or [], "changedPropIds": [changed] if changed else []}
    return client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")


PANELS = f"..{ids.PANEL_UPDATED}.children...{ids.PANEL_PATCH}.data...{ids.PANEL_HASHES}.data.."
VALUES = f"..{ids.MAP_VALUES}.data...{ids.MAP_BREAKS}.data.."


def panels(client, search: str):
    return dash_post(client, PANELS, [{"id": ids.LIVE_TICK, "property": "data", "value": None},
                                      {"id": ids.URL, "property": "search", "value": search},
                                      {"id": ids.PANEL_REFRESH, "property": "n_intervals", "value": 0}],
                     [{"id": ids.PANEL_HASHES, "property": "data", "value": None}], f"{ids.URL}.search")


def map_values(client, scope: str):
    return dash_post(client, VALUES, [{"id": ids.LIVE_TICK, "property": "data", "value": {"n": 1, "at": 0}},
                                      {"id": ids.MAP_REFRESH, "property": "n_intervals", "value": 1}],
                     [{"id": ids.WALL_CONFIG, "property": "data", "value": {"scope": scope, "lang": "zh"}},
                      {"id": ids.MAP_BREAKS, "property": "data", "value": None}], f"{ids.LIVE_TICK}.data")


def route(client, search: str):
    return dash_post(client, f"{ids.PAGE}.children",
                     [{"id": ids.ROUTE, "property": "data", "value": {"path": "/wall", "search": search}}],
                     changed=f"{ids.ROUTE}.data")


@pytest.mark.parametrize("who", ["secretary", "worker", "wall"])
def test_access103_forged_callbacks_for_another_street_are_refused_and_audited(world, who):
    services, server, token = world
    c = client_as(server, who, token, ip="10.3.3.3")
    actor = "token:1" if who == "wall" else who
    own = F.COMMUNITY if who == "worker" else F.STREET
    assert panels(c, f"?scope={own}").status_code == 200
    assert map_values(c, own).status_code == 200
    shown = route(c, f"?scope={own}")
    assert shown.status_code == 200 and "wall-error" not in shown.get_data(as_text=True)
    for other in (F.OTHER_STREET, F.DISTRICT):
        resp = panels(c, f"?scope={other}")
        assert resp.status_code == 403 and "街道二" not in resp.get_data(as_text=True)
        assert map_values(c, other).status_code == 403
        page = route(c, f"?scope={other}&lang=en").get_data(as_text=True)
        assert "wall-error" in page and "wall-config" not in page and "街道二" not in page and OTHERS not in page
        rows = [r for r in audit.query(services.engine, action=audit.SCOPE_REFUSED, limit=100)
                if r["details"]["requested"] == other]
        assert {(r["actor"], r["ip"]) for r in rows} == {(actor, "10.3.3.3")}
        assert {r["details"]["where"] for r in rows} == {"/_dash-update-component", "/wall"}
    # nothing asked: the callbacks compute the principal's own scope, not everything
    body = panels(c, "").get_data(as_text=True)
    assert "社区一" in body and "街道二" not in body


def test_access104_the_layout_renders_the_referrers_scope_only_inside_the_principals(world):
    services, server, token = world
    c = client_as(server, "secretary", token)
    base = "http://localhost"
    own = c.get("/_dash-layout", headers={"Referer": f"{base}/wall?scope={F.STREET}"}).get_data(as_text=True)
    assert "wall-config" in own and F.STREET in own
    other = c.get("/_dash-layout", headers={"Referer": f"{base}/wall?scope={F.OTHER_STREET}"})
    text = other.get_data(as_text=True)
    assert other.status_code == 200 and "wall-error" in text and "wall-config" not in text and "街道二" not in text
    assert ("secretary", F.OTHER_STREET, "/wall") in refusals(services)
    # a code inside the street that no region has: the page says so in its words, no data, audited
    ghost = F.STREET + "999"
    text = c.get("/_dash-layout", headers={"Referer": f"{base}/wall?scope={ghost}"}).get_data(as_text=True)
    assert "没有这个区划" in text and "wall-config" not in text
    assert c.get(f"/api/v1/geo/points?layer=events&scope={ghost}").status_code == 403
    reasons = {r["details"]["reason"] for r in audit.query(services.engine, action=audit.SCOPE_REFUSED)
               if r["details"]["requested"] == ghost}
    assert reasons == {"unknown"}
    # a rotation's ?within= reaches no further than the principal's scope either
    rot = c.get("/_dash-layout", headers={"Referer": f"{base}/wall?scope={F.STREET}&within={F.DISTRICT}&rotate=30"})
    assert F.OTHER_STREET not in rot.get_data(as_text=True)


def test_access105_a_callback_for_an_output_the_app_has_not_is_refused_logged_and_audited(world, caplog):
    services, server, token = world
    c = client_as(server, "secretary", token)
    for output in ("secret-table.data", f"{ids.PANEL_PATCHED}.data", None):  # unknown; clientside only; none
        resp = dash_post(c, output or "x.y", [], changed=None) if output else c.post(
            "/_dash-update-component", data="{}", content_type="application/json")
        assert resp.status_code == 400 and resp.get_json()["error"] == "unknown_output"
    rows = audit.query(services.engine, action="callback_refused")
    assert [r["details"]["output"] for r in rows] == ["None", f"{ids.PANEL_PATCHED}.data", "secret-table.data"]
    assert {r["actor"] for r in rows} == {"secretary"}
    assert "unknown output" in caplog.text


def open311(client, path: str, **params):
    return client.get("/open311/v2/" + path, query_string=params)


def test_access106_open311_reads_keep_to_a_sessions_scope_and_never_name_the_reporter(world):
    services, server, token = world
    c = client_as(server, "secretary", token)
    listed = open311(c, "requests.json")
    assert listed.status_code == 200 and {r["service_request_id"] for r in listed.get_json()} == {MINE}
    assert open311(c, "requests.json", service_request_id=f"{MINE},{OTHERS}").get_json()[0]["service_request_id"] == MINE
    assert len(open311(c, "requests.json", service_request_id=OTHERS).get_json()) == 0
    assert open311(c, f"requests/{OTHERS}.json").status_code == 404
    assert open311(c, f"requests/{MINE}.json").status_code == 200
    forged = open311(c, "requests.json", scope=F.OTHER_STREET)
    assert forged.status_code == 403 and OTHERS not in forged.get_data(as_text=True)
    assert ("secretary", F.OTHER_STREET, "/open311/v2/requests.json") in refusals(services)
    # a resident's app without a session reads the public record: both, and never who reported
    public = server.test_client()
    for fmt in ("json", "xml"):
        text = open311(public, f"requests.{fmt}").get_data(as_text=True)
        assert MINE in text and OTHERS in text and REPORTER not in text and "reporter" not in text


def test_access107_every_anonymous_data_request_is_refused(world):
    services, server, token = world
    c = server.test_client()
    for url in ("/api/v1/geo/points?layer=events", f"/api/v1/events/{MINE}", "/api/v1/geo/regions?level=grid",
                "/api/v1/wall/recent", "/_dash-layout", "/api/v1/me"):
        assert c.get(url).status_code == 401, url
    assert panels(c, "").status_code == 401
    assert c.get("/wall").status_code == 302
