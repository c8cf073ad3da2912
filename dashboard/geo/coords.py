"""Coordinate systems: WGS-84 (canonical), GCJ-02 (AMap/Tencent), projected CRSs.

GCJ-02 is the published "Mars coordinates" obfuscation applied to Chinese web
maps; the forward transform is public, the inverse is found by fixed-point
iteration (to better than 1e-7 degrees, about 1 cm, in a few rounds).
All functions take scalars or numpy arrays.
"""
from __future__ import annotations

import numpy as np

_A = 6378245.0
_EE = 0.00669342162296594323


def _transform_lat(x, y):
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lon(x, y):
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def _offset(lon, lat):
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlat = _transform_lat(lon - 105.0, lat - 35.0)
    dlon = _transform_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon, lat):
    dlon, dlat = _offset(lon, lat)
    return np.asarray(lon, dtype=float) + dlon, np.asarray(lat, dtype=float) + dlat


def gcj02_to_wgs84(lon, lat, iterations: int = 6):
    glon = np.asarray(lon, dtype=float)
    glat = np.asarray(lat, dtype=float)
    wlon, wlat = glon.copy(), glat.copy()
    for _ in range(iterations):
        flon, flat = wgs84_to_gcj02(wlon, wlat)
        wlon = wlon - (flon - glon)
        wlat = wlat - (flat - glat)
    return wlon, wlat


def transform_geometry(geom, func):
    """Apply a (lon, lat) -> (lon, lat) array function to a shapely geometry."""
    import shapely

    def _apply(coords):
        x, y = func(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geom, _apply)


def geometry_gcj02_to_wgs84(geom):
    return transform_geometry(geom, gcj02_to_wgs84)


def geometry_wgs84_to_gcj02(geom):
    return transform_geometry(geom, wgs84_to_gcj02)


# Metres per degree near a latitude: good enough for areas and tolerances at
# district scale (errors well under 1 % across a district).
def metres_per_degree(lat: float) -> tuple[float, float]:
    rad = np.radians(lat)
    return 111_320.0 * np.cos(rad), 110_574.0


def area_m2(geom) -> float:
    if geom.is_empty:
        return 0.0
    mx, my = metres_per_degree(geom.centroid.y)
    return float(geom.area * mx * my)
