"""The validation report: every problem of every feature, by its code.

Each entry is ``{code, problem, detail, severity, feature}``: ``code`` is the
feature's code (or ``#index`` when it has none), ``feature`` its 0-based
position in the file, ``severity`` one of ``error`` (the feature is not
imported), ``warning`` (imported, possibly repaired) or ``info`` (about the
file, not a problem). The checks are vectorised with shapely 2 and use an
STRtree for neighbours, so a 6,000-feature file validates in about a second.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..domain import CODE_WIDTH, GRID_KINDS, LEVELS
from ..geo.coords import metres_per_degree

ERROR, WARNING, INFO = "error", "warning", "info"
# Dissolving snaps to 1e-9 degrees (0.1 mm): edges that neighbours share up to floating-point noise
# (after a reprojection, say) then merge, instead of leaving hair-thin slits between the parts.
SNAP = 1e-9


def entry(code, index, problem: str, detail: str, severity: str) -> dict:
    label = code if code else (f"#{index}" if index is not None else None)
    return {"code": label, "problem": problem, "detail": detail, "severity": severity,
            "feature": None if index is None else int(index)}


def areas_m2(geoms) -> np.ndarray:
    """Area in m² of each geometry (local metres per degree at its centroid, as ``coords.area_m2``)."""
    import shapely

    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) == 0:
        return np.zeros(0)
    lat = shapely.get_y(shapely.centroid(geoms))
    lat = np.where(np.isfinite(lat), lat, 0.0)
    mx, my = metres_per_degree(lat)
    a = shapely.area(geoms) * mx * my
    return np.where(np.isfinite(a), a, 0.0)


def norm_code(value) -> tuple[str | None, str | None]:
    """(code text, problem) from whatever the file stored: text, integer or float."""
    if value is None:
        return None, None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return None, None
        if not float(value).is_integer():
            return repr(float(value)), None
        if abs(value) > 2 ** 53:
            return str(int(value)), "stored as a floating-point number, its last digits may be lost"
        return str(int(value)), None
    if isinstance(value, (int, np.integer)):
        return str(int(value)), None
    text = str(value).strip()
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return (text or None), None


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    s = str(value).strip()
    return s or None


def _count(value) -> tuple[int, str | None]:
    s = _text(value)
    if s is None:
        return 0, None
    try:
        f = float(s.replace(",", ""))
    except ValueError:
        return 0, f"'{s}' is not a number"
    if not math.isfinite(f) or f < 0:
        return 0, f"'{s}' is not a count"
    return int(round(f)), None


_KIND_WORDS = (
    (("学校", "小学", "中学", "幼儿园", "大学", "学院", "校园", "school"), "school"),
    (("医院", "卫生院", "医疗", "hospital"), "hospital"),
    (("市场", "农贸", "market"), "market"),
    (("园区", "产业园", "工业", "科技园", "industrial", "park"), "industrial_park"),
    (("商圈", "商业", "商务", "综合体", "business", "commercial"), "business_district"),
)


def parse_kind(value, name: str | None) -> tuple[str | None, str | None]:
    """(kind, problem) of a grid from its type field (and, for a bare 专属网格, its name)."""
    s = _text(value)
    if s is None:
        return "basic", None
    low = s.lower()
    if low in GRID_KINDS:
        return low, None
    for kind, (zh, en) in GRID_KINDS.items():
        if s == zh or low == en.lower():
            return kind, None
    if "基础" in s or "一般" in s or low in {"basic", "base", "normal", "standard"}:
        return "basic", None
    for text in (low, (name or "").lower() if ("专属" in s or "dedicated" in low) else ""):
        for words, kind in _KIND_WORDS:
            if any(w in text for w in words):
                return kind, None
    return None, f"unknown grid type '{s}' (kind left empty)"


@dataclass
class Features:
    """The file's features after the per-feature checks (all arrays by file position)."""
    level: str
    codes: list                    # str | None
    geoms: np.ndarray              # repaired polygonal geometry, or None
    names: list
    kinds: list
    households: np.ndarray
    population: np.ndarray
    parent_names: list
    street_names: list
    excluded: np.ndarray           # bool: an error keeps it out
    problems: list = field(default_factory=list)

    def exclude(self, i: int, problem: str, detail: str) -> None:
        self.excluded[i] = True
        self.problems.append(entry(self.codes[i], i, problem, detail, ERROR))

    def warn(self, i: int, problem: str, detail: str) -> None:
        self.problems.append(entry(self.codes[i], i, problem, detail, WARNING))

    @property
    def included(self) -> np.ndarray:
        return np.flatnonzero(~self.excluded)


