"""Cutting a polygon into n compact cells that tile it exactly.

Seeds come from a few rounds of k-means over points sampled inside the
polygon (so cells are of similar area and compact); the Voronoi cells of the
seeds, clipped to the polygon, tile it with no gap and no overlap (up to
floating-point noise far below a square centimetre).
"""
from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPoint


def sample_points(poly, n: int, rng: np.random.Generator) -> np.ndarray:
    minx, miny, maxx, maxy = poly.bounds
    shapely.prepare(poly)
    out = []
    have = 0
    while have < n:
        k = max(64, int((n - have) * 2.5 * (poly.envelope.area / max(poly.area, 1e-18))))
        xs = rng.uniform(minx, maxx, k)
        ys = rng.uniform(miny, maxy, k)
        keep = shapely.contains_xy(poly, xs, ys)
        pts = np.column_stack([xs[keep], ys[keep]])
        out.append(pts)
        have += len(pts)
    return np.concatenate(out)[:n]


def kmeans_seeds(points: np.ndarray, n: int, rng: np.random.Generator, rounds: int = 10,
                 weights: np.ndarray | None = None) -> np.ndarray:
    # Scale longitude so distances are isotropic near 36°N.
    scale = np.array([np.cos(np.radians(points[:, 1].mean())), 1.0])
    pts = points * scale
    centers = pts[rng.choice(len(pts), n, replace=False)]
    for _ in range(rounds):
        d = ((pts[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
        if weights is not None:
            d = d / weights[None, :]
        label = d.argmin(1)
        for j in range(n):
            members = pts[label == j]
            if len(members):
                centers[j] = members.mean(0)
    return centers / scale


def voronoi_cells(poly, seeds: np.ndarray) -> list:
    """Cells in the order of ``seeds``, clipped to ``poly``; empty cells dropped by the caller."""
    if len(seeds) == 1:
        return [poly]
    env = poly.envelope.buffer(0.05)
    cells = shapely.voronoi_polygons(MultiPoint(seeds), extend_to=env, ordered=True)
    out = []
    for cell in shapely.get_parts(cells):
        part = shapely.intersection(cell, poly)
        out.append(_polygonal(part))
    return out


def _polygonal(geom):
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys = [g for g in shapely.get_parts(geom) if g.geom_type == "Polygon" and not g.is_empty]
    return shapely.multipolygons(polys) if len(polys) > 1 else (polys[0] if polys else shapely.Polygon())


def partition(poly, n: int, rng: np.random.Generator, *, samples_per_cell: int = 80,
              seeds: np.ndarray | None = None) -> list:
    """n cells tiling ``poly``, ordered roughly west to east, north to south."""
    if n <= 1:
        return [poly]
    if seeds is None:
        pts = sample_points(poly, max(400, n * samples_per_cell), rng)
        seeds = kmeans_seeds(pts, n, rng)
    cells = [c for c in voronoi_cells(poly, seeds) if not c.is_empty and c.area > 0]
    # Reading order (north-west first) gives serial numbers people can follow on a map.
    cents = np.array([[c.centroid.x, c.centroid.y] for c in cells])
    order = np.lexsort((cents[:, 0], -np.round(cents[:, 1] / 0.004)))
    return [cells[i] for i in order]
