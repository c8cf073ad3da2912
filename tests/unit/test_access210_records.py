"""One person's or vehicle's record through /api/v1/people/<id> and /api/v1/vehicles/<id>, for each
role: masked by default, in full (audited) only for an administrator, a district operator and a
community worker inside their community; a street secretary masked only; a wall token and an
anonymous viewer nothing; another scope's record absent (audited). On both stacks."""
from __future__ import annotations

import pytest

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
    assert A.sign_in(c, username).status_code == 302
    return c


def test_access210_masked_by_default_for_every_role_that_sees_records(web):
    _, server = web
    for username in ("admin", "operator", "secretary", "worker"):
        got = _client(server, username).get(f"/api/v1/people/{P.INSIDE['id']}")
        assert got.status_code == 200 and got.headers["Cache-Control"] == "no-store"
        rec = got.get_json()["record"]
        assert (rec["name"], rec["id_number"], rec["phone"]) == ("张*峰", "370202********1234", "138****1234")
        assert rec["gender"] == "M" and rec["grid_code"] == F.GRIDS[0] and got.get_json()["revealed"] is False
        car = _client(server, username).get(f"/api/v1/vehicles/{P.CAR['id']}").get_json()["record"]
        assert car["plate"] == "鲁B·***45" and car["kind"] == "car"


def test_access211_reveal_is_full_and_audited_for_the_roles_that_need_it(web):
    services, server = web
    for username in ("admin", "operator", "worker"):
        got = _client(server, username).get(f"/api/v1/people/{P.INSIDE['id']}?reveal=1",
                                            environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert got.status_code == 200 and got.get_json()["revealed"] is True
        rec = got.get_json()["record"]
        assert (rec["name"], rec["id_number"], rec["phone"]) == (P.INSIDE["name"], P.INSIDE["id_number"], P.INSIDE["phone"])
    rows = audit.query(services.engine, action=audit.RECORD_REVEALED)
    assert [r["actor"] for r in rows] == ["worker", "operator", "admin"]  # newest first
    assert all(r["ip"] == "10.9.8.7" and r["details"]["record"] == str(P.INSIDE["id"]) and r["details"]["kind"] == "person"
               and r["details"]["fields"] == ["name", "id_number", "phone"] for r in rows)
    car = _client(server, "operator").get(f"/api/v1/vehicles/{P.CAR['id']}?reveal=1").get_json()
    assert car["record"]["plate"] == P.CAR["plate"]
    assert len(audit.query(services.engine, action=audit.RECORD_REVEALED)) == 4


def test_access212_a_street_secretary_may_not_reveal_and_the_attempt_is_audited(web):
    services, server = web
    got = _client(server, "secretary").get(f"/api/v1/people/{P.INSIDE['id']}?reveal=1")
    assert got.status_code == 403 and P.INSIDE["name"] not in got.get_data(as_text=True)
    (row,) = audit.query(services.engine, action=audit.RECORD_REFUSED)
    assert row["actor"] == "secretary" and row["details"]["reason"] == "reveal_role"
    assert audit.query(services.engine, action=audit.RECORD_REVEALED) == []


def test_access213_another_scope_reads_as_absent_and_is_audited(web):
    services, server = web
    for username in ("worker", "secretary"):  # the other street's resident
        got = _client(server, username).get(f"/api/v1/people/{P.OUTSIDE['id']}?reveal=1"
                                             if username == "worker" else f"/api/v1/people/{P.OUTSIDE['id']}")
        body = got.get_data(as_text=True)
        assert got.status_code == 404 and "李" not in body and P.OUTSIDE["id_number"][-4:] not in body
    reasons = [(r["actor"], r["details"]["reason"]) for r in audit.query(services.engine, action=audit.RECORD_REFUSED)]
    assert reasons == [("secretary", "outside"), ("worker", "outside")]
    # the district operator, whose scope holds both streets, gets it; a wider ?scope= is refused
    assert _client(server, "operator").get(f"/api/v1/people/{P.OUTSIDE['id']}").status_code == 200
    assert _client(server, "worker").get(f"/api/v1/people/{P.INSIDE['id']}?scope={F.STREET}").status_code == 403
    # a narrower ?scope= that does not hold the record: absent
    assert _client(server, "operator").get(f"/api/v1/people/{P.OUTSIDE['id']}?scope={F.STREET}").status_code == 404
    assert _client(server, "admin").get("/api/v1/people/99999").status_code == 404
    assert _client(server, "admin").get("/api/v1/people/not-a-number").status_code == 404


def test_access214_a_wall_token_and_an_anonymous_viewer_get_no_record(web):
    services, server = web
    assert server.test_client().get(f"/api/v1/people/{P.INSIDE['id']}").status_code == 401
    _, token = add_token(services.engine, "hall", F.DISTRICT, actor="test")
    wall = server.test_client()
    assert wall.get(f"/wall?token={token}").status_code in (200, 302)
    for url in (f"/api/v1/people/{P.INSIDE['id']}", f"/api/v1/people/{P.INSIDE['id']}?reveal=1",
                f"/api/v1/vehicles/{P.CAR['id']}"):
        got = wall.get(url)
        assert got.status_code == 403 and "张" not in got.get_data(as_text=True)
    assert {r["details"]["reason"] for r in audit.query(services.engine, action=audit.RECORD_REFUSED)} == {"role"}
