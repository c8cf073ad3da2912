"""Build the demo district, Qingdao 市南区 (370202), deterministically from a seed.

Real: the district outline (data/shinan_370202.geojson), the 10 street names,
the counts the press gives (505 basic + 68 dedicated grids; 505 full-time,
453 professional, 2,648 part-time grid workers; ~1,000 residents per basic
grid). Synthetic: every boundary inside the outline (Voronoi cells of
k-means seeds, so they tile their parent exactly), buildings, houses, people,
vehicles, facilities and staff.

``build_regions(seed)`` is pure (no database); ``seed_demo(engine, seed)``
writes everything in one transaction.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape
from sqlalchemy import delete, func, select, text
from sqlalchemy.engine import Engine
from tqdm import tqdm

from ..store import schema as s
from ..store.regions import RegionRow, upsert_regions
from . import names
from .tiling import partition, sample_points, voronoi_cells

log = logging.getLogger(__name__)

DISTRICT_CODE = "370202"
DISTRICT_NAME = "市南区"
OUTLINE = Path(__file__).resolve().parents[2] / "data" / "shinan_370202.geojson"
BASIC_GRIDS = 505
DEDICATED_GRIDS = 68
DEDICATED_MIX = {"school": 22, "hospital": 10, "market": 14, "industrial_park": 6, "business_district": 16}
HOUSEHOLDS_PER_MICRO = 35
# Old-town streets in the west are denser: more grids per square kilometre.
DENSE_STREETS = {"八大峡街道": 2.2, "云南路街道": 2.4, "中山路街道": 2.0, "江苏路街道": 1.6}
STAFF_COUNTS = {"full_time": 505, "professional": 453, "part_time": 2648}
PROFESSIONAL_DEPARTMENTS = ("urban_management", "market_regulation", "community_police",
                            "fire", "housing", "environment")
KEY_RATES = {  # share of residents in each 重点人群 class (demo rates)
    "elderly_alone": 0.016, "empty_nest_elderly": 0.03, "disabled": 0.021,
    "left_behind_children": 0.003, "low_income": 0.009, "severe_mental_illness": 0.003,
    "community_correction": 0.0005, "released_prisoners": 0.001, "drug_rehab": 0.0004,
    "key_petitioners": 0.0002,
}


def load_outline():
    data = json.loads(OUTLINE.read_text(encoding="utf-8"))
    geom = shape(data["features"][0]["geometry"])
    return shapely.make_valid(geom) if not geom.is_valid else geom


def _largest_remainder(total: int, weights) -> list[int]:
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out))[: total - out.sum()]:
        out[i] += 1
    return out.tolist()


@dataclass
class _Grid:
    row: RegionRow
    micro: list[RegionRow] = field(default_factory=list)


def build_regions(seed: int = 370202) -> list[RegionRow]:
    """District, streets, communities, grids and micro-grids (WGS-84), parents first."""
    rng = np.random.default_rng(seed)
    district_geom = load_outline()
    district = RegionRow(DISTRICT_CODE, DISTRICT_NAME, "district", district_geom)
    rows: list[RegionRow] = [district]

    seeds = np.array([(lon, lat) for _, lon, lat in names.STREETS])
    street_geoms = voronoi_cells(district_geom, seeds)
    areas = np.array([g.area for g in street_geoms])
    density = np.array([DENSE_STREETS.get(n, 1.0) for n, _, _ in names.STREETS])
    basic_per_street = _largest_remainder(BASIC_GRIDS, areas * density)
    dedicated_per_street = _largest_remainder(DEDICATED_GRIDS, np.array(basic_per_street) + 3)
    kinds = [k for k, n in DEDICATED_MIX.items() for _ in range(n)]
    rng.shuffle(kinds)

    for si, ((sname, _, _), sgeom) in enumerate(zip(names.STREETS, street_geoms)):
        scode = f"{DISTRICT_CODE}{si + 1:03d}"
        street = RegionRow(scode, sname, "street", sgeom, parent_code=DISTRICT_CODE)
        rows.append(street)
        n_comm = int(np.clip(round(basic_per_street[si] / 9.5), 3, len(names.COMMUNITIES[sname])))
        comm_geoms = partition(sgeom, n_comm, rng)
        comm_names = names.COMMUNITIES[sname][: len(comm_geoms)]
        need = [names.PRESS_GRIDS.get(n, 1) for n in comm_names]
        comm_area = np.array([g.area for g in comm_geoms])
        basic = _at_least(basic_per_street[si], comm_area, need)
        dedicated = _largest_remainder(dedicated_per_street[si], comm_area)
        for ci, (cname, cgeom) in enumerate(zip(comm_names, comm_geoms)):
            ccode = f"{scode}{ci + 1:03d}"
            community = RegionRow(ccode, f"{cname}社区", "community", cgeom, parent_code=scode)
            rows.append(community)
            grids = _build_grids(community, cname, cgeom, basic[ci], [kinds.pop() for _ in range(dedicated[ci])], rng)
            for g in grids:
                rows.append(g.row)
                rows.extend(g.micro)
    _sum_up(rows)
    return rows


def _at_least(total: int, weights, minimum: list[int]) -> list[int]:
    out = np.array(_largest_remainder(total, weights))
    for i, m in enumerate(minimum):
        while out[i] < m:
            j = int(np.argmax(out - np.array(minimum)))
            out[j] -= 1
            out[i] += 1
    return out.tolist()


def _build_grids(community: RegionRow, cname: str, cgeom, n_basic: int, dedicated: list[str], rng) -> list[_Grid]:
    cells = partition(cgeom, n_basic + len(dedicated), rng)
    # Dedicated grids (a school, a hospital …) are the smaller cells, picked at random among them.
    small_first = np.argsort([c.area for c in cells])
    pool = list(small_first[: max(len(dedicated) * 2, len(dedicated))])
    rng.shuffle(pool)
    dedicated_idx = dict(zip(sorted(pool[: len(dedicated)]), dedicated))
    grids = []
    b = d = 0
    for i, cell in enumerate(cells):
        if i in dedicated_idx:
            kind = dedicated_idx[i]
            d += 1
            code = f"{community.code}{900 + d:03d}"
            subject = names.DEDICATED_SUBJECTS[kind][int(rng.integers(len(names.DEDICATED_SUBJECTS[kind])))]
            name = f"{cname}{subject}专属网格"
            households = int(rng.integers(0, 90))
        else:
            kind = "basic"
            b += 1
            code = f"{community.code}{b:03d}"
            name = f"{cname}社区{b:03d}网格"
            households = int(np.clip(rng.normal(500, 45), 380, 640))
        grid = _Grid(RegionRow(code, name, "grid", cell, parent_code=community.code, kind=kind,
                               households=households))
        n_micro = max(1 if kind != "basic" else 2, round(households / HOUSEHOLDS_PER_MICRO))
        micro_cells = partition(cell, n_micro, rng, samples_per_cell=40)
        split = _largest_remainder(households, [m.area for m in micro_cells]) if households else [0] * len(micro_cells)
        for mi, (mcell, mh) in enumerate(zip(micro_cells, split)):
            grid.micro.append(RegionRow(f"{code}{mi + 1:03d}", f"{name}{mi + 1:02d}微网格", "micro", mcell,
                                        parent_code=code, households=int(mh)))
        grids.append(grid)
    return grids


def _sum_up(rows: list[RegionRow]) -> None:
    """Households and population of each region = the sum of its children (micro-grids are the leaves)."""
    by_code = {r.code: r for r in rows}
    for level in ("grid", "community", "street", "district"):
        for r in rows:
            if r.level == level:
                r.households = 0
                r.population = 0
    for level in ("micro", "grid", "community", "street"):
        for r in rows:
            if r.level == level and r.parent_code:
                p = by_code[r.parent_code]
                p.households += r.households
                p.population += r.population


# --- People, houses, vehicles, facilities, staff --------------------------------

@dataclass
class DemoData:
    regions: list[RegionRow]
    tables: dict[str, list[dict]]


def build_demo(seed: int = 370202) -> DemoData:
    regions = build_regions(seed)
    rng = np.random.default_rng(seed + 1)
    by_code = {r.code: r for r in regions}
    micro = [r for r in regions if r.level == "micro"]
    tables: dict[str, list[dict]] = {k: [] for k in
                                     ("building", "resident_summary", "house", "person", "vehicle", "facility", "staff")}
    house_id = person_id = 0
    street_no: dict[str, int] = {}
    for m in micro:
        grid = by_code[m.parent_code]
        community = by_code[grid.parent_code]
        road = community.name.removesuffix("社区")
        road = road if road.endswith(("路", "角", "山", "岛")) else road + "路"
        if grid.kind != "basic":
            n_b = int(rng.integers(1, 3))
            uses = ["public"] * n_b
        else:
            n_b = max(1, round(m.households / rng.integers(12, 30)))
            uses = rng.choice(["residential", "mixed", "commercial"], n_b, p=[0.82, 0.14, 0.04]).tolist()
        pts = sample_points(m.geom, n_b, rng)
        hh_split = _largest_remainder(m.households, rng.uniform(0.5, 1.5, n_b)) if m.households else [0] * n_b
        for (lon, lat), use, hh in zip(pts, uses, hh_split):
            bid = len(tables["building"]) + 1
            street_no[road] = street_no.get(road, 0) + 1
            floors = int(rng.choice([2, 4, 5, 6, 7, 11, 18, 24], p=[.06, .14, .22, .24, .12, .1, .08, .04]))
            # Households: one house row each; 8 % extra vacant units; shops on mixed/commercial ground floors.
            residents = rng.choice([1, 2, 3, 4], hh, p=[0.3, 0.45, 0.2, 0.05]) if hh else np.zeros(0, int)
            rental = rng.random(hh) < 0.22
            floating = int(residents[rental].sum())
            pop = int(residents.sum())
            n_vacant = int(rng.binomial(max(hh, 1), 0.08)) if use != "public" else 0
            n_shop = int(rng.integers(1, 7)) if use in ("mixed", "commercial") else 0
            house_ids = []
            for k in range(hh + n_vacant + n_shop):
                house_id += 1
                floor = 1 + (k // 4) % max(floors, 1)
                unit = f"{1 + k // (4 * max(floors, 1))}-{floor}{1 + k % 4:02d}"
                if k < hh:
                    kind, hcount, res = ("rental" if rental[k] else "residential"), 1, int(residents[k])
                    house_ids.append((house_id, res))
                elif k < hh + n_vacant:
                    kind, hcount, res = "vacant", 0, 0
                else:
                    kind, hcount, res, unit = "shop", 0, 0, f"商{k - hh - n_vacant + 1:02d}"
                tables["house"].append({"id": house_id, "building_id": bid, "grid_code": grid.code, "unit": unit,
                                        "use": kind, "households": hcount, "residents": res,
                                        "area_m2": float(round(rng.uniform(35, 140) if kind != "shop" else rng.uniform(20, 200), 1))})
            key = {k: int(rng.binomial(pop, r)) if pop else 0 for k, r in KEY_RATES.items()}
            tables["building"].append({"id": bid, "code": f"{m.code}{len(tables['building']) % 1000:03d}B{bid}",
                                       "name": f"{road}{street_no[road]}号", "grid_code": grid.code, "micro_code": m.code,
                                       "use": use, "floors": floors, "lon": float(lon), "lat": float(lat),
                                       "households": hh, "population": pop})
            tables["resident_summary"].append({"building_id": bid, "grid_code": grid.code, "population": pop,
                                               "households": hh, "registered": pop - floating, "floating": floating, **key})
            occupied = [h for h, res in house_ids if res]
            for cls, n in key.items():
                for _ in range(n):
                    person_id += 1
                    tables["person"].append(_person(person_id, cls, bid, grid.code, occupied, rng))
            m.population += pop
            for _ in range(int(rng.binomial(hh, 0.08))):
                tables["vehicle"].append(_vehicle(len(tables["vehicle"]) + 1, bid, grid, lon, lat, rng))
    _sum_up(regions)
    grids = [r for r in regions if r.level == "grid"]
    _facilities(tables, grids, rng)
    _staff(tables, regions, rng)
    return DemoData(regions, tables)


def _name(rng) -> str:
    n = 1 + int(rng.random() < 0.7)
    return names.SURNAMES[int(rng.integers(len(names.SURNAMES)))] + "".join(
        names.GIVEN[int(rng.integers(len(names.GIVEN)))] for _ in range(n))


def _phone(rng) -> str:
    return f"1{rng.choice([3, 5, 7, 8, 9])}{int(rng.integers(0, 10))}{int(rng.integers(0, 10**8)):08d}"


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(birth_year: int, month: int, day: int, serial: int) -> str:
    """An 18-digit resident ID in the GB 11643 layout with its ISO 7064 check digit (synthetic)."""
    body = f"{DISTRICT_CODE}{birth_year:04d}{month:02d}{day:02d}{serial:03d}"
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS)) % 11]
    return body + check


def _person(pid, cls, bid, grid_code, occupied, rng) -> dict:
    age = {"elderly_alone": (70, 95), "empty_nest_elderly": (60, 90), "left_behind_children": (4, 15)}.get(cls, (20, 80))
    year = 2026 - int(rng.integers(*age))
    gender = "M" if rng.random() < 0.5 else "F"
    serial = int(rng.integers(0, 500)) * 2 + (1 if gender == "M" else 0)
    return {"id": pid, "house_id": int(rng.choice(occupied)) if occupied else None, "building_id": bid,
            "grid_code": grid_code, "name": _name(rng),
            "id_number": id_number(year, int(rng.integers(1, 13)), int(rng.integers(1, 29)), serial),
            "phone": _phone(rng) if cls != "left_behind_children" else None, "gender": gender,
            "birth_year": year, "key_class": cls}


def _vehicle(vid, bid, grid, lon, lat, rng) -> dict:
    kind = str(rng.choice(["car", "ebike", "truck"], p=[0.55, 0.4, 0.05]))
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    plate = ("鲁B" if kind != "ebike" else "青B") + "".join(letters[int(rng.integers(len(letters)))] for _ in range(5))
    jlon, jlat = lon + rng.normal(0, 4e-5), lat + rng.normal(0, 4e-5)
    if not shapely.contains_xy(grid.geom, jlon, jlat):
        jlon, jlat = lon, lat
    return {"id": vid, "plate": plate, "kind": kind, "building_id": bid, "grid_code": grid.code,
            "lon": float(jlon), "lat": float(jlat)}


FACILITIES_PER_GRID = {"hydrant": 3, "manhole_cover": 10, "heating_well_cover": 2, "street_light": 7,
                       "drainage_pump": 0.4, "camera": 3}


def _facilities(tables, grids, rng) -> None:
    out = tables["facility"]
    tall = {}
    for b in tables["building"]:
        if b["floors"] >= 7:
            tall.setdefault(b["grid_code"], []).append(b)
    for g in grids:
        for kind, mean in FACILITIES_PER_GRID.items():
            n = int(rng.poisson(mean))
            for lon, lat in sample_points(g.geom, n, rng) if n else []:
                out.append({"id": len(out) + 1, "code": f"F{g.code}{len(out) + 1:06d}", "kind": kind,
                            "grid_code": g.code, "lon": float(lon), "lat": float(lat),
                            "status": "fault" if rng.random() < 0.03 else "ok"})
        for b in tall.get(g.code, []):  # an elevator in every building of seven floors or more
            out.append({"id": len(out) + 1, "code": f"F{g.code}{len(out) + 1:06d}", "kind": "elevator",
                        "grid_code": g.code, "lon": b["lon"], "lat": b["lat"],
                        "status": "fault" if rng.random() < 0.02 else "ok"})


def _staff(tables, regions, rng) -> None:
    out = tables["staff"]
    grids = [r for r in regions if r.level == "grid"]
    basic = [g for g in grids if g.kind == "basic"]
    communities = [r for r in regions if r.level == "community"]
    micro = [r for r in regions if r.level == "micro"]

    def add(role, region_code, on_duty=False, department=None):
        sid = len(out) + 1
        out.append({"id": sid, "code": f"S{sid:06d}", "name": _name(rng), "phone": _phone(rng), "role": role,
                    "region_code": region_code, "department": department, "on_duty": on_duty})

    for g in grids:
        add("grid_head", g.code)
    for g in basic[: STAFF_COUNTS["full_time"]]:  # one full-time worker per basic grid, on the day shift
        add("full_time", g.code, on_duty=bool(rng.random() < 0.85))
    for i in range(STAFF_COUNTS["professional"]):
        c = communities[i % len(communities)]
        add("professional", c.code, department=PROFESSIONAL_DEPARTMENTS[i % len(PROFESSIONAL_DEPARTMENTS)])
    weights = np.array([g.households + 1 for g in grids], dtype=float)
    for g_idx in rng.choice(len(grids), STAFF_COUNTS["part_time"], p=weights / weights.sum()):
        add("part_time", grids[int(g_idx)].code)
    for m in micro:
        add("micro_member", m.code)
    for c in communities:
        for _ in range(3):
            add("party_group_leader", c.code)
        for _ in range(40):
            add("volunteer", c.code)


# --- Writing ---------------------------------------------------------------------

TABLE_ORDER = ("building", "resident_summary", "house", "person", "vehicle", "facility", "staff")
# Deleted children first; feed tables reference regions too.
CLEAR_ORDER = ("event_step", "event", "hazard", "position", "patrol", "feed_message", "person", "vehicle",
               "house", "resident_summary", "building", "facility", "staff")


def seed_demo(engine: Engine, seed: int = 370202, *, progress: bool = False, force: bool = False) -> dict:
    """Write the demo district (one transaction). Refuses to overwrite unless ``force``."""
    started = time.perf_counter()
    if not force:
        with engine.connect() as conn:
            if conn.execute(select(func.count()).select_from(s.region)).scalar_one():
                raise RuntimeError("the store already holds regions; use --force to replace them")
    data = build_demo(seed)
    built = time.perf_counter()
    with engine.begin() as conn:
        existing = conn.execute(select(func.count()).select_from(s.region)).scalar_one()
        if existing:
            if not force:
                raise RuntimeError("the store already holds regions; use --force to replace them")
            for name in CLEAR_ORDER:
                conn.execute(delete(s.metadata.tables[name]))
            _delete_regions(conn)
        upsert_regions(conn, data.regions)
        from ..cases.units import seed_demo_units  # C2
        seed_demo_units(conn)  # C2: the handling units of the regions just written (three tiers)
        bar = tqdm(total=sum(len(v) for v in data.tables.values()), unit="row", disable=not progress,
                   desc="seed")
        for name in TABLE_ORDER:
            rows = data.tables[name]
            table = s.metadata.tables[name]
            for i in range(0, len(rows), 10_000):
                conn.execute(table.insert(), rows[i:i + 10_000])
                bar.update(len(rows[i:i + 10_000]))
        bar.close()
        if conn.dialect.name == "postgresql":  # explicit ids were written: move the sequences past them
            for name in TABLE_ORDER:
                if "id" in s.metadata.tables[name].c:
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                                      f"COALESCE((SELECT MAX(id) FROM {name}), 1))"))
    levels: dict[str, int] = {}
    for r in data.regions:
        key = r.level if r.level != "grid" else ("grid_basic" if r.kind == "basic" else "grid_dedicated")
        levels[key] = levels.get(key, 0) + 1
    stats = {**levels, **{k: len(v) for k, v in data.tables.items()},
             "population": data.regions[0].population, "households": data.regions[0].households,
             "build_s": round(built - started, 2), "write_s": round(time.perf_counter() - built, 2)}
    log.info("demo seeded", extra=stats)
    return stats


def _delete_regions(conn) -> None:
    for level in ("micro", "grid", "community", "street", "district"):
        conn.execute(delete(s.region).where(s.region.c.level == level))


def seed_if_empty(services) -> dict | None:
    from ..store.engine import is_empty

    if not is_empty(services.engine):
        return None
    print("首次启动：正在生成市南区演示数据 (seeding the demo district) …", flush=True)
    stats = seed_demo(services.engine, services.settings.demo_seed, progress=True)
    services.reset_caches()
    return stats


def _history(services, days: int, **kw) -> dict:
    from .history import STREAM_DAYS, backfill

    if days > 0:
        print(f"正在回填近 {days} 天的事件 (writing {days} days of history; the last "
              f"{min(days, STREAM_DAYS)} through the stream) …", flush=True)
    return backfill(services, days, **kw)


def cli_seed(settings, seed: int | None = None, force: bool = False, history_days: int | None = None) -> int:
    from ..errors import CliError
    from ..services import Services

    if seed is not None:
        settings = settings.replace(demo_seed=seed)
    days = settings.demo_history_days if history_days is None else history_days
    if days < 0:
        raise CliError("--history-days must be 0 or more")
    services = Services.open(settings) if days else None
    engine = services.engine if services else _migrated_engine(settings)
    try:
        stats = seed_demo(engine, settings.demo_seed, progress=True, force=force)
        print(_summary(stats))
        if services:
            print("history · " + _summary(_history(services, days, progress=True)))
    except RuntimeError as exc:
        raise CliError(str(exc)) from None
    finally:
        if services:
            services.close()
        else:
            engine.dispose()
    return 0


def _summary(stats: dict) -> str:
    return " · ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in stats.items())


def _migrated_engine(settings):
    from ..store.engine import make_engine, migrate

    engine = make_engine(settings.effective_database_url)
    migrate(engine)
    return engine
