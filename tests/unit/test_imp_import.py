"""Boundary import: formats, CRSs, encodings, the validation report, parents, transactions."""
from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from dashboard.boundary.importer import import_file
from dashboard.boundary.reader import BoundaryError, detect_dbf_encoding
from dashboard.geo.coords import area_m2, wgs84_to_gcj02
from dashboard.store.regions import RegionRow, load_regions, upsert_regions
from dashboard.store.schema import region

from .imp_fixtures import (
    COMMUNITY, DISTRICT, DX, DY, LAT0, LON0, STREET, bow_tie, cell, english_rows, gk_survey_shapefile, lattice,
    project, survey_features, write_geojson, write_shapefile, zip_shapefile,
)


def by_code(engine, **kw) -> dict[str, dict]:
    return {r["code"]: r for r in load_regions(engine, **kw)}


def snapshot(engine) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(region.c.code, region.c.name, region.c.geom, region.c.households, region.c.source)
            .order_by(region.c.code))]


def problems_of(result, code) -> set[str]:
    return {p["problem"] for p in result.problems if p["code"] == code}


def assert_same_place(stored, source, tol=1e-6):
    """The stored WGS-84 geometry has the source's lon/lat vertices (to ``tol`` degrees)."""
    a = shapely.get_coordinates(stored)
    b = shapely.get_coordinates(source)
    assert a.shape == b.shape
    # every vertex has its counterpart within tol, both ways
    d = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2)
    assert d.min(axis=1).max() < tol and d.min(axis=0).max() < tol
    assert shapely.hausdorff_distance(stored, source) < tol


# --- The survey file ------------------------------------------------------------------

@pytest.mark.parametrize("zone", ["EPSG:4528", "EPSG:4549"])
def test_imp001_gbk_gauss_kruger_shapefile_report_and_place(engine, tmp_path, zone):
    shp = gk_survey_shapefile(tmp_path, zone)  # GBK, no .cpg: encoding detected
    assert not shp.with_suffix(".cpg").exists()
    result = import_file(engine, shp)
    assert result.ok, result.summary()
    assert result.encoding == "gbk"
    assert result.source_crs == zone
    g = f"{COMMUNITY}{{:03d}}".format
    # each problem feature named by its code
    assert "invalid_geometry" in problems_of(result, g(7))
    assert "overlap" in problems_of(result, g(8)) and "overlap" in problems_of(result, g(1))
    assert problems_of(result, g(9)) == {"empty_geometry"}
    severities = {(p["code"], p["problem"]): p["severity"] for p in result.problems}
    assert severities[(g(9), "empty_geometry")] == "error"
    assert severities[(g(7), "invalid_geometry")] == "warning"
    # nothing else is reported about the good grids
    for k in (2, 3, 4, 5, 6, 10):
        assert problems_of(result, g(k)) == set()
    rows = by_code(engine)
    assert g(9) not in rows                         # the empty one is not imported ...
    assert result.excluded == 1 and result.imported == 9
    bow = rows[g(7)]["geom"]                        # ... the bow-tie is, repaired
    assert bow.is_valid and bow.geom_type == "MultiPolygon" and len(bow.geoms) == 2
    assert bow.area == pytest.approx(DX * DY / 2, rel=1e-6)
    # Chinese attributes read right
    assert rows[g(1)]["name"] == "永嘉路社区001网格"
    assert rows[COMMUNITY]["name"] == "永嘉路社区"
    assert rows[STREET]["name"] == "八大峡街道"
    assert rows[g(10)]["kind"] == "school" and rows[g(1)]["kind"] == "basic"
    assert rows[g(1)]["households"] == 501 and rows[g(1)]["population"] == 1002
    # coordinates land back at the source lon/lat
    src_rows, src_geoms = survey_features()
    for r, geom in zip(src_rows, src_geoms):
        if r["网格编码"] in (g(7), g(9)):
            continue
        assert_same_place(rows[r["网格编码"]]["geom"], geom)


