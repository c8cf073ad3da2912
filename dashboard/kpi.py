"""KPI functions: the one set of figures the wall, the panels and the briefings share.

Definitions are written down in docs/kpi.md; keep the two in step.

Conventions:
- every function takes a ``scope`` region code and filters on the server with
  ``in_scope`` on the row's region column; ``None``/"" means everything;
- times are aware datetimes; the store keeps UTC. Local days are computed in
  the jurisdiction's time zone (``tz``: a name such as "Asia/Shanghai" or a
  ``ZoneInfo``) and converted to UTC bounds, so days are right across DST too;
- a period is half-open, ``[start, end)``, so weeks and days tile without overlap;
- counting happens in SQL (COUNT/SUM ... GROUP BY), never in Python loops over
  rows, so a city (6,000 grids, 50,000 open events) costs a few indexed scans;
- results are plain dicts/lists of str/int/float/None (JSON-serialisable).

Grouping by street/community uses ``substr(grid_code, 1, width)`` on the fixed
width codes. The width is written into the SQL as a literal: PostgreSQL
rejects ``GROUP BY substr(col, $1, $2)`` when the select list binds its own
copies of the same parameters.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Iterable
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.engine import Connection, Engine

from .cases import rates as standard
from .domain import CATEGORIES, CODE_WIDTH, EVENT_LEVELS, HAZARD_OPEN_STATES, OPEN_STATES, SOURCES
from .store.schema import (
    KEY_POPULATION_COLUMNS, event, hazard, house, patrol, position, region, resident_summary, staff,
)
from .store.scope import in_scope

# How recent a position ping must be for its worker or vehicle to count as out now.
ONLINE_WINDOW = timedelta(minutes=15)
# 三零 communities are judged over this many local days, today included.
SANLING_DAYS = 30
# Events per 1,000 residents on the map: events reported over this many local days.
PER_1000_DAYS = 30
SATISFIED_MIN = standard.SATISFIED_MIN  # satisfaction 1..5; 4 and 5 count as satisfied

_WIDTHS = sorted(CODE_WIDTH.values())  # 6, 9, 12, 15, 18
_LEVEL_OF_WIDTH = {w: lv for lv, w in CODE_WIDTH.items()}


# --- time -------------------------------------------------------------------

def zone(tz: str | tzinfo | None) -> tzinfo:
    if tz is None:
        return ZoneInfo("Asia/Shanghai")
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (e.g. datetime.now(timezone.utc))")
    return now


def local_date(now: datetime, tz) -> date:
    return _aware(now).astimezone(zone(tz)).date()


def day_start(d: date, tz) -> datetime:
    """UTC instant of local midnight starting day ``d``."""
    return datetime.combine(d, time(0), tzinfo=zone(tz)).astimezone(timezone.utc)


def day_bounds(now: datetime, tz, days_back: int = 0) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local day ``days_back`` days before today."""
    d = local_date(now, tz) - timedelta(days=days_back)
    return day_start(d, tz), day_start(d + timedelta(days=1), tz)


def days_bounds(now: datetime, tz, days: int) -> tuple[datetime, datetime]:
    """[start, end) in UTC covering the last ``days`` local days, today included."""
    d = local_date(now, tz)
    return day_start(d - timedelta(days=days - 1), tz), day_start(d + timedelta(days=1), tz)


def week_bounds(now: datetime, tz, weeks_back: int = 0) -> tuple[datetime, datetime]:
    """[start, end) in UTC of the local Monday-to-Sunday week (0 = this week)."""
    d = local_date(now, tz)
    monday = d - timedelta(days=d.weekday() + 7 * weeks_back)
    return day_start(monday, tz), day_start(monday + timedelta(days=7), tz)


# --- helpers ----------------------------------------------------------------

class _Bind:
    """Accept an Engine or a Connection; open a connection only when given an engine."""

    def __init__(self, bind: Engine | Connection):
        self.bind = bind
        self.conn = None

    def __enter__(self) -> Connection:
        if isinstance(self.bind, Engine):
            self.conn = self.bind.connect()
            return self.conn
        return self.bind

    def __exit__(self, *exc):
        if self.conn is not None:
            self.conn.close()
        return False


