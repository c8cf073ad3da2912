"""The live push knows who is asking (issue 18): /api/v1/live on the production server (uvicorn, the
ASGI front, the hub) and the Flask route WSGI servers use. Anonymous: 401; another street: 403 and
an audit row; nothing asked: the principal's own scope, and only its deltas; a revoked wall token's
channel ends within 5 s. On both stacks."""
from __future__ import annotations

import http.client
import time

import pytest

from dashboard.access import audit
from dashboard.access.users import add_token, revoke_token, set_disabled
from dashboard.api import live
from dashboard.app import create_app
from dashboard.feed.consumer import Consumer
from dashboard.web.asgi import make_asgi
from tests.integration.wallkit import UvicornThread, free_port
from tests.unit import access_support as A
from tests.unit import feed_support as F
from tests.unit.test_feed004_live import parse_sse

REVOKED_WITHIN_S = 5.0  # the bound: a revoked wall's channel ends within it


@pytest.fixture
def served(stack, make_services):
    services, server = A.app_with_users(make_services, stack, access_required=True)  # the default
    asgi = make_asgi(create_app(services.settings, services))
    port = free_port(18100)
    srv = UvicornThread(asgi, port).start()
    try:
        yield services, port, asgi
    finally:
        srv.stop()


def cookie_of(services, username: str) -> str:
    client = create_app(services.settings, services).server.test_client()
    assert A.sign_in(client, username).status_code == 302
    return "session=" + client.get_cookie("session").value


class Live:
    """One open /api/v1/live request, read as it comes."""

    def __init__(self, port: int, query: str = "", cookie: str | None = None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Accept": "text/event-stream", **({"Cookie": cookie} if cookie else {})}
        self.conn.request("GET", "/api/v1/live" + (f"?{query}" if query else ""), headers=headers)
        self.resp = self.conn.getresponse()
        self.events: list[dict] = []
        self.buf = ""
        self.ended = False

    @property
    def status(self) -> int:
        return self.resp.status

    def read_until(self, done, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while not done(self.events):
            assert time.monotonic() < end, f"timed out; got {self.events[-5:]}"
            try:
                chunk = self.resp.read1(65536).decode()
            except (ConnectionError, http.client.IncompleteRead, OSError):
                chunk = ""
            if not chunk:
                self.ended = True
                return
            self.buf += chunk
            if "\n\n" in self.buf:
                head, _, self.buf = self.buf.rpartition("\n\n")
                self.events.extend(parse_sse(head + "\n\n"))

    def hello(self) -> dict:
        self.read_until(lambda evs: any(e["event"] == "hello" for e in evs))
        return next(e["data"] for e in self.events if e["event"] == "hello")

    def deltas(self) -> list[dict]:
        return [d for e in self.events if e["event"] is None and e["data"] for d in e["data"]]

    def close(self) -> None:
        self.conn.close()


def refusal_rows(services) -> list[tuple]:
    return [(r["actor"], r["details"]["requested"], r["details"]["where"])
            for r in audit.query(services.engine, action=audit.SCOPE_REFUSED)]


def test_access110_the_push_serves_each_principal_its_scope_and_refuses_wider(served):
    services, port, _ = served
    anonymous = Live(port, f"scope={F.STREET}")
    assert anonymous.status == 401
    secretary = cookie_of(services, "secretary")
    for other in (F.OTHER_STREET, F.DISTRICT):
        page = Live(port, f"scope={other}", cookie=secretary)
        assert page.status == 403
        page.close()
    assert refusal_rows(services) == [("secretary", F.DISTRICT, "/api/v1/live"),
                                      ("secretary", F.OTHER_STREET, "/api/v1/live")]
    own = Live(port, "", cookie=secretary)  # nothing asked: the street, not everything
    assert own.status == 200 and own.hello()["scope"] == F.STREET
    narrower = Live(port, f"scope={F.COMMUNITY}", cookie=secretary)
    assert narrower.hello()["scope"] == F.COMMUNITY
    admin = Live(port, "", cookie=cookie_of(services, "admin"))
    assert admin.hello()["scope"] == ""
    F.xadd_all(services.redis, [F.reported("push-mine", 0), F.reported("push-other", 3)])
    Consumer(services, name="access110").run(burst=True)
    admin.read_until(lambda evs: {"push-mine", "push-other"} <= {d["id"] for d in admin.deltas()})
    own.read_until(lambda evs: "push-mine" in {d["id"] for d in own.deltas()})
    time.sleep(0.5)  # anything more the hub had for this page would have come with it
    own.read_until(lambda evs: True)
    assert {d["id"] for d in own.deltas() if d["k"] == "event"} == {"push-mine"}
    assert all(d["g"].startswith(F.STREET) for d in own.deltas())
    for p in (anonymous, own, narrower, admin):
        p.close()


def test_access111_a_revoked_wall_token_ends_its_live_channel_within_5_s(served):
    services, port, asgi = served
    tid, token = add_token(services.engine, "hall-3", F.STREET, actor="admin")
    wall = Live(port, f"token={token}")
    assert wall.status == 200 and wall.hello()["scope"] == F.STREET
    other = Live(port, f"token={token}&scope={F.OTHER_STREET}")
    assert other.status == 403
    bystander = Live(port, "", cookie=cookie_of(services, "operator"))
    assert bystander.hello()["scope"] == F.DISTRICT
    revoke_token(services.engine, tid, actor="admin")
    # the bound as the wait: read_until fails if the stream is still open after it
    wall.read_until(lambda evs: False, timeout=REVOKED_WITHIN_S)  # returns once the server ends it
    assert wall.ended
    assert asgi.guard.ended == 1
    again = Live(port, f"token={token}")
    assert again.status == 401
    # the operator's page stays open: it still gets its pings
    n = len(bystander.events)
    bystander.read_until(lambda evs: len(evs) > n)
    assert not bystander.ended
    # a disabled user's page ends the same way
    set_disabled(services.engine, "operator", True, actor="admin")
    bystander.read_until(lambda evs: False, timeout=REVOKED_WITHIN_S)
    assert bystander.ended
    for p in (wall, other, bystander, again):
        p.close()


def test_access112_the_flask_route_checks_scope_and_ends_a_revoked_stream(stack, make_services):
    services, server = A.app_with_users(make_services, stack, access_required=True)  # the default
    client = server.test_client()
    assert client.get(f"/api/v1/live?scope={F.STREET}").status_code == 401
    A.sign_in(client, "secretary")
    resp = client.get(f"/api/v1/live?scope={F.OTHER_STREET}")
    assert resp.status_code == 403 and resp.get_json()["error"] == "forbidden"
    assert refusal_rows(services) == [("secretary", F.OTHER_STREET, "/api/v1/live")]
    resp = client.get("/api/v1/live", buffered=False)
    assert resp.status_code == 200
    first = next(resp.response).decode()
    while "hello" not in first:
        first = next(resp.response).decode()
    assert f'"scope":"{F.STREET}"' in first
    resp.close()
    # the generator re-checks its principal: a revoked token's stream stops on its own
    tid, token = add_token(services.engine, "hall-4", F.STREET, actor="admin")
    from dashboard.access.identity import identify_token

    p = identify_token(services, token)
    gen = live.stream(services, F.STREET, None, principal_id=p.get_id(), max_seconds=60)
    assert "hello" in next(gen) + next(gen)
    revoke_token(services.engine, tid, actor="admin")
    started = time.monotonic()
    rest = list(gen)  # ends by itself, long before max_seconds
    assert time.monotonic() - started <= REVOKED_WITHIN_S and all("data: [" not in x for x in rest)
