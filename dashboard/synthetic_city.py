"""Synthetic jurisdictions and feed rows of any size, for the wall's tests and benches.

``city_regions`` tiles a rectangle near Qingdao exactly: streets are vertical
strips, communities horizontal bands inside them, grids the Voronoi cells of
random seeds clipped to their community (so grids look like survey polygons,
with 5–8 vertices, and tile their parent with no gap or overlap). The demo
district (``dashboard.demo.seed``) is the realistic one; this is for scale.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import shapely
from shapely.geometry import MultiPoint, box

from .domain import CATEGORIES, FACILITY_KINDS, HAZARD_KINDS, OPEN_STATES, SOURCES
from .store.regions import RegionRow, upsert_regions
from .store.schema import building, event, facility, hazard, house, patrol, position, resident_summary, vehicle

BBOX = (120.30, 36.03, 120.48, 36.11)


def city_regions(district: str = "370202", streets: int = 3, communities: int = 2, grids: int = 4,
                 bbox=BBOX, seed: int = 1, name: str = "测试区", total_grids: int | None = None) -> list[RegionRow]:
    """district -> streets -> communities (per street) -> grids (per community, or total_grids spread evenly)."""
    rng = np.random.default_rng(seed)
    n_comm = streets * communities
    per = [grids] * n_comm if total_grids is None else [
        total_grids // n_comm + (1 if i < total_grids % n_comm else 0) for i in range(n_comm)]
    x0, y0, x1, y1 = bbox
    rows = [RegionRow(district, name, "district", box(*bbox), households=0, population=0)]
    sw = (x1 - x0) / streets
    for s in range(streets):
        scode = f"{district}{s + 1:03d}"
        sbox = box(x0 + s * sw, y0, x0 + (s + 1) * sw, y1)
        rows.append(RegionRow(scode, f"第{s + 1}街道", "street", sbox, parent_code=district))
        ch = (y1 - y0) / communities
        for c in range(communities):
            ccode = f"{scode}{c + 1:03d}"
            cbox = box(sbox.bounds[0], y0 + c * ch, sbox.bounds[2], y0 + (c + 1) * ch)
            rows.append(RegionRow(ccode, f"{s + 1}街{c + 1}社区", "community", cbox, parent_code=scode))
            for k, cell in enumerate(_cells(cbox, per[s * communities + c], rng)):
                rows.append(RegionRow(f"{ccode}{k + 1:03d}", f"{s + 1}街{c + 1}社区{k + 1:03d}网格", "grid", cell,
                                      parent_code=ccode, kind="basic", households=500, population=1000))
    return rows


def _cells(poly, n: int, rng) -> list:
    if n == 1:
        return [poly]
    minx, miny, maxx, maxy = poly.bounds
    cols = max(1, int(round(np.sqrt(n * (maxx - minx) / (maxy - miny)))))
    rows_ = int(np.ceil(n / cols))
    pts = []
    for i in range(n):
        cx = minx + (i % cols + 0.5 + rng.uniform(-0.3, 0.3)) * (maxx - minx) / cols
        cy = miny + (i // cols + 0.5 + rng.uniform(-0.3, 0.3)) * (maxy - miny) / rows_
        pts.append((cx, cy))
    cells = shapely.voronoi_polygons(MultiPoint(pts), extend_to=poly.buffer(0.01), ordered=True)
    out = [shapely.intersection(c, poly) for c in shapely.get_parts(cells)]
    return [c for c in out if not c.is_empty]


def insert_regions(engine, rows: list[RegionRow]) -> None:
    with engine.begin() as conn:
        upsert_regions(conn, rows)


def _points_in(grids: list[RegionRow], n: int, rng) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """n points, each inside a random grid's polygon (rejection sampling, centroid fallback)."""
    which = rng.integers(0, len(grids), n)
    lon = np.empty(n)
    lat = np.empty(n)
    for gi in np.unique(which):
        sel = np.nonzero(which == gi)[0]
        g = grids[gi].geom
        minx, miny, maxx, maxy = g.bounds
        xs = rng.uniform(minx, maxx, len(sel) * 3)
        ys = rng.uniform(miny, maxy, len(sel) * 3)
        ok = shapely.contains_xy(g, xs, ys)
        xs, ys = xs[ok], ys[ok]
        c = g.representative_point()
        if len(xs) < len(sel):
            xs = np.concatenate([xs, np.full(len(sel) - len(xs), c.x)])
            ys = np.concatenate([ys, np.full(len(sel) - len(ys), c.y)])
        lon[sel] = xs[:len(sel)]
        lat[sel] = ys[:len(sel)]
    return lon, lat, [grids[i].code for i in which]


