"""Reading and writing the region hierarchy."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable, Sequence

import shapely
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from ..geo.coords import area_m2
from .schema import region
from .scope import in_scope


@dataclass
class RegionRow:
    code: str
    name: str
    level: str
    geom: object  # shapely geometry, WGS-84
    parent_code: str | None = None
    kind: str | None = None
    households: int = 0
    population: int = 0
    source: str = "demo"


def region_values(r: RegionRow, now: datetime | None = None) -> dict:
    g = r.geom
    c = g.representative_point() if not g.centroid.within(g) else g.centroid
    minx, miny, maxx, maxy = g.bounds
    return {
        "code": r.code, "name": r.name, "level": r.level, "kind": r.kind,
        "parent_code": r.parent_code, "households": int(r.households), "population": int(r.population),
        "geom": shapely.to_wkb(g), "centroid_lon": c.x, "centroid_lat": c.y,
        "min_lon": minx, "min_lat": miny, "max_lon": maxx, "max_lat": maxy,
        "area_m2": area_m2(g), "source": r.source, "updated_at": now or datetime.now(timezone.utc),
    }


_LEVEL_ORDER = {"district": 0, "street": 1, "community": 2, "grid": 3, "micro": 4}


def upsert_regions(conn: Connection, rows: Iterable[RegionRow]) -> tuple[int, int]:
    """Insert or update by code, parents first; returns (inserted, updated)."""
    rows = sorted(rows, key=lambda r: (_LEVEL_ORDER.get(r.level, 9), r.code))
    if not rows:
        return 0, 0
    existing = set()
    codes = [r.code for r in rows]
    for i in range(0, len(codes), 900):
        existing.update(conn.execute(select(region.c.code).where(region.c.code.in_(codes[i:i + 900]))).scalars())
    now = datetime.now(timezone.utc)
    new = [region_values(r, now) for r in rows if r.code not in existing]
    old = [region_values(r, now) for r in rows if r.code in existing]
    if new:
        conn.execute(region.insert(), new)
    if old:
        from sqlalchemy import bindparam

        cols = [c for c in old[0] if c != "code"]
        stmt = region.update().where(region.c.code == bindparam("_code")).values(
            {c: bindparam(c) for c in cols})
        conn.execute(stmt, [{**v, "_code": v["code"]} for v in old])
    return len(new), len(old)


def load_regions(bind: Engine | Connection, *, levels: Sequence[str] | None = None,
                 scope: str | None = None, with_geometry: bool = True) -> list[dict]:
    cols = [c for c in region.c if with_geometry or c.name != "geom"]
    stmt = select(*cols).where(in_scope(region.c.code, scope)).order_by(region.c.code)
    if levels:
        stmt = stmt.where(region.c.level.in_(list(levels)))
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
    else:
        rows = bind.execute(stmt).mappings().all()
    out = []
    for row in rows:
        d = dict(row)
        if with_geometry:
            d["geom"] = shapely.from_wkb(d["geom"])
        out.append(d)
    return out


def region_chain(bind: Engine | Connection, code: str) -> list[dict]:
    """The region and its ancestors, district first (no geometry)."""
    by_code = {}
    stmt = select(region.c.code, region.c.name, region.c.level, region.c.parent_code)
    with (bind.connect() if isinstance(bind, Engine) else _nullctx(bind)) as conn:
        cur = code
        while cur:
            row = conn.execute(stmt.where(region.c.code == cur)).mappings().first()
            if row is None:
                break
            by_code[cur] = dict(row)
            cur = row["parent_code"]
    return list(reversed(list(by_code.values())))


class _nullctx:
    def __init__(self, conn):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        return False
