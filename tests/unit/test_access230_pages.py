"""The administrator's /audit page and the /record page through the app: who gets them, what a forged
callback gets, filters, and the audited "show in full". On both stacks."""
from __future__ import annotations

import json

import pytest

from dashboard import ids
from dashboard.access import audit
from dashboard.access.users import add_token
from tests.unit import access_a3_support as P
from tests.unit import access_support as A
from tests.unit import feed_support as F


@pytest.fixture
def web(stack, make_services):
    services, server = A.app_with_users(make_services, stack, access_required=True)
    P.seed_people(services.engine)
    return services, server


def _client(server, username):
    c = server.test_client()
    assert A.sign_in(c, username, environ_base={"REMOTE_ADDR": "10.1.1.1"}).status_code == 302
    return c


def _post(client, output: str, inputs: list, state: list | None = None) -> str:
    """One callback request; ``output`` one ``id.prop`` or several joined by spaces."""
    outs = output.split()
    outputs = [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in outs]
    body = {"output": outs[0] if len(outs) == 1 else ".." + "...".join(outs) + "..",
            "outputs": outputs[0] if len(outs) == 1 else outputs, "inputs": inputs,
            "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"], "state": state or []}
    resp = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
    assert resp.status_code in (200, 204), resp.get_data(as_text=True)[:300]
    return resp.get_data(as_text=True)


def _route(client, path: str, search: str = "") -> str:
    return _post(client, f"{ids.PAGE}.children",
                 [{"id": ids.ROUTE, "property": "data", "value": {"path": path, "search": search}}])


def grid_rows(answer: str) -> list[dict] | None:
    """The audit grid's rowData in a router callback's answer."""
    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "AgGrid":
                return node["props"]["rowData"]
            return next((r for r in map(walk, node.values()) if r is not None), None)
        if isinstance(node, list):
            return next((r for r in map(walk, node) if r is not None), None)
        return None
    return walk(json.loads(answer))


def test_access230_the_audit_page_is_for_administrators_only(web):
    services, server = web
    assert _client(server, "admin").get("/audit").status_code == 200
    for username in ("operator", "secretary", "worker"):
        resp = _client(server, username).get("/audit", follow_redirects=True)  # to /audit?scope=<theirs>
        assert resp.status_code == 403 and "仅管理员可查看审计日志。" in resp.get_data(as_text=True)
    _, token = add_token(services.engine, "hall", F.DISTRICT, actor="test")
    wall = server.test_client()
    wall.get(f"/wall?token={token}")
    assert wall.get("/audit", follow_redirects=True).status_code == 403
    anonymous = server.test_client().get("/audit")
    assert anonymous.status_code == 302 and anonymous.headers["Location"].startswith("/signin")
    refused = audit.query(services.engine, action=audit.PAGE_REFUSED)
    assert sorted(r["actor"] for r in refused) == ["operator", "secretary", f"token:{1}", "worker"]


def test_access231_a_forged_route_to_the_audit_page_gets_the_refusal_not_the_rows(web):
    _, server = web
    shown = _route(_client(server, "secretary"), "/audit")
    assert "audit-refused" in shown and "signin_ok" not in shown and "10.1.1.1" not in shown
    admin = _route(_client(server, "admin"), "/audit")
    assert "signin_ok" in admin and "10.1.1.1" in admin and ids.AUDIT_GRID in admin


def test_access232_the_audit_page_filters_by_who_what_and_when(web):
    _, server = web
    admin = _client(server, "admin")
    _client(server, "secretary").get(f"/api/v1/people/{P.INSIDE['id']}?reveal=1")  # refused: audited
    only = grid_rows(_route(admin, "/audit", "?action=record_refused"))
    assert only and {r["action"] for r in only} == {"record_refused"} and only[0]["actor"] == "secretary"
    assert {r["actor"] for r in grid_rows(_route(admin, "/audit", "?actor=secretary"))} == {"secretary"}
    assert grid_rows(_route(admin, "/audit", "?since=2999-01-01")) == []
    assert grid_rows(_route(admin, "/audit", "?until=2000-01-01&period=all")) == []
    assert "secretary" in {r["actor"] for r in grid_rows(_route(admin, "/audit", "?period=1d"))}
    bad = _route(admin, "/audit", "?since=yesterday")
    assert "2026-12-06" in bad  # the page says how a date looks


def test_access233_the_record_page_masks_and_reveals_once_audited(web):
    services, server = web
    search = f"?kind=person&id={P.INSIDE['id']}"
    secretary = _route(_client(server, "secretary"), "/record", search)
    assert "张*峰" in secretary and "370202********1234" in secretary and ids.RECORD_REVEAL not in secretary
    assert P.INSIDE["name"] not in secretary
    worker = _client(server, "worker")
    page = _route(worker, "/record", search)
    assert "张*峰" in page and ids.RECORD_REVEAL in page and P.INSIDE["phone"] not in page
    request = {"kind": "person", "id": str(P.INSIDE["id"]), "scope": "", "lang": "zh"}
    shown = _post(worker, f"{ids.RECORD_FIELDS}.children {ids.RECORD_NOTE}.children", [{"id": ids.RECORD_REVEAL, "property": "n_clicks", "value": 1}],
                  [{"id": ids.RECORD_REQUEST, "property": "data", "value": request}])
    assert P.INSIDE["name"] in shown and P.INSIDE["id_number"] in shown and P.INSIDE["phone"] in shown
    (row,) = audit.query(services.engine, action=audit.RECORD_REVEALED)
    assert (row["actor"], row["details"]["where"], row["details"]["record"]) == ("worker", "/record", str(P.INSIDE["id"]))
    # the same callback forged by the street secretary, and by the worker for the other street's resident
    forged = _post(_client(server, "secretary"), f"{ids.RECORD_FIELDS}.children {ids.RECORD_NOTE}.children",
                   [{"id": ids.RECORD_REVEAL, "property": "n_clicks", "value": 1}],
                   [{"id": ids.RECORD_REQUEST, "property": "data", "value": request}])
    assert P.INSIDE["name"] not in forged
    other = dict(request, id=str(P.OUTSIDE["id"]))
    forged = _post(worker, f"{ids.RECORD_FIELDS}.children {ids.RECORD_NOTE}.children", [{"id": ids.RECORD_REVEAL, "property": "n_clicks", "value": 1}],
                   [{"id": ids.RECORD_REQUEST, "property": "data", "value": other}])
    assert P.OUTSIDE["name"] not in forged and P.OUTSIDE["id_number"] not in forged
    assert len(audit.query(services.engine, action=audit.RECORD_REVEALED)) == 1
    assert [r["details"]["reason"] for r in audit.query(services.engine, action=audit.RECORD_REFUSED)] == \
        ["outside", "reveal_role"]
