"""The wall's server side: scoped queries, the cached compressed geometry/points API, the page config."""
from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import shapely
from sqlalchemy import bindparam, select

from dashboard import synthetic_city as sc
from dashboard import kpi, wall_data
from dashboard.app import create_app
from dashboard.geo.coords import wgs84_to_gcj02
from dashboard.store.schema import event, hazard, house, patrol, region, resident_summary
from tests.conftest import signed_in_client

STREET = "370202002"
TZ = "Asia/Shanghai"


@pytest.fixture
def city(stack, make_services):
    svc = make_services(*stack)
    rows = sc.city_regions(streets=3, communities=2, grids=4)
    sc.insert_regions(svc.engine, rows)
    events = sc.insert_events(svc.engine, rows, 120, open_share=0.75)
    # Reports carry a reporter (a pseudonymous id, as the APIs store it), so a check that the
    # reporter never leaves the server has something to find if it did.
    for e in events:
        e["reporter"] = f"rep-{e['id']}-13800138000"
    with svc.engine.begin() as conn:
        conn.execute(event.update().where(event.c.id == bindparam("eid")).values(reporter=bindparam("rep")),
                     [{"eid": e["id"], "rep": e["reporter"]} for e in events])
    hazards = sc.insert_hazards(svc.engine, rows, 12)
    sc.insert_positions(svc.engine, rows, 15)
    sc.insert_assets(svc.engine, rows, 60)
    app = create_app(svc.settings, svc)
    # ACCESS_REQUIRED is on: a signed-in administrator sees every scope, as the anonymous client did
    return svc, rows, events, hazards, signed_in_client(app.server, svc.engine)


def decode(col: dict) -> list[dict]:
    out = []
    x = y = 0
    for i in range(col["n"]):
        p = {k: (col["d"][k][v[i]] if k in col["d"] else v[i]) for k, v in col["c"].items()}
        for k in col.get("tc", []):
            p[k] = None if p[k] is None else col["t0"] + 60 * p[k]
        x, y = (x + col["x"][i], y + col["y"][i]) if col.get("steps") else (col["x"][i], col["y"][i])
        p["lon"] = (col["x0"] + x) / col["q"]
        p["lat"] = (col["y0"] + y) / col["q"]
        out.append(p)
    return out


def get_json(client, url, **headers):
    resp = client.get(url, headers=headers)
    assert resp.status_code == 200, resp.data[:300]
    body = resp.data
    if resp.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    elif resp.headers.get("Content-Encoding") == "br":
        import brotli
        body = brotli.decompress(body)
    return resp, json.loads(body)


def test_wall001_regions_geojson_is_scoped_simplified_and_rounded(city):
    svc, rows, *_ = city
    fc = wall_data.regions_geojson(svc.engine, "grid", STREET)
    codes = [f["properties"]["c"] for f in fc["features"]]
    expected = sorted(r.code for r in rows if r.level == "grid" and r.code.startswith(STREET))
    assert codes == expected
    assert [f["properties"]["i"] for f in fc["features"]] == list(range(len(expected)))
    by_code = {r.code: r.geom for r in rows}
    for f in fc["features"]:
        flat = np.array(f["geometry"]["coordinates"][0])
        assert np.allclose(flat, np.round(flat, 6))
        shape = shapely.geometry.shape(f["geometry"])
        # simplified, but within a couple of metres of the stored polygon
        assert shape.symmetric_difference(by_code[f["properties"]["c"]]).area < by_code[f["properties"]["c"]].area * 0.01


