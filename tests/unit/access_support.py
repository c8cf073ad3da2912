"""Helpers for the access tests: a store with the small feed district, users, and a test client
that signs in through the real form (CSRF token and all)."""
from __future__ import annotations

import re

from dashboard.access.users import add_user
from dashboard.app import create_app
from tests.unit import feed_support as F

PASSWORD = "correct horse 42"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
MESSAGE_RE = re.compile(r'<p class="message" role="alert">([^<]*)</p>')


def app_with_users(make_services, stack, **settings):
    """(services, flask app) on ``stack`` with the feed district's regions and one user per role."""
    db_url, redis_url = stack
    services = make_services(db_url, redis_url, **settings)
    F.seed_regions(services.engine)
    for username, role, scope in (("admin", "administrator", ""), ("operator", "district_operator", F.DISTRICT),
                                  ("secretary", "street_secretary", F.STREET),
                                  ("worker", "community_worker", F.COMMUNITY)):
        add_user(services.engine, username, PASSWORD, role, scope, actor="test")
    app = create_app(services.settings, services)
    return services, app.server


def csrf(client, path: str = "/signin") -> str:
    page = client.get(path).get_data(as_text=True)
    m = CSRF_RE.search(page)
    assert m, page[:500]
    return m.group(1)


def sign_in(client, username: str, password: str = PASSWORD, **kw):
    token = csrf(client)
    return client.post("/signin", data={"csrf_token": token, "username": username, "password": password,
                                        "next": kw.pop("next", "")}, **kw)


def message(resp) -> str | None:
    m = MESSAGE_RE.search(resp.get_data(as_text=True))
    return m.group(1) if m else None
