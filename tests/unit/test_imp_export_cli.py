"""Export round trips, and the import-grids / export-regions command lines (real subprocesses)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
import sqlalchemy as sa

from dashboard.boundary.export import ExportError, export_regions
from dashboard.boundary.importer import import_file
from dashboard.geo.coords import gcj02_to_wgs84
from dashboard.store.engine import make_engine
from dashboard.store.regions import load_regions

from .imp_fixtures import COMMUNITY, DX, LON0, gk_survey_shapefile, lattice, write_geojson

ROOT = Path(__file__).resolve().parents[2]


def two_communities(tmp_path):
    rows_a, geoms_a = lattice(3, 2)
    rows_b, geoms_b = lattice(2, 2, "370202002001", lon0=LON0 + 3 * DX, community_name="仰口路社区",
                              street_name="云南路街道")
    rows_b[0]["网格类型"] = "医院专属网格"
    return write_geojson(tmp_path / "two.geojson", rows_a + rows_b, geoms_a + geoms_b)


def back_to_wgs84(gdf, crs):
    if crs == "gcj02":
        def undo(c):
            x, y = gcj02_to_wgs84(c[:, 0], c[:, 1])
            return np.column_stack([x, y])
        return [shapely.transform(g, undo) for g in gdf.geometry.values]
    return list(gdf.to_crs(4326).geometry.values)


@pytest.mark.parametrize("fmt,crs", [("geojson", "EPSG:4326"), ("gpkg", "EPSG:4490"), ("shp", "EPSG:4528"),
                                     ("shp", "EPSG:4549"), ("geojson", "gcj02"), ("gpkg", "EPSG:3857")])
def test_imp030_export_round_trip(engine, tmp_path, fmt, crs):
    assert import_file(engine, two_communities(tmp_path)).ok
    out = tmp_path / f"grids.{fmt}"
    n = export_regions(engine, "grid", out, fmt=fmt, crs=crs)
    stored = {r["code"]: r for r in load_regions(engine, levels=["grid"])}
    assert n == len(stored) == 10
    back = gpd.read_file(out)
    if fmt == "shp":
        assert out.with_suffix(".cpg").read_text().strip().upper() in ("UTF-8", "UTF8")
        back = back.rename(columns={"parent_cod": "parent_code"})
    if crs != "gcj02":
        assert back.crs is not None and back.crs.equals(gpd.GeoSeries([], crs=crs).crs)
    assert list(back.columns[:-1]) == ["code", "name", "level", "kind", "parent_code", "households", "population"]
    geoms = back_to_wgs84(back, crs)
    for i, row in back.iterrows():
        src = stored[row["code"]]
        for key in ("name", "level", "kind", "parent_code", "households", "population"):
            assert row[key] == src[key], key
        assert shapely.hausdorff_distance(geoms[i], src["geom"]) < 1e-7
    assert stored["370202002001001"]["kind"] == "hospital"


def test_imp031_export_scope_levels_and_errors(engine, tmp_path):
    assert import_file(engine, two_communities(tmp_path)).ok
    out = tmp_path / "c.geojson"
    assert export_regions(engine, "community", out) == 2
    assert export_regions(engine, "grid", out, scope="370202002") == 4        # overwrites the file
    back = gpd.read_file(out)
    assert len(back) == 4 and all(c.startswith("370202002") for c in back["code"])
    assert export_regions(engine, "street", tmp_path / "s.gpkg", fmt="gpkg") == 2
    assert gpd.list_layers(tmp_path / "s.gpkg")["name"].tolist() == ["street"]
    with pytest.raises(ExportError):
        export_regions(engine, "micro", tmp_path / "m.geojson")
    with pytest.raises(ExportError):
        export_regions(engine, "grid", tmp_path / "x.geojson", crs="EPSG:999999")


# --- Command line ---------------------------------------------------------------------------------

def run_cli(tmp_path, *args):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "VAR_DIR": str(tmp_path / "var"),
           "REDIS_URL": ""}
    return subprocess.run([sys.executable, "-m", "dashboard", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def region_count(tmp_path) -> int:
    db = tmp_path / "cli.db"
    if not db.exists():
        return 0
    eng = make_engine(f"sqlite:///{db}")
    try:
        with eng.connect() as conn:
            return conn.execute(sa.text("select count(*) from region")).scalar_one()
    finally:
        eng.dispose()


def test_imp032_cli_import_exit_codes_and_report(tmp_path):
    shp = gk_survey_shapefile(tmp_path)
    report = tmp_path / "report.json"
    # --strict with problems: refused, exit 1, nothing written, report still written
    r = run_cli(tmp_path, "import-grids", shp, "--strict", "--report", report)
    assert r.returncode == 1, r.stderr
    assert "refused" in r.stdout and region_count(tmp_path) == 0
    assert {d["problem"] for d in json.loads(report.read_text(encoding="utf-8"))} >= {"empty_geometry", "overlap"}
    # --dry-run: exit 0, nothing written
    r = run_cli(tmp_path, "import-grids", shp, "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "would import 9 of 10" in r.stdout and region_count(tmp_path) == 0
    # a real import: exit 0, one line per problem then the summary
    r = run_cli(tmp_path, "import-grids", shp, "--report", report)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1].startswith("imported 9 of 10 grid features")
    assert any(f"{COMMUNITY}009" in line and "empty_geometry" in line for line in lines)
    assert region_count(tmp_path) == 12
    data = json.loads(report.read_text(encoding="utf-8"))
    assert {(d["code"], d["problem"]) for d in data} >= {(f"{COMMUNITY}007", "invalid_geometry"),
                                                         (f"{COMMUNITY}009", "empty_geometry")}
    assert "Traceback" not in r.stderr


def test_imp033_cli_bad_input_exit_codes(tmp_path):
    rows, geoms = lattice(2, 1)
    good = write_geojson(tmp_path / "g.geojson", rows, geoms)
    fake = tmp_path / "fake.geojson"
    fake.write_text("not a boundary file", encoding="utf-8")
    r = run_cli(tmp_path, "import-grids", fake)                      # bad input: 1, one clear line
    assert r.returncode == 1 and "fake.geojson" in r.stderr and "Traceback" not in r.stderr
    r = run_cli(tmp_path, "import-grids", tmp_path / "absent.shp")  # usage: 2
    assert r.returncode == 2 and "no such file" in r.stderr
    r = run_cli(tmp_path, "import-grids", good, "--field", "codeWGBM")
    assert r.returncode == 2 and "ROLE=FIELD" in r.stderr
    r = run_cli(tmp_path, "import-grids", good, "--field", "code=WGBM")
    assert r.returncode == 2 and "网格编码" in r.stderr               # names the fields there are
    assert region_count(tmp_path) == 0
    r = run_cli(tmp_path, "import-grids", good, "--field", "code=网格编码")
    assert r.returncode == 0, r.stderr
    assert region_count(tmp_path) == 2 + 3


def test_imp034_cli_export(tmp_path):
    src = two_communities(tmp_path)
    assert run_cli(tmp_path, "import-grids", src).returncode == 0
    out = tmp_path / "streets.shp"
    r = run_cli(tmp_path, "export-regions", "--level", "grid", "--format", "shp", "--crs", "EPSG:4490",
                "--scope", "370202001", "-o", out)
    assert r.returncode == 0, r.stderr
    back = gpd.read_file(out)
    assert len(back) == 6 and back.crs.to_epsg() == 4490
    assert set(back["name"]) == {f"永嘉路社区{k:03d}网格" for k in range(1, 7)}
    r = run_cli(tmp_path, "export-regions", "--level", "micro", "-o", tmp_path / "m.geojson")
    assert r.returncode == 2 and "no micro regions" in r.stderr


def test_imp035_cli_export_without_output_writes_standard_output_so_it_pipes(tmp_path):
    src = two_communities(tmp_path)
    assert run_cli(tmp_path, "import-grids", src).returncode == 0
    # no -o, and -o -: the GeoJSON is the whole of stdout; the summary goes to stderr
    for extra in ((), ("-o", "-")):
        r = run_cli(tmp_path, "export-regions", "--level", "grid", "--format", "geojson", *extra)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert data["type"] == "FeatureCollection" and len(data["features"]) == 10
        assert {f["properties"]["code"][:9] for f in data["features"]} == {"370202001", "370202002"}
        assert "exported 10 grid regions to standard output" in r.stderr
        assert not (ROOT / "-").exists()
    # the same bytes as a file export, down a real pipe into another process
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "VAR_DIR": str(tmp_path / "var"),
           "REDIS_URL": ""}
    producer = subprocess.Popen([sys.executable, "-m", "dashboard", "export-regions", "--level", "grid",
                                 "--scope", "370202002", "--crs", "EPSG:4490"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    reader = subprocess.run([sys.executable, "-c", "import sys, geopandas as g; d = g.read_file(sys.stdin.buffer); "
                             "print(len(d), d.crs.to_epsg(), sorted(d['code'])[0])"],
                            stdin=producer.stdout, capture_output=True, text=True, timeout=120)
    producer.stdout.close()
    assert producer.wait(timeout=120) == 0
    assert reader.stdout.split() == ["4", "4490", "370202002001001"], reader.stderr
    # formats that cannot stream say so, write nothing to stdout, and do not leave a file named "-"
    for fmt in ("gpkg", "shp"):
        r = run_cli(tmp_path, "export-regions", "--level", "grid", "--format", fmt)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.strip() == (f"error: --format {fmt} cannot be written to standard output (only geojson): "
                                    "give a file with -o FILE")
    assert not (ROOT / "-").exists()


def test_imp036_export_to_a_stream_refuses_formats_that_cannot_stream(engine, tmp_path):
    import io

    rows, geoms = lattice(2, 1)
    import_file(engine, write_geojson(tmp_path / "g.geojson", rows, geoms))
    out = io.BytesIO()
    assert export_regions(engine, "grid", out, fmt="geojson") == 2
    assert [f["properties"]["code"] for f in json.loads(out.getvalue())["features"]] == sorted(r["网格编码"] for r in rows)
    for fmt in ("gpkg", "shp"):
        with pytest.raises(ExportError, match="cannot be written to standard output"):
            export_regions(engine, "grid", io.BytesIO(), fmt=fmt)