def test_imp002_gbk_with_cpg_and_encoding_option(engine, tmp_path):
    rows, geoms = lattice(2, 1)
    shp = write_shapefile(tmp_path / "a.shp", rows, project(geoms, "EPSG:4528"), "EPSG:4528", cpg=True)
    assert shp.with_suffix(".cpg").read_text().strip().upper() == "GBK"
    result = import_file(engine, shp)
    assert result.ok and result.encoding == "gbk"
    assert by_code(engine)[f"{COMMUNITY}001"]["name"] == "永嘉路社区001网格"
    # a wrong --encoding shows: the code field is not even found under its Chinese name
    with pytest.raises(BoundaryError) as err:
        import_file(engine, shp, encoding="latin-1")
    assert err.value.problem == "no_code_field"


def test_imp003_utf8_shapefile_without_cpg_detected(engine, tmp_path):
    rows, geoms = lattice(2, 1)
    shp = write_shapefile(tmp_path / "u.shp", english_rows(rows), geoms, "EPSG:4490", encoding="UTF-8", cpg=False)
    result = import_file(engine, shp)
    assert result.ok and result.encoding == "utf-8"
    assert by_code(engine)[f"{COMMUNITY}002"]["name"] == "永嘉路社区002网格"


def test_imp004_dbf_encoding_detection_rules():
    header = bytearray(32)
    header[8:10] = (32 + 32 + 1).to_bytes(2, "little")
    field = b"NAME".ljust(11, b"\0") + b"C" + bytes(20)
    gbk = bytes(header) + field + b"\r" + b" " + "永嘉路".encode("gbk")
    utf8 = bytes(header) + field + b"\r" + b" " + "永嘉路".encode("utf-8")
    assert detect_dbf_encoding(None, gbk) == ("gbk", "detected")
    assert detect_dbf_encoding(None, utf8) == ("utf-8", "detected")
    assert detect_dbf_encoding(b"936", utf8) == ("gbk", ".cpg")
    assert detect_dbf_encoding(b"UTF-8\n", gbk) == ("utf-8", ".cpg")
    assert detect_dbf_encoding(b"nonsense", gbk) == ("gbk", "detected")


# --- Formats and CRSs ----------------------------------------------------------------------------

def test_imp005_geojson_utf8_english_fields(engine, tmp_path):
    rows, geoms = lattice(3, 1)
    path = write_geojson(tmp_path / "g.geojson", english_rows(rows), geoms)
    result = import_file(engine, path)
    assert result.ok and result.imported == 3
    assert result.fields["code"] == "code" and result.fields["parent_name"] == "community"
    stored = by_code(engine)
    assert stored[COMMUNITY]["name"] == "永嘉路社区"
    for r, geom in zip(rows, geoms):
        assert_same_place(stored[r["网格编码"]]["geom"], geom)


def test_imp006_zipped_shapefile(engine, tmp_path):
    shp = gk_survey_shapefile(tmp_path)
    z = zip_shapefile(shp, tmp_path / "survey.zip")
    result = import_file(engine, z)
    assert result.ok and result.imported == 9 and result.encoding == "gbk"
    assert by_code(engine)[f"{COMMUNITY}003"]["name"] == "永嘉路社区003网格"


def test_imp007_geopackage_with_layer(engine, tmp_path):
    rows, geoms = lattice(2, 2)
    other_rows, other_geoms = lattice(2, 1, "370202001002", lat0=LAT0 + 0.01, community_name="仙游路社区")
    path = tmp_path / "survey.gpkg"
    gpd.GeoDataFrame(rows, geometry=geoms, crs=4490).to_file(path, layer="yongjia", driver="GPKG")
    gpd.GeoDataFrame(other_rows, geometry=other_geoms, crs=4490).to_file(path, layer="xianyou", driver="GPKG")
    with pytest.raises(BoundaryError) as err:        # two layers: which one?
        import_file(engine, path)
    assert err.value.usage and "xianyou" in str(err.value) and "yongjia" in str(err.value)
    with pytest.raises(BoundaryError) as err:
        import_file(engine, path, layer="nope")
    assert err.value.problem == "no_such_layer"
    result = import_file(engine, path, layer="xianyou")
    assert result.ok and result.imported == 2
    stored = by_code(engine)
    assert "370202001002001" in stored and f"{COMMUNITY}001" not in stored
    assert stored["370202001002"]["name"] == "仙游路社区"


