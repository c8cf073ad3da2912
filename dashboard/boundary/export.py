"""Export region boundaries for other systems (GeoJSON, GeoPackage, Shapefile)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

PROPERTIES = ("code", "name", "level", "kind", "parent_code", "households", "population")
SHP_NAMES = {"parent_code": "parent_cod"}
FORMATS = {"geojson": "GeoJSON", "gpkg": "GPKG", "shp": "ESRI Shapefile"}
# Formats written front to back, so they can go down a pipe. A GeoPackage is an SQLite database
# (written by seeking) and a Shapefile is several files.
STREAMABLE = ("geojson",)


class ExportError(ValueError):
    pass


def regions_frame(engine, level: str, *, scope: str | None = None, crs: str = "EPSG:4326"):
    """GeoDataFrame of one level's regions (in scope), in ``crs`` (an EPSG code, any pyproj
    input, or "gcj02": GCJ-02 lon/lat, labelled EPSG:4326 as web maps expect)."""
    import geopandas as gpd
    import shapely

    from ..store.regions import load_regions

    rows = load_regions(engine, levels=[level], scope=scope)
    data = {p: [r[p] for r in rows] for p in PROPERTIES}
    gdf = gpd.GeoDataFrame(data, geometry=[r["geom"] for r in rows], crs=4326)
    gdf["households"] = gdf["households"].astype("int64")
    gdf["population"] = gdf["population"].astype("int64")
    key = (crs or "EPSG:4326").strip()
    if key.lower() in ("gcj02", "gcj-02", "gcj"):
        from ..geo.coords import wgs84_to_gcj02

        def _shift(coords):
            x, y = wgs84_to_gcj02(coords[:, 0], coords[:, 1])
            return np.column_stack([x, y])
        gdf = gdf.set_geometry(gpd.GeoSeries(shapely.transform(np.asarray(gdf.geometry.values, dtype=object),
                                                               _shift), crs=4326))
    elif key.upper() not in ("EPSG:4326", "WGS84", "WGS-84"):
        from pyproj import CRS

        try:
            target = CRS.from_user_input(key)
        except Exception:
            raise ExportError(f"--crs {crs}: not a known coordinate reference system") from None
        gdf = gdf.to_crs(target)
    return gdf


def export_regions(engine, level: str, output, *, fmt: str = "geojson", crs: str = "EPSG:4326",
                   scope: str | None = None) -> int:
    """Write the regions of ``level`` (within ``scope``) to ``output`` (a path, or a binary stream
    such as ``sys.stdout.buffer`` for the formats in STREAMABLE); returns the count written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format '{fmt}' (geojson, gpkg, shp)")
    stream = hasattr(output, "write")
    if stream and fmt not in STREAMABLE:
        raise ExportError(f"{fmt} cannot be written to standard output (only {', '.join(STREAMABLE)}); "
                          f"give a file with -o FILE")
    gdf = regions_frame(engine, level, scope=scope, crs=crs)
    if len(gdf) == 0:
        where = f" in scope {scope}" if scope else ""
        raise ExportError(f"no {level} regions{where} to export")
    if stream:
        import io

        buffer = io.BytesIO()  # GDAL writes the whole collection, then it goes out in one piece
        gdf.to_file(buffer, driver=FORMATS[fmt], engine="pyogrio", layer=level)
        output.write(buffer.getvalue())
        output.flush()
        return len(gdf)
    output = Path(output)
    if output.parent and not output.parent.exists():
        raise ExportError(f"{output.parent}: no such folder")
    if output.exists():
        if output.is_dir():
            raise ExportError(f"{output} is a folder")
        output.unlink()  # GeoPackage would otherwise add a layer to the old file
        if fmt == "shp":
            for ext in (".shx", ".dbf", ".prj", ".cpg"):
                output.with_suffix(ext).unlink(missing_ok=True)
    kwargs = {}
    if fmt == "shp":
        kwargs["encoding"] = "UTF-8"  # written to the .cpg, so readers need not guess
        # DBF field names hold 10 characters: parent_code becomes parent_cod, as GDAL would name it
        gdf = gdf.rename(columns=SHP_NAMES)
    if fmt == "gpkg":
        kwargs["layer"] = level
    gdf.to_file(output, driver=FORMATS[fmt], engine="pyogrio", **kwargs)
    return len(gdf)
