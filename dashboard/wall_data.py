"""Server-side queries feeding the wall's map.

Every function takes ``scope`` (a region code, or ""/None for everything) and
filters with ``in_scope`` on the server, so a scoped wall is never sent another
street's rows. Point layers come back *columnar* (one list per column, string
columns dictionary-encoded, coordinates as integer offsets at 1e-5 degrees ≈
1 m): at 50,000 points that is a fraction of the bytes of GeoJSON, and the
browser turns it into features in one loop (``dashboard/assets/map.js``).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import shapely
from sqlalchemy import case, func, or_, select
from sqlalchemy.engine import Engine

from . import kpi
from .domain import CLOSED_STATES, OPEN_STATES
from .geo.coords import wgs84_to_gcj02
from .store.schema import (
    KEY_POPULATION_COLUMNS, building, event, facility, hazard, house, position,
    region, resident_summary, vehicle,
)
from .store.scope import in_scope

QUANT = 100_000  # 1e-5 degree steps, about 1.1 m at Qingdao's latitude
LEVELS = ("district", "street", "community", "grid")
MEASURES = ("open", "overdue", "per1000", "hazards")
KPI_KEYS = {"per1000": "per_1000"}  # the map's measure id -> kpi.grid_measures' key
POINT_LAYERS = ("events", "hazards", "positions", "houses", "keypop", "vehicles", "facilities")
CRSS = ("wgs84", "gcj02")


def _epoch(dt: datetime | None) -> int | None:
    return int(dt.timestamp()) if dt is not None else None


def _shift(lon, lat, crs: str):
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    if crs == "gcj02" and lon.size:
        return wgs84_to_gcj02(lon, lat)
    return lon, lat


# --- Regions -------------------------------------------------------------------

def region_version(engine: Engine, scope: str | None) -> str:
    """Changes whenever a region in scope is added, removed or updated (cache key)."""
    with engine.connect() as conn:
        n, last = conn.execute(select(func.count(), func.max(region.c.updated_at))
                               .where(in_scope(region.c.code, scope))).one()
    return hashlib.sha1(f"{n}|{last}".encode()).hexdigest()[:12]


def _round_coords(obj, nd: int):
    if isinstance(obj, (list, tuple)):
        if obj and isinstance(obj[0], (int, float)):
            return [round(float(v), nd) for v in obj]
        return [_round_coords(o, nd) for o in obj]
    return obj


def regions_geojson(engine: Engine, level: str, scope: str | None, crs: str = "wgs84",
                    tolerance: float = 1e-5, digits: int = 6) -> dict:
    """Regions of one level inside scope as a FeatureCollection, simplified and rounded.

    Properties are short on purpose: c code, n name, p parent, k kind, i index
    in code order (the choropleth's values arrive as arrays in that order).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    stmt = (select(region.c.code, region.c.name, region.c.parent_code, region.c.kind,
                   region.c.population, region.c.geom)
            .where(region.c.level == level, in_scope(region.c.code, scope))
            .order_by(region.c.code))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    geoms = shapely.from_wkb([r.geom for r in rows]) if rows else []
    if len(geoms):
        geoms = shapely.simplify(geoms, tolerance, preserve_topology=True)
        if crs == "gcj02":
            from .geo.coords import geometry_wgs84_to_gcj02

            geoms = [geometry_wgs84_to_gcj02(g) for g in geoms]
    features = []
    for i, (r, g) in enumerate(zip(rows, geoms)):
        gj = shapely.geometry.mapping(g)
        features.append({
            "type": "Feature",
            "geometry": {"type": gj["type"], "coordinates": _round_coords(gj["coordinates"], digits)},
            "properties": {"c": r.code, "n": r.name, "p": r.parent_code, "k": r.kind,
                           "pop": int(r.population or 0), "i": i},
        })
    return {"type": "FeatureCollection", "features": features}


