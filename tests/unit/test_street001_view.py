"""The street secretary's view (/street): its figures are kpi's, its lists hold no personal field,
its callback serves only the signed-in scope (a forged drill-down or config naming another street
gets a 403, audited, and no data), and a street secretary lands on it. On both stacks."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from dashboard import ids, inplace, kpi
from dashboard import synthetic_city as sc
from dashboard.access import audit
from dashboard.access.users import add_user
from dashboard.app import create_app
from dashboard.store.schema import hazard
from dashboard.street import FIGURES, district_average, view_data
from layouts import street as layout
from tests.unit import access_support as A

DISTRICT, MINE, OTHER = "370202", "370202001", "370202002"
MY_COMMUNITY = "370202001001"
TZ = "Asia/Shanghai"
PRIVATE = ("reporter", "address", "description", "handler")
# a hazard under rectification in the case engine's states (kpi.HAZARD_OPEN; "open" before it named them)
OPEN_HAZARD = tuple(getattr(kpi, "HAZARD_OPEN", ("open",)))[0]


@pytest.fixture
def city(stack, make_services):
    """Three streets of two communities of four grids; 120 events (80 % open), hazards (some overdue)."""
    svc = make_services(*stack)
    rows = sc.city_regions(streets=3, communities=2, grids=4)
    sc.insert_regions(svc.engine, rows)
    sc.insert_events(svc.engine, rows, 120, open_share=0.8)
    sc.insert_hazards(svc.engine, rows, 12)  # deadlines ahead
    past = datetime.now(timezone.utc) - timedelta(days=9)
    grids = [r.code for r in rows if r.level == "grid"]
    late = [{"id": f"late{i}", "grid_code": grids[i * 5 % len(grids)], "kind": "hydrant", "state": OPEN_HAZARD,
             "lon": None, "lat": None, "description": "隐患", "found_at": past, "deadline_at": past + timedelta(days=i + 1),
             "updated_at": past, "last_seq": 1} for i in range(5)]
    # rectified after its deadline: past it, but no longer open, so in no list and no count
    late.append({**late[0], "id": "fixed", "grid_code": MY_COMMUNITY + "001", "state": "rectified",
                 "rectified_at": past + timedelta(days=3)})
    with svc.engine.begin() as conn:
        conn.execute(hazard.insert(), late)
    for username, role, scope in (("secretary", "street_secretary", MINE), ("operator", "district_operator", DISTRICT)):
        add_user(svc.engine, username, A.PASSWORD, role, scope, actor="test")
    return svc, rows


def names_of(rows, level):
    return {r.code: r.name for r in rows if r.level == level}


def test_street001_the_figures_are_kpis_and_the_ranking_holds_the_streets_communities(city):
    svc, rows = city
    now = datetime.now(timezone.utc)
    data = view_data(svc.engine, MINE, now, TZ)
    t0, t1 = kpi.day_bounds(now, TZ)
    opened = kpi.open_counts(svc.engine, MINE, now)
    assert data["name"] == "第1街道" and data["level"] == "street" and data["ranking_level"] == "community"
    assert data["figures"]["open"] == opened["open"] > 0 and data["figures"]["overdue"] == opened["overdue"]
    assert data["figures"]["reported"] == kpi.flow_counts(svc.engine, MINE, t0, t1)["reported"]
    assert data["figures"]["hazards_overdue"] == kpi.hazard_counts(svc.engine, MINE, now, t0, t1)["overdue"]
    assert data["figures"]["response_rate"] == kpi.rates(svc.engine, MINE, t0, t1)["response_rate"]["rate"]
    mine = {c for c in names_of(rows, "community") if c.startswith(MINE)}
    assert {r["code"] for r in data["ranking"]} == mine  # the street's communities, and only them
    assert data["ranking"] == kpi.ranking(svc.engine, MINE, now, *kpi.days_bounds(now, TZ, kpi.SANLING_DAYS))
    # every listed row is in the street, and none carries a personal field
    for part in (*data["lists"].values(), data["hazards"]):
        for r in part["rows"]:
            assert r["grid_code"].startswith(MINE)
            assert not set(r) & set(PRIVATE), set(r) & set(PRIVATE)
    assert data["lists"]["overdue"]["total"] == opened["overdue"]
    assert data["hazards"]["total"] == data["figures"]["hazards_overdue"] > 0  # kpi's count, listed
    assert "fixed" not in {r["id"] for r in data["hazards"]["rows"]}
    days = [r["overdue_days"] for r in data["hazards"]["rows"]]
    assert days == sorted(days, reverse=True) and all(d > 0 for d in days)


def test_street002_the_district_average_is_the_districts_figure_per_unit_of_the_level(city):
    svc, rows = city
    now = datetime.now(timezone.utc)
    whole = view_data(svc.engine, DISTRICT, now, TZ)["figures"]
    avg = district_average(svc.engine, DISTRICT, "street", now, TZ)
    assert avg["units"] == 3 and avg["district_name"] == "测试区"
    for k in FIGURES:
        if k in ("response_rate", "on_time_rate"):
            assert avg[k] == whole[k]
        else:
            assert avg[k] == round(whole[k] / 3, 1), k
    by_community = district_average(svc.engine, DISTRICT, "community", now, TZ)
    assert by_community["units"] == 6 and by_community["open"] == round(whole["open"] / 6, 1)


def test_street003_a_drill_down_moves_every_panel_to_the_community(city):
    svc, rows = city
    now = datetime.now(timezone.utc)
    data = view_data(svc.engine, MY_COMMUNITY, now, TZ)
    assert data["name"] == "1街1社区" and data["level"] == "community" and data["parent_name"] == "第1街道"
    assert data["ranking_level"] == "grid" and {r["code"][:12] for r in data["ranking"]} == {MY_COMMUNITY}
    assert data["figures"]["open"] == kpi.open_counts(svc.engine, MY_COMMUNITY, now)["open"]
    avg = district_average(svc.engine, DISTRICT, "community", now, TZ)
    built = layout.panels(data, avg, "zh")
    text = json.dumps(inplace.tree(built[ids.STREET_UNIT]) + inplace.tree(built[ids.STREET_FIGURES]), ensure_ascii=False)
    assert "1街1社区" in text and "区均" in text and "6 个社区" in text
    ranking = json.dumps(inplace.tree(built[ids.STREET_RANKING]), ensure_ascii=False)
    assert "网格排名" in ranking and f'"data-drill": "{MY_COMMUNITY}001"' in ranking


def _client(server, username):
    c = server.test_client()
    resp = A.sign_in(c, username)
    assert resp.status_code == 302, resp.status_code
    return c, resp


def _refresh(client, drill, cfg_scope, lang="zh"):
    outs = [f"{pid}.tree" for pid in ids.STREET_PANELS] + [f"{ids.STREET_UPDATED}.children", f"{ids.STREET_HASHES}.data"]
    body = {"output": ".." + "...".join(outs) + "..",
            "outputs": [{"id": o.split(".")[0], "property": o.split(".")[1]} for o in outs],
            "inputs": [{"id": ids.STREET_DRILL, "property": "data", "value": drill},
                       {"id": ids.LIVE_TICK, "property": "data", "value": {"n": 1, "at": 0}},
                       {"id": ids.STREET_REFRESH, "property": "n_intervals", "value": 0}],
            "state": [{"id": ids.WALL_CONFIG, "property": "data", "value": {"scope": cfg_scope, "lang": lang}},
                      {"id": ids.STREET_HASHES, "property": "data", "value": {}}],
            "changedPropIds": [f"{ids.STREET_DRILL}.data"]}
    return client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")


def test_street004_a_forged_refresh_for_another_street_gets_403_audited_and_no_data(city):
    svc, rows = city
    server = create_app(svc.settings, svc).server
    c, landing = _client(server, "secretary")
    assert landing.headers["Location"] == f"/street?scope={MINE}"  # the role's landing page
    other_names = {n for code, n in {**names_of(rows, "street"), **names_of(rows, "community")}.items()
                   if not code.startswith(MINE)}
    own = _refresh(c, MY_COMMUNITY, MINE)
    assert own.status_code == 200
    body = own.get_data(as_text=True)
    assert "1街1社区" in body and not [n for n in other_names if n in body]
    forged = _refresh(c, OTHER + "001", OTHER)  # the config itself names another street
    assert forged.status_code == 403 and "2街1社区" not in forged.get_data(as_text=True)
    # a drill-down outside the page's street falls back to the street, never to the other one
    beside = _refresh(c, OTHER + "001", MINE)
    text = beside.get_data(as_text=True)
    assert beside.status_code == 200 and "第1街道" in text and not [n for n in other_names if n in text]
    refused = audit.query(svc.engine, action=audit.SCOPE_REFUSED)
    assert {(r["actor"], r["details"]["where"]) for r in refused} == {("secretary", "/street")}
    # the district's operator may look at any street of the district
    op, _ = _client(server, "operator")
    assert _refresh(op, OTHER + "001", OTHER).status_code == 200


def test_street005_the_page_shows_the_street_and_no_other_and_drops_dashs_loading_word(city):
    svc, rows = city
    server = create_app(svc.settings, svc).server
    c, _ = _client(server, "secretary")
    html_page = c.get(f"/street?scope={MINE}")
    assert html_page.status_code == 200
    text = html_page.get_data(as_text=True)
    assert "Loading..." not in text and 'class="st-boot"' in text
    assert "Loading..." in c.get(f"/wall?scope={MINE}").get_data(as_text=True)  # other pages keep theirs
    layout_json = c.get("/_dash-layout", headers={"Referer": f"http://localhost/street?scope={MINE}"}).get_data(
        as_text=True)
    assert "第1街道" in layout_json and "街道书记视图" in layout_json and "1街1社区" in layout_json
    others = {n for code, n in {**names_of(rows, "street"), **names_of(rows, "community"),
                                **names_of(rows, "grid")}.items() if not code.startswith(MINE)}
    assert not [n for n in others if n in layout_json]
    en = c.get("/_dash-layout", headers={"Referer": f"http://localhost/street?scope={MINE}&lang=en"}).get_data(
        as_text=True)
    assert "Street secretary's view" in en and "District avg" in en


def test_street006_a_scope_wider_than_a_street_lists_the_streets_to_choose_from(city):
    svc, rows = city
    server = create_app(svc.settings, svc).server
    op, _ = _client(server, "operator")
    layout_json = op.get("/_dash-layout", headers={"Referer": "http://localhost/street"}).get_data(
        as_text=True).replace("\\u002f", "/")
    for code, name in names_of(rows, "street").items():
        assert name in layout_json and f"/street?scope={code}" in layout_json


def test_street007_panels_are_text_never_html():
    now = datetime.now(timezone.utc)
    evil = "<img src=x onerror=alert(1)>"
    data = {"scope": MINE, "name": evil, "level": "street", "parent_name": None, "now": now, "tz": TZ,
            "figures": {k: 1 for k in FIGURES}, "ranking": [{"rank": 1, "code": MY_COMMUNITY, "name": evil, "open": 1,
                                                              "overdue": 1, "closed": 0, "on_time": 0,
                                                              "on_time_rate": None}],
            "ranking_days": 30, "ranking_level": "community",
            "lists": {k: {"total": 0, "rows": []} for k in ("overdue", "urgent", "due")},
            "hazards": {"total": 0, "rows": []}, "names": {}}
    trees = {k: inplace.tree(v) for k, v in layout.panels(data, None, "zh").items()}
    blob = json.dumps(trees, ensure_ascii=False)
    # text nodes: Elements (dashboard/components) never parses text as HTML
    assert trees[ids.STREET_UNIT][0][0] == "h2" and trees[ids.STREET_UNIT][0][2] == evil
    assert "<img" not in json.dumps([n for n in _tags(trees)])


def _tags(node):
    """Every element's tag in a tree (text nodes skipped)."""
    if isinstance(node, dict):
        for v in node.values():
            yield from _tags(v)
    elif isinstance(node, list) and node and isinstance(node[0], str) and len(node) > 1 and isinstance(node[1], dict):
        yield node[0]
        for kid in node[2:]:
            yield from _tags(kid)
    elif isinstance(node, list):
        for kid in node:
            yield from _tags(kid)
