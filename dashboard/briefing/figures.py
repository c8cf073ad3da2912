"""The week's figures: every number of the briefing, computed by the KPI functions the wall uses.

Nothing here counts rows itself: each figure is one call into ``dashboard.kpi``
(definitions in docs/kpi.md), and this module only arranges the results and
works out the comparisons (环比 with the previous week, 同比 with the same ISO
week a year before). A comparison week the store's history does not reach
(its first event is later than the week's start) has no figure ("—"), never 0.

The result is plain data (str/int/float/None/list/dict) in no language: the
charts, the PDF, the workbook and the summary all read the same dict.
"""
from __future__ import annotations

from datetime import datetime, timezone

from dashboard import kpi
from dashboard.domain import CODE_WIDTH
from dashboard.store.regions import load_regions, region_chain

from .errors import BriefingError
from .week import Week

COUNTS = ("reported", "registered", "closed", "hazards_found", "hazards_rectified")
RATES = ("response_rate", "closure_rate", "on_time_rate", "rework_rate", "satisfaction_rate")
HEADLINE = ("reported", "registered", "closed", "response_rate", "closure_rate", "on_time_rate",
            "rework_rate", "satisfaction_rate", "hazards_found", "hazards_rectified")
TOP_SUBCATEGORIES = 10
OVERDUE_ROWS = 5000  # the workbook lists this many overdue events at most (the PDF fewer)
_LEVEL_OF_WIDTH = {w: lv for lv, w in CODE_WIDTH.items()}


def scope_row(bind, scope: str) -> dict:
    """The scope's region (code, name, level, and the names above it), or a BriefingError."""
    if not scope or not scope.isdigit():
        raise BriefingError(f"scope {scope!r}: expected a region code such as 370202")
    chain = region_chain(bind, scope)
    if not chain or chain[-1]["code"] != scope:
        raise BriefingError(f"unknown scope {scope}: no region with that code in the store")
    me = chain[-1]
    if me["level"] not in ("district", "street", "community", "grid"):
        raise BriefingError(f"scope {scope} is a {me['level']}: a briefing covers a district, street, "
                            "community or grid")
    return {"code": me["code"], "name": me["name"], "level": me["level"],
            "chain": [c["name"] for c in chain]}


def period(conn, scope: str, start: datetime, end: datetime, now: datetime) -> dict:
    """What the headline compares week on week: flow, the five rates, hazards found and rectified."""
    flow = kpi.flow_counts(conn, scope, start, end)
    hz = kpi.hazard_counts(conn, scope, now, start, end)
    values = {**flow, "hazards_found": hz["found"], "hazards_rectified": hz["rectified"]}
    rates = kpi.rates(conn, scope, start, end, now)
    values.update({k: rates[k]["rate"] for k in RATES})
    return {"values": values, "rates": rates}


def change(kind: str, cur, prev):
    """环比/同比: a count's change in per cent (None when the base is 0: no ratio), a rate's in
    percentage points; None when either side is missing. Rounded as shown (0.1)."""
    if cur is None or prev is None:
        return None
    if kind == "rate":
        return round((cur - prev) * 100.0, 1)
    return round((cur - prev) * 100.0 / prev, 1) if prev else None


def rank_units(rows: list[dict], open_rows: list[dict]) -> list[dict]:
    """Units one level down ranked on the on-time closure rate (then closure, then response rate),
    units without closures last; the first is marked best and the last with a rate worst."""
    opened = {r["code"]: r for r in open_rows}
    out = []
    for r in rows:
        o = opened.get(r["code"], {})
        out.append({"code": r["code"], "name": r["name"], "open": o.get("open", 0), "overdue": o.get("overdue", 0),
                    **{k: r[k] for k in RATES}})

    def key(r):
        vals = [r[k]["rate"] for k in ("on_time_rate", "closure_rate", "response_rate")]
        return ([v is None for v in vals][0], *[-(v if v is not None else -1.0) for v in vals], r["code"])
    out.sort(key=key)
    rated = [r for r in out if r["on_time_rate"]["rate"] is not None]
    for i, r in enumerate(out, 1):
        r["rank"] = i
        r["mark"] = None
    if len(rated) >= 2:
        rated[0]["mark"] = "best"
        rated[-1]["mark"] = "worst"
    return out


def compute(engine, scope: str, week: Week, now: datetime, tz) -> dict:
    """Every figure of one briefing: ``scope`` a region code, ``week`` an ISO week, ``now`` the
    generation time (open and overdue are as of then)."""
    now = now.astimezone(timezone.utc)
    start, end = week.bounds(tz)
    with engine.connect() as conn:
        me = scope_row(conn, scope)
        first = kpi.first_report(conn, scope)
        cur = period(conn, scope, start, end, now)
        comps = {}
        for name, other in (("previous", week.previous()), ("year_ago", week.year_before())):
            s, e = other.bounds(tz)
            reaches = first is not None and first <= s
            comps[name] = {"week": other.iso, "days": [d.isoformat() for d in (other.days[0], other.days[-1])],
                           "reaches": reaches, **(period(conn, scope, s, e, now) if reaches else {"values": None})}
        by = {f: kpi.events_by(conn, scope, start, end, f) for f in ("category", "level", "source")}
        subs = kpi.top_subcategories(conn, scope, start, end, limit=TOP_SUBCATEGORIES)
        # the week's seven local days: daily_trend counts back from the day holding its ``now``
        trend = kpi.daily_trend(conn, scope, kpi.day_start(week.days[-1], tz), tz, 7)
        units = rank_units(kpi.rates_by_unit(conn, scope, start, end, now), kpi.ranking(conn, scope, now, start, end))
        open_now = kpi.open_counts(conn, scope, now)
        hazards = kpi.hazard_counts(conn, scope, now, start, end)
        deadlines = kpi.hazard_deadlines(conn, scope, start, end, now)
        sanling = kpi.sanling(conn, scope, start, end)
        overdue = kpi.overdue_events(conn, scope, now, limit=OVERDUE_ROWS)
        grids = kpi.grid_per_1000(conn, scope, start, end)
        grid_names = {r["code"]: r["name"] for r in load_regions(conn, levels=("grid",), scope=scope,
                                                                  with_geometry=False)}
    values = cur["values"]
    changes = {}
    for k in HEADLINE:
        kind = "rate" if k in RATES else "count"
        changes[k] = {c: change(kind, values[k], (comps[c]["values"] or {}).get(k)) for c in ("previous", "year_ago")}
    has_data = any(values[k] for k in COUNTS)
    return {
        "scope": me,
        "child_level": _LEVEL_OF_WIDTH.get(kpi.child_width(scope), "grid"),
        "week": {"iso": week.iso, "year": week.year, "week": week.week,
                 "days": [d.isoformat() for d in week.days], "start": start.isoformat(), "end": end.isoformat()},
        "partial": end > now,
        "generated_at": now.isoformat(),
        "tz": str(getattr(kpi.zone(tz), "key", tz)),
        "first_report": first.isoformat() if first else None,
        "has_data": has_data,
        "values": values, "rates": cur["rates"],
        "previous": comps["previous"], "year_ago": comps["year_ago"], "changes": changes,
        "by_category": by["category"], "by_level": by["level"], "by_source": by["source"],
        "subcategories": subs, "trend": trend, "units": units,
        "open_now": open_now,
        "hazards": {"found": hazards["found"], "rectified": hazards["rectified"], "open": hazards["open"],
                    "overdue": hazards["overdue"], "open_by_kind": hazards["open_by_kind"], **deadlines},
        "sanling": sanling, "overdue": overdue, "grids": grids, "grid_names": grid_names,
    }