def test_wall002_geometry_endpoint_compresses_caches_and_revalidates(city):
    svc, rows, *_ , client = city
    url = f"/api/v1/geo/regions?level=grid&scope={STREET}"
    resp, fc = get_json(client, url, **{"Accept-Encoding": "gzip"})
    assert resp.headers["Content-Encoding"] == "gzip"
    assert "max-age" in resp.headers["Cache-Control"]
    assert len(fc["features"]) == 8
    etag = resp.headers["ETag"]
    again = client.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert again.status_code == 304
    plain = client.get(url)
    assert "Content-Encoding" not in plain.headers and json.loads(plain.data) == fc
    # a boundary change makes a new version: the cached body is not served again
    from dashboard.store.regions import upsert_regions
    grid = next(r for r in rows if r.level == "grid" and r.code.startswith(STREET))
    grid.name = "改名网格"
    with svc.engine.begin() as conn:
        upsert_regions(conn, [grid])
    resp2, fc2 = get_json(client, url)
    assert resp2.headers["ETag"] != etag
    assert "改名网格" in [f["properties"]["n"] for f in fc2["features"]]


@pytest.mark.parametrize("url, word", [
    ("/api/v1/geo/regions?level=grid&scope=abc", "scope"),
    ("/api/v1/geo/regions?level=planet", "level"),
    ("/api/v1/geo/regions?level=grid&crs=bd09", "crs"),
    ("/api/v1/geo/points?layer=people", "layer"),
    ("/api/v1/geo/points?layer=events&scope=37;drop", "scope"),
])
def test_wall003_bad_parameters_get_a_400_naming_them(city, url, word):
    client = city[-1]
    resp = client.get(url)
    assert resp.status_code == 400
    assert word in resp.get_json()["error"]


def test_wall004_open_events_are_scoped_columnar_and_exact(city):
    svc, rows, events, _, client = city
    _, col = get_json(client, f"/api/v1/geo/points?layer=events&scope={STREET}", **{"Accept-Encoding": "br, gzip"})
    got = {p["id"]: p for p in decode(col)}
    want = {e["id"]: e for e in events if e["grid_code"].startswith(STREET) and e["state"] != "closed"}
    assert set(got) == set(want) and got
    for eid, p in got.items():
        assert p["g"].startswith(STREET)
        assert abs(p["lon"] - want[eid]["lon"]) < 1e-5 and abs(p["lat"] - want[eid]["lat"]) < 1e-5
        assert p["lvl"] == want[eid]["level"] and p["st"] == want[eid]["state"]
        assert p["urg"] == (1 if want[eid]["urgent"] else 0)
        assert abs(p["dl"] - want[eid]["deadline_at"].timestamp()) <= 30  # whole minutes
    # what a popup adds comes from /api/v1/events/<id>, not from the layer
    assert set(col["c"]) == {"id", "lvl", "urg", "st", "dl", "g"}
    # rows run grid by grid, and the coordinates are steps from the previous row
    grids = [p["g"] for p in decode(col)]
    assert grids == sorted(grids) and col["steps"] == 1 and min(col["x"][1:]) < 0 <= col["x"][0]
    # nothing outside the scope anywhere in the body
    other = [e["id"] for e in events if not e["grid_code"].startswith(STREET)]
    raw = client.get(f"/api/v1/geo/points?layer=events&scope={STREET}").data.decode()
    assert not any(f'"{eid}"' in raw for eid in other)


def test_wall005_gcj02_shifts_points_and_regions_consistently(city):
    svc, rows, events, hazards, client = city
    _, col = get_json(client, f"/api/v1/geo/points?layer=hazards&scope={STREET}&crs=gcj02")
    want = {h["id"]: h for h in hazards if h["grid_code"].startswith(STREET)}
    got = decode(col)
    assert {p["id"] for p in got} == set(want)
    for p in got:
        glon, glat = wgs84_to_gcj02(want[p["id"]]["lon"], want[p["id"]]["lat"])
        assert abs(p["lon"] - glon) < 1e-5 and abs(p["lat"] - glat) < 1e-5
        assert abs(p["lon"] - want[p["id"]]["lon"]) > 1e-4  # the shift is real (hundreds of metres)
    _, wgs = get_json(client, f"/api/v1/geo/regions?level=street&scope={STREET}&crs=wgs84")
    _, gcj = get_json(client, f"/api/v1/geo/regions?level=street&scope={STREET}&crs=gcj02")
    a = np.array(wgs["features"][0]["geometry"]["coordinates"][0])
    b = np.array(gcj["features"][0]["geometry"]["coordinates"][0])
    sx, sy = wgs84_to_gcj02(a[:, 0], a[:, 1])
    assert np.allclose(b[:, 0], sx, atol=2e-6) and np.allclose(b[:, 1], sy, atol=2e-6)