def _polygonal(geom):
    """Polygonal parts of a geometry as a Polygon / MultiPolygon, or None."""
    import shapely

    parts = shapely.get_parts(geom)
    polys = [p for p in parts if p.geom_type == "Polygon" and not p.is_empty]
    polys += [q for p in parts if p.geom_type == "MultiPolygon" for q in p.geoms]
    if not polys:
        return None
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def check_features(gdf, roles: dict[str, str], level: str) -> Features:
    """Codes, attributes and geometry of each feature, checked one by one (vectorised where it counts)."""
    import shapely

    n = len(gdf)
    width = CODE_WIDTH[level]
    pl = LEVELS[LEVELS.index(level) - 1] if level != "district" else None
    pw = CODE_WIDTH[pl] if pl else 0

    def col(role):
        c = roles.get(role)
        return list(gdf[c]) if c is not None else [None] * n

    raw_codes, names, raw_parent = col("code"), col("name"), col("parent_code")
    kinds_raw, hh_raw, pop_raw = col("kind"), col("households"), col("population")
    feats = Features(level, [None] * n, np.empty(n, dtype=object), [None] * n, [None] * n,
                     np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64),
                     [_text(v) for v in col("parent_name")], [_text(v) for v in col("street_name")],
                     np.zeros(n, dtype=bool))
    for i in range(n):
        code, why = norm_code(raw_codes[i])
        feats.codes[i] = code
        feats.names[i] = _text(names[i])
        if code is None:
            feats.exclude(i, "missing_code", f"feature #{i} has no code in field '{roles['code']}'")
        elif not code.isdigit():
            feats.exclude(i, "bad_code", f"code '{code}' is not all digits")
        elif len(code) != width:
            other = [lv for lv, w in CODE_WIDTH.items() if w == len(code)]
            hint = f" (a {other[0]} code? then import with --level {other[0]})" if other else ""
            feats.exclude(i, "bad_code", f"code '{code}' has {len(code)} digits; a {level} code has {width}{hint}")
        elif why:
            feats.exclude(i, "bad_code", f"code '{code}' {why}")
        elif pw and roles.get("parent_code"):
            parent, _ = norm_code(raw_parent[i])
            if parent is not None and parent != code[:pw]:
                feats.exclude(i, "code_parent_mismatch",
                              f"code {code} does not fit its parent: field '{roles['parent_code']}' says "
                              f"{parent}, the code's prefix is {code[:pw]}")
        if level == "grid":
            kind, why = parse_kind(kinds_raw[i], feats.names[i])
            feats.kinds[i] = kind
            if why:
                feats.warn(i, "unknown_kind", why)
        for arr, raw, what in ((feats.households, hh_raw, "households"), (feats.population, pop_raw, "population")):
            value, why = _count(raw[i])
            arr[i] = value
            if why:
                feats.warn(i, "bad_number", f"{what}: {why}; 0 stored")

    seen: dict[str, list[int]] = defaultdict(list)
    for i, code in enumerate(feats.codes):
        if code is not None:
            seen[code].append(i)
    for code, idx in seen.items():
        if len(idx) > 1:
            where = ", ".join(f"#{j}" for j in idx)
            for i in idx:
                feats.exclude(i, "duplicate_code", f"code {code} is used by {len(idx)} features ({where}); "
                              "none of them is imported")

    geoms = np.asarray(gdf.geometry.values, dtype=object)
    missing = shapely.is_missing(geoms)
    empty = np.zeros(n, dtype=bool)
    empty[~missing] = shapely.is_empty(geoms[~missing])
    types = np.full(n, None, dtype=object)
    types[~missing] = shapely.get_type_id(geoms[~missing])
    valid = np.ones(n, dtype=bool)
    present = ~missing & ~empty
    valid[present] = shapely.is_valid(geoms[present])
    for i in range(n):
        g = geoms[i]
        if missing[i]:
            feats.exclude(i, "empty_geometry", "the feature has no geometry (null, or one the reader could not parse)")
            continue
        if empty[i]:
            feats.exclude(i, "empty_geometry", f"the feature's geometry is an empty {g.geom_type}")
            continue
        tid = types[i]
        if tid in (3, 6):  # Polygon, MultiPolygon
            pass
        elif tid == 7:  # GeometryCollection: keep its polygons
            poly = _polygonal(g)
            if poly is None:
                feats.exclude(i, "not_polygon", "a GeometryCollection with no polygon: not a boundary")
                continue
            others = sorted({p.geom_type for p in shapely.get_parts(g)} - {"Polygon", "MultiPolygon"})
            if others:
                feats.warn(i, "not_polygon", f"non-polygonal parts dropped ({', '.join(others)})")
            g = poly
            valid[i] = g.is_valid
        else:
            feats.exclude(i, "not_polygon", f"a {g.geom_type} among polygons: mixed geometry types; "
                          "only Polygon and MultiPolygon features are boundaries")
            continue
        if not valid[i]:
            reason = shapely.is_valid_reason(g)
            before = float(areas_m2([g])[0])
            repaired = _polygonal(shapely.make_valid(g))
            if repaired is None:
                feats.exclude(i, "invalid_geometry", f"invalid geometry ({reason}) with no area left after repair")
                continue
            after = float(areas_m2([repaired])[0])
            feats.warn(i, "invalid_geometry", f"invalid geometry ({reason}) repaired with make_valid: "
                       f"{repaired.geom_type}, {after:,.1f} m² (was {before:,.1f} m²)")
            g = repaired
        feats.geoms[i] = g
    return feats