def region_summary(engine: Engine, scope: str | None) -> dict:
    """What the page needs to know about the territory before the geometry arrives.

    Returns the scope region (name, level, bounds), the streets and
    communities inside it (code -> name, for the popup's grid chain) and the
    grid codes in code order.
    """
    with engine.connect() as conn:
        root = None
        if scope:
            root = conn.execute(select(region.c.code, region.c.name, region.c.level, region.c.parent_code,
                                       region.c.min_lon, region.c.min_lat, region.c.max_lon, region.c.max_lat)
                                .where(region.c.code == scope)).mappings().first()
        if root is None:
            root = conn.execute(select(region.c.code, region.c.name, region.c.level, region.c.parent_code,
                                       region.c.min_lon, region.c.min_lat, region.c.max_lon, region.c.max_lat)
                                .where(region.c.level == "district").order_by(region.c.code)).mappings().first()
        names = conn.execute(select(region.c.code, region.c.name, region.c.level)
                             .where(region.c.level.in_(("district", "street", "community", "grid")),
                                    in_scope(region.c.code, scope))
                             .order_by(region.c.code)).all()
        bounds = conn.execute(select(func.min(region.c.min_lon), func.min(region.c.min_lat),
                                     func.max(region.c.max_lon), func.max(region.c.max_lat))
                              .where(in_scope(region.c.code, scope))).one()
    out = {"root": dict(root) if root else None, "streets": {}, "communities": {}, "grids": [],
           "grid_names": [], "district": {}}
    for code, name, level in names:
        if level == "street":
            out["streets"][code] = name
        elif level == "community":
            out["communities"][code] = name
        elif level == "district":
            out["district"][code] = name
        else:
            out["grids"].append(code)
            out["grid_names"].append(name)
    out["bounds"] = None if bounds[0] is None else [[bounds[1], bounds[0]], [bounds[3], bounds[2]]]
    return out


def streets_of(engine: Engine, scope: str | None) -> list[tuple[str, str]]:
    """The streets to rotate through: those inside scope, or the scope's siblings when scope is a street or below."""
    base = (scope or "")[:6]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(region.c.code, region.c.name)
            .where(region.c.level == "street", in_scope(region.c.code, base or None))
            .order_by(region.c.code)).all()]


# --- Choropleth measures ---------------------------------------------------------

def grid_measures(engine: Engine, scope: str | None, now: datetime | None = None,
                  tz: str = "Asia/Shanghai") -> dict:
    """``dashboard.kpi.grid_measures`` shaped for the map: one array per measure in grid-code
    order (the order of ``regions_geojson``'s ``i``), plus the legend's class breaks and ``n``.

    The figures and their definitions are kpi's (docs/kpi.md); here they are only
    rearranged: ``per1000`` keeps kpi's None (no residents on record: no rate, drawn in
    the "no data" colour and written "—"), ``patrolled`` becomes 1/0.
    """
    now = now or datetime.now(timezone.utc)
    per_grid = kpi.grid_measures(engine, scope, now, tz)
    grids = sorted(per_grid)
    out: dict = {m: [per_grid[g][KPI_KEYS.get(m, m)] for g in grids] for m in MEASURES}
    out["patrolled"] = [1 if per_grid[g]["patrolled"] else 0 for g in grids]
    out["breaks"] = {m: breaks(out[m], integer=m != "per1000") for m in MEASURES}
    out["n"] = len(grids)
    return out


def breaks(values, classes: int = 5, integer: bool = True) -> list:
    """Upper bounds of the colour classes above zero (quantiles of the positive values; a None,
    no value, is in no class); whole numbers for counts, so the legend never says "0–8.6 events"."""
    pos = np.asarray([v for v in values if v is not None and v > 0], dtype=float)
    if not pos.size:
        return [1]
    qs = np.quantile(pos, np.linspace(0, 1, classes + 1)[1:])
    qs = np.unique(np.ceil(qs)) if integer else np.unique(np.round(qs, 1))
    return [int(q) if integer else float(q) for q in qs]


# --- Point layers (columnar) ----------------------------------------------------------

BAND = 800  # rows without a group are ordered in west-east runs inside ~900 m north-south bands