def _prefix(column, width: int):
    return func.substr(column, literal_column("1"), literal_column(str(int(width))))


def _count_if(cond):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _rate(num: int, den: int) -> dict:
    return {"num": int(num), "den": int(den), "rate": (num / den) if den else None}


def child_width(scope: str | None) -> int:
    """Width of the codes one level below ``scope``; the whole store ranks streets."""
    n = len(scope or "")
    if n < CODE_WIDTH["district"]:
        return CODE_WIDTH["street"]
    for w in _WIDTHS:
        if w > n:
            return w
    return n


def _in_period(column, start: datetime, end: datetime):
    return and_(column >= start, column < end)


_OPEN = event.c.state.in_(OPEN_STATES)
# 挂账 stops a case's clock: a suspended case is open (a unit holds it) but neither overdue nor due soon
_CLOCK_RUNS = event.c.state != "suspended"


def _overdue(now: datetime):
    """超期 now: the clock runs and the case engine's deadline has passed (no deadline: never)."""
    return and_(_CLOCK_RUNS, event.c.deadline_at < now)


def _due_soon(now: datetime):
    """即将到期 now: past the due-soon mark the consumer sets (the last DUE_SOON_SHARE of the
    allowance), deadline still ahead."""
    return and_(_CLOCK_RUNS, event.c.due_soon_at <= now, event.c.deadline_at > now)


# Hazards under rectification. TRANSITIONAL (C1's consumer switch): "open" is the old consumer's
# state for a hazard not yet rectified; migration 0005 renamed existing rows, the consumer still
# writes it until C1 commits the hazard cycle. Remove "open" then.
HAZARD_OPEN = tuple(HAZARD_OPEN_STATES) + ("open",)
_HAZARD_IS_OPEN = hazard.c.state.in_(HAZARD_OPEN)


# --- events: flow over a period and the open stock now ----------------------

def flow_counts(bind, scope: str | None, start: datetime, end: datetime) -> dict:
    """Events reported / registered / closed in [start, end)."""
    with _Bind(bind) as conn:
        reported = conn.execute(select(func.count()).select_from(event).where(
            in_scope(event.c.grid_code, scope), _in_period(event.c.reported_at, start, end))).scalar_one()
        registered = conn.execute(select(func.count()).select_from(event).where(
            in_scope(event.c.grid_code, scope), _in_period(event.c.registered_at, start, end))).scalar_one()
        closed = conn.execute(select(func.count()).select_from(event).where(
            in_scope(event.c.grid_code, scope), _in_period(event.c.closed_at, start, end))).scalar_one()
    return {"reported": int(reported), "registered": int(registered), "closed": int(closed)}


def open_grid_stats(bind, scope: str | None, now: datetime) -> list[tuple[str, int, int, int, int]]:
    """(grid_code, level, open, overdue, due_soon) for open events now: one scan of the open
    events that open_counts, ranking and grid_measures can all fold (grouped rows:
    at most grids × 3). Overdue and due soon follow the case engine's deadlines (``_overdue``,
    ``_due_soon``); a suspended case counts as open only."""
    now = _aware(now)
    unit = _prefix(event.c.grid_code, CODE_WIDTH["grid"]).label("u")
    stmt = (select(unit, event.c.level, func.count(), _count_if(_overdue(now)), _count_if(_due_soon(now)))
            .where(_OPEN, in_scope(event.c.grid_code, scope)).group_by(unit, event.c.level))
    with _Bind(bind) as conn:
        return [(u, int(lv), int(n), int(o), int(d)) for u, lv, n, o, d in conn.execute(stmt).all()]


def open_counts(bind, scope: str | None, now: datetime, stats: list | None = None) -> dict:
    """Open events now, overdue ones (deadline passed), due soon (即将到期), and open by level."""
    if stats is None:
        stats = open_grid_stats(bind, scope, now)
    by_level = {str(k): 0 for k in EVENT_LEVELS}
    for _, lv, n, *_ in stats:
        by_level[str(lv)] = by_level.get(str(lv), 0) + n
    return {"open": sum(r[2] for r in stats), "overdue": sum(r[3] for r in stats),
            "due_soon": sum(r[4] for r in stats), "open_by_level": by_level}