def check_overlaps(feats: Features, tolerance: float) -> None:
    """A warning on each feature that overlaps a neighbour by more than ``tolerance`` m²."""
    import shapely

    idx = np.array([i for i in feats.included if feats.geoms[i] is not None], dtype=np.int64)
    if len(idx) < 2:
        return
    geoms = feats.geoms[idx]
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if len(left) == 0:
        return
    # touching neighbours share only an edge; intersect just the pairs whose interiors meet
    inner = ~shapely.touches(geoms[left], geoms[right])
    left, right = left[inner], right[inner]
    overlap = areas_m2(shapely.intersection(geoms[left], geoms[right]))
    big = overlap > tolerance
    by_feature: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for a, b, area in zip(left[big], right[big], overlap[big]):
        by_feature[int(idx[a])].append((int(idx[b]), float(area)))
        by_feature[int(idx[b])].append((int(idx[a]), float(area)))
    for i in sorted(by_feature):
        parts = "; ".join(f"{feats.codes[j] or f'#{j}'} by {area:,.1f} m²" for j, area in sorted(by_feature[i]))
        feats.warn(i, "overlap", f"overlaps {parts} (tolerance {tolerance:g} m²)")


def holes(geom) -> list:
    """Interior rings of a (multi)polygon, as polygons."""
    import shapely

    out = []
    for poly in shapely.get_parts(geom):
        if poly.geom_type == "Polygon":
            out.extend(shapely.Polygon(r) for r in poly.interiors)
    return out


def drop_small_holes(geom, tolerance: float):
    """The geometry without the holes of at most ``tolerance`` m² (slivers left by dissolving)."""
    import shapely

    polys = []
    changed = False
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon":
            continue
        rings = list(poly.interiors)
        if rings:
            areas = areas_m2([shapely.Polygon(r) for r in rings])
            kept = [r for r, a in zip(rings, areas) if a > tolerance]
            changed |= len(kept) != len(rings)
            poly = shapely.Polygon(poly.exterior, kept)
        polys.append(poly)
    if not changed:
        return geom
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def dissolve(feats: Features, tolerance: float) -> dict[str, dict[str, object]]:
    """Union of the included features for each ancestor code, level by level up to the district:
    {level: {code: geometry}}. Holes no feature covers are reported as gaps (once each, at the
    lowest level where they appear) and kept in the geometry when above the tolerance."""
    import shapely

    level = feats.level
    ancestors = list(reversed(LEVELS[:LEVELS.index(level)]))  # parent first
    idx = [i for i in feats.included if feats.geoms[i] is not None]
    out: dict[str, dict[str, object]] = {}
    reported: list = []
    child_geoms = {feats.codes[i]: feats.geoms[i] for i in idx}
    for anc in ancestors:
        w = CODE_WIDTH[anc]
        groups: dict[str, list[str]] = defaultdict(list)
        for c in child_geoms:
            groups[c[:w]].append(c)
        unions = {}
        for pcode, members in sorted(groups.items()):
            u = shapely.union_all(np.array([child_geoms[c] for c in members], dtype=object), grid_size=SNAP)
            gaps = holes(u)
            if gaps:
                # a hole may hold islands (features inside a ring-shaped one): only what is left is a gap
                areas = areas_m2(shapely.difference(np.array(gaps, dtype=object), u))
                big = [(h, a) for h, a in zip(gaps, areas) if a > tolerance]
                if big:
                    tree = shapely.STRtree(reported) if reported else None
                    sib = np.array([child_geoms[c] for c in members], dtype=object)
                    stree = shapely.STRtree(sib)
                    for h, a in big:
                        rp = h.representative_point()
                        if tree is not None and len(tree.query(rp, predicate="within")):
                            continue  # already reported one level down
                        near = sorted(members[k] for k in stree.query(h, predicate="intersects"))
                        feats.problems.append(entry(
                            pcode, None, "gap",
                            f"gap of {a:,.1f} m² inside {anc} {pcode} that no feature covers, near "
                            f"{rp.x:.6f},{rp.y:.6f} (between {', '.join(near[:6])}"
                            f"{' …' if len(near) > 6 else ''}; tolerance {tolerance:g} m²)", WARNING))
                        reported.append(h)
            unions[pcode] = drop_small_holes(u, tolerance)
        out[anc] = unions
        child_geoms = unions
    return out