def local_noon(t: datetime) -> datetime:
    """Noon of t's local day (Asia/Shanghai, no DST): hours away from either midnight."""
    day = kpi.local_date(t, TZ)
    return kpi.day_start(day, TZ) + timedelta(hours=12)


def patrol_rows(grids_at: list[tuple[str, datetime]]) -> list[dict]:
    return [{"id": f"pw{i:04d}", "staff_code": f"stf{i:05d}", "grid_code": g, "at": at,
             "checklist": '{"elevator":"ok"}', "issues": 0} for i, (g, at) in enumerate(grids_at)]


def test_wall006_grid_measures_match_the_rows(city):
    svc, rows, events, hazards, _ = city
    now = local_noon(datetime.now(timezone.utc))
    grids = sorted(r.code for r in rows if r.level == "grid" and r.code.startswith(STREET))
    other = next(r.code for r in rows if r.level == "grid" and not r.code.startswith(STREET))
    today = kpi.day_bounds(now, TZ)[0]
    with svc.engine.begin() as conn:
        # today: three of the street's grids and one grid elsewhere; a fourth grid only yesterday (local)
        conn.execute(patrol.insert(), patrol_rows([(grids[0], now), (grids[2], today + timedelta(minutes=1)),
                                                   (grids[5], now - timedelta(hours=1)), (other, now),
                                                   (grids[3], today - timedelta(minutes=1))]))
        conn.execute(region.update().where(region.c.code == grids[1]).values(population=0))  # a school grid
    m = wall_data.grid_measures(svc.engine, STREET, now=now, tz=TZ)
    assert m["n"] == len(grids) == 8
    open_states = {"closed"}
    start = kpi.day_start(kpi.local_date(now, TZ) - timedelta(days=29), TZ)
    for i, code in enumerate(grids):
        mine = [e for e in events if e["grid_code"] == code]
        assert m["open"][i] == sum(e["state"] not in open_states for e in mine)
        # 超期: the clock running (a suspended case's is stopped) and the deadline passed
        assert m["overdue"][i] == sum(e["state"] not in open_states and e["state"] != "suspended"
                                      and e["deadline_at"] < now for e in mine)
        assert m["hazards"][i] == sum(h["grid_code"] == code for h in hazards)
        recent = sum(start <= e["reported_at"] < now + timedelta(days=1) for e in mine)
        if code == grids[1]:
            assert m["per1000"][i] is None  # no residents: no rate, never 0
        else:
            assert recent and m["per1000"][i] == pytest.approx(1000 * recent / 1000, abs=0.005)
    assert [g for g, p in zip(grids, m["patrolled"]) if p] == [grids[0], grids[2], grids[5]]
    assert None not in m["breaks"]["per1000"]
    # the map's arrays are kpi.grid_measures in grid order: one definition of each figure
    per_grid = kpi.grid_measures(svc.engine, STREET, now, TZ)
    assert list(per_grid) == grids
    assert m["per1000"] == [per_grid[g]["per_1000"] for g in grids]
    assert m["patrolled"] == [int(per_grid[g]["patrolled"]) for g in grids]
    assert kpi.patrols(svc.engine, STREET, *kpi.day_bounds(now, TZ))["grids_patrolled"] == sum(m["patrolled"])


