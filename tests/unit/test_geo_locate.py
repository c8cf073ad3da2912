"""Where is this point? Locator against a brute-force scan, boundaries, bad input, both databases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

from dashboard.geo.coords import wgs84_to_gcj02
from dashboard.geo.locate import (NOT_A_NUMBER, NOT_FINITE, OUT_OF_RANGE, OUTSIDE, Locator,
                                  PolygonIndex)
from dashboard.store.regions import RegionRow, upsert_regions

DISTRICT = "370202"
X0, Y0, X1, Y1 = 120.30, 36.04, 120.36, 36.08
NOTCH = box(120.345, 36.04, 120.36, 36.052)  # a "bay": inside the bounding box, outside the district


def _cells(poly, n, rng):
    """Voronoi cells of n random seeds, clipped to poly (an exact tiling of poly)."""
    pts = []
    minx, miny, maxx, maxy = poly.bounds
    while len(pts) < n:
        x, y = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if poly.contains(shapely.Point(x, y)):
            pts.append((x, y))
    cells = shapely.voronoi_polygons(shapely.MultiPoint(pts), extend_to=poly.envelope.buffer(0.01))
    out = []
    for c in shapely.get_parts(cells):
        piece = shapely.intersection(c, poly)
        polys = [p for p in shapely.get_parts(piece) if p.geom_type == "Polygon" and p.area > 0]
        if polys:
            out.append(polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys))
    return out


def tiling(seed: int = 7, *, bare_grid: bool = True) -> list[RegionRow]:
    """District (with a bay cut out) > 2 streets > 4 communities > ~20 grids > ~80 micro-grids.
    With bare_grid, the last grid has no micro-grids."""
    rng = np.random.default_rng(seed)
    district = box(X0, Y0, X1, Y1).difference(NOTCH)
    rows = [RegionRow(DISTRICT, "市南区", "district", district)]
    xm, ym = (X0 + X1) / 2, (Y0 + Y1) / 2
    for s, sbox in enumerate([box(X0, Y0, xm, Y1), box(xm, Y0, X1, Y1)]):
        scode = f"{DISTRICT}{s + 1:03d}"
        sgeom = district.intersection(sbox)
        rows.append(RegionRow(scode, f"街道{s + 1}", "street", sgeom, parent_code=DISTRICT))
        for c, cbox in enumerate([box(X0 - 1, Y0 - 1, X1 + 1, ym), box(X0 - 1, ym, X1 + 1, Y1 + 1)]):
            ccode = f"{scode}{c + 1:03d}"
            cgeom = sgeom.intersection(cbox)
            rows.append(RegionRow(ccode, f"社区{s + 1}{c + 1}", "community", cgeom, parent_code=scode))
            for g, ggeom in enumerate(_cells(cgeom, 5, rng)):
                gcode = f"{ccode}{g + 1:03d}"
                rows.append(RegionRow(gcode, f"社区{s + 1}{c + 1}-{g + 1:03d}网格", "grid", ggeom,
                                      parent_code=ccode, kind="basic"))
                for m, mgeom in enumerate(_cells(ggeom, 4, rng)):
                    rows.append(RegionRow(f"{gcode}{m + 1:03d}", f"微网格{gcode[-6:]}-{m + 1}", "micro",
                                          mgeom, parent_code=gcode))
    if bare_grid:
        last = max(r.code for r in rows if r.level == "grid")
        rows = [r for r in rows if r.parent_code != last]
    return rows


def brute(rows, x, y):
    """(grid code, micro code) by scanning every polygon: lowest code covering the point wins."""
    grids = sorted((r for r in rows if r.level == "grid"), key=lambda r: r.code)
    g_idx = np.full(len(x), -1)
    for i in range(len(grids) - 1, -1, -1):
        g_idx[shapely.intersects_xy(grids[i].geom, x, y)] = i
    g_codes = np.array([grids[i].code if i >= 0 else "" for i in g_idx], dtype=object)
    micros = sorted((r for r in rows if r.level == "micro"), key=lambda r: r.code)
    m_codes = np.full(len(x), "", dtype=object)
    for m in reversed(micros):
        hit = shapely.intersects_xy(m.geom, x, y) & (g_codes == m.parent_code)
        m_codes[hit] = m.code
    return g_codes, m_codes


def probe_points(rows, n_random=20_000, seed=1):
    """Random points over (and beyond) the bounding box, every vertex, and points along
    every boundary, some nudged by tiny amounts across it."""
    rng = np.random.default_rng(seed)
    minx, miny, maxx, maxy = X0 - 0.005, Y0 - 0.005, X1 + 0.005, Y1 + 0.005
    xs = [rng.uniform(minx, maxx, n_random)]
    ys = [rng.uniform(miny, maxy, n_random)]
    geoms = [r.geom for r in rows if r.level in ("grid", "micro")]
    verts = shapely.get_coordinates(geoms)
    xs.append(verts[:, 0])
    ys.append(verts[:, 1])
    bounds = shapely.boundary(np.array(geoms, dtype=object))
    for frac in np.linspace(0.013, 0.987, 9):
        p = shapely.get_coordinates(shapely.line_interpolate_point(bounds, frac, normalized=True))
        for d in (0.0, 1e-12, -1e-9, 3e-7):
            xs.append(p[:, 0] + d)
            ys.append(p[:, 1] - d)
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def rows():
    return tiling()


@pytest.fixture(scope="module")
def locator(rows):
    return Locator.from_regions(rows)


@pytest.mark.parametrize("max_cells", [64, 5_000, None])
def test_geo001_bulk_matches_bruteforce(rows, max_cells):
    loc = Locator.from_regions(rows) if max_cells is None else Locator.from_regions(rows, max_cells=max_cells)
    x, y = probe_points(rows)
    g_exp, m_exp = brute(rows, x, y)
    got = loc.locate_many(x, y)
    assert got.shape == x.shape
    bad = np.flatnonzero(got.astype(object) != g_exp)
    assert bad.size == 0, [(x[i], y[i], got[i], g_exp[i]) for i in bad[:5]]
    micro = loc.locate_many(x, y, level="micro")
    bad = np.flatnonzero(micro.astype(object) != m_exp)
    assert bad.size == 0, [(x[i], y[i], micro[i], m_exp[i]) for i in bad[:5]]
    # the probe set really exercises both answers and the exact (boundary) path
    assert 0.3 < (g_exp != "").mean() < 0.95
    assert loc.grid_index.ambiguous_fraction > 0


def test_geo002_single_matches_bulk(rows, locator):
    x, y = probe_points(rows, n_random=3_000, seed=2)
    x, y = x[::7], y[::7]
    table = locator.locate_table(x, y)
    for i in range(len(x)):
        loc = locator.locate(x[i], y[i])
        assert loc.inside == (table["grid"][i] != "")
        assert (loc.grid_code or "") == table["grid"][i]
        assert (loc.micro_code or "") == table["micro"][i]
        assert (loc.community_code or "") == table["community"][i]
        assert (loc.street_code or "") == table["street"][i]
        assert (loc.district_code or "") == table["district"][i]


def _squares():
    """2 x 2 squares sharing edges and a corner; codes deliberately not in position order."""
    s = 0.01
    rows = [RegionRow(DISTRICT, "区", "district", box(X0, Y0, X0 + 2 * s, Y0 + 2 * s)),
            RegionRow("370202001", "街道", "street", box(X0, Y0, X0 + 2 * s, Y0 + 2 * s), parent_code=DISTRICT),
            RegionRow("370202001001", "社区", "community", box(X0, Y0, X0 + 2 * s, Y0 + 2 * s),
                      parent_code="370202001")]
    codes = {(1, 1): "003", (0, 1): "004", (1, 0): "001", (0, 0): "002"}
    for (i, j), serial in codes.items():
        code = "370202001001" + serial
        geom = box(X0 + i * s, Y0 + j * s, X0 + (i + 1) * s, Y0 + (j + 1) * s)
        rows.append(RegionRow(code, f"网格{serial}", "grid", geom, parent_code="370202001001"))
        # two micro-grids per grid, split vertically in the middle
        mx = X0 + (i + 0.5) * s
        rows.append(RegionRow(code + "002", "西", "micro", box(X0 + i * s, Y0 + j * s, mx, Y0 + (j + 1) * s),
                              parent_code=code))
        rows.append(RegionRow(code + "001", "东", "micro", box(mx, Y0 + j * s, X0 + (i + 1) * s, Y0 + (j + 1) * s),
                              parent_code=code))
    return rows


@pytest.mark.parametrize("reverse", [False, True])
def test_geo003_shared_boundary_goes_to_lowest_code(reverse):
    rows = _squares()
    loc = Locator.from_regions(list(reversed(rows)) if reverse else rows)
    s = 0.01
    cx, cy = X0 + s, Y0 + s  # the corner all four grids share
    assert loc.locate(cx, cy).grid_code == "370202001001001"
    # the edge between 002 (left-bottom) and 001 (right-bottom)
    edge = loc.locate(cx, Y0 + 0.25 * s)
    assert edge.grid_code == "370202001001001"
    assert edge.micro_code == "370202001001001002"  # 001's west half
    # within 001, the line between its two micro-grids: 001 ("east") is the lower code
    on_mid = loc.locate(X0 + 1.5 * s, Y0 + 0.5 * s)
    assert on_mid.micro_code == "370202001001001001"
    # the edge between 004 (left-top) and 003 (right-top) goes to 003
    assert loc.locate(cx, Y0 + 1.5 * s).grid_code == "370202001001003"
    # the edge between 002 (bottom-left) and 004 (top-left) goes to 002
    left = loc.locate(X0 + 0.75 * s, cy)
    assert left.grid_code == "370202001001002"
    # micro must stay inside the grid chosen: the point is on 002's east micro and 004's east micro
    assert left.micro_code == "370202001001002001"
    # the outer edge of the jurisdiction counts as inside
    assert loc.locate(X0, Y0 + 0.5 * s).grid_code == "370202001001002"
    assert loc.locate(X0 + 2 * s, Y0 + 2 * s).grid_code == "370202001001003"
    # bulk agrees
    xs = np.array([cx, cx, X0 + 0.75 * s, X0 + 2 * s])
    ys = np.array([cy, Y0 + 0.25 * s, cy, Y0 + 2 * s])
    assert loc.locate_many(xs, ys).tolist() == ["370202001001001", "370202001001001",
                                                "370202001001002", "370202001001003"]
    assert loc.locate_many(xs, ys, level="micro").tolist() == [
        "370202001001001002", "370202001001001002", "370202001001002001", "370202001001003001"]


def test_geo004_outside_and_bad_input_get_an_answer(locator):
    notch = NOTCH.centroid
    cases = [
        ((notch.x, notch.y), OUTSIDE),  # inside the bounding box, in the bay
        ((121.5, 36.0), OUTSIDE),
        ((float("nan"), 36.05), NOT_FINITE),
        ((120.31, float("inf")), NOT_FINITE),
        ((-math.inf, 36.05), NOT_FINITE),
        (("east", 36.05), NOT_A_NUMBER),
        ((None, 36.05), NOT_A_NUMBER),
        ((200.0, 36.05), OUT_OF_RANGE),
        ((120.31, -91.0), OUT_OF_RANGE),
    ]
    for (lon, lat), reason in cases:
        for crs in ("wgs84", "gcj02"):
            if crs == "gcj02" and reason == OUTSIDE:  # the same places, as a GCJ-02 map shows them
                lon, lat = (float(v) for v in wgs84_to_gcj02(lon, lat))
            loc = locator.locate(lon, lat, crs=crs)
            assert loc.inside is False and not loc, (lon, lat, crs)
            assert loc.reason == reason, (lon, lat, crs, loc.reason)
            assert loc.grid_code is None and loc.micro_code is None and loc.district_code is None
    inside = locator.locate(120.31, 36.06)
    assert inside.inside and inside.reason is None
    lons = np.array([notch.x, np.nan, np.inf, 500.0, 120.31, -np.inf])
    lats = np.array([notch.y, 36.05, 36.05, 36.05, 36.06, np.nan])
    for crs in ("wgs84", "gcj02"):
        codes = locator.locate_many(lons, lats, crs=crs)
        assert codes[[0, 1, 2, 3, 5]].tolist() == [""] * 5
        idx = locator.locate_many_indices(lons, lats, crs=crs)
        assert idx.dtype.kind == "i" and idx[[0, 1, 2, 3, 5]].tolist() == [-1] * 5
    assert locator.locate_many(lons, lats)[4] == inside.grid_code
    with pytest.raises(ValueError, match="crs"):
        locator.locate(120.31, 36.06, crs="bd09")
    with pytest.raises(ValueError, match="differ in length"):
        locator.locate_many([120.31, 120.32], [36.06])
    assert locator.locate_many([], []).size == 0


def test_geo005_location_carries_the_whole_chain(rows, locator):
    by_code = {r.code: r for r in rows}
    rng = np.random.default_rng(5)
    seen_micro_none = False
    grids = [r for r in rows if r.level == "grid"]
    for g in grids:
        p = g.geom.representative_point()
        loc = locator.locate(p.x, p.y)
        assert loc.inside and loc.grid_code == g.code and loc.grid_name == g.name and loc.grid_kind == "basic"
        comm = by_code[g.parent_code]
        street = by_code[comm.parent_code]
        assert (loc.community_code, loc.community_name) == (comm.code, comm.name)
        assert (loc.street_code, loc.street_name) == (street.code, street.name)
        assert (loc.district_code, loc.district_name) == (DISTRICT, "市南区")
        if loc.micro_code is None:
            seen_micro_none = True
            assert not any(r.parent_code == g.code for r in rows)
        else:
            assert by_code[loc.micro_code].parent_code == g.code
            assert loc.micro_name == by_code[loc.micro_code].name
        assert [lv for lv, _, _ in loc.chain()][:4] == ["district", "street", "community", "grid"]
        assert loc.code == (loc.micro_code or loc.grid_code)
    assert seen_micro_none, "the tiling should hold a grid without micro-grids"
    # every level in bulk is the parent chain of the grid found
    x = rng.uniform(X0, X1, 2000)
    y = rng.uniform(Y0, Y1, 2000)
    t = locator.locate_table(x, y)
    for i in range(len(x)):
        if t["grid"][i]:
            g = by_code[t["grid"][i]]
            assert t["community"][i] == g.parent_code
            assert t["street"][i] == by_code[g.parent_code].parent_code
            assert t["district"][i] == DISTRICT
            assert t["micro"][i] == "" or by_code[t["micro"][i]].parent_code == g.code
        else:
            assert t["micro"][i] == t["community"][i] == t["street"][i] == t["district"][i] == ""
    idx = locator.locate_many_indices(x, y, level="street")
    assert (locator.codes("street")[idx[idx >= 0]] == t["street"][idx >= 0]).all()
    with pytest.raises(ValueError, match="level"):
        locator.locate_many(x, y, level="building")


def test_geo006_gcj02_input_is_converted_first(rows, locator):
    pts = [r.geom.representative_point() for r in rows if r.level == "micro"]
    x = np.array([p.x for p in pts])
    y = np.array([p.y for p in pts])
    gx, gy = wgs84_to_gcj02(x, y)
    want = locator.locate_many(x, y, level="micro")
    assert (want != "").all()
    assert (locator.locate_many(gx, gy, crs="gcj02", level="micro") == want).all()
    # taken as WGS-84, the shifted points (hundreds of metres) mostly land elsewhere
    assert (locator.locate_many(gx, gy, level="micro") != want).mean() > 0.5
    for i in range(0, len(x), 9):
        loc = locator.locate(float(gx[i]), float(gy[i]), crs="gcj02")
        assert loc.micro_code == want[i]
        assert abs(loc.lon - x[i]) < 1e-6 and abs(loc.lat - y[i]) < 1e-6


def test_geo007_overlaps_and_invalid_polygons():
    d = 0.01
    bow_tie = Polygon([(X0, Y0), (X0 + d, Y0 + d), (X0 + d, Y0), (X0, Y0 + d)])  # self-intersecting
    rows = [
        {"code": "370202001001002", "name": "B", "level": "grid", "parent_code": "370202001001",
         "geom": box(X0 + 0.5 * d, Y0 + d, X0 + 2 * d, Y0 + 2 * d)},
        {"code": "370202001001001", "name": "A", "level": "grid", "parent_code": "370202001001",
         "geom": box(X0, Y0 + d, X0 + d, Y0 + 2 * d)},  # overlaps B on half its width
        {"code": "370202001001003", "name": "C", "level": "grid", "parent_code": "370202001001",
         "geom": bow_tie},
    ]
    assert not bow_tie.is_valid
    loc = Locator.from_regions(rows)
    assert loc.locate(X0 + 0.75 * d, Y0 + 1.5 * d).grid_code == "370202001001001"  # in the overlap
    assert loc.locate(X0 + 1.5 * d, Y0 + 1.5 * d).grid_code == "370202001001002"
    assert loc.locate(X0 + 0.25 * d, Y0 + 1.5 * d).grid_code == "370202001001001"
    # the bow-tie's two triangles (left and right lobes) are located, the gaps between them are not
    assert loc.locate(X0 + 0.1 * d, Y0 + 0.5 * d).grid_code == "370202001001003"
    assert loc.locate(X0 + 0.9 * d, Y0 + 0.5 * d).grid_code == "370202001001003"
    assert not loc.locate(X0 + 0.5 * d, Y0 + 0.1 * d).inside
    # no chain rows: parents come from the code prefixes
    a = loc.locate(X0 + 0.25 * d, Y0 + 1.5 * d)
    assert (a.community_code, a.street_code, a.district_code) == ("370202001001", "370202001", "370202")
    assert a.community_name is None
    rng = np.random.default_rng(3)
    x = rng.uniform(X0 - d, X0 + 3 * d, 20_000)
    y = rng.uniform(Y0 - d, Y0 + 3 * d, 20_000)
    geoms = [shapely.make_valid(r["geom"]) for r in sorted(rows, key=lambda r: r["code"])]
    expected = np.full(len(x), -1)
    for i in range(len(geoms) - 1, -1, -1):
        expected[shapely.intersects_xy(geoms[i], x, y)] = i
    assert (loc.locate_many_indices(x, y) == expected).all()


def test_geo008_empty_and_degenerate_locators():
    empty = Locator.from_regions([])
    assert len(empty) == 0
    assert not empty.locate(120.3, 36.05).inside and empty.locate(120.3, 36.05).reason == OUTSIDE
    assert empty.locate_many([120.3], [36.05]).tolist() == [""]
    assert empty.locate_many([120.3], [36.05], level="micro").tolist() == [""]
    one = Locator.from_regions([{"code": "370202001001001", "name": "G", "level": "grid",
                                 "parent_code": None, "geom": box(X0, Y0, X0 + 0.001, Y0 + 0.001)},
                                {"code": "370202001001002", "name": "empty", "level": "grid",
                                 "parent_code": None, "geom": Polygon()}])
    assert len(one) == 1  # the empty geometry cannot hold a point
    assert one.locate(X0 + 0.0005, Y0 + 0.0005).grid_code == "370202001001001"
    assert one.locate(X0 + 0.0005, Y0 + 0.0005).micro_code is None
    with pytest.raises(ValueError, match="code"):
        Locator.from_regions([{"name": "x", "level": "grid", "geom": box(0, 0, 1, 1)}])


def _index_truth(geoms, x, y):
    out = np.full(len(x), -1)
    for i in range(len(geoms) - 1, -1, -1):
        out[shapely.intersects_xy(geoms[i], x, y)] = i
    return out


_GEOMS = [r.geom for r in sorted(tiling(11), key=lambda r: r.code) if r.level == "micro"]
_INDEXES = {cells: PolygonIndex(_GEOMS, max_cells=cells) for cells in (16, 2_000, 200_000)}
_BOUNDS = shapely.boundary(np.array(_GEOMS, dtype=object))


@settings(max_examples=150, deadline=None)
@given(poly=st.integers(0, len(_GEOMS) - 1), frac=st.floats(0, 1),
       dx=st.sampled_from([0.0, 1e-15, -1e-13, 1e-10, -1e-8, 5e-6]),
       dy=st.sampled_from([0.0, -1e-15, 1e-13, -1e-10, 1e-8]),
       cells=st.sampled_from(sorted(_INDEXES)))
def test_geo009_points_near_any_boundary(poly, frac, dx, dy, cells):
    p = shapely.line_interpolate_point(_BOUNDS[poly], frac, normalized=True)
    x, y = np.array([p.x + dx]), np.array([p.y + dy])
    ix = _INDEXES[cells]
    truth = _index_truth(_GEOMS, x, y)
    assert ix.lookup(x, y).tolist() == truth.tolist()
    assert ix.lookup_one(float(x[0]), float(y[0])) == truth[0]


def test_geo010_from_engine_reads_the_store(engine, rows):
    with engine.begin() as conn:
        upsert_regions(conn, rows)
    from_db = Locator.from_engine(engine)
    direct = Locator.from_regions(rows)
    x, y = probe_points(rows, n_random=5_000, seed=4)
    for level in ("grid", "micro", "community", "street", "district"):
        assert (from_db.locate_many(x, y, level=level) == direct.locate_many(x, y, level=level)).all(), level
    g = next(r for r in rows if r.level == "grid")
    p = g.geom.representative_point()
    loc = from_db.locate(p.x, p.y)
    assert loc.grid_code == g.code and loc.district_name == "市南区" and loc.street_name

    # a scope sees its own grids only; its ancestors still name the chain
    street = "370202002"
    scoped = Locator.from_engine(engine, scope=street)
    assert len(scoped) == sum(1 for r in rows if r.level == "grid" and r.code.startswith(street))
    codes = scoped.locate_many(x, y)
    full = direct.locate_many(x, y)
    assert (codes[np.strings.startswith(full, street)] == full[np.strings.startswith(full, street)]).all()
    # elsewhere nothing, except on the street's own edge, which full gives to a lower code
    by_code = {r.code: r for r in rows}
    rest = np.flatnonzero(~np.strings.startswith(full, street) & (codes != ""))
    assert len(rest) < 0.05 * len(x)
    for i in rest:
        assert codes[i].startswith(street) and by_code[codes[i]].geom.intersects(shapely.Point(x[i], y[i]))
    assert (codes[~np.strings.startswith(full, street)] == "").mean() > 0.9
    other = next(r for r in rows if r.level == "grid" and not r.code.startswith(street)).geom.representative_point()
    assert scoped.locate(other.x, other.y).reason == OUTSIDE
    mine = next(r for r in rows if r.level == "grid" and r.code.startswith(street))
    inside = scoped.locate(mine.geom.representative_point().x, mine.geom.representative_point().y)
    assert inside.street_name == "街道2" and inside.district_name == "市南区"
