"""Boundary files written by the tests (never committed): the survey files of the issue."""
from __future__ import annotations

import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

# Qingdao Shinan, near 永嘉路: the fixtures' lattice origin in CGCS2000 / WGS-84 lon/lat
LON0, LAT0 = 120.3800, 36.0600
DX, DY = 0.0010, 0.0008          # about 90 m x 89 m
COMMUNITY = "370202001001"
STREET = COMMUNITY[:9]
DISTRICT = COMMUNITY[:6]


def cell(col: int, row: int, lon0: float = LON0, lat0: float = LAT0):
    x, y = lon0 + col * DX, lat0 + row * DY
    return shapely.box(x, y, x + DX, y + DY)


def bow_tie(col: int, row: int):
    x, y = LON0 + col * DX, LAT0 + row * DY
    return shapely.Polygon([(x, y), (x + DX, y + DY), (x + DX, y), (x, y + DY)])


def lattice(cols: int, rows: int, community: str = COMMUNITY, *, lon0: float = LON0, lat0: float = LAT0,
            community_name: str = "永嘉路社区", street_name: str = "八大峡街道", start: int = 1):
    """Rows (attribute dicts with Chinese field names) and lon/lat boxes tiling cols x rows cells."""
    rows_out, geoms = [], []
    k = start
    for r in range(rows):
        for c in range(cols):
            rows_out.append({"网格编码": f"{community}{k:03d}", "网格名称": f"{community_name}{k:03d}网格",
                             "所属社区": community_name, "所属街道": street_name, "网格类型": "基础网格",
                             "户数": 500 + k, "人口": 1000 + 2 * k})
            geoms.append(cell(c, r, lon0, lat0))
            k += 1
    return rows_out, geoms


def survey_features():
    """The issue's survey file, as lon/lat: six good grids (3 x 2), a bow-tie, a grid that
    overlaps grid 001, an empty geometry and a dedicated school grid."""
    rows, geoms = lattice(3, 2)
    extra = [
        ("007", bow_tie(3, 0), "基础网格"),
        ("008", shapely.box(LON0 - DX / 2, LAT0, LON0 + DX / 2, LAT0 + DY), "基础网格"),  # half over 001
        ("009", None, "基础网格"),
        ("010", cell(3, 1), "学校专属网格"),
    ]
    for serial, g, kind in extra:
        rows.append({"网格编码": f"{COMMUNITY}{serial}", "网格名称": f"永嘉路社区{serial}网格", "所属社区": "永嘉路社区",
                     "所属街道": "八大峡街道", "网格类型": kind, "户数": 300, "人口": 600})
        geoms.append(g)
    return rows, geoms


def project(geoms, crs: str):
    """lon/lat (CGCS2000) boxes -> ``crs`` coordinates (None stays None)."""
    tr = Transformer.from_crs("EPSG:4490", crs, always_xy=True)

    def f(coords):
        x, y = tr.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])
    return [None if g is None else shapely.transform(g, f) for g in geoms]


def write_shapefile(path: Path, rows, geoms, crs: str | None, *, encoding: str = "GBK", cpg: bool = True,
                    prj: bool = True) -> Path:
    gdf = gpd.GeoDataFrame(rows, geometry=list(geoms), crs=crs)
    gdf.to_file(path, driver="ESRI Shapefile", engine="pyogrio", encoding=encoding)
    if not cpg:
        path.with_suffix(".cpg").unlink(missing_ok=True)
    if not prj:
        path.with_suffix(".prj").unlink(missing_ok=True)
    return path


def gk_survey_shapefile(folder: Path, crs: str = "EPSG:4528", *, cpg: bool = False) -> Path:
    """The issue's fixture: a GBK Shapefile in a CGCS2000 Gauss-Krüger zone (no .cpg by default,
    so the encoding must be detected)."""
    rows, geoms = survey_features()
    return write_shapefile(folder / "survey.shp", rows, project(geoms, crs), crs, cpg=cpg)


def zip_shapefile(shp: Path, zip_path: Path, *, folder: str = "data/") -> Path:
    with zipfile.ZipFile(zip_path, "w") as z:
        for ext in (".shp", ".shx", ".dbf", ".prj", ".cpg"):
            f = shp.with_suffix(ext)
            if f.exists():
                z.write(f, folder + f.name)
    return zip_path


def write_geojson(path: Path, rows, geoms, crs="EPSG:4326") -> Path:
    gpd.GeoDataFrame(rows, geometry=list(geoms), crs=crs).to_file(path, driver="GeoJSON", engine="pyogrio")
    return path


def english_rows(rows):
    keys = {"网格编码": "code", "网格名称": "name", "所属社区": "community", "所属街道": "street",
            "网格类型": "type", "户数": "households", "人口": "population"}
    return [{keys[k]: v for k, v in r.items()} for r in rows]