def test_wall061_grid_measures_follow_now_and_local_days(city):
    """"Today" and the 30 days are local days of ``now``, not of the server's clock, and not a
    rolling 30 x 24 h: the map, the panels and a briefing computed for another moment agree."""
    svc, rows, events, *_ = city
    grids = sorted(r.code for r in rows if r.level == "grid" and r.code.startswith(STREET))
    real = datetime.now(timezone.utc)
    with svc.engine.begin() as conn:
        conn.execute(patrol.insert(), patrol_rows([(grids[0], real)]))
    tomorrow = local_noon(real + timedelta(days=1))
    m = wall_data.grid_measures(svc.engine, STREET, now=tomorrow, tz=TZ)
    assert sum(m["patrolled"]) == 0  # patrolled on the wall clock's day, not on tomorrow's
    assert wall_data.grid_measures(svc.engine, STREET, now=local_noon(real), tz=TZ)["patrolled"][0] == 1
    # 30 local days: an event a minute before the window's first local midnight is out, one a
    # minute after it is in (a rolling 30 x 24 h window from noon would count both)
    now = local_noon(real + timedelta(days=40))
    first = kpi.day_start(kpi.local_date(now, TZ) - timedelta(days=29), TZ)
    g = grids[4]
    with svc.engine.begin() as conn:
        conn.execute(event.insert(), [{
            "id": eid, "grid_code": g, "category": "order", "level": 3, "urgent": False, "state": "closed",
            "source": "grid_patrol", "occurred_at": at, "reported_at": at, "closed_at": at, "updated_at": at,
            "last_seq": 1} for eid, at in (("before-window", first - timedelta(minutes=1)),
                                          ("in-window", first + timedelta(minutes=1)))])
    m = wall_data.grid_measures(svc.engine, STREET, now=now, tz=TZ)
    assert m["per1000"][grids.index(g)] == pytest.approx(1.0)  # one event per 1,000 residents
    assert sum(m["per1000"]) == pytest.approx(1.0)  # the fixture's events are weeks older


def test_wall007_people_layers_carry_counts_never_names_or_plates(city):
    svc, rows, _, _, client = city
    _, kp = get_json(client, f"/api/v1/geo/points?layer=keypop&scope={STREET}")
    _, veh = get_json(client, f"/api/v1/geo/points?layer=vehicles&scope={STREET}")
    _, hs = get_json(client, f"/api/v1/geo/points?layer=houses&scope={STREET}")
    assert "name" not in kp["c"] and "plate" not in veh["c"]
    assert not any("鲁B" in str(v) for v in json.dumps(veh, ensure_ascii=False).split(","))
    with svc.engine.connect() as conn:
        want_kp = conn.execute(select(resident_summary.c.elderly_alone)
                               .where(resident_summary.c.grid_code.startswith(STREET))).scalars().all()
        want_rental = conn.execute(select(house.c.id).where(house.c.grid_code.startswith(STREET),
                                                            house.c.use == "rental")).scalars().all()
    assert sum(kp["c"]["elderly_alone"]) == sum(want_kp)
    assert sum(hs["c"]["r"]) == len(want_rental)


def test_wall008_events_body_follows_the_store(city):
    svc, rows, events, _, client = city
    url = f"/api/v1/geo/points?layer=events&scope={STREET}"
    _, before = get_json(client, url)
    grid = next(r for r in rows if r.level == "grid" and r.code.startswith(STREET))
    now = datetime.now(timezone.utc)
    with svc.engine.begin() as conn:
        conn.execute(event.insert(), [{
            "id": "late-arrival", "grid_code": grid.code, "category": "safety", "level": 1, "urgent": True,
            "state": "reported", "source": "whistle", "lon": grid.geom.centroid.x, "lat": grid.geom.centroid.y,
            "occurred_at": now, "reported_at": now, "updated_at": now + timedelta(seconds=1), "last_seq": 1}])
    _, after = get_json(client, url)
    assert after["n"] == before["n"] + 1
    assert "late-arrival" in after["c"]["id"]