def test_imp008_cgcs2000_geographic_input(engine, tmp_path):
    rows, geoms = lattice(2, 2)
    shp = write_shapefile(tmp_path / "c.shp", rows, geoms, "EPSG:4490")
    result = import_file(engine, shp)
    assert result.ok and result.source_crs == "EPSG:4490"
    stored = by_code(engine)
    for r, geom in zip(rows, geoms):
        assert_same_place(stored[r["网格编码"]]["geom"], geom, 1e-9)


def test_imp009_gcj02_option(engine, tmp_path):
    rows, geoms = lattice(2, 1)

    def to_gcj(c):
        x, y = wgs84_to_gcj02(c[:, 0], c[:, 1])
        return np.column_stack([x, y])
    shifted = [shapely.transform(g, to_gcj) for g in geoms]
    assert shapely.hausdorff_distance(shifted[0], geoms[0]) > 1e-3  # GCJ-02 moves Qingdao by ~500 m
    path = write_geojson(tmp_path / "amap.geojson", english_rows(rows), shifted)
    result = import_file(engine, path, gcj02=True)
    assert result.ok
    stored = by_code(engine)
    for r, geom in zip(rows, geoms):
        assert_same_place(stored[r["网格编码"]]["geom"], geom)


def test_imp010_missing_crs_is_an_error_unless_given(engine, tmp_path):
    rows, geoms = lattice(2, 1)
    shp = write_shapefile(tmp_path / "noprj.shp", rows, project(geoms, "EPSG:4528"), "EPSG:4528", prj=False)
    with pytest.raises(BoundaryError) as err:
        import_file(engine, shp)
    assert err.value.problem == "no_crs" and "--crs" in str(err.value)
    assert snapshot(engine) == []
    # the zone without its prefix is caught as a wrong CRS, not stored somewhere in the sea
    with pytest.raises(BoundaryError) as err:
        import_file(engine, shp, crs="EPSG:4549")
    assert err.value.problem == "bad_crs"
    result = import_file(engine, shp, crs="EPSG:4528")
    assert result.ok
    assert_same_place(by_code(engine)[f"{COMMUNITY}001"]["geom"], geoms[0])


def test_imp011_not_a_boundary_file(engine, tmp_path):
    fake = tmp_path / "grids.geojson"
    fake.write_text("网格编码,名称\n370202001001001,test\n", encoding="utf-8")
    with pytest.raises(BoundaryError) as err:
        import_file(engine, fake)
    assert err.value.problem == "not_a_boundary_file" and "grids.geojson" in str(err.value)
    z = tmp_path / "grids.zip"
    import zipfile

    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("readme.txt", "no shapefile here")
    with pytest.raises(BoundaryError) as err:
        import_file(engine, z)
    assert err.value.problem == "not_a_boundary_file" and ".shp" in str(err.value) and "readme.txt" in str(err.value)
    notzip = tmp_path / "bad.zip"
    notzip.write_bytes(b"PK but not really")
    with pytest.raises(BoundaryError):
        import_file(engine, notzip)
    with pytest.raises(BoundaryError) as err:
        import_file(engine, tmp_path / "missing.shp")
    assert err.value.usage
    assert snapshot(engine) == []


def test_imp012_no_code_field_names_the_fields(engine, tmp_path):
    rows, geoms = lattice(2, 1)
    data = [{"F1": r["网格编码"], "F2": r["网格名称"], "备注": "x"} for r in rows]
    path = write_geojson(tmp_path / "odd.geojson", data, geoms)
    with pytest.raises(BoundaryError) as err:
        import_file(engine, path)
    assert err.value.problem == "no_code_field"
    assert "F1" in str(err.value) and "F2" in str(err.value) and "备注" in str(err.value)
    # --field maps them; the unmapped field is listed as info, not a problem
    result = import_file(engine, path, fields={"code": "F1", "name": "F2"})
    assert result.ok and result.imported == 2
    info = [p for p in result.problems if p["problem"] == "unknown_field"]
    assert len(info) == 1 and info[0]["severity"] == "info" and "备注" in info[0]["detail"]
    assert by_code(engine)[f"{COMMUNITY}002"]["name"] == "永嘉路社区002网格"
    assert by_code(engine)[COMMUNITY]["name"] == f"社区 {COMMUNITY}"   # no 所属社区 field: generated
    with pytest.raises(BoundaryError) as err:
        import_file(engine, path, fields={"code": "NOPE"})
    assert err.value.usage and "F1" in str(err.value)


