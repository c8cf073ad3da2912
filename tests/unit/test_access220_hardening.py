"""Hardening of every answer (dashboard/access/hardening.py, dashboard/app.py's index): the page's
language, a CSP whose scripts need this request's nonce (no 'unsafe-inline'), the usual security
headers, AG Grid's bundle only on the audit page, and the CSRF rule for cookie-authorised
state-changing requests (Dash's callbacks included). On both stacks."""
from __future__ import annotations

import json
import re

import pytest

from dashboard import ids
from dashboard.access import audit
from tests.unit import access_support as A
from tests.unit import feed_support as F

SCRIPT = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


@pytest.fixture
def web(stack, make_services):
    return A.app_with_users(make_services, stack, access_required=True)


def _client(server, username):
    c = server.test_client()
    assert A.sign_in(c, username).status_code == 302
    return c


def csp(resp) -> dict[str, list[str]]:
    out = {}
    for part in resp.headers["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def test_access220_every_page_declares_its_language(web):
    _, server = web
    admin = _client(server, "admin")
    for path in ("/wall", f"/wall?scope={F.STREET}", "/briefing", "/record?kind=person&id=1", "/audit"):
        sep = "&" if "?" in path else "?"
        zh = admin.get(path).get_data(as_text=True)
        en = admin.get(path + sep + "lang=en").get_data(as_text=True)
        assert '<html lang="zh-CN">' in zh and '<html lang="en">' in en, path
    for path in ("/signin", "/signin?lang=en"):  # A1's page, checked here with the rest
        assert re.search(r'<html lang="(zh-CN|en)">', server.test_client().get(path).get_data(as_text=True))


def test_access221_scripts_run_only_from_this_origin_or_with_the_requests_nonce(web):
    _, server = web
    admin = _client(server, "admin")
    nonces = set()
    for _ in range(2):
        resp = admin.get(f"/wall?scope={F.STREET}")
        policy = csp(resp)
        script_src = policy["script-src"]
        assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src and "'self'" in script_src
        (nonce,) = [v[len("'nonce-"):-1] for v in script_src if v.startswith("'nonce-")]
        nonces.add(nonce)
        tags = SCRIPT.findall(resp.get_data(as_text=True))
        inline = [t for t in tags if " src=" not in t]
        assert len(inline) >= 3  # the wall's prefetch, Dash's config and its renderer's start
        assert all(f'nonce="{nonce}"' in t for t in inline), inline
        assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'self'"] and policy["default-src"] == ["'self'"]
    assert len(nonces) == 2  # a new nonce for every page


def test_access222_security_headers_and_hsts_only_over_https(web):
    _, server = web
    resp = server.test_client().get("/signin")
    assert resp.headers["X-Content-Type-Options"] == "nosniff" and resp.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    assert "geolocation=()" in resp.headers["Permissions-Policy"]
    assert "Strict-Transport-Security" not in resp.headers
    https = server.test_client().get("/signin", base_url="https://localhost")
    assert https.status_code == 200 and "max-age=" in https.headers["Strict-Transport-Security"]
    # never a redirect to https of its own: TLS ends at the proxy, and the demo runs on http
    assert server.test_client().get("/healthz").status_code in (200, 503)


def test_access223_ag_grids_bundle_is_loaded_by_the_audit_page_only(web):
    _, server = web
    admin = _client(server, "admin")
    assert "/dash_ag_grid/" not in admin.get(f"/wall?scope={F.STREET}").get_data(as_text=True)
    assert "/dash_ag_grid/" not in admin.get("/briefing").get_data(as_text=True)
    assert "/dash_ag_grid/dash_ag_grid" in admin.get("/audit").get_data(as_text=True)


def _route(client, path="/wall", search="", **headers):
    body = {"output": f"{ids.PAGE}.children", "outputs": {"id": ids.PAGE, "property": "children"},
            "inputs": [{"id": ids.ROUTE, "property": "data", "value": {"path": path, "search": search}}],
            "changedPropIds": [f"{ids.ROUTE}.data"], "state": []}
    return client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json",
                       headers=headers)


def test_access224_a_cross_site_callback_with_the_session_cookie_is_refused_and_audited(web):
    services, server = web
    client = _client(server, "secretary")
    search = f"?scope={F.STREET}"
    assert _route(client, search=search, **{"Sec-Fetch-Site": "same-origin"}).status_code == 200
    assert _route(client, search=search, Origin="http://localhost").status_code == 200
    assert _route(client, search=search).status_code == 200  # no browser's cross-site request carries neither
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"}):
        resp = _route(client, search=search, **headers)
        assert resp.status_code == 403 and resp.get_json()["error"] == "csrf", headers
    rows = audit.query(services.engine, action=audit.CSRF_REFUSED)
    assert len(rows) == 5 and {r["actor"] for r in rows} == {"secretary"}
    assert {r["details"]["where"] for r in rows} == {"/_dash-update-component"}
    assert rows[-1]["details"]["reason"] == "sec-fetch-site=cross-site"


def test_access225_api_key_apis_are_not_cookie_authorised_so_not_checked_but_rate_limited(stack, make_services):
    services, server = A.app_with_users(make_services, stack, access_required=True, ingest_api_keys="k1",
                                        api_rate_limit="2/minute")
    client = _client(server, "secretary")  # a browser holding a session cookie posts to the ingest API
    answers = [client.post("/api/v1/reports", json={}, headers={"X-API-Key": "k1", "Sec-Fetch-Site": "cross-site"})
               for _ in range(3)]
    assert [a.status_code for a in answers][:2] != [403, 403] and answers[0].get_json().get("error") != "csrf"
    assert answers[2].status_code == 429 and int(answers[2].headers["Retry-After"]) > 0
    assert audit.query(services.engine, action=audit.CSRF_REFUSED) == []
