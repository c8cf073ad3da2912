"""A small jurisdiction for API and simulator tests: 1 district, 2 streets,
2 communities, 6 grids (one concave), buildings and on-duty staff."""
from __future__ import annotations

from shapely.geometry import Polygon, box

from dashboard.store.regions import RegionRow, upsert_regions
from dashboard.store.schema import building, staff

DISTRICT = "370202"
X0, Y0, D = 120.370, 36.050, 0.01  # grid cells of about 900 m x 1100 m near Qingdao


def regions() -> list[RegionRow]:
    rows = [RegionRow(DISTRICT, "市南区", "district", box(X0, Y0, X0 + 3 * D, Y0 + 2 * D))]
    for s in range(2):
        street = f"{DISTRICT}{s + 1:03d}"
        sgeom = box(X0, Y0 + s * D, X0 + 3 * D, Y0 + (s + 1) * D)
        rows.append(RegionRow(street, f"街道{s + 1}", "street", sgeom, parent_code=DISTRICT))
        community = f"{street}001"
        rows.append(RegionRow(community, f"社区{s + 1}", "community", sgeom, parent_code=street))
        for g in range(3):
            x = X0 + g * D
            y = Y0 + s * D
            geom = box(x, y, x + D, y + D)
            code = f"{community}{g + 1:03d}"
            rows.append(RegionRow(code, f"社区{s + 1}{g + 1:03d}网格", "grid", geom, parent_code=community,
                                  kind="basic", households=500, population=1000))
    return rows


def concave_grid_geom():
    """The first grid's L-shape if a test wants a concave polygon."""
    return Polygon([(X0, Y0), (X0 + D, Y0), (X0 + D, Y0 + D / 2), (X0 + D / 2, Y0 + D / 2),
                    (X0 + D / 2, Y0 + D), (X0, Y0 + D)])


def grid_codes() -> list[str]:
    return [r.code for r in regions() if r.level == "grid"]


def upsert_small_district(engine, *, with_people: bool = True) -> list[RegionRow]:
    rows = regions()
    with engine.begin() as conn:
        upsert_regions(conn, rows)
        if with_people:
            b_rows, s_rows = [], []
            for i, r in enumerate(x for x in rows if x.level == "grid"):
                minx, miny, maxx, maxy = r.geom.bounds
                for j in range(4):
                    b_rows.append({"code": f"B{r.code}{j:03d}", "name": f"{r.name}{j + 1}号楼",
                                   "grid_code": r.code, "use": "residential", "floors": 6,
                                   "lon": minx + (maxx - minx) * (0.2 + 0.2 * j),
                                   "lat": miny + (maxy - miny) * (0.3 + 0.1 * j),
                                   "households": 60, "population": 150})
                s_rows.append({"code": f"S{i + 1:06d}", "name": f"网格员{i + 1}", "role": "full_time",
                               "region_code": r.code, "on_duty": True})
                s_rows.append({"code": f"H{i + 1:06d}", "name": f"网格长{i + 1}", "role": "grid_head",
                               "region_code": r.code, "on_duty": False})
            conn.execute(building.insert(), b_rows)
            conn.execute(staff.insert(), s_rows)
    return rows