# --- The report ------------------------------------------------------------------------------------

def test_imp013_mixed_geometry_types_named(engine, tmp_path):
    rows, geoms = lattice(3, 1)
    geoms = list(geoms)
    geoms[1] = shapely.Point(LON0 + 1.5 * DX, LAT0 + DY / 2)
    geoms[2] = shapely.LineString([(LON0 + 2 * DX, LAT0), (LON0 + 3 * DX, LAT0 + DY)])
    path = write_geojson(tmp_path / "mixed.geojson", english_rows(rows), geoms)
    result = import_file(engine, path)
    assert result.ok and result.imported == 1 and result.excluded == 2
    errs = {p["code"]: p for p in result.errors}
    assert errs[f"{COMMUNITY}002"]["problem"] == "not_polygon" and "Point" in errs[f"{COMMUNITY}002"]["detail"]
    assert errs[f"{COMMUNITY}003"]["problem"] == "not_polygon" and "LineString" in errs[f"{COMMUNITY}003"]["detail"]
    assert set(by_code(engine, levels=["grid"])) == {f"{COMMUNITY}001"}


def test_imp014_duplicate_and_bad_codes(engine, tmp_path):
    rows, geoms = lattice(3, 2)
    rows[1]["网格编码"] = rows[0]["网格编码"]              # duplicate
    rows[2]["网格编码"] = "37020200100100X"               # non-digit
    rows[3]["网格编码"] = "3702020010010"                 # wrong width
    rows[4]["网格编码"] = None                            # no code
    rows[5]["社区编码"] = "370202001009"                  # parent field disagrees
    for r in rows[:5]:
        r["社区编码"] = COMMUNITY
    path = write_geojson(tmp_path / "codes.geojson", rows, geoms)
    result = import_file(engine, path)
    assert not result.ok and result.refused == "no feature can be imported"
    found = {(p["code"], p["problem"]) for p in result.errors}
    assert (f"{COMMUNITY}001", "duplicate_code") in found
    assert [p["feature"] for p in result.errors if p["problem"] == "duplicate_code"] == [0, 1]
    assert ("37020200100100X", "bad_code") in found
    assert ("3702020010010", "bad_code") in found
    assert ("#4", "missing_code") in found                # named by its index
    assert (f"{COMMUNITY}006", "code_parent_mismatch") in found
    assert snapshot(engine) == []


def test_imp015_code_conflicts_with_store_levels(engine, tmp_path):
    # 370202001 exists, but as a grid-level oddity: the parent prefix is the wrong level
    with engine.begin() as conn:
        upsert_regions(conn, [RegionRow("370202", "市南区", "district", shapely.box(120, 36, 121, 37)),
                              RegionRow("370202001", "odd", "community", shapely.box(120, 36, 121, 37),
                                        parent_code="370202")])
    rows, geoms = lattice(2, 1)
    path = write_geojson(tmp_path / "g.geojson", rows, geoms)
    result = import_file(engine, path)
    assert not result.ok
    assert {p["problem"] for p in result.errors} == {"code_parent_mismatch"}
    assert all("370202001 is a community" in p["detail"] for p in result.errors)