def _fold(stats: list, width: int) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for g, _, n, o, *_ in stats:
        acc = out.setdefault(g[:width], [0, 0])
        acc[0] += n
        acc[1] += o
    return {k: (v[0], v[1]) for k, v in out.items()}


def rates(bind, scope: str | None, start: datetime, end: datetime, now: datetime | None = None) -> dict:
    """The standard rates over [start, end) (``dashboard.cases.rates.standard_rates``: the one
    definition of each, docs/kpi.md "The standard rates"); each as {"num", "den", "rate"} (rate
    None when den is 0). ``now`` (default: the clock) bounds the overdue rate only."""
    return standard.standard_rates(bind, scope, start, end, now=now)


_BREAKDOWN = {"level": event.c.level, "category": event.c.category, "source": event.c.source}


def events_by(bind, scope: str | None, start: datetime, end: datetime, field: str) -> list[dict]:
    """Events reported in [start, end) per level, category or source: [{"key", "count"}].

    Every known key is listed (zero when none) so charts keep their bars in
    place; unknown keys found in the data are appended, never dropped.
    """
    col = _BREAKDOWN.get(field)
    if col is None:
        raise ValueError(f"events_by: field must be one of {sorted(_BREAKDOWN)}, not {field!r}")
    stmt = (select(col, func.count()).where(in_scope(event.c.grid_code, scope),
                                            _in_period(event.c.reported_at, start, end)).group_by(col))
    with _Bind(bind) as conn:
        counts = {str(k): int(n) for k, n in conn.execute(stmt).all()}
    known = {"level": [str(k) for k in EVENT_LEVELS], "category": list(CATEGORIES),
             "source": list(SOURCES)}[field]
    out = [{"key": k, "count": counts.pop(k, 0)} for k in known]
    out += [{"key": k, "count": n} for k, n in sorted(counts.items())]
    if field != "level":
        out.sort(key=lambda r: -r["count"])  # stable: ties keep the vocabulary's order
    return out


def daily_trend(bind, scope: str | None, now: datetime, tz, days: int) -> list[dict]:
    """Reported and closed per local day over the last ``days`` days, oldest first:
    [{"day": "YYYY-MM-DD", "reported": n, "closed": n}]."""
    if days < 1:
        raise ValueError("daily_trend: days must be at least 1")
    today = local_date(now, tz)
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    bounds = [day_start(d, tz) for d in dates] + [day_start(today + timedelta(days=1), tz)]
    out = [{"day": d.isoformat(), "reported": 0, "closed": 0} for d in dates]
    with _Bind(bind) as conn:
        for key, col in (("reported", event.c.reported_at), ("closed", event.c.closed_at)):
            # One CASE picks the day index; the inner select keeps its bound
            # parameters out of GROUP BY (PostgreSQL would not match them up).
            day_ix = case(*[(col < bounds[i + 1], i) for i in range(days)], else_=days).label("d")
            inner = select(day_ix).where(in_scope(event.c.grid_code, scope),
                                         col >= bounds[0], col < bounds[-1]).subquery()
            for i, n in conn.execute(select(inner.c.d, func.count()).group_by(inner.c.d)).all():
                if 0 <= int(i) < days:
                    out[int(i)][key] = int(n)
    return out


# --- places: ranking, 三零 communities, grid measures -------------------------

def _units(conn, scope: str | None, width: int) -> list[dict]:
    level = _LEVEL_OF_WIDTH.get(width)
    stmt = (select(region.c.code, region.c.name).where(in_scope(region.c.code, scope), region.c.level == level)
            .order_by(region.c.code))
    return [dict(r) for r in conn.execute(stmt).mappings().all()]


def ranking_closed(bind, scope: str | None, start: datetime, end: datetime) -> dict:
    """The slow-moving half of the ranking: units one level below the scope, and per unit the
    standard on-time closure rate (按期结案数 / 应结案数, ``rates.standard_rates``) of [start, end)."""
    width = child_width(scope)
    with _Bind(bind) as conn:
        units = _units(conn, scope, width)
        by_unit = standard.standard_rates(conn, scope, start, end, by=_LEVEL_OF_WIDTH[width])
    on_time = {u: (r["on_time_rate"]["den"], r["on_time_rate"]["num"]) for u, r in by_unit.items()}
    return {"width": width, "units": units, "on_time": on_time}


