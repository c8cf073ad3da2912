"""A synthetic survey file: n tiled grids with proper codes, for the import bench and tests.

The grids tile a rectangle near Qingdao exactly (shared vertices, no gaps, no
overlaps), under a fake district (default 370203) of streets, each a row of
communities, each community a block of 6 x 5 grids. Attributes use the
Chinese field names survey files carry (网格编码, 网格名称, 所属社区, ...).
"""
from __future__ import annotations

import math
from pathlib import Path

COLS, ROWS = 6, 5            # grids per community block
PER_COMMUNITY = COLS * ROWS
COMMUNITIES_PER_STREET = 10
DX, DY = 0.0015, 0.0012      # grid size in degrees (about 135 m x 133 m at 36°N)
ORIGIN = (120.36, 36.06)


def synthetic_grids(n: int = 6000, district: str = "370203", origin: tuple[float, float] = ORIGIN):
    """GeoDataFrame (EPSG:4326) of ``n`` grids."""
    import geopandas as gpd
    import shapely

    rows = []
    geoms = []
    n_comm = math.ceil(n / PER_COMMUNITY)
    for i in range(n):
        c, k = divmod(i, PER_COMMUNITY)          # community index, grid index inside it
        s, cs = divmod(c, COMMUNITIES_PER_STREET)  # street index, community inside the street
        gx = cs * COLS + k % COLS
        gy = s * ROWS + k // COLS
        x0, y0 = origin[0] + gx * DX, origin[1] + gy * DY
        geoms.append(shapely.box(x0, y0, x0 + DX, y0 + DY))
        street = f"{district}{s + 1:03d}"
        community = f"{street}{cs + 1:03d}"
        code = f"{community}{k + 1:03d}"
        dedicated = (i % 25) == 24
        rows.append({
            "网格编码": code,
            "网格名称": f"试点{s + 1}街道{cs + 1}社区{k + 1:03d}网格",
            "社区编码": community,
            "所属社区": f"试点{s + 1}街道{cs + 1}社区",
            "所属街道": f"试点{s + 1}街道",
            "网格类型": "学校专属网格" if dedicated else "基础网格",
            "户数": 480 + (i * 37) % 60,
            "人口": 950 + (i * 53) % 120,
        })
    assert n_comm == len({r["社区编码"] for r in rows})
    return gpd.GeoDataFrame(rows, geometry=geoms, crs=4326)


def make_synthetic_grid_file(path, n: int = 6000, fmt: str = "gpkg", *, district: str = "370203",
                             crs: str = "EPSG:4490") -> Path:
    """Write ``n`` synthetic grids to ``path`` as gpkg (layer "grids"), geojson or shp (GBK with a .cpg)."""
    gdf = synthetic_grids(n, district)
    if crs and crs.upper() not in ("EPSG:4326", "WGS84"):
        gdf = gdf.to_crs(crs) if crs.upper() != "EPSG:4490" else gdf.set_crs(crs, allow_override=True)
    path = Path(path)
    if fmt == "gpkg":
        gdf.to_file(path, layer="grids", driver="GPKG", engine="pyogrio")
    elif fmt == "geojson":
        gdf.to_file(path, driver="GeoJSON", engine="pyogrio")
    elif fmt == "shp":
        gdf.to_file(path, driver="ESRI Shapefile", engine="pyogrio", encoding="GBK")
    else:
        raise ValueError(f"unknown format {fmt}")
    return path
