"""The standard rates of digital urban management (issue 17, item 7), for any period and place.

Definitions are written down in docs/kpi.md ("The standard rates"); keep the two in step.

Three timestamps put a case in a period ``[start, end)``, each through an index
(``ix_event_reported_grid``, ``ix_event_deadline_grid``, ``ix_event_closed_at``):

- **reported** in the period: 立案率, 响应率, 派遣准确率 (the intake: what came in);
- **due** in the period, 应结案数 as the national evaluation counts it: the deadline falls in
  the period, or the case was closed in it (a case closed early counts in the period it
  closed): 结案率, 按期结案率, 按期处置率, 超期率;
- **closed** in the period: 返工率, 满意率 (what the closures were like).

One query per period reads the union of the three index ranges once and counts every rate with
conditional aggregates (``SUM(CASE ...)``), grouped when ``by`` asks for places or units, so a
period costs the rows it touches and nothing else. Numerators count only what happened before the
period's end, so a past period's figures are final; overdue counts only deadlines that have
passed by ``now`` as well.

Every rate is ``{"num", "den", "rate"}``; ``rate`` is None when ``den`` is 0 (no figure, never
a fake 0% or 100%).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import and_, case, func, literal_column, or_, select
from sqlalchemy.engine import Connection, Engine

from ..domain import CODE_WIDTH
from ..store.schema import event, handling_unit, region
from ..store.scope import in_scope

SATISFIED_MIN = 4  # satisfaction 1..5; 4 and 5 count as satisfied

# name -> (numerator, denominator) among the counts below; the order is the display order
RATES: dict[str, tuple[str, str]] = {
    "registration_rate": ("registered", "reported"),         # 立案率
    "response_rate": ("responded", "reported"),               # 响应率
    "dispatch_accuracy": ("dispatched_ok", "dispatched"),     # 派遣准确率
    "on_time_handling_rate": ("handled_on_time", "due"),      # 按期处置率 = 按期处置数 / 应处置数
    "closure_rate": ("closed_due", "due"),                    # 结案率 = 结案数 / 应结案数
    "on_time_rate": ("closed_on_time", "due"),                # 按期结案率 = 按期结案数 / 应结案数
    "overdue_rate": ("overdue", "due"),                       # 超期率
    "rework_rate": ("reworked", "closed"),                    # 返工率
    "satisfaction_rate": ("satisfied", "evaluated"),          # 满意率
}
LABELS = {
    "registration_rate": ("立案率", "Registration rate"),
    "response_rate": ("响应率", "Response rate"),
    "dispatch_accuracy": ("派遣准确率", "Dispatch accuracy"),
    "on_time_handling_rate": ("按期处置率", "On-time handling rate"),
    "closure_rate": ("结案率", "Closure rate"),
    "on_time_rate": ("按期结案率", "On-time closure rate"),
    "overdue_rate": ("超期率", "Overdue rate"),
    "rework_rate": ("返工率", "Rework rate"),
    "satisfaction_rate": ("满意率", "Satisfaction rate"),
}
GROUPS = ("unit", "street", "community", "grid", "micro")


def _count_if(cond):
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _in(col, start, end):
    return and_(col >= start, col < end)


def _before(col, end):
    return and_(col.is_not(None), col < end)


def _counts(start: datetime, end: datetime, now: datetime) -> dict:
    """The counts every rate is made of, as SQL aggregates over the period's rows."""
    c = event.c
    live = c.state != "merged"                       # a merged case lives on in the case it joined
    case_ = and_(live, c.state != "rejected")        # a rejected report never became a case
    reported = and_(live, _in(c.reported_at, start, end))
    due = and_(case_, c.state != "suspended",        # 挂账: off the books until resumed
               or_(_in(c.deadline_at, start, end), _in(c.closed_at, start, end)))
    no_deadline = c.deadline_at.is_(None)
    passed = min(end, now)
    dispatched = and_(reported, case_, _before(c.dispatched_at, end))
    closed = and_(case_, _in(c.closed_at, start, end))
    evaluated = and_(closed, c.satisfaction.is_not(None))
    return {
        "reported": reported,
        "registered": and_(reported, _before(c.registered_at, end)),
        "responded": and_(reported, _before(c.responded_at, end)),
        "dispatched": dispatched,
        "dispatched_ok": and_(dispatched, c.returns == 0),
        "due": due,
        "closed_due": and_(due, _before(c.closed_at, end)),
        "closed_on_time": and_(due, _before(c.closed_at, end), or_(no_deadline, c.closed_at <= c.deadline_at)),
        "handled_on_time": and_(due, _before(c.feedback_at, end),
                                or_(no_deadline, c.feedback_at <= c.deadline_at)),
        "overdue": and_(due, c.deadline_at < passed,
                        or_(c.feedback_at.is_(None), c.feedback_at > c.deadline_at)),
        "closed": closed,
        "reworked": and_(closed, c.reopened > 0),
        "evaluated": evaluated,
        "satisfied": and_(evaluated, c.satisfaction >= SATISFIED_MIN),
    }


def _rate(num: int, den: int) -> dict:
    return {"num": int(num), "den": int(den), "rate": (num / den) if den else None}


def rates_of(counts: dict) -> dict:
    """{rate name: {"num", "den", "rate"}} from a dict of the counts (missing counts are 0)."""
    return {name: _rate(counts.get(n, 0), counts.get(d, 0)) for name, (n, d) in RATES.items()}


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("rates: times must be aware datetimes (e.g. datetime.now(timezone.utc))")
    return at