def insert_events(engine, rows: list[RegionRow], n: int, seed: int = 2, now: datetime | None = None,
                  open_share: float = 1.0, prefix: str = "ev") -> list[dict]:
    rng = np.random.default_rng(seed)
    now = now or datetime.now(timezone.utc)
    grids = [r for r in rows if r.level == "grid"]
    lon, lat, codes = _points_in(grids, n, rng)
    cats = list(CATEGORIES)
    srcs = list(SOURCES)
    values = []
    for i in range(n):
        cat = cats[rng.integers(len(cats))]
        subs = list(CATEGORIES[cat][4])
        at = now - timedelta(minutes=float(rng.uniform(1, 60 * 24 * 3)))
        is_open = rng.random() < open_share
        state = OPEN_STATES[rng.integers(len(OPEN_STATES))] if is_open else "closed"
        values.append({
            "id": f"{prefix}{i:06d}", "grid_code": codes[i], "category": cat, "subcategory": subs[rng.integers(len(subs))],
            "level": int(rng.choice([1, 2, 3], p=[0.1, 0.3, 0.6])), "urgent": bool(rng.random() < 0.05),
            "state": state, "source": srcs[rng.integers(len(srcs))], "lon": float(lon[i]), "lat": float(lat[i]),
            "address": f"测试路{i % 97 + 1}号", "description": f"测试事件{i}：楼道堆放杂物，需要清理",
            "handler": ["社区网格员", "街道城管科", "区住建局"][i % 3], "occurred_at": at, "reported_at": at,
            "deadline_at": at + timedelta(hours=CATEGORIES[cat][3]), "closed_at": None if is_open else now,
            "updated_at": now, "last_seq": 1, "escalations": 0, "reopened": 0,
        })
    with engine.begin() as conn:
        for i in range(0, n, 2000):
            conn.execute(event.insert(), values[i:i + 2000])
    return values


def insert_hazards(engine, rows: list[RegionRow], n: int, seed: int = 3, now: datetime | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    now = now or datetime.now(timezone.utc)
    grids = [r for r in rows if r.level == "grid"]
    lon, lat, codes = _points_in(grids, n, rng)
    kinds = list(HAZARD_KINDS)
    # found a day ago and ordered at once with a deadline (machine.HAZARD_RULES), as hazard.found does
    values = [{"id": f"hz{i:05d}", "grid_code": codes[i], "kind": kinds[i % len(kinds)], "state": "ordered",
               "lon": float(lon[i]), "lat": float(lat[i]), "description": "隐患",
               "found_at": now - timedelta(days=1), "ordered_at": now - timedelta(days=1),
               "deadline_at": now + timedelta(days=2 + i % 5), "updated_at": now, "last_seq": 1} for i in range(n)]
    with engine.begin() as conn:
        if values:
            conn.execute(hazard.insert(), values)
    return values


def insert_positions(engine, rows: list[RegionRow], n: int, seed: int = 4, now: datetime | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    now = now or datetime.now(timezone.utc)
    grids = [r for r in rows if r.level == "grid"]
    lon, lat, codes = _points_in(grids, n, rng)
    values = [{"actor_id": f"{'veh' if i % 10 == 0 else 'stf'}{i:05d}", "actor_kind": "vehicle" if i % 10 == 0 else "staff",
               "grid_code": codes[i], "lon": float(lon[i]), "lat": float(lat[i]), "at": now} for i in range(n)]
    with engine.begin() as conn:
        if values:
            conn.execute(position.insert(), values)
    return values


def insert_patrols(engine, grid_codes: list[str], now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(patrol.insert(), [{"id": f"pt{i:05d}", "staff_code": f"stf{i:05d}", "grid_code": g, "at": now,
                                        "checklist": '{"elevator":"ok"}', "issues": 0}
                                       for i, g in enumerate(grid_codes)])


def insert_assets(engine, rows: list[RegionRow], buildings: int, seed: int = 5) -> None:
    """Buildings with houses (some rental/vacant), resident summaries with key-population counts,
    vehicles and facilities: about 4 point rows per building in total across the layers."""
    rng = np.random.default_rng(seed)
    grids = [r for r in rows if r.level == "grid"]
    lon, lat, codes = _points_in(grids, buildings, rng)
    b_rows, h_rows, r_rows, v_rows, f_rows = [], [], [], [], []
    fkinds = list(FACILITY_KINDS)
    for i in range(buildings):
        bid = i + 1
        b_rows.append({"id": bid, "code": f"b{bid:07d}", "name": f"{bid}号楼", "grid_code": codes[i], "use": "residential",
                       "floors": 6, "lon": float(lon[i]), "lat": float(lat[i]), "households": 24, "population": 60})
        h_rows.append({"id": bid, "building_id": bid, "grid_code": codes[i], "unit": "1-101",
                       "use": ("rental", "vacant", "residential")[i % 3], "households": 1, "residents": 2, "area_m2": 80.0})
        r_rows.append({"building_id": bid, "grid_code": codes[i], "population": 60, "households": 24,
                       "registered": 50, "floating": 10, "elderly_alone": int(rng.integers(0, 3)),
                       "disabled": int(rng.integers(0, 2)), "left_behind_children": 0})
        v_rows.append({"id": bid, "plate": f"鲁B{bid:05d}", "kind": ("car", "ebike", "truck")[i % 3], "building_id": bid,
                       "grid_code": codes[i], "lon": float(lon[i]) + 1e-4, "lat": float(lat[i])})
        f_rows.append({"id": bid, "code": f"f{bid:07d}", "kind": fkinds[i % len(fkinds)], "grid_code": codes[i],
                       "lon": float(lon[i]) - 1e-4, "lat": float(lat[i]), "status": "ok" if i % 17 else "fault"})
    with engine.begin() as conn:
        for table, vals in ((building, b_rows), (house, h_rows), (resident_summary, r_rows), (vehicle, v_rows),
                            (facility, f_rows)):
            for i in range(0, len(vals), 5000):
                conn.execute(table.insert(), vals[i:i + 5000])