def test_wall043_events_body_does_not_change_with_the_clock(city, monkeypatch):
    """The time base comes from the data: the same rows give the same body (and cache entry, and
    ETag) a minute later; it used to be the current minute, so every cache entry expired each minute."""
    svc, _rows, events, _, _client = city
    first = wall_data.point_layer(svc.engine, "events", STREET)
    version = wall_data.layer_version(svc.engine, "events", STREET)
    real = datetime

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return real.now(tz) + timedelta(minutes=7)

    monkeypatch.setattr(wall_data, "datetime", Later)
    assert wall_data.point_layer(svc.engine, "events", STREET) == first
    assert wall_data.layer_version(svc.engine, "events", STREET) == version
    mine = [e for e in events if e["grid_code"].startswith(STREET) and e["state"] != "closed"]
    earliest = min(e["deadline_at"] for e in mine if e["deadline_at"])  # the only time column
    assert first["t0"] == int(earliest.timestamp()) // 60 * 60
    # the earliest time is the smallest offset: whole minutes from t0, its own minute
    assert min(v for k in first["tc"] for v in first["c"][k] if v is not None) \
        == round((earliest.timestamp() - first["t0"]) / 60)


@pytest.mark.parametrize("scope", ["", STREET])
def test_wall044_keyed_aggregates_equal_the_grouped_rows(city, scope):
    """store.aggregate reads a grouped query as one JSON row, on SQLite and PostgreSQL alike."""
    from sqlalchemy import func

    from dashboard.store.aggregate import keyed, listed
    from dashboard.store.scope import in_scope

    svc = city[0]
    grouped = (select(event.c.grid_code, func.count(), func.max(event.c.level))
               .where(in_scope(event.c.grid_code, scope)).group_by(event.c.grid_code))
    single = select(event.c.grid_code, func.count()).where(in_scope(event.c.grid_code, scope)).group_by(event.c.grid_code)
    with svc.engine.connect() as conn:
        rows = conn.execute(grouped).all()
        assert keyed(conn, grouped) == {g: [n, lvl] for g, n, lvl in rows}
        assert keyed(conn, single) == {g: n for g, n, _ in rows}
        assert sorted(listed(conn, select(event.c.grid_code).distinct().where(in_scope(event.c.grid_code, scope)))) \
            == sorted(g for g, _, _ in rows)
        nothing = select(event.c.grid_code, func.count()).where(event.c.grid_code == "none").group_by(event.c.grid_code)
        assert keyed(conn, nothing) == {}
        assert listed(conn, select(event.c.grid_code).where(event.c.grid_code == "none")) == []


def test_wall009_wall_page_config_is_scoped_and_localised(city):
    svc, rows, events, *_ = city
    from callbacks.wall import build_config, wall_page

    cfg = build_config(svc, STREET, "en", {"rotate": "60", "layers": "vehicles,bogus"})
    assert cfg["root"]["code"] == STREET and cfg["rotate"] == 60 and cfg["shown"] == ["vehicles"]
    assert cfg["tick_ms"] == 1000 and build_config(svc, STREET, "en", {"tick": "200"})["tick_ms"] == 1000
    assert build_config(svc, STREET, "en", {"tick": "5000", "crs": "gcj02"})["crs"] == "gcj02"
    flat = [u for k, u in cfg["urls"].items() if isinstance(u, str)]
    flat += [u for k, v in cfg["urls"].items() if isinstance(v, dict) for u in v.values()]
    assert all(u.endswith(f"scope={STREET}") or f"scope={STREET}&" in u for u in flat)
    assert cfg["parts"] == [STREET] and cfg["offsets"] == {STREET: 0}
    district = build_config(svc, "", "zh", {})
    assert district["parts"] == ["370202001", "370202002", "370202003"]
    assert district["offsets"] == {"370202001": 0, "370202002": 8, "370202003": 16}
    assert district["groups"] == {"370202001": ["370202001", "370202002", "370202003"]}  # one clustered layer
    assert cfg["groups"] == {STREET: [STREET]}
    assert all(code.startswith(STREET) or STREET.startswith(code) for code in cfg["names"])
    assert all(e["g"].startswith(STREET) for e in cfg["ticker"])
    assert cfg["labels"]["cat"]["safety"] == "Safety"
    assert cfg["n_grids"] == 8 and len(cfg["values"]["open"]) == 8
    assert "Rental" in json.dumps(cfg["labels"])
    bad = wall_page(svc, {"scope": "<script>"}, "zh")
    assert "不是区划编码" in str(bad.children)
    missing = wall_page(svc, {"scope": "999999"}, "en")
    assert "no region" in str(missing.children)