def _bind(bind):
    """(connection, close it afterwards?) for an Engine or a Connection."""
    return (bind.connect(), True) if isinstance(bind, Engine) else (bind, False)


def _group_key(by: str | None):
    if by is None:
        return None
    if by == "unit":
        return event.c.unit_code
    if by in GROUPS:
        # the width as a literal: PostgreSQL refuses GROUP BY substr(col, $1, $2) against the select's copy
        return func.substr(event.c.grid_code, literal_column("1"), literal_column(str(CODE_WIDTH[by])))
    raise ValueError(f"standard_rates: by must be None or one of {', '.join(GROUPS)}, not {by!r}")


def count_rows(conn: Connection, scope: str | None, start: datetime, end: datetime, now: datetime,
               by: str | None = None) -> dict:
    """The raw counts of one period: {group (None when by is None): {count name: n}}."""
    counts = _counts(start, end, now)
    key = _group_key(by)
    c = event.c
    touched = or_(_in(c.reported_at, start, end), _in(c.deadline_at, start, end), _in(c.closed_at, start, end))
    cols = [_count_if(cond).label(name) for name, cond in counts.items()]
    stmt = select(*(([key.label("g")] if key is not None else []) + cols)).where(
        in_scope(c.grid_code, scope), touched)
    if key is not None:
        stmt = stmt.group_by(key)
    out = {}
    for row in conn.execute(stmt).mappings():
        out[row["g"] if key is not None else None] = {n: int(row[n]) for n in counts}
    return out


def _groups(conn: Connection, scope: str | None, by: str) -> dict[str, str]:
    """Every group of ``by`` in scope (code -> name), listed even with no case in the period."""
    if by == "unit":
        # units serving a place in scope, or above it (a district department serves a street too)
        rows = conn.execute(select(handling_unit.c.code, handling_unit.c.name_zh, handling_unit.c.region_code)
                            .where(handling_unit.c.active.is_(True))).all()
        return {code: name for code, name, rc in rows
                if not scope or (rc or "").startswith(scope) or scope.startswith(rc or "")}
    return dict(conn.execute(select(region.c.code, region.c.name)
                             .where(in_scope(region.c.code, scope), region.c.level == by)).all())


def standard_rates(engine, scope: str | None, start: datetime, end: datetime, *, by: str | None = None,
                   now: datetime | None = None) -> dict:
    """The standard rates over ``[start, end)`` for ``scope`` (a region code; None or "": everything).

    by None: {rate name: {"num", "den", "rate"}}; by "unit" or "street" / "community" / "grid":
    {group code: rates}, in code order, every region of that level in scope (or every active
    handling unit serving it) listed even when it had no case (its rates None), plus any group
    found in the cases (a unit since deactivated; "" for cases no unit holds yet).
    ``now`` (default: the current time) bounds overdue: a deadline still ahead is not a breach.
    """
    start, end = _aware(start), _aware(end)
    now = _aware(now) if now is not None else datetime.now(timezone.utc)
    conn, close = _bind(engine)
    try:
        rows = count_rows(conn, scope, start, end, now, by)
        if by is None:
            return rates_of(rows.get(None, {}))
        groups = _groups(conn, scope, by)
    finally:
        if close:
            conn.close()
    rows = {("" if g is None else g): v for g, v in rows.items()}  # no unit yet: ""
    return {g: rates_of(rows.get(g, {})) for g in sorted(set(groups) | set(rows))}


def year_before(at: datetime) -> datetime:
    """The same moment a year earlier (29 February falls on the 28th)."""
    try:
        return at.replace(year=at.year - 1)
    except ValueError:
        return at.replace(year=at.year - 1, day=28)


def change(cur: dict, prev: dict) -> dict:
    """Per rate: the current rate minus the other period's (a fraction: 0.05 is 5 percentage points);
    None when either has no figure."""
    return {k: (cur[k]["rate"] - prev[k]["rate"]
                if cur[k]["rate"] is not None and prev.get(k, {}).get("rate") is not None else None)
            for k in cur}


def kpi_rollup(engine, scope: str | None, start: datetime, end: datetime, *, now: datetime | None = None) -> dict:
    """The standard rates of ``[start, end)`` with 环比 and 同比.

    {"current", "wow" (the previous period of the same length, ending at ``start``: 环比),
     "yoy" (the same dates a year earlier: 同比), "change_wow", "change_yoy" (``change``),
     "periods": {"current" | "wow" | "yoy": [start, end] in ISO 8601}}.
    """
    start, end = _aware(start), _aware(end)
    now = _aware(now) if now is not None else datetime.now(timezone.utc)
    length = end - start
    if length <= timedelta(0):
        raise ValueError("kpi_rollup: the period must end after it starts")
    periods = {"current": (start, end), "wow": (start - length, start),
               "yoy": (year_before(start), year_before(end))}
    conn, close = _bind(engine)
    try:
        out = {k: standard_rates(conn, scope, a, b, now=now) for k, (a, b) in periods.items()}
    finally:
        if close:
            conn.close()
    out["change_wow"] = change(out["current"], out["wow"])
    out["change_yoy"] = change(out["current"], out["yoy"])
    out["periods"] = {k: [a.isoformat(), b.isoformat()] for k, (a, b) in periods.items()}
    return out


__all__ = ("RATES", "LABELS", "GROUPS", "standard_rates", "kpi_rollup", "count_rows", "rates_of",
           "year_before", "change")
