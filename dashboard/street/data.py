"""What the street view shows, for one unit (a street, or a community or grid drilled into).

- ``unit_figures``: today's and the current figures of one unit, each from its kpi function;
- ``district_average``: the same figures of the whole district divided by its number of units of
  the same level (a street beside the district's average street, a community beside its average
  community); rates are the district's own rate (a rate is already an average over events);
- ``view_data``: the figures, the ranking of the units one level below (``kpi.ranking``, the
  wall's window), and short lists: overdue events (``kpi.overdue_events``), urgent open events,
  open events due soonest, overdue hazards.

The lists carry codes, kinds, levels, states and times only: no reporter, address or description.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import and_, func, select

from dashboard import kpi
from dashboard.domain import CODE_WIDTH, OPEN_STATES
from dashboard.store.schema import event, hazard, region
from dashboard.store.scope import in_scope

# The figures the view compares with the district's average, in the order it shows them.
FIGURES = ("reported", "closed", "open", "overdue", "urgent", "hazards_overdue", "response_rate", "on_time_rate")
RATES = ("response_rate", "on_time_rate")
LIST_ROWS = 6  # rows per list: a phone screen's worth; the total is always shown
LEVELS = {width: level for level, width in CODE_WIDTH.items()}

_OPEN = event.c.state.in_(OPEN_STATES)
# kpi.hazard_counts' "open" (kpi.HAZARD_OPEN once the case engine's hazard cycle names its states; "open"
# before): test_street001 keeps the list's total equal to kpi's overdue count
_HAZARD_OPEN = hazard.c.state.in_(tuple(getattr(kpi, "HAZARD_OPEN", ("open",))))


def level_of(code: str | None) -> str:
    return LEVELS.get(len(code or ""), "district" if not code else "grid")


def _utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v if v.tzinfo else v.replace(tzinfo=timezone.utc)


def _event_rows(conn, cond, order, limit: int) -> dict:
    total = conn.execute(select(func.count()).select_from(event).where(cond)).scalar_one()
    rows = conn.execute(select(event.c.id, event.c.grid_code, event.c.category, event.c.subcategory, event.c.level,
                               event.c.urgent, event.c.state, event.c.reported_at, event.c.deadline_at)
                        .where(cond).order_by(*order).limit(limit)).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        d.update(level=int(d["level"]), urgent=bool(d["urgent"]), reported_at=_utc(d["reported_at"]),
                 deadline_at=_utc(d["deadline_at"]))
        out.append(d)
    return {"total": int(total), "rows": out}


def urgent_open(conn, scope: str | None, limit: int = LIST_ROWS) -> dict:
    """Open events marked urgent, the nearest deadline first: {"total", "rows"}."""
    cond = and_(_OPEN, event.c.urgent.is_(True), in_scope(event.c.grid_code, scope))
    return _event_rows(conn, cond, (event.c.deadline_at.is_(None), event.c.deadline_at, event.c.id), limit)


def due_soon(conn, scope: str | None, now: datetime, limit: int = LIST_ROWS) -> dict:
    """Open events not (yet) overdue, the nearest deadline first (those without one last): the next
    ones to watch, whatever share of their allowance is left."""
    cond = and_(_OPEN, in_scope(event.c.grid_code, scope),
                (event.c.deadline_at >= now) | event.c.deadline_at.is_(None))
    return _event_rows(conn, cond, (event.c.deadline_at.is_(None), event.c.deadline_at, event.c.id), limit)


def overdue_hazards(conn, scope: str | None, now: datetime, limit: int = LIST_ROWS) -> dict:
    """Hazards open past their rectification deadline, the longest overdue first: {"total", "rows"};
    the total is kpi.hazard_counts' "overdue"."""
    cond = and_(_HAZARD_OPEN, in_scope(hazard.c.grid_code, scope), hazard.c.deadline_at < now)
    total = conn.execute(select(func.count()).select_from(hazard).where(cond)).scalar_one()
    rows = conn.execute(select(hazard.c.id, hazard.c.grid_code, hazard.c.kind, hazard.c.found_at, hazard.c.deadline_at)
                        .where(cond).order_by(hazard.c.deadline_at, hazard.c.id).limit(limit)).mappings().all()
    out = []
    for r in rows:
        d = dict(r)
        d.update(found_at=_utc(d["found_at"]), deadline_at=_utc(d["deadline_at"]))
        d["overdue_days"] = round((now - d["deadline_at"]).total_seconds() / 86400.0, 1)
        out.append(d)
    return {"total": int(total), "rows": out}