def rank_units(closed_part: dict, stats: list) -> list[dict]:
    opened = _fold(stats, closed_part["width"])
    rows = []
    for u in closed_part["units"]:
        n_open, n_over = opened.get(u["code"], (0, 0))
        n_due, n_on_time = closed_part["on_time"].get(u["code"], (0, 0))
        rows.append({"code": u["code"], "name": u["name"], "open": n_open, "overdue": n_over,
                     "due": n_due, "on_time": n_on_time,
                     "on_time_rate": (n_on_time / n_due) if n_due else None})
    rows.sort(key=lambda r: (-r["overdue"], -r["open"],
                             r["on_time_rate"] if r["on_time_rate"] is not None else 2.0, r["code"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


def ranking(bind, scope: str | None, now: datetime, start: datetime, end: datetime) -> list[dict]:
    """One row per unit one level below the scope (streets of a district, communities
    of a street, grids of a community): open and overdue now, the standard on-time closure
    rate of [start, end) (``due`` 应结案数, ``on_time`` 按期结案数). Sorted worst first: most overdue, then most
    open, then lowest on-time rate, then code."""
    with _Bind(bind) as conn:
        return rank_units(ranking_closed(conn, scope, start, end), open_grid_stats(conn, scope, now))


# Proxies for 三零 (documented in docs/kpi.md): the store has no petition,
# accident or crime registers, only events.
SANLING_RULES = {
    "petitions": event.c.category == "petition",
    "accidents": and_(event.c.category == "safety", event.c.level == 1),
    "criminal": and_(event.c.category == "order", event.c.subcategory == "security", event.c.level == 1),
}


def sanling(bind, scope: str | None, start: datetime, end: datetime) -> dict:
    """三零 communities over [start, end): zero petitions, zero safety accidents,
    zero criminal cases. {"zero": X, "total": N, "communities": [...]}, the
    communities with any count first."""
    width = CODE_WIDTH["community"]
    unit = _prefix(event.c.grid_code, width).label("u")
    any_rule = or_(*SANLING_RULES.values())
    stmt = (select(unit, *[_count_if(rule) for rule in SANLING_RULES.values()])
            .where(in_scope(event.c.grid_code, scope), _in_period(event.c.reported_at, start, end), any_rule)
            .group_by(unit))
    with _Bind(bind) as conn:
        if scope and len(scope) > width:  # a grid's wall: its own community, counted on the grid only
            units = [dict(r) for r in conn.execute(select(region.c.code, region.c.name)
                                                   .where(region.c.code == scope[:width])).mappings()]
        else:
            units = _units(conn, scope, width)
        counts = {row[0]: [int(v) for v in row[1:]] for row in conn.execute(stmt).all()}
    rows = []
    for u in units:
        c = counts.get(u["code"], [0] * len(SANLING_RULES))
        r = {"code": u["code"], "name": u["name"], **dict(zip(SANLING_RULES, c))}
        r["zero"] = not any(c)
        rows.append(r)
    rows.sort(key=lambda r: (r["zero"], -(r["petitions"] + r["accidents"] + r["criminal"]), r["code"]))
    return {"zero": sum(r["zero"] for r in rows), "total": len(rows), "communities": rows}


def grid_measures(bind, scope: str | None, now: datetime, tz, stats: list | None = None) -> dict[str, dict]:
    """Per grid in scope, every one, in code order: what the map colours and its popup says.

    {grid_code: {"open", "overdue", "hazards", "per_1000", "patrolled"}}
      open       events in an open state now
      overdue    open events past their deadline now (no deadline: never overdue)
      hazards    hazards open now (under rectification)
      per_1000   ``grid_per_1000`` over the last PER_1000_DAYS local days, today
                 included: events reported per 1,000 residents on record; None when
                 the grid has no residents (a school or market grid has no rate, not 0)
      patrolled  True when the grid had a patrol check-in today (the local day of
                 ``now``): the grids ``patrols`` counts as covered

    ``stats``: an ``open_grid_stats`` result of the same moment, to reuse.
    ``dashboard.wall_data.grid_measures`` shapes this for the map (arrays in grid
    order); it computes nothing of its own.
    """
    now = _aware(now)
    hz_unit = _prefix(hazard.c.grid_code, CODE_WIDTH["grid"]).label("u")
    with _Bind(bind) as conn:
        rated = grid_per_1000(conn, scope, *days_bounds(now, tz, PER_1000_DAYS))
        opened = _fold(stats if stats is not None else open_grid_stats(conn, scope, now), CODE_WIDTH["grid"])
        hazards = dict(conn.execute(
            select(hz_unit, func.count()).where(_HAZARD_IS_OPEN, in_scope(hazard.c.grid_code, scope))
            .group_by(hz_unit)).all())
        patrolled = patrolled_grids(conn, scope, *day_bounds(now, tz))
    out = {}
    for code in sorted(rated):
        n_open, n_over = opened.get(code, (0, 0))
        out[code] = {"open": n_open, "overdue": n_over, "hazards": int(hazards.get(code, 0)),
                     "per_1000": rated[code]["per_1000"], "patrolled": code in patrolled}
    return out


def per_1000(count: int, residents: int | None) -> float | None:
    """``count`` per 1,000 residents, to 0.01; None (no rate, never 0) when there are no residents."""
    return round(count * 1000.0 / residents, 2) if residents else None


# --- people and things --------------------------------------------------------

def staff_on_duty(bind, scope: str | None, now: datetime) -> dict:
    """Rostered on duty (staff.on_duty) by role, and workers/vehicles whose position
    was pinged in the last 15 minutes."""
    now = _aware(now)
    with _Bind(bind) as conn:
        by_role = {r: int(n) for r, n in conn.execute(
            select(staff.c.role, func.count()).where(staff.c.on_duty.is_(True), in_scope(staff.c.region_code, scope))
            .group_by(staff.c.role)).all()}
        online = {k: int(n) for k, n in conn.execute(
            select(position.c.actor_kind, func.count()).where(
                in_scope(position.c.grid_code, scope), position.c.at >= now - ONLINE_WINDOW, position.c.at <= now)
            .group_by(position.c.actor_kind)).all()}
    return {"on_duty": sum(by_role.values()), "on_duty_by_role": by_role,
            "online_staff": online.get("staff", 0), "online_vehicles": online.get("vehicle", 0)}


def patrolled_grids(bind, scope: str | None, start: datetime, end: datetime) -> set[str]:
    """Grids in scope with at least one patrol check-in in [start, end): the covered grids
    of ``patrols`` and the map's "patrolled today" outline."""
    unit = _prefix(patrol.c.grid_code, CODE_WIDTH["grid"]).label("u")
    with _Bind(bind) as conn:
        return {u for (u,) in conn.execute(
            select(unit).where(in_scope(patrol.c.grid_code, scope), _in_period(patrol.c.at, start, end))
            .group_by(unit)).all()}


def patrols(bind, scope: str | None, start: datetime, end: datetime) -> dict:
    """Patrol check-ins in [start, end), the grids they covered (``patrolled_grids``), and
    coverage (grids with at least one check-in / grids in scope)."""
    with _Bind(bind) as conn:
        done, issues = conn.execute(
            select(func.count(), func.coalesce(func.sum(patrol.c.issues), 0))
            .where(in_scope(patrol.c.grid_code, scope), _in_period(patrol.c.at, start, end))).one()
        grids_done = len(patrolled_grids(conn, scope, start, end))
        total = conn.execute(select(func.count()).select_from(region).where(
            in_scope(region.c.code, scope), region.c.level == "grid")).scalar_one()
    return {"patrols": int(done), "grids_patrolled": grids_done, "grids_total": int(total),
            "issues": int(issues), "coverage": _rate(grids_done, total)["rate"]}


def hazard_counts(bind, scope: str | None, now: datetime, start: datetime, end: datetime) -> dict:
    """Hazards open now, overdue now (open past their deadline), due soon now (open, past their
    due-soon mark, deadline ahead), found and rectified in [start, end), open by kind."""
    now = _aware(now)
    scoped = in_scope(hazard.c.grid_code, scope)
    due_soon = and_(hazard.c.due_soon_at <= now, hazard.c.deadline_at > now)
    with _Bind(bind) as conn:
        by_kind = conn.execute(
            select(hazard.c.kind, func.count(), _count_if(hazard.c.deadline_at < now), _count_if(due_soon))
            .where(scoped, _HAZARD_IS_OPEN).group_by(hazard.c.kind)).all()
        found, rectified = conn.execute(select(
            _count_if(_in_period(hazard.c.found_at, start, end)),
            _count_if(_in_period(hazard.c.rectified_at, start, end)),
        ).where(scoped, or_(_in_period(hazard.c.found_at, start, end),
                            _in_period(hazard.c.rectified_at, start, end)))).one()
    return {"open": sum(int(r[1]) for r in by_kind), "overdue": sum(int(r[2]) for r in by_kind),
            "due_soon": sum(int(r[3]) for r in by_kind), "found": int(found), "rectified": int(rectified),
            "open_by_kind": {r[0]: int(r[1]) for r in sorted(by_kind, key=lambda r: -r[1])}}


def population(bind, scope: str | None) -> dict:
    """Counts only (never names): residents, households, registered/floating and
    each key-population class, summed from resident_summary."""
    cols = ("population", "households", "registered", "floating") + KEY_POPULATION_COLUMNS
    stmt = select(*[func.coalesce(func.sum(resident_summary.c[c]), 0) for c in cols]).where(
        in_scope(resident_summary.c.grid_code, scope))
    with _Bind(bind) as conn:
        values = [int(v) for v in conn.execute(stmt).one()]
    out = dict(zip(cols, values))
    out["key_population"] = {c: out.pop(c) for c in KEY_POPULATION_COLUMNS}
    out["key_total"] = sum(out["key_population"].values())
    return out


def houses(bind, scope: str | None) -> dict:
    """Houses per use (residential, rental, vacant, shop) and their total."""
    stmt = select(house.c.use, func.count()).where(in_scope(house.c.grid_code, scope)).group_by(house.c.use)
    with _Bind(bind) as conn:
        by_use = {u: int(n) for u, n in conn.execute(stmt).all()}
    return {"total": sum(by_use.values()), "rental": by_use.get("rental", 0),
            "vacant": by_use.get("vacant", 0), "by_use": by_use}


# --- the weekly briefing's cuts (docs/kpi.md, "The weekly briefing") ----------------

def iso_week_bounds(year: int, week: int, tz) -> tuple[datetime, datetime]:
    """[start, end) in UTC of ISO week ``week`` of ``year``: local Monday 00:00 to the next Monday."""
    monday = date.fromisocalendar(year, week, 1)
    return day_start(monday, tz), day_start(monday + timedelta(days=7), tz)


def first_report(bind, scope: str | None) -> datetime | None:
    """When the store's record of events in scope begins (earliest ``reported_at``; None: no
    events). A comparison period before it has no data, which is not the same as zero events."""
    with _Bind(bind) as conn:
        return conn.execute(select(func.min(event.c.reported_at))
                            .where(in_scope(event.c.grid_code, scope))).scalar_one()


def top_subcategories(bind, scope: str | None, start: datetime, end: datetime,
                      limit: int | None = 10) -> list[dict]:
    """Events reported in [start, end) per 小类, largest first (ties: category, subcategory):
    [{"category", "subcategory", "count"}]; an event without a 小类 counts under its category
    with subcategory None."""
    stmt = (select(event.c.category, event.c.subcategory, func.count())
            .where(in_scope(event.c.grid_code, scope), _in_period(event.c.reported_at, start, end))
            .group_by(event.c.category, event.c.subcategory))
    with _Bind(bind) as conn:
        rows = [{"category": str(c), "subcategory": s, "count": int(n)} for c, s, n in conn.execute(stmt).all()]
    rows.sort(key=lambda r: (-r["count"], r["category"], r["subcategory"] or ""))
    return rows if limit is None else rows[:limit]


def rates_by_unit(bind, scope: str | None, start: datetime, end: datetime, now: datetime | None = None) -> list[dict]:
    """The standard rates of ``rates`` over [start, end) for each unit one level below the scope, in
    code order (units with no events listed, their rates None): [{"code", "name", "response_rate",
    ...}]. Numerators and denominators add up to the scope's ``rates``."""
    width = child_width(scope)
    with _Bind(bind) as conn:
        units = _units(conn, scope, width)
        by_unit = standard.standard_rates(conn, scope, start, end, by=_LEVEL_OF_WIDTH[width], now=now)
    empty = standard.rates_of({})
    return [{"code": u["code"], "name": u["name"], **by_unit.get(u["code"], empty)} for u in units]


def overdue_events(bind, scope: str | None, now: datetime, limit: int | None = None) -> dict:
    """Open events past their deadline now, most overdue first, with the fields a case list
    needs and no personal ones (no reporter, description or address): {"total", "rows"}; each row
    has its grid's name, ``overdue_hours`` and ``overtime`` (hours past the deadline over the hours
    allowed, the 超时倍数; None when the deadline was not after the report)."""
    now = _aware(now)
    cond = and_(_OPEN, in_scope(event.c.grid_code, scope), _overdue(now))
    stmt = (select(event.c.id, event.c.grid_code, region.c.name.label("grid_name"), event.c.category,
                   event.c.subcategory, event.c.level, event.c.urgent, event.c.state, event.c.source,
                   event.c.reported_at, event.c.deadline_at, event.c.escalations)
            .select_from(event.outerjoin(region, region.c.code == event.c.grid_code))
            .where(cond).order_by(event.c.deadline_at, event.c.id))
    if limit is not None:
        stmt = stmt.limit(limit)
    with _Bind(bind) as conn:
        total = conn.execute(select(func.count()).select_from(event).where(cond)).scalar_one()
        rows = [dict(r) for r in conn.execute(stmt).mappings().all()]
    for r in rows:
        over = (now - r["deadline_at"]).total_seconds() / 3600.0
        allowed = (r["deadline_at"] - r["reported_at"]).total_seconds() / 3600.0
        r.update(level=int(r["level"]), urgent=bool(r["urgent"]), escalations=int(r["escalations"] or 0),
                 overdue_hours=round(over, 1), overtime=round(over / allowed, 2) if allowed > 0 else None)
    return {"total": int(total), "rows": rows}


def hazard_deadlines(bind, scope: str | None, start: datetime, end: datetime, now: datetime) -> dict:
    """Hazards whose rectification deadline fell in [start, end) and has passed by ``now``:
    due, met (rectified by the deadline) and missed (rectified after it, or still not)."""
    now = _aware(now)
    stop = min(end, now)
    met = and_(hazard.c.rectified_at.is_not(None), hazard.c.rectified_at <= hazard.c.deadline_at)
    stmt = select(func.count(), _count_if(met)).where(
        in_scope(hazard.c.grid_code, scope), hazard.c.deadline_at >= start, hazard.c.deadline_at < stop)
    with _Bind(bind) as conn:
        due, n_met = conn.execute(stmt).one() if stop > start else (0, 0)
    return {"due": int(due), "met": int(n_met), "missed": int(due) - int(n_met)}


def grid_per_1000(bind, scope: str | None, start: datetime, end: datetime) -> dict[str, dict]:
    """Per grid in scope: events reported in [start, end), residents on record
    (``region.population``) and events per 1,000 residents, None when the grid has no residents
    (no rate, never 0): {grid_code: {"events", "population", "per_1000"}}."""
    width = CODE_WIDTH["grid"]
    unit = _prefix(event.c.grid_code, width).label("u")
    with _Bind(bind) as conn:
        grids = conn.execute(select(region.c.code, region.c.population).where(
            in_scope(region.c.code, scope), region.c.level == "grid")).all()
        counts = dict(conn.execute(select(unit, func.count()).where(
            in_scope(event.c.grid_code, scope), _in_period(event.c.reported_at, start, end)).group_by(unit)).all())
    out = {}
    for code, pop in grids:
        n = int(counts.get(code, 0))
        out[code] = {"events": n, "population": int(pop or 0), "per_1000": per_1000(n, pop)}
    return out


# --- bundles --------------------------------------------------------------------

def period_summary(bind, scope: str | None, start: datetime, end: datetime) -> dict:
    """Flow, rates and breakdowns of one period: what a briefing compares week on week."""
    with _Bind(bind) as conn:
        return {"start": start.isoformat(), "end": end.isoformat(),
                **flow_counts(conn, scope, start, end),
                "rates": rates(conn, scope, start, end),
                "by_level": events_by(conn, scope, start, end, "level"),
                "by_category": events_by(conn, scope, start, end, "category"),
                "by_source": events_by(conn, scope, start, end, "source")}


def slow_figures(bind, scope: str | None, now: datetime, tz) -> dict:
    """The parts of the wall that move slowly (30-day windows, population, houses);
    a caller may reuse them for a while (``wall_figures(..., slow=...)``) — the
    key ``day`` says which local day they were computed on."""
    now = _aware(now)
    s0, s1 = days_bounds(now, tz, SANLING_DAYS)  # also the ranking's window: a day is too few closures
    with _Bind(bind) as conn:
        return {
            "day": local_date(now, tz).isoformat(), "scope": scope or None,
            "trend30": daily_trend(conn, scope, now, tz, 30),
            "ranking_closed": ranking_closed(conn, scope, s0, s1),
            "sanling": {**sanling(conn, scope, s0, s1), "days": SANLING_DAYS},
            "population": population(conn, scope),
            "houses": houses(conn, scope),
        }


def wall_figures(bind, scope: str | None, now: datetime, tz, slow: dict | None = None) -> dict:
    """Everything the wall's panels show, in one read-only pass.

    "today" is the jurisdiction's local day containing ``now``; the ranking's
    on-time rate and the 三零 communities look at the last 30 local days.
    ``slow``: a ``slow_figures`` result to reuse; ignored when it is from
    another day or scope. Today's point of the trends is always live.
    """
    now = _aware(now)
    scope = scope or None
    t0, t1 = day_bounds(now, tz)
    with _Bind(bind) as conn:
        if not slow or slow.get("day") != local_date(now, tz).isoformat() or slow.get("scope") != scope:
            slow = slow_figures(conn, scope, now, tz)
        flow = flow_counts(conn, scope, t0, t1)
        stats = open_grid_stats(conn, scope, now)
        trend30 = [dict(d) for d in slow["trend30"]]
        trend30[-1].update(reported=flow["reported"], closed=flow["closed"])  # same definitions
        return {
            "scope": scope, "now": now.astimezone(timezone.utc).isoformat(),
            "tz": str(getattr(zone(tz), "key", tz)), "day": local_date(now, tz).isoformat(),
            "today": {**flow, **open_counts(conn, scope, now, stats)},
            "rates": rates(conn, scope, t0, t1, now),
            "by_level": events_by(conn, scope, t0, t1, "level"),
            "by_category": events_by(conn, scope, t0, t1, "category"),
            "by_source": events_by(conn, scope, t0, t1, "source"),
            "trend7": trend30[-7:], "trend30": trend30,
            "ranking": rank_units(slow["ranking_closed"], stats),
            "ranking_days": SANLING_DAYS,
            "ranking_level": _LEVEL_OF_WIDTH.get(child_width(scope), "grid"),
            "sanling": slow["sanling"],
            "staff": staff_on_duty(conn, scope, now),
            "patrols": patrols(conn, scope, t0, t1),
            "hazards": hazard_counts(conn, scope, now, t0, t1),
            "population": slow["population"],
            "houses": slow["houses"],
        }


__all__: Iterable[str] = (
    "zone", "local_date", "day_start", "day_bounds", "days_bounds", "week_bounds", "child_width",
    "flow_counts", "open_grid_stats", "open_counts", "rates", "ranking_closed", "rank_units", "slow_figures", "events_by", "daily_trend", "ranking", "sanling",
    "grid_measures", "per_1000", "patrolled_grids", "staff_on_duty", "patrols", "hazard_counts", "population", "houses",
    "period_summary", "wall_figures",
)