def test_wall010_hazards_layer_lists_only_open_hazards(city):
    svc, rows, _, hazards, client = city
    closed = hazards[0]["id"]
    with svc.engine.begin() as conn:
        conn.execute(hazard.update().where(hazard.c.id == closed).values(
            state="rectified", updated_at=datetime.now(timezone.utc) + timedelta(seconds=2)))
    _, col = get_json(client, "/api/v1/geo/points?layer=hazards")
    ids_ = set(col["c"]["id"])
    assert closed not in ids_ and len(ids_) == len(hazards) - 1


def test_wall046_polling_fallback_returns_changes_since_in_scope(city):
    svc, rows, events, _, client = city
    since = datetime.now(timezone.utc)
    inside = next(r for r in rows if r.level == "grid" and r.code.startswith(STREET))
    outside = next(r for r in rows if r.level == "grid" and not r.code.startswith(STREET))
    later = since + timedelta(seconds=1)
    with svc.engine.begin() as conn:
        for eid, g in (("poll-in", inside), ("poll-out", outside)):
            conn.execute(event.insert(), [{
                "id": eid, "grid_code": g.code, "category": "order", "level": 2, "urgent": False,
                "state": "reported", "source": "hotline_12345", "lon": g.geom.centroid.x, "lat": g.geom.centroid.y,
                "occurred_at": later, "reported_at": later, "updated_at": later, "last_seq": 1}])
    from urllib.parse import quote
    body = client.get(f"/api/v1/wall/recent?scope={STREET}&since={quote(since.isoformat())}").get_json()
    assert [d["id"] for d in body["deltas"]] == ["poll-in"]
    assert body["deltas"][0]["k"] == "event" and body["deltas"][0]["g"] == inside.code
    again = client.get(f"/api/v1/wall/recent?scope={STREET}&since={quote(body['until'])}").get_json()
    assert again["deltas"] == []
    assert client.get("/api/v1/wall/recent?since=yesterday").status_code == 400
    assert client.get("/api/v1/wall/recent?since=2026-01-01T00:00:00").status_code == 400


def test_wall045_event_popup_details_are_scoped_and_never_name_the_reporter(city):
    svc, rows, events, _, client = city
    inside = next(e for e in events if e["grid_code"].startswith(STREET))
    outside = next(e for e in events if not e["grid_code"].startswith(STREET))
    resp = client.get(f"/api/v1/events/{inside['id']}?scope={STREET}")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    got = resp.get_json()
    assert (got["id"], got["g"], got["cat"], got["src"], got["lvl"]) == (
        inside["id"], inside["grid_code"], inside["category"], inside["source"], inside["level"])
    assert datetime.fromisoformat(got["at"]) == inside["reported_at"]
    assert inside["reporter"] and "reporter" not in got and inside["reporter"] not in resp.get_data(as_text=True)
    # nor in the map layer, the ticker or the polling fallback
    for url in (f"/api/v1/geo/points?layer=events&scope={STREET}", "/api/v1/wall/recent?since=2000-01-01T00:00:00Z"):
        body = client.get(url).get_data(as_text=True)
        assert inside["id"] in body and "rep-" not in body
    # another street's event reads as absent: a scoped wall cannot probe for it
    for url in (f"/api/v1/events/{outside['id']}?scope={STREET}", f"/api/v1/events/nope?scope={STREET}"):
        resp = client.get(url)
        assert resp.status_code == 404 and resp.get_json()["error"] == "not_found"
    assert client.get(f"/api/v1/events/{outside['id']}?scope=").status_code == 200  # the district sees it
    assert client.get(f"/api/v1/events/{inside['id']}?scope=abc").status_code == 400
