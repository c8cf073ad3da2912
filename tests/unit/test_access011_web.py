"""Sign-in through the Flask app: the form and its CSRF token, one message for every failure, cookie
flags, idle expiry, sign-out, wall tokens, the ACCESS_REQUIRED gate, the rate limit, and the ASGI
side's reading of the same cookie (identify_from_cookie). On both stacks."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from dashboard.access import audit
from dashboard.access.identity import identify_asgi, identify_from_cookie, identify_token
from dashboard.access.users import add_token, revoke_token, set_password
from tests.unit import access_support as A
from tests.unit import feed_support as F


@pytest.fixture
def web(stack, make_services):
    return A.app_with_users(make_services, stack)


@pytest.fixture
def gated(stack, make_services):
    return A.app_with_users(make_services, stack, access_required=True, ingest_api_keys="k-gated")


def _cookie(resp) -> str:
    return next(v for k, v in resp.headers.items() if k == "Set-Cookie" and v.startswith("session="))


def _session_cookie_value(client) -> str:
    return client.get_cookie("session").value


def test_access011_the_sign_in_page_is_chinese_by_default_english_on_request(web):
    _, server = web
    client = server.test_client()
    zh = client.get("/signin").get_data(as_text=True)
    assert '<html lang="zh-CN">' in zh and "用户名" in zh and "密码" in zh and 'name="csrf_token"' in zh
    en = client.get("/signin?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in en and "User name" in en and "Password" in en and 'action="/signin?lang=en"' in en


def test_access012_signing_in_lands_on_the_scope_and_audits_the_address(web):
    services, server = web
    client = server.test_client()
    resp = A.sign_in(client, "secretary", environ_base={"REMOTE_ADDR": "10.2.3.4"})
    # a street secretary's landing page is their street's view (/street, issue 18 item 3)
    assert resp.status_code == 302 and resp.headers["Location"] == f"/street?scope={F.STREET}"
    me = client.get("/api/v1/me").get_json()
    assert me == {"name": "secretary", "kind": "user", "role": "street_secretary", "scope": F.STREET,
                  "effective_scope": F.STREET}
    resp = client.get(f"/api/v1/me?scope={F.COMMUNITY}")
    assert resp.get_json()["effective_scope"] == F.COMMUNITY
    assert "Set-Cookie" not in resp.headers  # not re-sent on every request, only as the idle clock moves
    (row,) = audit.query(services.engine, action=audit.SIGNIN_OK)
    assert (row["actor"], row["ip"], row["details"]["scope"]) == ("secretary", "10.2.3.4", F.STREET)
    # a next= on this site is followed, one elsewhere is not
    other = server.test_client()
    assert A.sign_in(other, "admin", next="/wall?lang=en").headers["Location"] == "/wall?lang=en"
    other = server.test_client()
    assert A.sign_in(other, "admin", next="//evil.example/x").headers["Location"] == "/wall"


def test_access013_unknown_user_and_wrong_password_get_the_same_answer(web):
    services, server = web
    answers = []
    for name, password in (("nobody", A.PASSWORD), ("secretary", "not the password")):
        resp = A.sign_in(server.test_client(), name, password)
        answers.append((resp.status_code, A.message(resp)))
    assert answers[0] == answers[1] == (401, "用户名或密码错误，或账户已暂时锁定。")
    reasons = [r["details"]["reason"] for r in audit.query(services.engine, action=audit.SIGNIN_FAILED)]
    assert reasons == ["wrong_password", "unknown_user"]


def test_access014_a_locked_account_answers_like_a_wrong_password(stack, make_services):
    services, server = A.app_with_users(make_services, stack, access_max_failures=2)
    client = server.test_client()
    for _ in range(2):
        assert A.sign_in(client, "secretary", "wrong!wrong!").status_code == 401
    resp = A.sign_in(client, "secretary")  # right password, locked account
    assert resp.status_code == 401 and A.message(resp) == "用户名或密码错误，或账户已暂时锁定。"
    assert client.get("/api/v1/me").status_code == 401
    assert audit.query(services.engine, action=audit.SIGNIN_FAILED, limit=1)[0]["details"]["reason"] == "locked"


def test_access015_a_post_without_its_csrf_token_signs_no_one_in(web):
    services, server = web
    client = server.test_client()
    client.get("/signin")
    for data in ({"username": "secretary", "password": A.PASSWORD},
                 {"username": "secretary", "password": A.PASSWORD, "csrf_token": "forged"}):
        resp = client.post("/signin", data=data)
        assert resp.status_code == 400 and A.message(resp) == "页面已过期，请重新登录。"
    assert client.get("/api/v1/me").status_code == 401
    assert audit.query(services.engine, action=audit.SIGNIN_OK) == []


def test_access016_session_cookie_flags_secure_only_over_https_unless_set(stack, make_services):
    services, server = A.app_with_users(make_services, stack)
    plain = _cookie(A.sign_in(server.test_client(), "admin"))
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain and "Expires=" in plain
    https = server.test_client()
    token = A.CSRF_RE.search(https.get("/signin", base_url="https://localhost").get_data(as_text=True)).group(1)
    resp = https.post("/signin", base_url="https://localhost", headers={"Referer": "https://localhost/signin"},
                      data={"csrf_token": token, "username": "admin", "password": A.PASSWORD})
    assert resp.status_code == 302 and "; Secure" in _cookie(resp)


@pytest.mark.parametrize("mode,https,secure", [("true", False, True), ("false", True, False)])
def test_access017_session_cookie_secure_setting_forces_the_flag(tmp_path, embedded_redis, make_services,
                                                                 mode, https, secure):
    stack = (f"sqlite:///{tmp_path / 'a.db'}", embedded_redis.url)
    _, server = A.app_with_users(make_services, stack, session_cookie_secure=mode)
    base = "https://localhost" if https else "http://localhost"
    client = server.test_client()
    token = A.CSRF_RE.search(client.get("/signin", base_url=base).get_data(as_text=True)).group(1)
    resp = client.post("/signin", base_url=base, headers={"Referer": base + "/signin"},
                       data={"csrf_token": token, "username": "admin", "password": A.PASSWORD})
    assert resp.status_code == 302 and ("; Secure" in _cookie(resp)) is secure


def test_access018_an_idle_session_expires(gated):
    services, server = gated
    client = server.test_client()
    A.sign_in(client, "secretary")
    assert client.get("/api/v1/me").status_code == 200
    # a request moves the idle clock (the cookie is re-sent once it is a minute old)
    with client.session_transaction() as sess:
        sess["seen"] = time.time() - services.settings.access_idle_minutes * 60 + 30
    resp = client.get("/api/v1/me")
    assert resp.status_code == 200 and "Set-Cookie" in resp.headers
    with client.session_transaction() as sess:
        assert time.time() - sess["seen"] < 30
        sess["seen"] = time.time() - services.settings.access_idle_minutes * 60 - 5
    resp = client.get(f"/wall?scope={F.STREET}")
    assert resp.status_code == 302 and urlsplit(resp.headers["Location"]).path == "/signin"
    assert parse_qs(urlsplit(resp.headers["Location"]).query)["idle"] == ["1"]
    assert client.get("/api/v1/me").status_code == 401
    (row,) = audit.query(services.engine, action=audit.SESSION_EXPIRED)
    assert row["actor"] == "secretary"
    assert "长时间未操作" in client.get("/signin?idle=1").get_data(as_text=True)


def test_access019_sign_out_needs_its_form_and_ends_the_session(web):
    services, server = web
    client = server.test_client()
    A.sign_in(client, "worker")
    page = client.get("/signout").get_data(as_text=True)
    assert "worker" in page and "社区工作者" in page
    assert client.post("/signout", data={}).status_code == 400  # no CSRF token: still signed in
    assert client.get("/api/v1/me").status_code == 200
    token = A.CSRF_RE.search(page).group(1)
    resp = client.post("/signout", data={"csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/signin?out=1")
    assert client.get("/api/v1/me").status_code == 401
    assert [r["action"] for r in audit.query(services.engine, actor="worker")][:2] == [audit.SIGNOUT, audit.SIGNIN_OK]


def test_access020_access_off_keeps_todays_pages_open_and_cookie_free(stack, make_services):
    _, server = A.app_with_users(make_services, stack, access_required=False)  # on by default now
    client = server.test_client()
    resp = client.get("/wall")
    assert resp.status_code == 200 and "Set-Cookie" not in resp.headers
    assert "Cookie" not in resp.headers.get("Vary", "")


def test_access021_access_required_sends_anonymous_pages_to_sign_in_and_refuses_data(gated):
    services, server = gated
    client = server.test_client()
    resp = client.get("/wall?scope=370202001")
    assert resp.status_code == 302
    loc = urlsplit(resp.headers["Location"])
    assert loc.path == "/signin" and parse_qs(loc.query)["next"] == ["/wall?scope=370202001"]
    assert client.get("/_dash-layout").status_code == 401
    assert client.get("/api/v1/geo/regions?scope=370202").status_code == 401
    assert client.get("/healthz").status_code in (200, 503)
    assert client.get("/signin").status_code == 200
    # the API-key APIs keep their own authentication: reached (and judged by it), not sent to sign-in
    assert client.post("/api/v1/reports", json={}, headers={"X-API-Key": "k-gated"}).status_code == 422
    resp = client.post("/api/v1/reports", json={})
    assert resp.status_code == 401 and "API key" in resp.get_json()["message"]  # the API's answer, not sign-in's
    assert client.get("/open311/v2/services.json").status_code == 200


def test_access022_a_signed_in_street_secretary_gets_their_street_and_no_other(gated):
    services, server = gated
    client = server.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    A.sign_in(client, "secretary")
    resp = client.get("/wall?lang=en")
    assert resp.status_code == 302 and parse_qs(urlsplit(resp.headers["Location"]).query) == {
        "lang": ["en"], "scope": [F.STREET]}
    assert client.get(f"/wall?scope={F.STREET}").status_code == 200
    assert client.get(f"/wall?scope={F.COMMUNITY}").status_code == 200  # narrower
    for wider_or_beside in (F.DISTRICT, F.OTHER_STREET):
        resp = client.get(f"/wall?scope={wider_or_beside}")
        assert resp.status_code == 403 and A.message(resp) == f"无权查看该范围：{wider_or_beside}"
    assert client.get(f"/api/v1/me?scope={F.OTHER_STREET}").status_code == 403
    rows = audit.query(services.engine, action=audit.SCOPE_REFUSED)
    assert [(r["actor"], r["ip"], r["details"]["requested"], r["details"]["where"]) for r in rows] == [
        ("secretary", "10.9.9.9", F.OTHER_STREET, "/api/v1/me"), ("secretary", "10.9.9.9", F.OTHER_STREET, "/wall"),
        ("secretary", "10.9.9.9", F.DISTRICT, "/wall")]
    # an administrator (no scope) is not redirected and may look anywhere
    admin = server.test_client()
    A.sign_in(admin, "admin")
    assert admin.get("/wall").status_code == 200 and admin.get(f"/wall?scope={F.OTHER_STREET}").status_code == 200


def test_access023_a_wall_token_signs_the_wall_in_until_it_is_revoked(gated):
    services, server = gated
    tid, token = add_token(services.engine, "hall-1", F.STREET, actor="admin")
    wall = server.test_client()
    resp = wall.get(f"/wall?token={token}")
    assert resp.status_code == 302 and "token" not in resp.headers["Location"]
    assert parse_qs(urlsplit(resp.headers["Location"]).query)["scope"] == [F.STREET]
    assert wall.get(f"/wall?scope={F.STREET}").status_code == 200  # the session carries it now
    assert wall.get("/api/v1/me").get_json()["role"] == "wall"
    assert wall.get(f"/wall?scope={F.OTHER_STREET}").status_code == 403
    revoke_token(services.engine, tid, actor="admin")
    assert wall.get("/api/v1/me").status_code == 401
    assert wall.get(f"/wall?scope={F.STREET}").status_code == 302  # back to sign-in
    resp = server.test_client().get(f"/wall?token={token}")
    assert resp.status_code == 403 and A.message(resp) == "大屏令牌无效或已撤销。"
    actions = [r["action"] for r in audit.query(services.engine)]
    assert audit.TOKEN_REFUSED in actions and audit.SESSION_REFUSED in actions and audit.TOKEN_SIGNIN in actions


def test_access024_sign_in_attempts_are_rate_limited_with_retry_after(stack, make_services):
    services, server = A.app_with_users(make_services, stack, signin_rate_limit="3/minute")
    assert len(server.extensions["limiter"]) == 1  # the APIs' limiter, not a second one
    client = server.test_client()
    codes = [A.sign_in(client, "secretary", "wrong!wrong!").status_code for _ in range(3)]
    resp = A.sign_in(client, "secretary")
    assert codes == [401, 401, 401] and resp.status_code == 429
    assert int(resp.headers["Retry-After"]) > 0 and A.message(resp) == "尝试次数过多，请稍后再试。"
    assert client.get("/api/v1/me").status_code == 401  # the right password did not get through
    # another address is not held back
    assert A.sign_in(server.test_client(), "admin", environ_base={"REMOTE_ADDR": "10.7.7.7"}).status_code == 302


def test_access025_the_asgi_side_reads_the_same_session_cookie(web, tmp_path):
    services, server = web
    client = server.test_client()
    A.sign_in(client, "secretary")
    value = _session_cookie_value(client)
    p = identify_from_cookie(services, f"theme=dark; session={value}")
    assert (p.name, p.role, p.scope) == ("secretary", "street_secretary", F.STREET)
    asgi_scope = {"type": "http", "headers": [(b"cookie", f"session={value}".encode())], "query_string": b""}
    assert identify_asgi(services, asgi_scope) == p
    tampered = value[:-2] + ("AA" if value[-2:] != "AA" else "BB")
    for header in (None, "", "session=", f"session={tampered}", "session=abc.def.ghi", 'session="x', "other=1"):
        assert identify_from_cookie(services, header) is None, header
    # a session idle too long is refused here too
    with client.session_transaction() as sess:
        sess["seen"] = time.time() - services.settings.access_idle_minutes * 60 - 5
    assert identify_from_cookie(services, f"session={_session_cookie_value(client)}") is None
    # a new password ends the session on this side as on Flask's
    A.sign_in(client, "secretary")
    value = _session_cookie_value(client)
    assert identify_from_cookie(services, f"session={value}") is not None
    set_password(services.engine, "secretary", "another password 9", actor="test")
    assert identify_from_cookie(services, f"session={value}") is None
    # wall tokens: ?token= on the push URL
    tid, token = add_token(services.engine, "hall-2", F.COMMUNITY, actor="admin")
    assert identify_token(services, token).scope == F.COMMUNITY
    by_query = identify_asgi(services, {"type": "http", "headers": [], "query_string": f"scope=1&token={token}".encode()})
    assert by_query.kind == "token" and by_query.scope == F.COMMUNITY
    revoke_token(services.engine, tid, actor="admin")
    assert identify_token(services, token) is None
