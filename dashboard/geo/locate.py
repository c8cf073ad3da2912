"""Where is this point? Longitude/latitude to grid, micro-grid and the chain of parents.

The index is a raster over the regions' bounding box. A cell that no polygon
boundary touches lies wholly inside one answer (a polygon, or outside), so it
stores that answer and a lookup is one array read. A cell some boundary
touches stores the short, sorted list of polygons that may hold points in it,
and points falling there are decided exactly with shapely. Bulk lookups do
both steps vectorised with numpy; a single lookup walks the same path in
plain Python (no array overhead).

Rules that callers rely on:

* A point on a boundary shared by two regions (or in an overlap left by a bad
  import) belongs to the region with the lowest code. Boundaries count as
  inside (``intersects``), so the outer edge of the jurisdiction is inside.
* A point outside every grid is not an error: ``locate`` returns a
  ``Location`` with ``inside=False`` and a ``reason``; so do NaN, infinity,
  values that are not numbers and coordinates beyond +-180 / +-90.
  ``locate_many`` answers ``''`` (codes) or ``-1`` (indices) for those.
* The micro-grid is always a child of the grid returned (or ``None`` when no
  micro-grid of that grid holds the point).

API: ``Locator.from_engine(engine, scope=None)`` / ``Locator.from_regions(rows)``;
``locate(lon, lat, crs="wgs84") -> Location``; ``locate_many(lons, lats, crs, level="grid")``
-> codes; ``locate_many_indices(...)`` -> int32 indices into ``codes(level)``;
``locate_table(lons, lats, crs)`` -> codes of every level at once. ``crs`` is "wgs84" or
"gcj02" (converted to WGS-84 first).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import shapely

from .coords import gcj02_to_wgs84

CRSS = ("wgs84", "gcj02")
LEVELS = ("district", "street", "community", "grid", "micro")

# Reasons a point is not inside (Location.reason).
OUTSIDE = "outside_jurisdiction"
NOT_A_NUMBER = "not_a_number"
NOT_FINITE = "not_finite"
OUT_OF_RANGE = "out_of_range"

DEFAULT_MAX_CELLS = 1 << 22  # 4 Mi cells = 16 MB of int32 per index, at most
_EPS = 1e-6  # in cell units: crossings this close to a cell line mark both sides


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sorting beats numpy's hash-based unique on these keys)."""
    a = np.sort(a)
    if a.size:
        a = a[np.concatenate([[True], a[1:] != a[:-1]])]
    return a


def _polygonal(geom):
    """The polygonal part of a geometry, repaired if invalid (area is what locates)."""
    if geom is None or geom.is_empty:
        return None
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon")]
    polys = []
    for p in parts:
        polys.extend(shapely.get_parts(p) if p.geom_type == "MultiPolygon" else [p])
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


