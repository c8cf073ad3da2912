"""The briefing keeps to the viewer's scope on the server: a street's secretary gets their street's
files and is refused the district's, by URL and through the page's callback. On both stacks."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from callbacks.briefing import folder
from dashboard import ids
from dashboard.briefing import build
from dashboard.briefing import week as weeks
from tests.unit import access_support as A
from tests.unit import feed_support as F

WEEK = "2026-W46"


def made(services, scope: str) -> str:
    b = build.make(services.engine, scope, weeks.parse(WEEK), folder(services), tz=services.settings.timezone,
                   now=datetime(2026, 11, 20, 4, tzinfo=timezone.utc))
    return f"/briefing/files/{b.stem}/{b.files['pdf'].name}"


def preview(client, scope: str) -> str:
    body = {"output": f"{ids.BRIEFING_PREVIEW}.children",
            "outputs": {"id": ids.BRIEFING_PREVIEW, "property": "children"},
            "inputs": [{"id": ids.BRIEFING_REQUEST, "property": "data",
                        "value": {"scope": scope, "week": WEEK, "lang": "en"}}],
            "changedPropIds": [f"{ids.BRIEFING_REQUEST}.data"], "state": []}
    resp = client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return resp.get_data(as_text=True)


def test_brief050_a_street_secretary_gets_their_street_and_not_the_district(stack, make_services):
    # ACCESS_REQUIRED off (on by default since issue 18's scope step): its anonymous viewer sees
    # everything, a signed-in one their scope; brief051 is the same with access required
    services, server = A.app_with_users(make_services, stack, access_required=False)
    district, street = made(services, F.DISTRICT), made(services, F.STREET)
    anonymous = server.test_client()  # ACCESS_REQUIRED off: everything
    assert anonymous.get(district).status_code == 200
    client = server.test_client()
    assert A.sign_in(client, "secretary").status_code == 302
    resp = client.get(street)
    assert resp.status_code == 200 and resp.data[:5] == b"%PDF-"
    assert "attachment" in resp.headers["Content-Disposition"]
    assert client.get(district).status_code == 403
    assert client.get(street.replace(".pdf", ".zip")).status_code == 200
    # the page's callback refuses to make the district's briefing for them, and makes their street's
    assert "refused" in preview(client, F.DISTRICT)
    shown = preview(client, F.STREET)
    assert "refused" not in shown and f"briefing-{F.STREET}-{WEEK}-en.pdf" in shown


def test_brief051_with_sign_in_required_an_anonymous_download_is_refused(stack, make_services):
    services, server = A.app_with_users(make_services, stack, access_required=True)
    street = made(services, F.STREET)
    assert server.test_client().get(street).status_code == 401
    client = server.test_client()
    A.sign_in(client, "worker")  # a community's worker: the street is wider than their scope
    assert client.get(street).status_code == 403