def columnar(lon, lat, crs: str, cols: dict | None = None, dict_cols: dict | None = None,
             time_cols: dict | None = None, group: str | None = None) -> dict:
    """Points as integer coordinate steps plus plain and dictionary-encoded columns.

    Rows are reordered so that neighbours on the map are neighbours in the body: by the
    dictionary column ``group`` (the grid), else by ~900 m bands, then west to east. ``x``
    and ``y`` are then the differences from the previous row in 1e-5 degree steps (the first
    row's from ``x0``/``y0``, the minimum): small numbers that repeat, which brotli packs
    to about half of the plain offsets. The browser adds them up (live.js ``decode``).

    time_cols (datetimes) become whole minutes relative to ``t0`` (epoch seconds of the earliest
    minute in them): four or five digits instead of ten per value, and a minute is what the wall
    shows. ``t0`` comes from the data, not the clock, so the body (and its cache entry and ETag)
    stays the same until the data changes; overdue-ness is worked out by the browser's clock."""
    lon, lat = _shift(lon, lat, crs)
    n = int(lon.size)
    out: dict = {"n": n, "q": QUANT, "steps": 1}
    order = np.arange(n)
    if n:
        xi = np.rint(lon * QUANT).astype(np.int64)
        yi = np.rint(lat * QUANT).astype(np.int64)
        x0, y0 = int(xi.min()), int(yi.min())
        xs, ys = xi - x0, yi - y0
        if group is not None:
            keys = np.unique(np.asarray((dict_cols or {})[group], dtype=object).astype(str), return_inverse=True)[1]
            order = np.lexsort((xs, keys))
        else:
            order = np.lexsort((xs, ys // BAND))
        xs, ys = xs[order], ys[order]
        out.update(x0=x0, y0=y0, x=np.diff(xs, prepend=0).tolist(), y=np.diff(ys, prepend=0).tolist())
    else:
        out.update(x0=0, y0=0, x=[], y=[])
    pick = order.tolist()
    reorder = lambda values: [values[i] for i in pick]  # noqa: E731
    out["c"] = {name: reorder(values) for name, values in (cols or {}).items()}
    out["d"] = {}
    if time_cols:
        stamps = [v.timestamp() for values in time_cols.values() for v in values if v is not None]
        t0 = int(min(stamps)) // 60 * 60 if stamps else 0
        out["t0"] = t0
        out["tc"] = list(time_cols)
        for name, values in time_cols.items():
            out["c"][name] = [None if v is None else round((v.timestamp() - t0) / 60) for v in reorder(values)]
    for name, values in (dict_cols or {}).items():
        vocab: dict = {}
        out["c"][name] = [vocab.setdefault(v, len(vocab)) for v in reorder(values)]
        out["d"][name] = list(vocab)
    return out


def open_events(engine: Engine, scope: str | None, crs: str = "wgs84") -> dict:
    """Open events inside scope for the clustered layer: what the map draws (place, level, urgency,
    state, deadline) and the id. A popup's category, source, time, handler and address come from
    ``event_detail`` when it opens: five more columns would be ~40 % of the body, for the few
    markers anyone clicks. No reporter, no personal data."""
    stmt = (select(event.c.id, event.c.lon, event.c.lat, event.c.grid_code, event.c.level,
                   event.c.urgent, event.c.state, event.c.deadline_at)
            .where(event.c.state.in_(OPEN_STATES), in_scope(event.c.grid_code, scope),
                   event.c.lon.is_not(None))
            .order_by(event.c.grid_code, event.c.id))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = list(zip(*rows)) if rows else [[]] * 8
    return columnar(cols[1], cols[2], crs, cols={
        "id": list(cols[0]), "lvl": [int(v) for v in cols[4]], "urg": [1 if v else 0 for v in cols[5]],
    }, time_cols={"dl": cols[7]}, dict_cols={"g": list(cols[3]), "st": list(cols[6])}, group="g")


def _iso(v: datetime | None) -> str | None:
    return v.isoformat() if v is not None else None


def event_detail(engine: Engine, event_id: str, scope: str | None) -> dict | None:
    """One event for its map popup, if it lies inside scope (None otherwise): the live deltas'
    fields and shape, without the reporter."""
    stmt = (select(event.c.id, event.c.grid_code, event.c.category, event.c.subcategory, event.c.level,
                   event.c.urgent, event.c.state, event.c.source, event.c.reported_at, event.c.deadline_at,
                   event.c.handler, event.c.address)
            .where(event.c.id == event_id, in_scope(event.c.grid_code, scope)))
    with engine.connect() as conn:
        r = conn.execute(stmt).first()
    if r is None:
        return None
    return {"id": r.id, "g": r.grid_code, "cat": r.category, "sub": r.subcategory or "", "lvl": int(r.level),
            "urg": bool(r.urgent), "st": r.state, "src": r.source, "at": _iso(r.reported_at),
            "dl": _iso(r.deadline_at), "h": r.handler or "", "addr": (r.address or "")[:60]}


def open_hazards(engine: Engine, scope: str | None, crs: str = "wgs84") -> dict:
    stmt = (select(hazard.c.id, hazard.c.lon, hazard.c.lat, hazard.c.grid_code, hazard.c.kind,
                   hazard.c.state, hazard.c.found_at, hazard.c.deadline_at)
            .where(hazard.c.state.in_(kpi.HAZARD_OPEN), in_scope(hazard.c.grid_code, scope),
                   hazard.c.lon.is_not(None))
            .order_by(hazard.c.found_at))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = list(zip(*rows)) if rows else [[]] * 8
    return columnar(cols[1], cols[2], crs, cols={"id": list(cols[0])},
                    time_cols={"at": cols[6], "dl": cols[7]},
                    dict_cols={"g": list(cols[3]), "kind": list(cols[4]), "st": list(cols[5])}, group="g")


def positions(engine: Engine, scope: str | None, crs: str = "wgs84",
              max_age: timedelta = kpi.ONLINE_WINDOW) -> dict:
    """Latest positions of the workers and patrol vehicles out now: pinged within
    ``kpi.ONLINE_WINDOW``, the window of the panels' "out now" counts (kpi.staff_on_duty),
    so the map shows the workers the panel counts."""
    since = datetime.now(timezone.utc) - max_age
    stmt = (select(position.c.actor_id, position.c.lon, position.c.lat, position.c.actor_kind,
                   position.c.grid_code, position.c.at)
            .where(in_scope(position.c.grid_code, scope), position.c.at >= since)
            .order_by(position.c.actor_id))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = list(zip(*rows)) if rows else [[]] * 6
    return columnar(cols[1], cols[2], crs, cols={"id": list(cols[0])}, time_cols={"at": cols[5]},
                    dict_cols={"ak": list(cols[3]), "g": [v or "" for v in cols[4]]}, group="g")


def houses(engine: Engine, scope: str | None, crs: str = "wgs84") -> dict:
    """Per building: rental and vacant house counts (only buildings that have either)."""
    rental = func.sum(case((house.c.use == "rental", 1), else_=0))
    vacant = func.sum(case((house.c.use == "vacant", 1), else_=0))
    stmt = (select(building.c.lon, building.c.lat, rental, vacant)
            .select_from(house.join(building, building.c.id == house.c.building_id))
            .where(in_scope(house.c.grid_code, scope), house.c.use.in_(("rental", "vacant")))
            .group_by(building.c.id, building.c.lon, building.c.lat).order_by(building.c.id))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = list(zip(*rows)) if rows else [[]] * 4
    return columnar(cols[0], cols[1], crs, cols={"r": [int(v or 0) for v in cols[2]],
                                                 "v": [int(v or 0) for v in cols[3]]})


def key_population(engine: Engine, scope: str | None, crs: str = "wgs84") -> dict:
    """Per building: key-population counts by class. Counts only: never a name or a person row."""
    stmt = (select(building.c.lon, building.c.lat,
                   *(resident_summary.c[k] for k in KEY_POPULATION_COLUMNS))
            .select_from(resident_summary.join(building, building.c.id == resident_summary.c.building_id))
            .where(in_scope(resident_summary.c.grid_code, scope),
                   or_(*(resident_summary.c[k] > 0 for k in KEY_POPULATION_COLUMNS)))
            .order_by(building.c.id))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = list(zip(*rows)) if rows else [[]] * (2 + len(KEY_POPULATION_COLUMNS))
    return columnar(cols[0], cols[1], crs, cols={
        k: [int(v or 0) for v in cols[2 + i]] for i, k in enumerate(KEY_POPULATION_COLUMNS)})


def vehicles(engine: Engine, scope: str | None, crs: str = "wgs84") -> dict:
    """Registered vehicles by kind (never the plate)."""
    stmt = (select(vehicle.c.lon, vehicle.c.lat, vehicle.c.kind)
            .where(in_scope(vehicle.c.grid_code, scope)).order_by(vehicle.c.id))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = list(zip(*rows)) if rows else [[]] * 3
    return columnar(cols[0], cols[1], crs, dict_cols={"kind": list(cols[2])})


def facilities(engine: Engine, scope: str | None, crs: str = "wgs84") -> dict:
    stmt = (select(facility.c.lon, facility.c.lat, facility.c.kind, facility.c.status)
            .where(in_scope(facility.c.grid_code, scope)).order_by(facility.c.id))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = list(zip(*rows)) if rows else [[]] * 4
    return columnar(cols[0], cols[1], crs, dict_cols={"kind": list(cols[2]), "st": list(cols[3])})


POINT_QUERIES = {
    "events": open_events, "hazards": open_hazards, "positions": positions, "houses": houses,
    "keypop": key_population, "vehicles": vehicles, "facilities": facilities,
}

# What a point layer's cache key must change with: the table(s) it reads.
_VERSION_SOURCES = {
    "events": (event, event.c.updated_at, event.c.grid_code),
    "hazards": (hazard, hazard.c.updated_at, hazard.c.grid_code),
    "positions": (position, position.c.at, position.c.grid_code),
}


def layer_version(engine: Engine, layer: str, scope: str | None) -> str | None:
    """A cheap fingerprint of a point layer's data; None for layers read fresh each time."""
    src = _VERSION_SOURCES.get(layer)
    with engine.connect() as conn:
        if src is None:  # houses, people, vehicles, facilities change with imports, not the feed
            table, key, extra = {
                "houses": (house, house.c.id, func.sum(case((house.c.use == "rental", 1), else_=2))),
                "keypop": (resident_summary, resident_summary.c.building_id,
                           func.sum(sum((resident_summary.c[k] for k in KEY_POPULATION_COLUMNS[1:]),
                                        resident_summary.c[KEY_POPULATION_COLUMNS[0]]))),
                "vehicles": (vehicle, vehicle.c.id, func.sum(vehicle.c.lon)),
                "facilities": (facility, facility.c.id, func.sum(case((facility.c.status == "ok", 1), else_=2))),
            }[layer]
            n, mx, x = conn.execute(select(func.count(), func.max(key), extra)
                                    .where(in_scope(table.c.grid_code, scope))).one()
            return f"{n}:{mx}:{x}"
        table, ts, col = src
        if layer == "events":
            # The newest change to ANY event (one step down the updated_at index) rather than
            # count + newest in the scope: that read every event the scope ever had, closed ones
            # included, on every request. A change elsewhere rebuilds this part too, which is
            # safe. Overdue-ness moves with the clock, but the browser works it out from the
            # deadline, so the body does not depend on the time of the request.
            return str(conn.execute(select(func.max(ts))).scalar())
        n, last = conn.execute(select(func.count(), func.max(ts)).where(in_scope(col, scope))).one()
    return f"{n}:{last}"


def point_layer(engine: Engine, layer: str, scope: str | None, crs: str = "wgs84") -> dict:
    if layer not in POINT_QUERIES:
        raise ValueError(f"layer must be one of {', '.join(POINT_LAYERS)}, not {layer!r}")
    return POINT_QUERIES[layer](engine, scope, crs)


# --- Ticker --------------------------------------------------------------------------

def newest_events(engine: Engine, scope: str | None, limit: int = 20, words: int = 40) -> list[dict]:
    """Newest events in scope for the ticker: time, category, place, first words of the description."""
    stmt = (select(event.c.id, event.c.reported_at, event.c.category, event.c.subcategory, event.c.level,
                   event.c.urgent, event.c.state, event.c.grid_code, event.c.address, event.c.description,
                   event.c.lon, event.c.lat)
            .where(in_scope(event.c.grid_code, scope))
            .order_by(event.c.reported_at.desc(), event.c.id.desc()).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [{"id": r.id, "at": _epoch(r.reported_at), "cat": r.category, "sub": r.subcategory or "",
             "lvl": int(r.level), "urg": bool(r.urgent), "st": r.state, "g": r.grid_code,
             "addr": (r.address or "")[:60], "txt": (r.description or "")[:words],
             "closed": r.state in CLOSED_STATES} for r in rows]


def recent_event_deltas(engine: Engine, scope: str | None, since: datetime, limit: int = 500) -> list[dict]:
    """Events changed after ``since``, in the live deltas' shape (the 1 s polling fallback reads these)."""
    stmt = (select(event.c.id, event.c.grid_code, event.c.lon, event.c.lat, event.c.category, event.c.subcategory,
                   event.c.level, event.c.urgent, event.c.state, event.c.source, event.c.reported_at,
                   event.c.deadline_at, event.c.handler, event.c.description, event.c.address, event.c.updated_at)
            .where(in_scope(event.c.grid_code, scope), event.c.updated_at > since)
            .order_by(event.c.updated_at).limit(limit))
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [{"k": "event", "op": "upsert", "g": r.grid_code, "id": r.id, "lon": r.lon, "lat": r.lat,
             "cat": r.category, "sub": r.subcategory, "lvl": r.level, "urg": bool(r.urgent), "st": r.state,
             "src": r.source, "at": _iso(r.reported_at), "dl": _iso(r.deadline_at), "h": r.handler,
             "txt": (r.description or "")[:60], "addr": r.address, "u": _iso(r.updated_at)} for r in rows]


def dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


__all__ = [
    "LEVELS", "MEASURES", "POINT_LAYERS", "regions_geojson", "region_summary", "region_version",
    "grid_measures", "point_layer", "layer_version", "newest_events", "event_detail", "streets_of", "columnar",
    "dumps",
]