class PolygonIndex:
    """Point-in-polygon over many polygons: ``lookup`` -> index of the lowest-indexed
    polygon covering each point, -1 for none. Polygons are taken in the order given."""

    def __init__(self, geoms: Sequence, *, max_cells: int = DEFAULT_MAX_CELLS, cells_per_side: int = 12):
        self.geoms = np.array(list(geoms), dtype=object)
        n = len(self.geoms)
        self.n = n
        self.nx = self.ny = 0
        self.x0 = self.y0 = 0.0
        self.sx = self.sy = 1.0
        self.table = np.full(1, -1, dtype=np.int32)
        self.cand_ptr = np.zeros(1, dtype=np.int64)
        self.cand = np.zeros(0, dtype=np.int32)
        self.max_candidates = 0
        self._mv = memoryview(self.table)
        if n == 0:
            return
        shapely.prepare(self.geoms)
        minx, miny, maxx, maxy = shapely.total_bounds(self.geoms)
        w, h = max(maxx - minx, 1e-9), max(maxy - miny, 1e-9)
        # Cells are a fraction of a typical polygon's side, within the memory budget.
        typical = math.sqrt(max(float(np.median(shapely.area(self.geoms))), 1e-18))
        cell = max(typical / cells_per_side, math.sqrt(w * h / max_cells))
        # The raster overhangs the data by a cell so points on the outer edge stay inside it.
        nx = int(math.ceil(w / cell)) + 2
        ny = int(math.ceil(h / cell)) + 2
        while nx * ny > max_cells and cell > 0:
            cell *= 1.05
            nx = int(math.ceil(w / cell)) + 2
            ny = int(math.ceil(h / cell)) + 2
        self.nx, self.ny = nx, ny
        self.x0, self.y0 = minx - cell, miny - cell
        self.sx, self.sy = 1.0 / cell, 1.0 / cell
        self._build()

    # --- building ---------------------------------------------------------------
    def _segments(self):
        parts, part_poly = shapely.get_parts(self.geoms, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
        u = (coords[:, 0] - self.x0) * self.sx
        v = (coords[:, 1] - self.y0) * self.sy
        same = coord_ring[:-1] == coord_ring[1:]
        poly = part_poly[ring_part[coord_ring[:-1]]][same].astype(np.int64)
        return u[:-1][same], v[:-1][same], u[1:][same], v[1:][same], poly

    def _crossings(self, a0, b0, a1, b1, poly):
        """Cells touched where segments cross the lines a = k (a, b are cell coordinates
        along and across those lines). Returns (a_cell, b_cell, poly) arrays, 4 per crossing."""
        lo = np.ceil(np.minimum(a0, a1) - _EPS).astype(np.int64)
        hi = np.floor(np.maximum(a0, a1) + _EPS).astype(np.int64)
        da = a1 - a0
        count = np.where(da != 0, np.maximum(hi - lo + 1, 0), 0)
        total = int(count.sum())
        if total == 0:
            z = np.zeros(0, dtype=np.int64)
            return z, z, z
        seg = np.repeat(np.arange(len(a0)), count)
        start = np.repeat(np.cumsum(count) - count, count)
        k = lo[seg] + (np.arange(total) - start)
        t = np.clip((k - a0[seg]) / da[seg], 0.0, 1.0)
        b = b0[seg] + t * (b1[seg] - b0[seg])
        b_lo = np.floor(b - _EPS).astype(np.int64)
        b_hi = np.floor(b + _EPS).astype(np.int64)
        p = poly[seg]
        a_cells = np.concatenate([k - 1, k, k - 1, k])
        b_cells = np.concatenate([b_lo, b_lo, b_hi, b_hi])
        return a_cells, b_cells, np.concatenate([p, p, p, p])

    def _build(self):
        nx, ny, n = self.nx, self.ny, self.n
        u0, v0, u1, v1, poly = self._segments()
        cu, cv, cp = [], [], []
        a, b, p = self._crossings(u0, v0, u1, v1, poly)  # vertical cell lines
        cu.append(a), cv.append(b), cp.append(p)
        a, b, p = self._crossings(v0, u0, v1, u1, poly)  # horizontal cell lines
        cu.append(b), cv.append(a), cp.append(p)
        for du in (-_EPS, _EPS):  # the cells holding each vertex
            for dv in (-_EPS, _EPS):
                cu.append(np.floor(u0 + du).astype(np.int64))
                cv.append(np.floor(v0 + dv).astype(np.int64))
                cp.append(poly)
        cu, cv, cp = np.concatenate(cu), np.concatenate(cv), np.concatenate(cp)
        ok = (cu >= 0) & (cu < nx) & (cv >= 0) & (cv < ny)
        keys = _unique((cv[ok] * nx + cu[ok]) * n + cp[ok])
        touched_cell = keys // n
        touched_poly = keys % n

        ncell = nx * ny
        marked = np.zeros(ncell, dtype=bool)
        marked[touched_cell] = True
        amb_cells = np.flatnonzero(marked)

        # Untouched cells in one row without a touched cell between them share a face:
        # one point-in-polygon test per run of such cells decides the whole run.
        grid_m = marked.reshape(ny, nx)
        starts = ~grid_m.copy()
        starts[:, 1:] &= grid_m[:, :-1]
        run_start = np.flatnonzero(starts.ravel())
        run_id = np.cumsum(starts.ravel()) - 1

        probe_cells = np.concatenate([run_start, amb_cells])
        px = self.x0 + (probe_cells % nx + 0.5) / self.sx
        py = self.y0 + (probe_cells // nx + 0.5) / self.sy
        tree = shapely.STRtree(self.geoms)
        hit_pt, hit_poly = tree.query(shapely.points(px, py), predicate="intersects")
        owner = np.full(len(probe_cells), n, dtype=np.int64)
        np.minimum.at(owner, hit_pt, hit_poly)
        run_owner = np.where(owner[: len(run_start)] == n, -1, owner[: len(run_start)])

        table = np.empty(ncell, dtype=np.int32)
        clean = ~marked
        table[clean] = run_owner[run_id[clean]]

        # Candidates of a touched cell: polygons whose boundary touches it, plus any
        # polygon covering its centre (one that wholly contains the cell: an overlap).
        in_amb = hit_pt >= len(run_start)
        cells_all = np.concatenate([touched_cell, amb_cells[hit_pt[in_amb] - len(run_start)]])
        polys_all = np.concatenate([touched_poly, hit_poly[in_amb].astype(np.int64)])
        keys = _unique(cells_all * n + polys_all)
        cand_cell, cand_poly = keys // n, keys % n
        slot = np.searchsorted(amb_cells, cand_cell)
        counts = np.bincount(slot, minlength=len(amb_cells))
        self.cand_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.cand = cand_poly.astype(np.int32)
        self.max_candidates = int(counts.max()) if len(counts) else 0
        table[amb_cells] = -2 - np.arange(len(amb_cells), dtype=np.int32)
        self.table = table
        self._mv = memoryview(table)
        self._ptr_list = self.cand_ptr.tolist()
        self._cand_list = self.cand.tolist()
        self._geom_list = list(self.geoms)

    # --- looking up -------------------------------------------------------------
    @property
    def ambiguous_fraction(self) -> float:
        return float((self.table <= -2).mean()) if self.n else 0.0

    def lookup(self, x, y) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        if x.shape != y.shape:
            raise ValueError(f"longitudes and latitudes differ in length ({x.size} vs {y.size})")
        if self.n == 0 or x.size == 0:
            return np.full(x.size, -1, dtype=np.int32)
        u = (x - self.x0) * self.sx
        v = (y - self.y0) * self.sy
        ok = (u >= 0) & (u < self.nx) & (v >= 0) & (v < self.ny)  # NaN fails every test
        if not ok.all():
            u = np.where(ok, u, 0.0)
            v = np.where(ok, v, 0.0)
        cell = v.astype(np.int64) * self.nx + u.astype(np.int64)
        out = self.table[cell]
        if not ok.all():
            out[~ok] = -1
        amb = np.flatnonzero(out <= -2)
        if amb.size:
            out[amb] = self._resolve(amb, out[amb], x[amb], y[amb])
        return out

    def _resolve(self, idx, codes, x, y) -> np.ndarray:
        a = -2 - codes.astype(np.int64)
        ptr = self.cand_ptr[a]
        cnt = self.cand_ptr[a + 1] - ptr
        res = np.full(len(idx), -1, dtype=np.int32)
        todo = np.arange(len(idx))
        k = 0
        while todo.size:
            todo = todo[cnt[todo] > k]
            if not todo.size:
                break
            c = self.cand[ptr[todo] + k]
            hit = shapely.intersects_xy(self.geoms[c], x[todo], y[todo])
            res[todo[hit]] = c[hit]
            todo = todo[~hit]
            k += 1
        return res

    def lookup_one(self, x: float, y: float) -> int:
        """One point, plain floats (callers check finiteness)."""
        if self.n == 0:
            return -1
        u = (x - self.x0) * self.sx
        v = (y - self.y0) * self.sy
        if not (0.0 <= u < self.nx and 0.0 <= v < self.ny):
            return -1
        val = self._mv[int(v) * self.nx + int(u)]
        if val > -2:
            return val
        a = -2 - val
        geoms = self._geom_list
        for c in self._cand_list[self._ptr_list[a]:self._ptr_list[a + 1]]:
            if shapely.intersects_xy(geoms[c], x, y):
                return c
        return -1

    def candidates_of(self, indices: Iterable[int], x: float, y: float) -> int:
        """The lowest of the given polygon indices covering (x, y), -1 for none."""
        for c in sorted(indices):
            if shapely.intersects_xy(self.geoms[c], x, y):
                return int(c)
        return -1


@dataclass(slots=True)  # not frozen: frozen __init__ costs microseconds per lookup; treat as read-only
class Location:
    """The answer for one point. ``inside=False`` means no grid holds it; ``reason`` says
    why (outside_jurisdiction, not_a_number, not_finite, out_of_range) and every code is None."""
    inside: bool
    lon: float | None  # WGS-84, after any conversion
    lat: float | None
    reason: str | None = None
    grid_code: str | None = None
    grid_name: str | None = None
    grid_kind: str | None = None
    micro_code: str | None = None
    micro_name: str | None = None
    community_code: str | None = None
    community_name: str | None = None
    street_code: str | None = None
    street_name: str | None = None
    district_code: str | None = None
    district_name: str | None = None

    def __bool__(self) -> bool:
        return self.inside

    @property
    def code(self) -> str | None:
        """The finest region holding the point."""
        return self.micro_code or self.grid_code

    def chain(self) -> list[tuple[str, str, str | None]]:
        """(level, code, name) from the district down to the finest known level."""
        out = []
        for level in LEVELS:
            code = getattr(self, f"{level}_code")
            if code:
                out.append((level, code, getattr(self, f"{level}_name")))
        return out


def _row_get(row, key, default=None):
    if isinstance(row, dict):
        return row.get(key, default)
    return getattr(row, key, default)


class Locator:
    """Grid and micro-grid lookup for one jurisdiction (or a scope of it)."""

    def __init__(self, grids: list[dict], micros: list[dict], others: list[dict], *,
                 max_cells: int = DEFAULT_MAX_CELLS):
        self.regions: dict[str, dict] = {}
        for r in [*others, *grids, *micros]:
            self.regions[r["code"]] = r
        grids = sorted(grids, key=lambda r: r["code"])
        micros = sorted(micros, key=lambda r: r["code"])
        grid_geoms = [_polygonal(r["geom"]) for r in grids]
        keep = [i for i, g in enumerate(grid_geoms) if g is not None]
        self._grids = [grids[i] for i in keep]
        self.grid_index = PolygonIndex([grid_geoms[i] for i in keep], max_cells=max_cells)
        grid_pos = {r["code"]: i for i, r in enumerate(self._grids)}
        micro_geoms = [_polygonal(r["geom"]) for r in micros]
        keep = [i for i, g in enumerate(micro_geoms) if g is not None and micros[i].get("parent_code") in grid_pos]
        self._micros = [micros[i] for i in keep]
        self.micro_index = PolygonIndex([micro_geoms[i] for i in keep], max_cells=max_cells)

        self.grid_codes = np.array([r["code"] for r in self._grids] + [""])[:-1] if self._grids else np.array([], dtype="<U1")
        self.micro_codes = np.array([r["code"] for r in self._micros] + [""])[:-1] if self._micros else np.array([], dtype="<U1")
        self.micro_grid = np.array([grid_pos[r["parent_code"]] for r in self._micros], dtype=np.int32)
        self._micro_grid_list = self.micro_grid.tolist()
        self._children: dict[int, list[int]] = {}
        for mi, gi in enumerate(self.micro_grid.tolist()):
            self._children.setdefault(gi, []).append(mi)

        # Each grid's ancestors by level, as indices into per-level code arrays.
        self._level_codes: dict[str, np.ndarray] = {"grid": self.grid_codes, "micro": self.micro_codes}
        self._grid_to_level: dict[str, np.ndarray] = {}
        chains = [self._ancestors(r) for r in self._grids]
        for level in ("community", "street", "district"):
            codes = sorted({c[level] for c in chains if c.get(level)})
            pos = {c: i for i, c in enumerate(codes)}
            self._level_codes[level] = np.array(codes) if codes else np.array([], dtype="<U1")
            self._grid_to_level[level] = np.array([pos.get(c.get(level), -1) for c in chains], dtype=np.int32)
        self._chain_fields = [self._chain_fields_of(r, c) for r, c in zip(self._grids, chains)]

    # --- construction -----------------------------------------------------------
    @classmethod
    def from_regions(cls, rows: Iterable, **kwargs) -> "Locator":
        """Rows are dicts (or RegionRow objects) with code, name, level, parent_code, geom
        (shapely, WGS-84) and optionally kind. Only grid and micro rows need geometry."""
        grids, micros, others = [], [], []
        for row in rows:
            d = {k: _row_get(row, k) for k in ("code", "name", "level", "parent_code", "kind", "geom")}
            if d["code"] is None or d["level"] is None:
                raise ValueError(f"a region row needs a code and a level: {d.get('code')!r}")
            d["code"] = str(d["code"])
            {"grid": grids, "micro": micros}.get(d["level"], others).append(d)
        return cls(grids, micros, others, **kwargs)

    @classmethod
    def from_engine(cls, engine, scope: str | None = None, **kwargs) -> "Locator":
        """Grids and micro-grids within ``scope`` (a region code; None = everything) with
        geometry, and the names of their parents."""
        from ..store.regions import load_regions, region_chain

        rows = load_regions(engine, levels=["grid", "micro"], scope=scope)
        rows += load_regions(engine, levels=["district", "street", "community"], scope=scope,
                             with_geometry=False)
        if scope:
            have = {r["code"] for r in rows}
            rows += [r for r in region_chain(engine, scope) if r["code"] not in have]
        return cls.from_regions(rows, **kwargs)

    def _ancestors(self, grid: dict) -> dict[str, str]:
        out = {}
        cur = grid.get("parent_code")
        seen = set()
        while cur and cur not in seen:
            seen.add(cur)
            row = self.regions.get(cur)
            if row is None:
                break
            out.setdefault(row["level"], cur)
            cur = row.get("parent_code")
        # A chain with rows missing still knows its codes: they are prefixes of the grid's.
        code = grid["code"]
        for level, width in (("community", 12), ("street", 9), ("district", 6)):
            if level not in out and len(code) > width and code[:width].isdigit():
                out[level] = code[:width]
        return out

    def _chain_fields_of(self, grid: dict, chain: dict[str, str]) -> dict:
        f = {"grid_code": grid["code"], "grid_name": grid.get("name"), "grid_kind": grid.get("kind")}
        for level in ("community", "street", "district"):
            code = chain.get(level)
            f[f"{level}_code"] = code
            f[f"{level}_name"] = self.regions[code].get("name") if code in self.regions else None
        return f

    # --- queries ----------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._grids)

    def codes(self, level: str = "grid") -> np.ndarray:
        """The codes ``locate_many_indices(..., level=level)`` indexes into."""
        if level not in self._level_codes:
            raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        return self._level_codes[level]

    @staticmethod
    def _to_wgs84(lons, lats, crs: str):
        if crs == "wgs84":
            return lons, lats
        if crs == "gcj02":
            with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf stay NaN: outside
                lon, lat = gcj02_to_wgs84(lons, lats)
            return np.asarray(lon, dtype=np.float64).ravel(), np.asarray(lat, dtype=np.float64).ravel()
        raise ValueError(f"unknown crs {crs!r}; expected one of {', '.join(CRSS)}")

    def locate(self, lon, lat, crs: str = "wgs84") -> Location:
        """One point. Never raises for bad coordinates: see ``Location.reason``."""
        if crs not in CRSS:
            raise ValueError(f"unknown crs {crs!r}; expected one of {', '.join(CRSS)}")
        try:
            x = float(lon)
            y = float(lat)
        except (TypeError, ValueError):
            return Location(False, None, None, NOT_A_NUMBER)
        if not (math.isfinite(x) and math.isfinite(y)):
            return Location(False, None, None, NOT_FINITE)
        if not (-180.0 <= x <= 180.0 and -90.0 <= y <= 90.0):
            return Location(False, x, y, OUT_OF_RANGE)
        if crs == "gcj02":
            wx, wy = gcj02_to_wgs84(x, y)
            x, y = float(wx), float(wy)
        gi = self.grid_index.lookup_one(x, y)
        if gi < 0:
            return Location(False, x, y, OUTSIDE)
        mi = self._micro_one(gi, x, y)
        micro = self._micros[mi] if mi >= 0 else None
        return Location(True, x, y, None, **self._chain_fields[gi],
                        micro_code=micro["code"] if micro else None,
                        micro_name=micro.get("name") if micro else None)

    def _micro_one(self, gi: int, x: float, y: float) -> int:
        children = self._children.get(gi)
        if not children:
            return -1
        mi = self.micro_index.lookup_one(x, y)
        if mi < 0 or self._micro_grid_list[mi] == gi:
            return mi
        return self.micro_index.candidates_of(children, x, y)

    def locate_many_indices(self, lons, lats, crs: str = "wgs84", level: str = "grid") -> np.ndarray:
        """int32 indices into ``codes(level)``, -1 where no region of that level holds the
        point (outside, NaN, infinite, out of range)."""
        if level not in self._level_codes:
            raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
        x, y = self._to_wgs84(np.asarray(lons, dtype=np.float64).ravel(),
                              np.asarray(lats, dtype=np.float64).ravel(), crs)
        grid = self.grid_index.lookup(x, y)
        if level == "grid":
            return grid
        if level == "micro":
            return self._micro_many(grid, x, y)
        up = self._grid_to_level[level]
        return np.where(grid >= 0, up[np.maximum(grid, 0)] if len(up) else -1, -1).astype(np.int32)

    def _micro_many(self, grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        micro = self.micro_index.lookup(x, y)
        if not len(self.micro_grid):
            return micro
        parent = np.where(micro >= 0, self.micro_grid[np.maximum(micro, 0)], -1)
        micro[grid < 0] = -1
        # Rare: the micro-grid layer disagrees with the grid layer (a shared boundary,
        # or slivers between the two layers): choose among the grid's own children.
        # (micro == -1 needs no second look: then no micro-grid at all covers the point.)
        wrong = np.flatnonzero((micro >= 0) & (parent != grid))
        for i in wrong.tolist():
            children = self._children.get(int(grid[i]))
            micro[i] = self.micro_index.candidates_of(children, x[i], y[i]) if children else -1
        return micro

    def locate_many(self, lons, lats, crs: str = "wgs84", level: str = "grid") -> np.ndarray:
        """Codes (numpy unicode array), ``''`` where no region of that level holds the point."""
        idx = self.locate_many_indices(lons, lats, crs, level)
        table = np.append(self.codes(level), "")  # index -1 reads the trailing ''
        return table[idx]

    def locate_table(self, lons, lats, crs: str = "wgs84") -> dict[str, np.ndarray]:
        """All levels at once: {'grid': codes, 'micro': codes, 'community': …}, '' outside."""
        x, y = self._to_wgs84(np.asarray(lons, dtype=np.float64).ravel(),
                              np.asarray(lats, dtype=np.float64).ravel(), crs)
        grid = self.grid_index.lookup(x, y)
        out = {"grid": np.append(self.grid_codes, "")[grid],
               "micro": np.append(self.micro_codes, "")[self._micro_many(grid, x, y)]}
        for level in ("community", "street", "district"):
            up = self._grid_to_level[level]
            li = np.where(grid >= 0, up[np.maximum(grid, 0)] if len(up) else -1, -1)
            out[level] = np.append(self._level_codes[level], "")[li]
        return out