def test_imp016_gaps_and_tolerance(engine, tmp_path):
    rows, geoms = lattice(3, 3)
    del rows[4], geoms[4]                                  # the middle cell: a hole inside the community
    path = write_geojson(tmp_path / "holey.geojson", rows, geoms)
    result = import_file(engine, path, dry_run=True)
    gaps = [p for p in result.problems if p["problem"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["code"] == COMMUNITY and gaps[0]["severity"] == "warning"
    hole_area = area_m2(cell(1, 1))
    assert f"{hole_area:,.1f}" in gaps[0]["detail"]
    assert f"{COMMUNITY}002" in gaps[0]["detail"]          # a neighbour of the hole is named
    quiet = import_file(engine, path, dry_run=True, tolerance=hole_area * 1.01)
    assert not [p for p in quiet.problems if p["problem"] in ("gap", "overlap")]
    # a ring-shaped grid around an island grid: only the band between them is a gap
    ring = shapely.difference(shapely.box(LON0, LAT0, LON0 + 3 * DX, LAT0 + 3 * DY), cell(1, 1))
    island = shapely.box(LON0 + 1.1 * DX, LAT0 + 1.1 * DY, LON0 + 1.9 * DX, LAT0 + 1.9 * DY)
    path = write_geojson(tmp_path / "ring.geojson", rows[:2], [ring, island])
    ringed = import_file(engine, path, dry_run=True)
    gaps = [p for p in ringed.problems if p["problem"] == "gap"]
    band = area_m2(shapely.difference(cell(1, 1), island))
    assert len(gaps) == 1 and f"{band:,.1f} m²" in gaps[0]["detail"]


def test_imp017_overlap_tolerance(engine, tmp_path):
    rows, geoms = lattice(2, 1)
    geoms = list(geoms)
    geoms[1] = shapely.box(LON0 + DX - DX / 100, LAT0, LON0 + 2 * DX, LAT0 + DY)   # 1 % over its neighbour
    path = write_geojson(tmp_path / "ov.geojson", rows, geoms)
    overlap = area_m2(shapely.box(LON0 + DX - DX / 100, LAT0, LON0 + DX, LAT0 + DY))
    loud = import_file(engine, path, dry_run=True, tolerance=overlap * 0.9)
    assert {p["code"] for p in loud.problems if p["problem"] == "overlap"} == {r["网格编码"] for r in rows}
    quiet = import_file(engine, path, dry_run=True, tolerance=overlap * 1.1)
    assert not [p for p in quiet.problems if p["problem"] == "overlap"]


def test_imp018_report_json(engine, tmp_path):
    shp = gk_survey_shapefile(tmp_path)
    result = import_file(engine, shp, dry_run=True)
    out = tmp_path / "report.json"
    result.write_report(out)
    data = json.loads(out.read_text(encoding="utf-8"))
    assert isinstance(data, list) and data
    for item in data:
        assert {"code", "problem", "detail", "severity"} <= set(item)
        assert item["severity"] in ("error", "warning", "info")
    assert {(d["code"], d["problem"]) for d in data} >= {(f"{COMMUNITY}009", "empty_geometry"),
                                                         (f"{COMMUNITY}007", "invalid_geometry")}


# --- Strict, dry-run, transactions, idempotence -------------------------------------------------------

def test_imp019_strict_leaves_store_unchanged(engine, tmp_path):
    rows, geoms = lattice(3, 2)
    good = write_geojson(tmp_path / "good.geojson", rows, geoms)
    assert import_file(engine, good).ok
    before = snapshot(engine)
    shp = gk_survey_shapefile(tmp_path)                    # same codes, new names, and problems
    result = import_file(engine, shp, strict=True)
    assert not result.ok and result.inserted == 0 and result.updated == 0
    assert "--strict" in result.refused
    assert snapshot(engine) == before
    # a clean file passes --strict
    assert import_file(engine, good, strict=True).ok


def test_imp020_dry_run_writes_nothing(engine, tmp_path):
    shp = gk_survey_shapefile(tmp_path)
    result = import_file(engine, shp, dry_run=True)
    assert result.ok and result.dry_run
    assert result.inserted == 9 + 3 and result.updated == 0   # 9 grids + community, street, district
    assert snapshot(engine) == []
    assert "would import" in result.summary()


def test_imp021_reimport_is_idempotent(engine, tmp_path):
    shp = gk_survey_shapefile(tmp_path)
    first = import_file(engine, shp)
    assert (first.inserted, first.updated) == (12, 0)
    rows1 = snapshot(engine)
    second = import_file(engine, shp)
    assert (second.inserted, second.updated) == (0, 12)
    rows2 = snapshot(engine)
    assert len(rows2) == len(rows1)
    assert [r[:4] for r in rows2] == [r[:4] for r in rows1]


def test_imp022_exception_midway_rolls_back(engine, tmp_path, monkeypatch):
    from dashboard.boundary.synthetic import make_synthetic_grid_file
    from dashboard.store import regions

    path = make_synthetic_grid_file(tmp_path / "s.gpkg", n=1500)
    real = regions.upsert_regions
    calls = []

    def fail_on_second(conn, rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(conn, rows)
    monkeypatch.setattr(regions, "upsert_regions", fail_on_second)
    with pytest.raises(RuntimeError):
        import_file(engine, path)
    assert calls[0] == 1000                                # the first chunk was written ... and undone
    assert snapshot(engine) == []


# --- Parents built from codes ----------------------------------------------------------------------

def test_imp023_parents_dissolved_from_grid_codes(engine, tmp_path):
    rows_a, geoms_a = lattice(3, 2)
    rows_b, geoms_b = lattice(3, 2, "370202001002", lon0=LON0 + 3 * DX, community_name="仙游路社区")
    rows_c, geoms_c = lattice(2, 2, "370202002001", lat0=LAT0 + 2 * DY, community_name="仰口路社区",
                              street_name="云南路街道")
    rows, geoms = rows_a + rows_b + rows_c, geoms_a + geoms_b + geoms_c
    path = write_geojson(tmp_path / "three.geojson", rows, geoms)
    result = import_file(engine, path)
    assert result.ok and result.parents_built == 3 + 2 + 1
    stored = by_code(engine)
    assert stored["370202001001"]["name"] == "永嘉路社区"
    assert stored["370202001002"]["name"] == "仙游路社区"
    assert stored["370202002"]["name"] == "云南路街道"
    assert stored[DISTRICT]["name"] == f"区 {DISTRICT}"
    for code, level, parent in (("370202001001", "community", "370202001"), ("370202001", "street", DISTRICT),
                                (DISTRICT, "district", None)):
        assert stored[code]["level"] == level and stored[code]["parent_code"] == parent
    for pcode in ("370202001001", "370202001002", "370202002001", "370202001", "370202002", DISTRICT):
        kids = [stored[r["网格编码"]] for r in rows if r["网格编码"].startswith(pcode)]
        parent = stored[pcode]
        assert parent["geom"].is_valid
        assert parent["area_m2"] == pytest.approx(sum(k["area_m2"] for k in kids), rel=1e-3)
        assert shapely.area(shapely.symmetric_difference(
            parent["geom"], shapely.union_all([k["geom"] for k in kids]))) < 1e-12
        assert parent["households"] == sum(k["households"] for k in kids)
        assert parent["population"] == sum(k["population"] for k in kids)


def test_imp024_existing_parents_are_kept(engine, tmp_path):
    street_geom = shapely.box(120.0, 36.0, 120.5, 36.5)
    with engine.begin() as conn:
        upsert_regions(conn, [
            RegionRow(DISTRICT, "市南区", "district", street_geom),
            RegionRow(STREET, "八大峡街道(demo)", "street", street_geom, parent_code=DISTRICT, population=7),
        ])
    rows, geoms = lattice(3, 2)
    path = write_geojson(tmp_path / "g.geojson", rows, geoms)
    result = import_file(engine, path)
    assert result.ok and result.parents_built == 1          # only the community was missing
    stored = by_code(engine)
    assert stored[STREET]["name"] == "八大峡街道(demo)" and stored[STREET]["population"] == 7
    assert stored[STREET]["geom"].equals(street_geom) and stored[STREET]["source"] == "demo"
    assert stored[COMMUNITY]["source"] == "import:g.geojson"
    # the same source again rebuilds its own community from the new geometry
    rows2, geoms2 = lattice(3, 1)
    write_geojson(tmp_path / "g.geojson", rows2, geoms2)
    again = import_file(engine, path)
    assert again.ok and again.parents_built == 1 and again.updated == 4
    assert by_code(engine)[COMMUNITY]["geom"].equals(shapely.union_all(geoms2))


def test_imp025_bow_tie_alone_and_kinds(engine, tmp_path):
    rows, geoms = lattice(3, 1)
    geoms = [bow_tie(0, 0), geoms[1], geoms[2]]
    rows[1]["网格类型"] = "专属网格"
    rows[1]["网格名称"] = "第二中学专属网格"
    rows[2]["网格类型"] = "神秘网格"
    rows[0]["户数"] = "many"
    path = write_geojson(tmp_path / "k.geojson", rows, geoms)
    result = import_file(engine, path)
    assert result.ok and result.imported == 3
    stored = by_code(engine)
    assert stored[rows[1]["网格编码"]]["kind"] == "school"
    assert stored[rows[2]["网格编码"]]["kind"] is None
    assert "unknown_kind" in problems_of(result, rows[2]["网格编码"])
    assert "bad_number" in problems_of(result, rows[0]["网格编码"])
    assert stored[rows[0]["网格编码"]]["households"] == 0


def test_imp026_synthetic_file_imports_clean(engine, tmp_path):
    from dashboard.boundary.synthetic import make_synthetic_grid_file

    path = make_synthetic_grid_file(tmp_path / "s.shp", n=335, fmt="shp", crs="EPSG:4528")
    result = import_file(engine, path)
    assert result.ok, result.summary()
    assert [p for p in result.problems if p["severity"] != "info"] == []
    assert result.imported == 335 and result.parents_built == 12 + 2 + 1
    stored = by_code(engine, levels=["community"])
    assert len(stored) == 12 and stored["370203001001"]["name"] == "试点1街道1社区"
    # the Gauss-Krüger round trip leaves shared edges equal only up to float noise; the dissolved
    # parents must still be whole polygons without slits or holes
    for r in load_regions(engine, levels=["district", "street", "community"]):
        assert r["geom"].geom_type == "Polygon" and not list(r["geom"].interiors), r["code"]


def test_imp027_empty_unparseable_and_collection_geometries(engine, tmp_path):
    feats = [
        {"type": "Polygon", "coordinates": []},
        {"type": "Polygon", "coordinates": [[[120.38, 36.06], [120.39, 36.06]]]},   # two points: no ring
        None,
        {"type": "Polygon", "coordinates": [[[120.38, 36.06], [120.39, 36.06], [120.39, 36.07], [120.38, 36.06]]]},
        {"type": "GeometryCollection", "geometries": [{"type": "Point", "coordinates": [120.38, 36.06]}]},
        {"type": "GeometryCollection", "geometries": [
            {"type": "Point", "coordinates": [120.40, 36.06]},
            {"type": "Polygon", "coordinates": [[[120.40, 36.06], [120.41, 36.06], [120.41, 36.07], [120.40, 36.06]]]}]},
    ]
    fc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"code": f"{COMMUNITY}{k + 1:03d}"}, "geometry": g}
        for k, g in enumerate(feats)]}
    path = tmp_path / "odd.geojson"
    path.write_text(json.dumps(fc), encoding="utf-8")
    result = import_file(engine, path)
    assert result.ok and result.imported == 2 and result.excluded == 4
    errors = {p["code"]: p["problem"] for p in result.errors}
    assert errors == {f"{COMMUNITY}001": "empty_geometry", f"{COMMUNITY}002": "empty_geometry",
                      f"{COMMUNITY}003": "empty_geometry", f"{COMMUNITY}005": "not_polygon"}
    assert "not_polygon" in problems_of(result, f"{COMMUNITY}006")          # the point part is dropped
    assert by_code(engine)[f"{COMMUNITY}006"]["geom"].geom_type == "Polygon"


def test_imp028_wrong_level_hint(engine, tmp_path):
    path = write_geojson(tmp_path / "c.geojson", [{"code": COMMUNITY}], [cell(0, 0)])
    result = import_file(engine, path)
    assert not result.ok and "--level community" in result.errors[0]["detail"]
    assert import_file(engine, path, level="community").ok
    assert by_code(engine)[COMMUNITY]["level"] == "community"
