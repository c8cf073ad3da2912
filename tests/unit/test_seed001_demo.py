"""The demo district: real outline and names, press counts, exact tiling, deterministic."""
from __future__ import annotations

from collections import Counter
from functools import lru_cache

import numpy as np
import pytest
import shapely
from sqlalchemy import func, select

from dashboard.demo import names
from dashboard.demo.seed import build_demo, build_regions, id_number, load_outline, seed_demo
from dashboard.domain import CODE_WIDTH
from dashboard.geo.coords import area_m2
from dashboard.store import schema as s

# Floating-point noise of Voronoi clipping is far below this (1 cm²); a real gap or overlap is not.
TOL_M2 = 0.01


@lru_cache(maxsize=1)
def demo():
    return build_demo(370202)


def regions_by_level():
    out: dict[str, list] = {}
    for r in demo().regions:
        out.setdefault(r.level, []).append(r)
    return out


def test_seed001_counts_match_the_press():
    lv = regions_by_level()
    assert [r.name for r in lv["street"]] == [n for n, _, _ in names.STREETS]
    kinds = Counter(g.kind for g in lv["grid"])
    assert kinds["basic"] == 505
    assert sum(v for k, v in kinds.items() if k != "basic") == 68
    assert 40 <= len(lv["community"]) <= 60
    hh_per_micro = np.mean([m.households for m in lv["micro"] if m.households])
    assert 28 <= hh_per_micro <= 42
    pop = lv["district"][0].population
    assert 450_000 <= pop <= 560_000
    basic_pop = [g.population for g in lv["grid"] if g.kind == "basic"]
    assert 850 <= np.mean(basic_pop) <= 1150
    roles = Counter(st["role"] for st in demo().tables["staff"])
    assert roles["full_time"] == 505 and roles["professional"] == 453 and roles["part_time"] == 2648
    assert roles["grid_head"] == 573 and roles["micro_member"] == len(lv["micro"])


def test_seed002_press_grid_names_exist():
    grid_names = {g.name for g in regions_by_level()["grid"]}
    for name in ("永嘉路社区004网格", "仙游路社区008网格", "仰口路社区002网格", "广州路社区005网格", "西藏路社区001网格"):
        assert name in grid_names


def test_seed003_codes_are_hierarchical():
    rows = demo().regions
    by_code = {r.code: r for r in rows}
    assert len(by_code) == len(rows)
    for r in rows:
        assert len(r.code) == CODE_WIDTH[r.level] and r.code.isdigit()
        if r.level != "district":
            assert r.code.startswith(r.parent_code)
            assert len(by_code[r.parent_code].code) == len(r.code) - 3


@pytest.mark.parametrize("level", ["street", "community", "grid", "micro"])
def test_seed004_children_tile_each_parent_exactly(level):
    rows = demo().regions
    by_code = {r.code: r for r in rows}
    children: dict[str, list] = {}
    for r in rows:
        if r.level == level:
            children.setdefault(r.parent_code, []).append(r)
    for parent_code, kids in children.items():
        parent = by_code[parent_code].geom
        geoms = [k.geom for k in kids]
        assert all(g.is_valid and not g.is_empty for g in geoms)
        union = shapely.union_all(geoms)
        gap = area_m2(shapely.difference(parent, union))
        outside = area_m2(shapely.difference(union, parent))
        assert gap < TOL_M2, f"gap of {gap:.4f} m² under {parent_code}"
        assert outside < TOL_M2, f"{outside:.4f} m² of {parent_code}'s children lie outside it"
        overlap = sum(area_m2(g) for g in geoms) - area_m2(union)
        assert overlap < TOL_M2 * len(geoms), f"children of {parent_code} overlap by {overlap:.4f} m²"


def test_seed005_district_is_the_real_outline():
    district = regions_by_level()["district"][0]
    outline = load_outline()
    assert district.code == "370202" and district.name == "市南区"
    assert shapely.equals_exact(district.geom, outline, tolerance=0)
    # Sanity of the GCJ-02 -> WGS-84 conversion: the outline sits on Qingdao's south shore.
    minx, miny, maxx, maxy = outline.bounds
    assert 120.27 < minx < maxx < 120.44 and 36.03 < miny < maxy < 36.10


def test_seed006_buildings_on_land_inside_their_micro_grid():
    d = demo()
    by_code = {r.code: r for r in d.regions}
    outline = load_outline()
    b = d.tables["building"]
    lon = np.array([x["lon"] for x in b])
    lat = np.array([x["lat"] for x in b])
    assert shapely.contains_xy(outline, lon, lat).all()
    for x in b[::25]:
        assert shapely.contains_xy(by_code[x["micro_code"]].geom, x["lon"], x["lat"])
        assert x["micro_code"].startswith(x["grid_code"])


def test_seed007_deterministic_by_seed():
    a = build_regions(7)
    b = build_regions(7)
    c = build_regions(8)
    assert [r.code for r in a] == [r.code for r in b]
    assert all(shapely.equals_exact(x.geom, y.geom, 0) for x, y in zip(a[:80], b[:80]))
    grids_a = [r.geom for r in a if r.level == "grid"][:20]
    grids_c = [r.geom for r in c if r.level == "grid"][:20]
    assert not all(shapely.equals_exact(x, y, 1e-9) for x, y in zip(grids_a, grids_c))


def test_seed008_id_numbers_carry_a_valid_check_digit():
    for p in demo().tables["person"][:500]:
        n = p["id_number"]
        assert len(n) == 18 and n.startswith("370202")
        assert id_number(int(n[6:10]), int(n[10:12]), int(n[12:14]), int(n[14:17])) == n
    assert id_number(1990, 1, 1, 123)[-1] in "0123456789X"


def test_seed009_writes_the_store_once(engine):
    stats = seed_demo(engine, 370202)
    with engine.connect() as conn:
        count = lambda t: conn.execute(select(func.count()).select_from(t)).scalar_one()  # noqa: E731
        assert count(s.region) == sum(stats[k] for k in ("district", "street", "community", "grid_basic",
                                                         "grid_dedicated", "micro"))
        assert count(s.house) == stats["house"] and count(s.person) == stats["person"]
        pop = conn.execute(select(func.sum(s.resident_summary.c.population))).scalar_one()
        district_pop = conn.execute(select(s.region.c.population).where(s.region.c.code == "370202")).scalar_one()
        assert pop == district_pop == stats["population"]
        # Every building's grid is a grid of the store (foreign keys hold on both backends).
        orphans = conn.execute(select(func.count()).select_from(s.building).where(
            ~s.building.c.grid_code.in_(select(s.region.c.code).where(s.region.c.level == "grid")))).scalar_one()
        assert orphans == 0
    with pytest.raises(RuntimeError, match="--force"):
        seed_demo(engine, 370202)
    again = seed_demo(engine, 370202, force=True)
    assert again["house"] == stats["house"]
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(s.house)).scalar_one() == stats["house"]