def unit_figures(conn, scope: str | None, now: datetime, tz) -> dict:
    """FIGURES of one unit (None: everything): today's flow and rates, and what is open now."""
    t0, t1 = kpi.day_bounds(now, tz)
    flow = kpi.flow_counts(conn, scope, t0, t1)
    opened = kpi.open_counts(conn, scope, now)
    rates = kpi.rates(conn, scope, t0, t1)
    hz = kpi.hazard_counts(conn, scope, now, t0, t1)
    urgent = conn.execute(select(func.count()).select_from(event).where(
        _OPEN, event.c.urgent.is_(True), in_scope(event.c.grid_code, scope))).scalar_one()
    return {"reported": flow["reported"], "closed": flow["closed"], "open": opened["open"],
            "overdue": opened["overdue"], "urgent": int(urgent), "hazards_overdue": hz["overdue"],
            "hazards_open": hz["open"],
            "response_rate": rates["response_rate"]["rate"], "on_time_rate": rates["on_time_rate"]["rate"]}


def district_average(engine, district: str, level: str, now: datetime, tz) -> dict:
    """The district's FIGURES per unit of ``level`` (its counts over its number of such units; its
    rates as they are): {"units", "district_name", "level", <figure>: value}."""
    with engine.connect() as conn:
        whole = unit_figures(conn, district, now, tz)
        units = conn.execute(select(func.count()).select_from(region).where(
            in_scope(region.c.code, district), region.c.level == level)).scalar_one()
        name = conn.execute(select(region.c.name).where(region.c.code == district)).scalar()
    out = {"units": int(units), "district": district, "district_name": name or district, "level": level}
    for k in (*FIGURES, "hazards_open"):
        v = whole.get(k)
        out[k] = v if k in RATES else (round(v / units, 1) if units else None)
    return out


def _names(conn, scope: str | None, codes: set[str]) -> dict[str, str]:
    """code -> name for the codes given and their communities (a list row's place)."""
    want = set(codes) | {c[:12] for c in codes if len(c) > 12}
    if not want:
        return {}
    rows = conn.execute(select(region.c.code, region.c.name).where(
        in_scope(region.c.code, scope), region.c.code.in_(sorted(want)))).all()
    return {c: n for c, n in rows}


def view_data(engine, scope: str, now: datetime, tz, rows: int = LIST_ROWS) -> dict:
    """Everything one unit's panels show (no district figures: ``district_average``)."""
    now = kpi._aware(now)
    s0, s1 = kpi.days_bounds(now, tz, kpi.SANLING_DAYS)  # the wall's ranking window
    with engine.connect() as conn:
        unit = conn.execute(select(region.c.code, region.c.name, region.c.level, region.c.parent_code)
                            .where(region.c.code == scope)).mappings().first()
        figures = unit_figures(conn, scope, now, tz)
        ranking = kpi.ranking(conn, scope, now, s0, s1) if len(scope) < CODE_WIDTH["grid"] else []
        lists = {
            "overdue": kpi.overdue_events(conn, scope, now, limit=rows),
            "urgent": urgent_open(conn, scope, rows),
            "due": due_soon(conn, scope, now, rows),
        }
        hazards = overdue_hazards(conn, scope, now, rows)
        codes = {r["grid_code"] for part in lists.values() for r in part["rows"]} | {
            r["grid_code"] for r in hazards["rows"]}
        names = _names(conn, scope, codes)
        parent = (conn.execute(select(region.c.name).where(region.c.code == unit["parent_code"])).scalar()
                  if unit and unit["parent_code"] else None)
    for part in lists.values():
        for r in part["rows"]:
            r["reported_at"] = _utc(r.get("reported_at"))
            r["deadline_at"] = _utc(r.get("deadline_at"))
    return {
        "scope": scope, "name": unit["name"] if unit else scope, "level": unit["level"] if unit else level_of(scope),
        "parent_name": parent, "now": now, "tz": str(getattr(kpi.zone(tz), "key", tz)),
        "figures": figures, "ranking": ranking, "ranking_days": kpi.SANLING_DAYS,
        "ranking_level": LEVELS.get(kpi.child_width(scope)), "lists": lists, "hazards": hazards, "names": names,
    }
